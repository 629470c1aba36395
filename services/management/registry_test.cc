#include "services/management/registry.h"

#include <cstdlib>
#include <filesystem>
#include <map>

#include "gtest/gtest.h"

namespace converge::management {
namespace {

class FakeSink : public NamespaceSink {
 public:
  absl::Status RegisterNamespace(const std::string& ns,
                                 const std::vector<std::string>& members) override {
    if (!next_status.ok()) return next_status;
    told[ns] = members;
    return absl::OkStatus();
  }
  absl::Status next_status;
  std::map<std::string, std::vector<std::string>> told;
};

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::string(getenv("TEST_TMPDIR")) + "/" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    auto r = Registry::Open(dir_, &sink_, &clock_);
    ASSERT_TRUE(r.ok()) << r.status();
    registry_ = std::move(*r);
  }
  std::string dir_;
  FakeSink sink_;
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
  EXPECT_TRUE(sink_.told.count("photos"));
  EXPECT_EQ(registry_->CreateNamespace("photos", "alice").status().code(),
            absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(registry_->AddDevice("photos", laptop->device.device_id).ok());
  ASSERT_TRUE(registry_->AddDevice("photos", laptop->device.device_id).ok());  // idempotent
  EXPECT_EQ(sink_.told["photos"], std::vector<std::string>{laptop->device.device_id});
  auto members = registry_->ListMembers("photos");
  ASSERT_TRUE(members.ok());
  ASSERT_EQ(members->size(), 1u);
  EXPECT_EQ((*members)[0].name, "laptop");
  EXPECT_EQ(registry_->ListDevices("alice")->size(), 1u);
  EXPECT_EQ(registry_->ListNamespaces("")->size(), 1u);
  EXPECT_EQ(registry_->ListUsers()->size(), 1u);
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
  sink_.next_status = absl::UnavailableError("store down");
  EXPECT_EQ(registry_->CreateNamespace("docs", "alice").status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_TRUE(registry_->ListNamespaces("")->empty());
  sink_.next_status = absl::OkStatus();
  EXPECT_TRUE(registry_->CreateNamespace("docs", "alice").ok());  // retry works

  auto dev = registry_->RegisterDevice("alice", "pc");
  ASSERT_TRUE(dev.ok());
  sink_.next_status = absl::UnavailableError("store down");
  EXPECT_FALSE(registry_->AddDevice("docs", dev->device.device_id).ok());
  EXPECT_TRUE(registry_->ListMembers("docs")->empty());
}

TEST_F(RegistryTest, SurvivesReopen) {
  ASSERT_TRUE(registry_->CreateUser("alice", "").ok());
  registry_.reset();
  auto r = Registry::Open(dir_, &sink_, &clock_);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)->ListUsers()->size(), 1u);
}

}  // namespace
}  // namespace converge::management
