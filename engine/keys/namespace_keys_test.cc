#include "engine/keys/namespace_keys.h"

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "gtest/gtest.h"

namespace converge::engine {
namespace {

// Management's key records of one namespace, in memory, as every device sees them; a test
// plays a hostile management by changing them between calls.
struct Records {
  std::map<std::string, KeyRecord> by_device;
  std::string keyring_id;
  std::string recovery;
};

class FakeDirectory : public KeyDirectoryClient {
 public:
  FakeDirectory(Records* records, std::string device) : records_(records), device_(std::move(device)) {}
  absl::StatusOr<KeyRecord> Publish(const std::string& public_key) override {
    KeyRecord& r = records_->by_device[device_];
    if (r.public_key != public_key && r.granted) return absl::FailedPreconditionError("granted under another key");
    r.device_id = device_;
    r.public_key = public_key;
    return r;
  }
  absl::StatusOr<KeyListing> List() override {
    KeyListing l;
    for (const auto& [id, r] : records_->by_device) l.records.push_back(r);
    l.keyring_id = records_->keyring_id;
    return l;
  }
  absl::Status Grant(const KeyRecord& g) override {
    KeyRecord r = g;
    r.granted = true;
    records_->by_device[g.device_id] = r;
    if (records_->keyring_id.empty()) records_->keyring_id = g.keyring_id;
    return absl::OkStatus();
  }
  absl::StatusOr<KeyRecord> Own() override {
    auto it = records_->by_device.find(device_);
    if (it == records_->by_device.end()) return absl::NotFoundError("no key");
    return it->second;
  }
  absl::Status SetRecovery(const std::string& wrapped, const std::string&) override {
    records_->recovery = wrapped;
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> GetRecovery() override {
    if (records_->recovery.empty()) return absl::NotFoundError("no recovery key");
    return records_->recovery;
  }

 private:
  Records* const records_;
  const std::string device_;
};

class NamespaceKeysTest : public ::testing::Test {
 protected:
  std::unique_ptr<NamespaceKeys> Device(const std::string& name) {
    directories_[name] = std::make_unique<FakeDirectory>(&records_, name);
    const std::string dir = std::string(getenv("TEST_TMPDIR")) + "/" +
                            ::testing::UnitTest::GetInstance()->current_test_info()->name() + "-" + name;
    auto keys = NamespaceKeys::Open(dir, "docs", name, directories_[name].get());
    EXPECT_TRUE(keys.ok()) << keys.status();
    return keys.ok() ? std::move(*keys) : nullptr;
  }

