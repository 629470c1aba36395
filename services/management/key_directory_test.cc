#include "services/management/key_directory.h"

#include <cstdlib>
#include <filesystem>
#include <thread>

#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"
#include "common/crypto/device_keys.h"
#include "common/crypto/keyring.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/fake_data_plane.h"

namespace converge::management {
namespace {

using crypto::DeviceKeys;
using crypto::Keyring;

// A namespace "docs" of alice's with three member devices (laptop, phone, tablet) and one
// device of bob's that is not a member; each device has its own key pair.
class KeyDirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::string(getenv("TEST_TMPDIR")) + "/" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    auto r = Registry::Open(dir_, &data_plane_, &clock_);
    ASSERT_TRUE(r.ok()) << r.status();
    registry_ = std::move(*r);
    ASSERT_TRUE(registry_->CreateUser("alice", "").ok());
    ASSERT_TRUE(registry_->CreateUser("bob", "").ok());
    ASSERT_TRUE(registry_->CreateNamespace("docs", "alice", false, /*encrypted=*/true).ok());
    ASSERT_TRUE(registry_->CreateNamespace("plain", "alice").ok());
    for (const char* name : {"laptop", "phone", "tablet"}) {
      auto d = registry_->RegisterDevice("alice", name);
      ASSERT_TRUE(d.ok());
      ASSERT_TRUE(registry_->AddDevice("docs", d->device.device_id).ok());
      ids_.push_back(d->device.device_id);
    }
    outsider_ = registry_->RegisterDevice("bob", "bobs")->device.device_id;
    ASSERT_TRUE(registry_->AddDevice("plain", ids_[0]).ok());
    keys_ = std::make_unique<KeyDirectory>(registry_.get(), registry_->records(), &clock_);
  }

  // GrantOf: what device `from` sends to seal `ring` to `to`'s published key.
  KeyGrant GrantOf(const DeviceKeys& from, const std::string& from_id, const std::string& to_id,
                   const std::string& to_public, const Keyring& ring) {
    KeyGrant g;
    g.namespace_id = "docs";
    g.device_id = to_id;
    g.public_key = to_public;
    g.sealed_keyring = crypto::SealTo(*crypto::DevicePublicKey::FromBytes(to_public), ring.Serialize());
    g.granted_by = from_id;
    g.keyring_id = ring.Id();
    g.epoch = ring.current_epoch();
    g.grant_signature = from.Sign(crypto::KeyGrantSigningBytes(
        {"docs", g.device_id, g.public_key, g.sealed_keyring, g.keyring_id, g.epoch}));
    return g;
  }

  std::string dir_;
  FakeDataPlane data_plane_;
  FakeClock clock_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<KeyDirectory> keys_;
  std::vector<std::string> ids_;
  std::string outsider_;
  DeviceKeys laptop_ = DeviceKeys::Generate(), phone_ = DeviceKeys::Generate(), bobs_ = DeviceKeys::Generate();
};

