#include "common/crypto/device_keys.h"

#include "gtest/gtest.h"

namespace converge::crypto {
namespace {

TEST(DeviceKeysTest, OnlyTheDeviceSealedToOpensTheSecret) {
  const DeviceKeys laptop = DeviceKeys::Generate(), phone = DeviceKeys::Generate();
  const std::string sealed = SealTo(laptop.public_key(), "the namespace keyring");
  EXPECT_EQ(sealed.find("namespace keyring"), std::string::npos);
  absl::StatusOr<std::string> opened = laptop.OpenSealed(sealed);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, "the namespace keyring");
  EXPECT_EQ(phone.OpenSealed(sealed).status().code(), absl::StatusCode::kPermissionDenied);
  std::string altered = sealed;
  altered[altered.size() - 3] ^= 1;
  EXPECT_EQ(laptop.OpenSealed(altered).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_FALSE(laptop.OpenSealed("short").ok());
}

TEST(DeviceKeysTest, SignaturesVerifyOnlyForTheirMessageAndDevice) {
  const DeviceKeys a = DeviceKeys::Generate(), b = DeviceKeys::Generate();
  const std::string sig = a.Sign("commit 7");
  EXPECT_EQ(sig.size(), kSignatureBytes);
  EXPECT_TRUE(VerifySignature(a.public_key(), "commit 7", sig));
  EXPECT_FALSE(VerifySignature(a.public_key(), "commit 8", sig));
  EXPECT_FALSE(VerifySignature(b.public_key(), "commit 7", sig));
  EXPECT_FALSE(VerifySignature(a.public_key(), "commit 7", sig.substr(1)));
}

TEST(DeviceKeysTest, AKeyFileReadBackIsTheSameDevice) {
  const DeviceKeys a = DeviceKeys::Generate();
  absl::StatusOr<DeviceKeys> back = DeviceKeys::Parse(a.Serialize());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->public_key(), a.public_key());
  EXPECT_TRUE(VerifySignature(a.public_key(), "m", back->Sign("m")));
  EXPECT_TRUE(back->OpenSealed(SealTo(a.public_key(), "s")).ok());
  // A file whose signing key was tampered with is refused, not used.
  std::string bad = a.Serialize();
  bad[4 + 32 + 40] ^= 1;
  EXPECT_FALSE(DeviceKeys::Parse(bad).ok());
  EXPECT_FALSE(DeviceKeys::Parse(bad.substr(1)).ok());
}

TEST(DeviceKeysTest, PublicKeysTravelAsBytesAndShowAFingerprintPeopleCanCompare) {
  const DeviceKeys a = DeviceKeys::Generate(), b = DeviceKeys::Generate();
  absl::StatusOr<DevicePublicKey> back = DevicePublicKey::FromBytes(a.public_key().ToBytes());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, a.public_key());
  EXPECT_FALSE(DevicePublicKey::FromBytes("x").ok());
  const std::string fp = a.public_key().Fingerprint();
  EXPECT_EQ(fp.size(), 6u * 5 + 5);
  EXPECT_EQ(fp, back->Fingerprint());
  EXPECT_NE(fp, b.public_key().Fingerprint());
}

}  // namespace
}  // namespace converge::crypto