  Records records_;
  std::map<std::string, std::unique_ptr<FakeDirectory>> directories_;
};

TEST_F(NamespaceKeysTest, ANewDeviceGetsTheKeyringAfterBothSidesCheckFingerprints) {
  auto laptop = Device("laptop");
  auto phone = Device("phone");
  auto made = laptop->Init("");
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_TRUE(made->has_keyring);
  absl::StatusOr<std::string> phone_fp = phone->Request();
  ASSERT_TRUE(phone_fp.ok());
  EXPECT_FALSE(phone->keyring().has_value());
  EXPECT_EQ(phone->Accept(made->device_fingerprint).status().code(), absl::StatusCode::kFailedPrecondition);  // not yet
  EXPECT_EQ(laptop->Approve("phone", "00000 00000 00000 00000 00000 00000").code(), absl::StatusCode::kPermissionDenied);
  ASSERT_TRUE(laptop->Approve("phone", *phone_fp).ok());
  EXPECT_EQ(phone->Accept("11111 11111 11111 11111 11111 11111").status().code(), absl::StatusCode::kPermissionDenied);
  auto accepted = phone->Accept(NormalizeFingerprint(made->device_fingerprint));
  ASSERT_TRUE(accepted.ok()) << accepted.status();
  EXPECT_TRUE(accepted->has_keyring);
  EXPECT_EQ(accepted->keyring_id, made->keyring_id);
  EXPECT_EQ(phone->keyring()->Names().mac, laptop->keyring()->Names().mac);
  // The phone restarts: its keys and keyring come back from its state.
  phone.reset();
  auto again = Device("phone");
  ASSERT_TRUE(again->keyring().has_value());
  EXPECT_EQ(again->keyring()->Id(), laptop->keyring()->Id());
  EXPECT_EQ(again->Status()->device_fingerprint, *phone_fp);
}

TEST_F(NamespaceKeysTest, AManagementThatSwapsTheWaitingDevicesKeyIsCaughtByTheApprover) {
  auto laptop = Device("laptop");
  auto phone = Device("phone");
  auto mallory = Device("mallory");  // a device of the attacker's
  ASSERT_TRUE(laptop->Init("").ok());
  const std::string phone_fp = *phone->Request();
  ASSERT_TRUE(mallory->Request().ok());
  // Management shows mallory's key as the phone's: the laptop would seal to it, but its user
  // types the fingerprint the phone itself shows.
  const std::string real_phone_key = records_.by_device["phone"].public_key;
  records_.by_device["phone"].public_key = records_.by_device["mallory"].public_key;
  EXPECT_EQ(laptop->Approve("phone", phone_fp).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_FALSE(records_.by_device["phone"].granted);
  records_.by_device["phone"].public_key = real_phone_key;
  EXPECT_TRUE(laptop->Approve("phone", phone_fp).ok());
  EXPECT_EQ(laptop->Approve("nobody", phone_fp).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(NamespaceKeysTest, AGrantFromAnotherKeyOrAlteredIsNotAccepted) {
  auto laptop = Device("laptop");
  auto phone = Device("phone");
  auto mallory = Device("mallory");
  ASSERT_TRUE(laptop->Init("").ok());
  const std::string laptop_fp = laptop->Status()->device_fingerprint;
  const std::string phone_fp = *phone->Request();
  // A different keyring, sealed to the phone and signed by mallory, but labelled as the laptop's
  // grant: the phone's user was told the laptop's fingerprint.
  Records saved = records_;
  records_.keyring_id.clear();
  records_.by_device.erase("laptop");
  ASSERT_TRUE(mallory->Init("").ok());
  ASSERT_TRUE(mallory->Approve("phone", phone_fp).ok());
  KeyRecord forged = records_.by_device["phone"];
  records_ = saved;
  forged.granted_by = "laptop";
  records_.by_device["phone"] = forged;
  EXPECT_EQ(phone->Accept(laptop_fp).status().code(), absl::StatusCode::kPermissionDenied);
  // The laptop's real grant with one byte of the sealed keyring changed.
  ASSERT_TRUE(laptop->Approve("phone", phone_fp).ok());
  records_.by_device["phone"].sealed_keyring[10] ^= 1;
  EXPECT_EQ(phone->Accept(laptop_fp).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_FALSE(phone->keyring().has_value());
  ASSERT_TRUE(laptop->Approve("phone", phone_fp).ok());
  EXPECT_TRUE(phone->Accept(laptop_fp).ok());
}

TEST_F(NamespaceKeysTest, TheRecoveryPassphraseAloneBringsTheKeyringToANewDevice) {
  auto laptop = Device("laptop");
  auto tablet = Device("tablet");
  ASSERT_TRUE(laptop->Init("a long passphrase").ok());
  EXPECT_FALSE(records_.recovery.empty());
  EXPECT_EQ(tablet->Recover("wrong").status().code(), absl::StatusCode::kPermissionDenied);
  auto recovered = tablet->Recover("a long passphrase");
  ASSERT_TRUE(recovered.ok()) << recovered.status();
  EXPECT_EQ(tablet->keyring()->Id(), laptop->keyring()->Id());
  // It granted itself, so it can approve others.
  EXPECT_TRUE(records_.by_device["tablet"].granted);
  EXPECT_EQ(laptop->Init("").status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(NamespaceKeysTest, KeyFilesAreTheOwnersAlone) {
  auto laptop = Device("laptop");
  ASSERT_TRUE(laptop->Init("").ok());
  const std::string dir = std::string(getenv("TEST_TMPDIR")) + "/KeyFilesAreTheOwnersAlone-laptop";
  for (const char* f : {"/device.key", "/keyring"}) {
    struct stat st;
    ASSERT_EQ(stat((dir + f).c_str(), &st), 0) << f;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << f;
  }
  struct stat st;
  ASSERT_EQ(stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  // A damaged key file is an error, never silently replaced by a new identity.
  laptop.reset();
  std::ofstream(dir + "/device.key", std::ios::trunc) << "garbage";
  EXPECT_EQ(NamespaceKeys::Open(dir, "docs", "laptop", directories_["laptop"].get()).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST_F(NamespaceKeysTest, ADeviceLeavingRotatesTheKeyringForTheOthersOnly) {
  auto laptop = Device("laptop");
  auto phone = Device("phone");
  auto tablet = Device("tablet");
  ASSERT_TRUE(laptop->Init("recovery words").ok());
  const std::string laptop_fp = laptop->Status()->device_fingerprint;
  for (NamespaceKeys* d : {phone.get(), tablet.get()}) {
    const std::string fp = *d->Request();
    ASSERT_TRUE(laptop->Approve(d == phone.get() ? "phone" : "tablet", fp).ok());
    ASSERT_TRUE(d->Accept(laptop_fp).ok());
  }
  for (NamespaceKeys* d : {laptop.get(), phone.get(), tablet.get()}) ASSERT_TRUE(d->Watch().ok());  // nothing to do
  EXPECT_EQ(laptop->keyring()->current_epoch(), 1u);
  const crypto::Keyring tablet_ring = *tablet->keyring();
  // The tablet is revoked: management lists it as such. The next look of a holder rotates.
  records_.by_device["tablet"].revoked = true;
  ASSERT_TRUE(phone->Watch().ok());
  EXPECT_EQ(phone->keyring()->current_epoch(), 2u);
  EXPECT_TRUE(phone->keyring()->Extends(tablet_ring));  // older epochs stay readable
  // The laptop takes epoch 2 from the phone's grant (and has nothing to rotate itself).
  ASSERT_TRUE(laptop->Watch().ok());
  EXPECT_EQ(laptop->keyring()->current_epoch(), 2u);
  EXPECT_EQ(laptop->keyring()->Current().chunk.ToBytes(), phone->keyring()->Current().chunk.ToBytes());
  EXPECT_EQ(tablet->keyring()->current_epoch(), 1u);  // what is written from now on is not the tablet's
  EXPECT_EQ(records_.by_device["tablet"].epoch, 1u);
  ASSERT_TRUE(phone->Watch().ok());  // the revoked tablet holds an old epoch now: no more rotation
  EXPECT_EQ(phone->keyring()->current_epoch(), 2u);
  // A "rotation" that does not extend the holder's keyring (management's own, or a stranger's)
  // is refused: only a holder of the keys can make one.
  auto mallory = Device("mallory");
  ASSERT_TRUE(mallory->Request().ok());
  records_.by_device["mallory"].granted = true;
  crypto::Keyring forged = crypto::Keyring::Create();
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(forged.Rotate().ok());
  KeyRecord& mine = records_.by_device["phone"];
  const crypto::DeviceKeys mallory_keys = crypto::DeviceKeys::Generate();
  records_.by_device["mallory"].public_key = mallory_keys.public_key().ToBytes();
  mine.sealed_keyring = crypto::SealTo(*crypto::DevicePublicKey::FromBytes(mine.public_key), forged.Serialize());
  mine.granted_by = "mallory";
  mine.epoch = 3;
  mine.grant_signature = mallory_keys.Sign(crypto::KeyGrantSigningBytes(
      {"docs", "phone", mine.public_key, mine.sealed_keyring, mine.keyring_id, mine.epoch}));
  EXPECT_EQ(phone->Refresh().status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(phone->keyring()->current_epoch(), 2u);
}

}  // namespace
}  // namespace converge::engine