TEST_F(KeyDirectoryTest, AFirstDeviceGrantsItselfThenApprovesAnotherWhoOpensTheSameKeyring) {
  const Keyring ring = Keyring::Create();
  const std::string laptop_pk = laptop_.public_key().ToBytes(), phone_pk = phone_.public_key().ToBytes();
  ASSERT_TRUE(keys_->Publish("docs", ids_[0], laptop_pk).ok());
  auto self = keys_->Grant(GrantOf(laptop_, ids_[0], ids_[0], laptop_pk, ring));
  ASSERT_TRUE(self.ok()) << self.status();
  // The phone asks; the listing shows it waiting, without any sealed bytes.
  auto waiting = keys_->Publish("docs", ids_[1], phone_pk);
  ASSERT_TRUE(waiting.ok());
  EXPECT_FALSE(waiting->granted);
  auto list = keys_->List("docs");
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->keyring_id, ring.Id());
  ASSERT_EQ(list->grants.size(), 2u);
  for (const KeyGrant& g : list->grants) EXPECT_TRUE(g.sealed_keyring.empty());
  ASSERT_TRUE(keys_->Grant(GrantOf(laptop_, ids_[0], ids_[1], phone_pk, ring)).ok());
  auto mine = keys_->Get("docs", ids_[1]);
  ASSERT_TRUE(mine.ok());
  EXPECT_TRUE(mine->granted);
  EXPECT_EQ(mine->granted_by, ids_[0]);
  auto opened = phone_.OpenSealed(mine->sealed_keyring);
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(Keyring::Parse(*opened)->Id(), ring.Id());
  // Publishing the same key again changes nothing; another key after the grant is refused.
  EXPECT_TRUE(keys_->Publish("docs", ids_[1], phone_pk)->granted);
  EXPECT_EQ(keys_->Publish("docs", ids_[1], bobs_.public_key().ToBytes()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// Records whose writes of one namespace's keys can be held (a slow disk under one tenant).
class HeldWrites : public RegistryKv {
 public:
  HeldWrites(RegistryKv* inner, std::string held_prefix) : inner_(inner), held_prefix_(std::move(held_prefix)) {}
  absl::StatusOr<std::string> Get(const std::string& key) override { return inner_->Get(key); }
  absl::Status Put(const std::string& key, const std::string& value) override {
    if (absl::StartsWith(key, held_prefix_)) {
      held.Notify();
      release.WaitForNotificationWithTimeout(absl::Seconds(30));
    }
    return inner_->Put(key, value);
  }
  absl::Status Delete(const std::string& key) override { return inner_->Delete(key); }
  absl::Status Scan(const std::string& prefix, const ScanFn& fn) override { return inner_->Scan(prefix, fn); }
  absl::Notification held;
  absl::Notification release;

 private:
  RegistryKv* const inner_;
  const std::string held_prefix_;
};

TEST_F(KeyDirectoryTest, OneNamespacesChangeInProgressHoldsNoOtherNamespaceUp) {
  ASSERT_TRUE(registry_->CreateNamespace("team", "bob", false, /*encrypted=*/true).ok());
  ASSERT_TRUE(registry_->AddDevice("team", outsider_).ok());
  HeldWrites records(registry_->records(), std::string("K") + "docs");
  KeyDirectory keys(registry_.get(), &records, &clock_);
  std::thread slow([&] { EXPECT_TRUE(keys.Publish("docs", ids_[0], laptop_.public_key().ToBytes()).ok()); });
  ASSERT_TRUE(records.held.WaitForNotificationWithTimeout(absl::Seconds(10)));
  // docs's change is stuck halfway; bob's namespace goes on.
  absl::StatusOr<KeyGrant> other = keys.Publish("team", outsider_, bobs_.public_key().ToBytes());
  EXPECT_TRUE(other.ok()) << other.status();
  EXPECT_FALSE(keys.Get("docs", ids_[0]).ok());  // not written yet
  records.release.Notify();
  slow.join();
  EXPECT_TRUE(keys.Get("docs", ids_[0]).ok());
}

TEST_F(KeyDirectoryTest, GrantsManagementCanTellAreWrongAreRefused) {
  const Keyring ring = Keyring::Create();
  const std::string laptop_pk = laptop_.public_key().ToBytes(), phone_pk = phone_.public_key().ToBytes();
  ASSERT_TRUE(keys_->Publish("docs", ids_[0], laptop_pk).ok());
  ASSERT_TRUE(keys_->Publish("docs", ids_[1], phone_pk).ok());
  // Sealed to a key the phone never published (a substituted key).
  const std::string other_pk = bobs_.public_key().ToBytes();
  EXPECT_EQ(keys_->Grant(GrantOf(laptop_, ids_[0], ids_[1], other_pk, ring)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  // Signed by a key that is not the granter's published one.
  KeyGrant forged = GrantOf(bobs_, ids_[0], ids_[1], phone_pk, ring);
  EXPECT_EQ(keys_->Grant(forged).status().code(), absl::StatusCode::kInvalidArgument);
  // Altered after signing.
  KeyGrant altered = GrantOf(laptop_, ids_[0], ids_[1], phone_pk, ring);
  altered.epoch = 7;
  EXPECT_EQ(keys_->Grant(altered).status().code(), absl::StatusCode::kInvalidArgument);
  // To or from a device that is not a member; from a member with no published key.
  EXPECT_EQ(keys_->Publish("docs", outsider_, other_pk).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(keys_->Grant(GrantOf(laptop_, ids_[0], outsider_, other_pk, ring)).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(keys_->Grant(GrantOf(laptop_, ids_[2], ids_[1], phone_pk, ring)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  // Malformed fields; a namespace that is not encrypted.
  EXPECT_EQ(keys_->Publish("docs", ids_[2], "short").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(keys_->Publish("plain", ids_[0], laptop_pk).status().code(), absl::StatusCode::kFailedPrecondition);
  KeyGrant empty = GrantOf(laptop_, ids_[0], ids_[1], phone_pk, ring);
  empty.sealed_keyring.clear();
  EXPECT_EQ(keys_->Grant(empty).status().code(), absl::StatusCode::kInvalidArgument);
  KeyGrant huge = GrantOf(laptop_, ids_[0], ids_[1], phone_pk, ring);
  huge.sealed_keyring.assign(kMaxSealedKeyringBytes + 1, 'x');
  EXPECT_EQ(keys_->Grant(huge).status().code(), absl::StatusCode::kInvalidArgument);
  // Nothing above was stored.
  EXPECT_FALSE(keys_->Get("docs", ids_[1])->granted);
  EXPECT_TRUE(keys_->List("docs")->keyring_id.empty());
}

TEST_F(KeyDirectoryTest, ANamespaceHasOneKeyringAndADeviceNeverGoesBackAnEpoch) {
  Keyring ring = Keyring::Create();
  const std::string laptop_pk = laptop_.public_key().ToBytes(), phone_pk = phone_.public_key().ToBytes();
  ASSERT_TRUE(keys_->Publish("docs", ids_[0], laptop_pk).ok());
  ASSERT_TRUE(keys_->Publish("docs", ids_[1], phone_pk).ok());
  ASSERT_TRUE(keys_->Grant(GrantOf(laptop_, ids_[0], ids_[0], laptop_pk, ring)).ok());
  // The phone made a keyring of its own at the same time: refused.
  EXPECT_EQ(keys_->Grant(GrantOf(phone_, ids_[1], ids_[1], phone_pk, Keyring::Create())).status().code(),
            absl::StatusCode::kFailedPrecondition);
  const Keyring epoch1 = *Keyring::Parse(ring.Serialize());
  ASSERT_TRUE(ring.Rotate().ok());
  // A new epoch starts only by a rotation.
  EXPECT_EQ(keys_->Grant(GrantOf(laptop_, ids_[0], ids_[1], phone_pk, ring)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(keys_->Grant(GrantOf(laptop_, ids_[0], ids_[0], laptop_pk, ring), /*rotation=*/true).ok());
  ASSERT_TRUE(keys_->Grant(GrantOf(laptop_, ids_[0], ids_[1], phone_pk, ring)).ok());
  EXPECT_EQ(keys_->Get("docs", ids_[1])->epoch, 2u);
  EXPECT_EQ(keys_->Grant(GrantOf(laptop_, ids_[0], ids_[1], phone_pk, epoch1)).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(KeyDirectoryTest, OneDeviceRotatesAtATimeAndOnlyHoldersGrantTheNewEpoch) {
  const Keyring ring = Keyring::Create();
  const std::string laptop_pk = laptop_.public_key().ToBytes(), phone_pk = phone_.public_key().ToBytes();
  ASSERT_TRUE(keys_->Publish("docs", ids_[0], laptop_pk).ok());
  ASSERT_TRUE(keys_->Publish("docs", ids_[1], phone_pk).ok());
  ASSERT_TRUE(keys_->Grant(GrantOf(laptop_, ids_[0], ids_[0], laptop_pk, ring)).ok());
  ASSERT_TRUE(keys_->Grant(GrantOf(laptop_, ids_[0], ids_[1], phone_pk, ring)).ok());
  EXPECT_EQ(*keys_->Epoch("docs"), 1u);
  // Both rotate at once, each with a key of its own: the laptop's comes first and wins.
  Keyring laptops = *Keyring::Parse(ring.Serialize()), phones = *Keyring::Parse(ring.Serialize());
  ASSERT_TRUE(laptops.Rotate().ok());
  ASSERT_TRUE(phones.Rotate().ok());
  ASSERT_TRUE(keys_->Grant(GrantOf(laptop_, ids_[0], ids_[0], laptop_pk, laptops), true).ok());
  EXPECT_EQ(keys_->Grant(GrantOf(phone_, ids_[1], ids_[1], phone_pk, phones), true).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(*keys_->Epoch("docs"), 2u);
  // The phone, still at epoch 1, cannot hand out epoch 2 (its own or any); a rotation to
  // another device, or one that skips an epoch, is refused.
  EXPECT_EQ(keys_->Grant(GrantOf(phone_, ids_[1], ids_[0], laptop_pk, phones)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(keys_->Grant(GrantOf(laptop_, ids_[0], ids_[1], phone_pk, laptops), true).status().code(),
            absl::StatusCode::kInvalidArgument);
  Keyring skipped = *Keyring::Parse(laptops.Serialize());
  ASSERT_TRUE(skipped.Rotate().ok());
  ASSERT_TRUE(skipped.Rotate().ok());
  EXPECT_EQ(keys_->Grant(GrantOf(laptop_, ids_[0], ids_[0], laptop_pk, skipped), true).status().code(),
            absl::StatusCode::kFailedPrecondition);
  // The winner grants the phone the new epoch.
  ASSERT_TRUE(keys_->Grant(GrantOf(laptop_, ids_[0], ids_[1], phone_pk, laptops)).ok());
  EXPECT_EQ(keys_->Get("docs", ids_[1])->epoch, 2u);
}

TEST_F(KeyDirectoryTest, TheRecoveryKeyIsTheNamespacesAndOnlyMembersReadIt) {
  const Keyring ring = Keyring::Create();
  const std::string laptop_pk = laptop_.public_key().ToBytes();
  RecoveryRecord r{"docs", "wrapped bytes", ring.Id(), ids_[0], 0};
  EXPECT_EQ(keys_->SetRecovery(r).status().code(), absl::StatusCode::kFailedPrecondition);  // no keyring yet
  ASSERT_TRUE(keys_->Publish("docs", ids_[0], laptop_pk).ok());
  ASSERT_TRUE(keys_->Grant(GrantOf(laptop_, ids_[0], ids_[0], laptop_pk, ring)).ok());
  ASSERT_TRUE(keys_->SetRecovery(r).ok());
  RecoveryRecord other = r;
  other.keyring_id = Keyring::Create().Id();
  EXPECT_EQ(keys_->SetRecovery(other).status().code(), absl::StatusCode::kFailedPrecondition);
  auto got = keys_->GetRecovery("docs", ids_[2]);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->wrapped_keyring, "wrapped bytes");
  EXPECT_EQ(got->set_by, ids_[0]);
  EXPECT_EQ(keys_->GetRecovery("docs", outsider_).status().code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(KeyDirectoryTest, ARevokedDeviceLeavesTheListingAndCannotFetch) {
  const Keyring ring = Keyring::Create();
  const std::string laptop_pk = laptop_.public_key().ToBytes(), phone_pk = phone_.public_key().ToBytes();
  ASSERT_TRUE(keys_->Publish("docs", ids_[0], laptop_pk).ok());
  ASSERT_TRUE(keys_->Publish("docs", ids_[1], phone_pk).ok());
  // A device grants only what it holds.
  EXPECT_EQ(keys_->Grant(GrantOf(laptop_, ids_[0], ids_[1], phone_pk, ring)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(keys_->Grant(GrantOf(laptop_, ids_[0], ids_[0], laptop_pk, ring)).ok());
  ASSERT_TRUE(keys_->Grant(GrantOf(laptop_, ids_[0], ids_[1], phone_pk, ring)).ok());
  ASSERT_TRUE(registry_->RevokeDevice(ids_[1], false).ok());
  // Listed as revoked (the holders rotate the keyring for it), and it cannot fetch.
  auto listed = keys_->List("docs");
  ASSERT_EQ(listed->grants.size(), 2u);
  for (const KeyGrant& g : listed->grants) EXPECT_EQ(g.revoked, g.device_id == ids_[1]) << g.device_id;
  EXPECT_EQ(keys_->Get("docs", ids_[1]).status().code(), absl::StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace converge::management
