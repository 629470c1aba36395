#include "services/management/registry.h"

#include <cstdlib>
#include <filesystem>
#include <map>

#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/fake_data_plane.h"

namespace converge::management {
namespace {

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::string(getenv("TEST_TMPDIR")) + "/" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    auto r = Registry::Open(dir_, &data_plane_, &clock_);
    ASSERT_TRUE(r.ok()) << r.status();
    registry_ = std::move(*r);
  }
  std::string dir_;
  FakeDataPlane data_plane_;
  FakeClock clock_;
  std::unique_ptr<Registry> registry_;
};

TEST_F(RegistryTest, UsersDevicesNamespacesMembers) {
  ASSERT_TRUE(registry_->CreateUser("alice", "Alice").ok());
  EXPECT_EQ(registry_->CreateUser("alice", "").status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(registry_->CreateUser("Bad Id", "").status().code(), absl::StatusCode::kInvalidArgument);

  auto laptop = registry_->RegisterDevice("alice", "laptop");
  ASSERT_TRUE(laptop.ok()) << laptop.status();
  EXPECT_EQ(laptop->credential.size(), 64u);
  EXPECT_TRUE(registry_->CheckDeviceCredential(laptop->device.device_id, laptop->credential).ok());
  EXPECT_EQ(registry_->CheckDeviceCredential(laptop->device.device_id, "guess").code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(registry_->RegisterDevice("nobody", "x").status().code(), absl::StatusCode::kNotFound);

  ASSERT_TRUE(registry_->CreateNamespace("photos", "alice").ok());
  EXPECT_TRUE(data_plane_.told.count("photos"));
  EXPECT_EQ(registry_->CreateNamespace("photos", "alice").status().code(),
            absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(registry_->AddDevice("photos", laptop->device.device_id).ok());
  ASSERT_TRUE(registry_->AddDevice("photos", laptop->device.device_id).ok());  // idempotent
  EXPECT_EQ(data_plane_.told["photos"], std::vector<std::string>{laptop->device.device_id});
  auto members = registry_->ListMembers("photos");
  ASSERT_TRUE(members.ok());
  ASSERT_EQ(members->size(), 1u);
  EXPECT_EQ((*members)[0].name, "laptop");
  EXPECT_EQ(registry_->ListDevices("alice")->size(), 1u);
  EXPECT_EQ(registry_->ListNamespaces("")->size(), 1u);
  EXPECT_EQ(registry_->ListUsers()->size(), 1u);
}

TEST_F(RegistryTest, AnEncryptedNamespaceSaysSoToTheStoreOnEveryRegistration) {
  ASSERT_TRUE(registry_->CreateUser("alice", "").ok());
  auto vault = registry_->CreateNamespace("vault", "alice", false, /*encrypted=*/true);
  ASSERT_TRUE(vault.ok()) << vault.status();
  EXPECT_TRUE(vault->encrypted);
  ASSERT_TRUE(registry_->CreateNamespace("plain", "alice").ok());
  EXPECT_TRUE(data_plane_.encrypted["vault"]);
  EXPECT_FALSE(data_plane_.encrypted["plain"]);
  auto laptop = registry_->RegisterDevice("alice", "laptop");
  ASSERT_TRUE(laptop.ok());
  data_plane_.encrypted.clear();
  ASSERT_TRUE(registry_->AddDevice("vault", laptop->device.device_id).ok());
  EXPECT_TRUE(data_plane_.encrypted["vault"]);  // a membership change keeps saying it
  EXPECT_TRUE(registry_->GetNamespace("vault")->encrypted);
  EXPECT_FALSE(registry_->GetNamespace("plain")->encrypted);
  EXPECT_TRUE(registry_->SetSyncXattrs("vault", true)->encrypted);
}

TEST_F(RegistryTest, EnrollmentTokensEnrollAsManyDevicesAsIssuedFor) {
  ASSERT_TRUE(registry_->CreateUser("alice", "").ok());
  ASSERT_TRUE(registry_->CreateUser("bob", "").ok());
  auto once = registry_->CreateEnrollmentToken("alice", absl::Hours(1));
  ASSERT_TRUE(once.ok());
  EXPECT_EQ(once->uses, 1u);
  // Refused registrations do not use the token up.
  EXPECT_EQ(registry_->EnrollDevice(once->token, "", std::string(300, 'n')).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry_->EnrollDevice(once->token, "bob", "laptop").status().code(), absl::StatusCode::kPermissionDenied);
  auto laptop = registry_->EnrollDevice(once->token, "", "laptop");
  ASSERT_TRUE(laptop.ok()) << laptop.status();
  EXPECT_EQ(laptop->device.user_id, "alice");
  EXPECT_EQ(registry_->EnrollDevice(once->token, "", "second").status().code(), absl::StatusCode::kUnauthenticated);

  auto three = registry_->CreateEnrollmentToken("alice", absl::Hours(1), 3);
  ASSERT_TRUE(three.ok());
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(registry_->EnrollDevice(three->token, "alice", "d" + std::to_string(i)).ok());
  EXPECT_EQ(registry_->EnrollDevice(three->token, "alice", "d3").status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(registry_->ListDevices("alice")->size(), 4u);
  EXPECT_EQ(registry_->CreateEnrollmentToken("alice", absl::Hours(1), 0).status().code(),
            absl::StatusCode::kInvalidArgument);

  auto expiring = registry_->CreateEnrollmentToken("alice", absl::Seconds(10));
  ASSERT_TRUE(expiring.ok());
  clock_.Advance(absl::Seconds(11));
  EXPECT_EQ(registry_->EnrollDevice(expiring->token, "", "late").status().code(), absl::StatusCode::kUnauthenticated);
}

TEST_F(RegistryTest, ForeignDeviceCannotJoin) {
  ASSERT_TRUE(registry_->CreateUser("alice", "").ok());
  ASSERT_TRUE(registry_->CreateUser("mallory", "").ok());
  ASSERT_TRUE(registry_->CreateNamespace("photos", "alice").ok());
  auto dev = registry_->RegisterDevice("mallory", "phone");
  ASSERT_TRUE(dev.ok());
  EXPECT_EQ(registry_->AddDevice("photos", dev->device.device_id).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(registry_->AddDevice("nope", dev->device.device_id).code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(registry_->ListMembers("photos")->empty());
}

TEST_F(RegistryTest, StoreFailureLeavesRegistryUnchanged) {
  ASSERT_TRUE(registry_->CreateUser("alice", "").ok());
  data_plane_.next_status = absl::UnavailableError("store down");
  EXPECT_EQ(registry_->CreateNamespace("docs", "alice").status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_TRUE(registry_->ListNamespaces("")->empty());
  data_plane_.next_status = absl::OkStatus();
  EXPECT_TRUE(registry_->CreateNamespace("docs", "alice").ok());  // retry works

  auto dev = registry_->RegisterDevice("alice", "pc");
  ASSERT_TRUE(dev.ok());
  data_plane_.next_status = absl::UnavailableError("store down");
  EXPECT_FALSE(registry_->AddDevice("docs", dev->device.device_id).ok());
  EXPECT_TRUE(registry_->ListMembers("docs")->empty());
}

TEST_F(RegistryTest, SurvivesReopen) {
  ASSERT_TRUE(registry_->CreateUser("alice", "").ok());
  registry_.reset();
  auto r = Registry::Open(dir_, &data_plane_, &clock_);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)->ListUsers()->size(), 1u);
}

TEST_F(RegistryTest, RevokeRemovesFromEveryNamespaceStoreFirst) {
  ASSERT_TRUE(registry_->CreateUser("alice", "").ok());
  auto a = registry_->RegisterDevice("alice", "a");
  auto b = registry_->RegisterDevice("alice", "b");
  ASSERT_TRUE(a.ok() && b.ok());
  for (const char* ns : {"one", "two"}) {
    ASSERT_TRUE(registry_->CreateNamespace(ns, "alice").ok());
    ASSERT_TRUE(registry_->AddDevice(ns, a->device.device_id).ok());
    ASSERT_TRUE(registry_->AddDevice(ns, b->device.device_id).ok());
  }
  EXPECT_EQ(registry_->NamespacesOf(a->device.device_id)->size(), 2u);

  // The store refuses: nothing changes here.
  data_plane_.next_status = absl::UnavailableError("store down");
  EXPECT_EQ(registry_->RevokeDevice(a->device.device_id, false).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(registry_->GetDevice(a->device.device_id)->state, DeviceState::kActive);
  data_plane_.next_status = absl::OkStatus();

  auto revoked = registry_->RevokeDevice(a->device.device_id, false);
  ASSERT_TRUE(revoked.ok()) << revoked.status();
  EXPECT_EQ(revoked->state, DeviceState::kRevoked);
  EXPECT_EQ(data_plane_.told["one"], (std::vector<std::string>{b->device.device_id}));
  EXPECT_EQ(data_plane_.told["two"], (std::vector<std::string>{b->device.device_id}));
  EXPECT_TRUE(registry_->NamespacesOf(a->device.device_id)->empty());
  EXPECT_EQ(registry_->CheckDeviceCredential(a->device.device_id, a->credential).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(registry_->AddDevice("one", a->device.device_id).code(), absl::StatusCode::kFailedPrecondition);

  // A wipe can follow a revoke; the engine confirms it with its credential.
  EXPECT_EQ(registry_->ConfirmWipe(b->device.device_id, b->credential).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(registry_->RevokeDevice(a->device.device_id, true)->state, DeviceState::kWipePending);
  EXPECT_EQ(registry_->ConfirmWipe(a->device.device_id, "wrong").status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(registry_->ConfirmWipe(a->device.device_id, a->credential)->state, DeviceState::kWiped);
  EXPECT_EQ(registry_->RevokeDevice("dev-none", false).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(RegistryTest, DisabledUserLosesDevicesAndCannotAddMore) {
  ASSERT_TRUE(registry_->CreateUser("bob", "").ok());
  auto d = registry_->RegisterDevice("bob", "phone");
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE(registry_->CreateNamespace("bobs", "bob").ok());
  ASSERT_TRUE(registry_->AddDevice("bobs", d->device.device_id).ok());
  auto user = registry_->DisableUser("bob");
  ASSERT_TRUE(user.ok()) << user.status();
  EXPECT_TRUE(user->disabled);
  EXPECT_TRUE(registry_->ListUsers()->at(0).disabled);
  EXPECT_EQ(registry_->GetDevice(d->device.device_id)->state, DeviceState::kRevoked);
  EXPECT_TRUE(data_plane_.told["bobs"].empty());
  EXPECT_EQ(registry_->RegisterDevice("bob", "another").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(registry_->CreateNamespace("more", "bob").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(registry_->DisableUser("nobody").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(RegistryTest, SharingLetsAnotherUsersDevicesJoin) {
  ASSERT_TRUE(registry_->CreateUser("alice", "").ok());
  ASSERT_TRUE(registry_->CreateUser("carol", "").ok());
  ASSERT_TRUE(registry_->CreateNamespace("team", "alice").ok());
  auto carols = registry_->RegisterDevice("carol", "desk");
  ASSERT_TRUE(carols.ok());
  EXPECT_EQ(registry_->AddDevice("team", carols->device.device_id).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(registry_->ListNamespaces("carol")->empty());
  auto shared = registry_->ShareNamespace("team", "carol");
  ASSERT_TRUE(shared.ok()) << shared.status();
  EXPECT_EQ(shared->shared_with, (std::vector<std::string>{"carol"}));
  EXPECT_TRUE(registry_->ShareNamespace("team", "carol").ok());  // idempotent
  EXPECT_TRUE(registry_->AddDevice("team", carols->device.device_id).ok());
  ASSERT_EQ(registry_->ListNamespaces("carol")->size(), 1u);
  EXPECT_EQ(registry_->GetNamespace("team")->shared_with, (std::vector<std::string>{"carol"}));
  EXPECT_EQ(registry_->ShareNamespace("team", "nobody").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(registry_->ShareNamespace("none", "carol").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace converge::management
