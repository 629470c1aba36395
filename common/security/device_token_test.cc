#include "common/security/device_token.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace converge {
namespace {

class DeviceTokenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = absl::StrCat(getenv("TEST_TMPDIR"), "/keys");
    ASSERT_EQ(system(absl::StrCat("tools/certs/make-certs ", dir_, " >/dev/null").c_str()), 0);
    ASSERT_EQ(system(absl::StrCat("openssl genpkey -algorithm ed25519 -out ", dir_, "/other.key 2>/dev/null").c_str()), 0);
    auto signer = TokenSigner::FromPemFile(dir_ + "/token-signing.key");
    ASSERT_TRUE(signer.ok()) << signer.status();
    signer_ = std::move(*signer);
    auto verifier = TokenVerifier::FromPemFile(dir_ + "/token-verify.pub");
    ASSERT_TRUE(verifier.ok()) << verifier.status();
    verifier_ = std::move(*verifier);
    claims_.device_id = "dev-1";
    claims_.user_id = "alice";
    claims_.namespaces = {"photos", "docs"};
    claims_.issued_at = absl::FromUnixSeconds(1'800'000'000);
    claims_.expires_at = claims_.issued_at + absl::Minutes(10);
  }

  std::string dir_;
  std::unique_ptr<TokenSigner> signer_;
  std::unique_ptr<TokenVerifier> verifier_;
  DeviceClaims claims_;
};

TEST_F(DeviceTokenTest, RoundTripsClaimsUntilExpiry) {
  auto token = signer_->Sign(claims_);
  ASSERT_TRUE(token.ok());
  auto got = verifier_->Verify(*token, claims_.issued_at + absl::Minutes(9));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->device_id, "dev-1");
  EXPECT_EQ(got->user_id, "alice");
  EXPECT_TRUE(got->HasNamespace("docs"));
  EXPECT_FALSE(got->HasNamespace("music"));
  EXPECT_EQ(got->expires_at, claims_.expires_at);
  EXPECT_EQ(verifier_->Verify(*token, claims_.expires_at).status().code(), absl::StatusCode::kUnauthenticated);
}

TEST_F(DeviceTokenTest, RejectsTamperingForgeriesAndGarbage) {
  auto token = signer_->Sign(claims_);
  ASSERT_TRUE(token.ok());
  const absl::Time now = claims_.issued_at;
  // Claims edited to another user, signature kept.
  DeviceClaims other = claims_;
  other.user_id = "mallory";
  auto forged = signer_->Sign(other);
  ASSERT_TRUE(forged.ok());
  const std::string spliced = forged->substr(0, forged->rfind('.')) + token->substr(token->rfind('.'));
  EXPECT_EQ(verifier_->Verify(spliced, now).status().code(), absl::StatusCode::kUnauthenticated);
  // Signed by a key management does not hold.
  auto rogue = TokenSigner::FromPemFile(dir_ + "/other.key");
  ASSERT_TRUE(rogue.ok());
  EXPECT_EQ(verifier_->Verify(*(*rogue)->Sign(claims_), now).status().code(), absl::StatusCode::kUnauthenticated);
  // One flipped bit anywhere.
  for (size_t i = 5; i < token->size(); i += 7) {
    std::string t = *token;
    t[i] = t[i] == 'A' ? 'B' : 'A';
    EXPECT_FALSE(verifier_->Verify(t, now).ok()) << i;
  }
  // The same bytes spelled another way: padding added, or the last character's unused bits set.
  {
    ASSERT_TRUE(verifier_->Verify(*token, now).ok());
    EXPECT_EQ(verifier_->Verify(*token + "==", now).status().code(), absl::StatusCode::kUnauthenticated);
    const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string respelled = *token;
    const size_t last = alphabet.find(respelled.back());
    ASSERT_NE(last, std::string::npos);
    respelled.back() = alphabet[(last & ~size_t{3}) | ((last + 1) & 3)];  // 64 bytes leave 4 bits unused
    std::string decoded_a, decoded_b;
    ASSERT_TRUE(absl::WebSafeBase64Unescape(token->substr(token->rfind('.') + 1), &decoded_a));
    ASSERT_TRUE(absl::WebSafeBase64Unescape(respelled.substr(respelled.rfind('.') + 1), &decoded_b));
    EXPECT_EQ(decoded_a, decoded_b);  // the decoder reads both as the same signature...
    EXPECT_EQ(verifier_->Verify(respelled, now).status().code(), absl::StatusCode::kUnauthenticated);  // ...we do not
  }
  for (const std::string& junk : {std::string(""), std::string("cvt1."), std::string("cvt1.a.b"),
                                  std::string("Bearer x"), std::string(9000, 'c')}) {
    EXPECT_EQ(verifier_->Verify(junk, now).status().code(), absl::StatusCode::kUnauthenticated) << junk;
  }
  // A verifier refuses to load a private key as public and vice versa.
  EXPECT_FALSE(TokenVerifier::FromPemFile(dir_ + "/token-signing.key").ok());
  EXPECT_FALSE(TokenSigner::FromPemFile(dir_ + "/token-verify.pub").ok());
  EXPECT_FALSE(TokenSigner::FromPemFile(dir_ + "/ca.key").ok());  // not Ed25519
}

TEST_F(DeviceTokenTest, UserTokensNameOnlyTheUserAndAreNeverTakenForDeviceTokens) {
  UserClaims user{"alice", claims_.issued_at, claims_.issued_at + absl::Hours(1)};
  auto token = signer_->SignUser(user);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(token->rfind(kUserTokenPrefix, 0), 0u);
  auto got = verifier_->VerifyUser(*token, claims_.issued_at + absl::Minutes(59));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->user_id, "alice");
  EXPECT_EQ(verifier_->VerifyUser(*token, user.expires_at).status().code(), absl::StatusCode::kUnauthenticated);
  // Neither kind passes for the other, not even with the prefix swapped.
  EXPECT_EQ(verifier_->Verify(*token, claims_.issued_at).status().code(), absl::StatusCode::kUnauthenticated);
  auto device = signer_->Sign(claims_);
  ASSERT_TRUE(device.ok());
  EXPECT_FALSE(verifier_->VerifyUser(*device, claims_.issued_at).ok());
  std::string swapped = *token;
  swapped.replace(0, 5, kDeviceTokenPrefix);
  EXPECT_FALSE(verifier_->Verify(swapped, claims_.issued_at).ok());
  std::string swapped_device = *device;
  swapped_device.replace(0, 5, kUserTokenPrefix);
  EXPECT_FALSE(verifier_->VerifyUser(swapped_device, claims_.issued_at).ok());
  EXPECT_EQ(signer_->SignUser(UserClaims{}).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace converge
