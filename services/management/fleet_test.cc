#include "services/management/fleet.h"

#include <cstdlib>
#include <filesystem>
#include <map>

#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/fake_data_plane.h"

namespace converge::management {
namespace {

class FleetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string dir = std::string(getenv("TEST_TMPDIR")) + "/" +
                            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir);
    auto r = Registry::Open(dir, &store_, &clock_);
    ASSERT_TRUE(r.ok()) << r.status();
    registry_ = std::move(*r);
    ASSERT_TRUE(registry_->CreateUser("alice", "").ok());
    auto a = registry_->RegisterDevice("alice", "laptop");
    auto b = registry_->RegisterDevice("alice", "phone");
    ASSERT_TRUE(a.ok() && b.ok());
    laptop_ = a->device.device_id;
    phone_ = b->device.device_id;
    ASSERT_TRUE(registry_->CreateNamespace("docs", "alice").ok());
    ASSERT_TRUE(registry_->AddDevice("docs", laptop_).ok());
    ASSERT_TRUE(registry_->AddDevice("docs", phone_).ok());
    NamespaceStats& u = store_.usage["docs"];
    u.head_seq = 10;
    u.live_files = 3;
    u.live_bytes = 3000;
    u.unique_chunks = 2;
    u.unique_chunk_bytes = 1000;
    u.devices = {{laptop_, 10, 5000, "converge-engine/0.4.0", 0, 0, 0},
                 {phone_, 7, 4000, "converge-engine/0.3.0", 3, 2048, 12.5},
                 {"dev-gone", 1, 1, "", 9, 0, 0}};
    u.conflict_paths = {"b (conflict dev-2 20261127T120000Z).md", "a (conflict dev-1 20261127T110000Z).md"};
    store_.conflicts["docs"] = {{"docs", u.conflict_paths[0], "b.md", "dev-2", 9},
                                {"docs", u.conflict_paths[1], "a.md", "dev-1", 8}};
  }

  FakeDataPlane store_;
  FakeClock clock_;
  std::unique_ptr<Registry> registry_;
  std::string laptop_, phone_;
};

TEST_F(FleetTest, DevicesCarryTheStoresViewOfThem) {
  std::string store_error;
  auto devices = Fleet(registry_.get(), &store_).Devices("alice", &store_error);
  ASSERT_TRUE(devices.ok()) << devices.status();
  EXPECT_TRUE(store_error.empty());
  ASSERT_EQ(devices->size(), 2u);
  std::map<std::string, DeviceReport> by_id;
  for (const DeviceReport& d : *devices) by_id[d.device.device_id] = d;
  const DeviceReport& phone = by_id[phone_];
  EXPECT_EQ(phone.last_seen_unix_ms, 4000);
  EXPECT_EQ(phone.software_version, "converge-engine/0.3.0");
  ASSERT_EQ(phone.namespaces.size(), 1u);
  EXPECT_EQ(phone.namespaces[0].cursor.lag_commits, 3u);
  EXPECT_EQ(phone.namespaces[0].cursor.lag_bytes, 2048u);
  EXPECT_DOUBLE_EQ(phone.namespaces[0].cursor.lag_seconds, 12.5);
  EXPECT_EQ(phone.namespaces[0].head_seq, 10u);

  // The store down: devices still listed, without its view, and the error said.
  store_.down = true;
  devices = Fleet(registry_.get(), &store_).Devices("", &store_error);
  ASSERT_TRUE(devices.ok());
  EXPECT_EQ(devices->size(), 2u);
  EXPECT_TRUE(devices->at(0).namespaces.empty());
  EXPECT_NE(store_error.find("store down"), std::string::npos);
}

TEST_F(FleetTest, NamespaceStatusListsMembersOnlyAndConflictsAreOrdered) {
  Fleet fleet(registry_.get(), &store_);
  auto r = fleet.NamespaceStatus("docs");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->usage.live_bytes, 3000u);
  ASSERT_EQ(r->devices.size(), 2u);  // not the former member's cursor
  EXPECT_EQ(r->devices[0].device_name.empty(), false);
  EXPECT_EQ(fleet.NamespaceStatus("nope").status().code(), absl::StatusCode::kNotFound);

  auto conflicts = fleet.Conflicts("");
  ASSERT_TRUE(conflicts.ok()) << conflicts.status();
  ASSERT_EQ(conflicts->size(), 2u);
  EXPECT_EQ(conflicts->at(0).original_path, "a.md");
  EXPECT_EQ(conflicts->at(1).device, "dev-2");
  EXPECT_EQ(conflicts->at(0).namespace_id, "docs");
  EXPECT_EQ(fleet.Conflicts("nope").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(FleetTest, PendingDeletesAcrossNamespaces) {
  store_.held["docs"] = {{"bbb", "docs", laptop_, HeldDelete::State::kPending, 20, 0, 150, 200, {"a", "b"}},
                         {"aaa", "docs", laptop_, HeldDelete::State::kApplied, 10, 0, 120, 130, {}}};
  Fleet fleet(registry_.get(), &store_);
  auto pending = fleet.PendingDeletes("", false);
  ASSERT_TRUE(pending.ok()) << pending.status();
  ASSERT_EQ(pending->size(), 1u);
  EXPECT_EQ(pending->front().id, "bbb");
  EXPECT_EQ(fleet.PendingDeletes("docs", true)->front().id, "aaa");  // oldest first
  auto resolved = fleet.ResolvePendingDelete("docs", "bbb", false);
  ASSERT_TRUE(resolved.ok());
  EXPECT_EQ(resolved->state, HeldDelete::State::kRejected);
  EXPECT_TRUE(fleet.PendingDeletes("", false)->empty());
  EXPECT_EQ(fleet.ResolvePendingDelete("nope", "bbb", true).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace converge::management
