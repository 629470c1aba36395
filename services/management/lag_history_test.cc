#include "services/management/lag_history.h"

#include <cstdlib>
#include <filesystem>

#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/fake_data_plane.h"

namespace converge::management {
namespace {

class LagHistoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string dir = std::string(getenv("TEST_TMPDIR")) + "/" +
                            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir);
    auto r = Registry::Open(dir, &store_, &clock_);
    ASSERT_TRUE(r.ok()) << r.status();
    registry_ = std::move(*r);
    ASSERT_TRUE(registry_->CreateUser("alice", "").ok());
    ASSERT_TRUE(registry_->CreateNamespace("docs", "alice").ok());
    ASSERT_TRUE(registry_->CreateNamespace("photos", "alice").ok());
  }

  FakeDataPlane store_;
  FakeClock clock_;
  std::unique_ptr<Registry> registry_;
};

TEST_F(LagHistoryTest, KeepsTheSlowestDevicesLagPerNamespaceForAnHour) {
  LagHistory history(registry_.get(), &store_);
  NamespaceStats& docs = store_.usage["docs"];
  docs.devices = {{"dev-a", 10, 0, "", 0, 0, 0}, {"dev-b", 7, 0, "", 3, 2048, 12.5}};
  DeviceCursor evicted{"dev-c", 1, 0, "", 9, 0, 900};
  evicted.evicted = true;  // no longer waited for: not in the figures
  docs.devices.push_back(evicted);
  store_.usage["photos"].devices = {{"dev-a", 5, 0, "", 0, 0, 0}};
  history.Sample();
  clock_.Advance(absl::Seconds(15));
  docs.devices[1] = {"dev-b", 10, 0, "", 0, 0, 0};  // caught up
  history.Sample();

  std::map<std::string, std::vector<LagPoint>> all = history.Series("");
  ASSERT_EQ(all.size(), 2u);
  const std::vector<LagPoint>& d = all["docs"];
  ASSERT_EQ(d.size(), 2u);
  EXPECT_DOUBLE_EQ(d[0].max_lag_seconds, 12.5);
  EXPECT_EQ(d[0].lag_commits, 3u);
  EXPECT_EQ(d[0].devices_behind, 1u);
  EXPECT_EQ(d[0].devices, 2u);
  EXPECT_EQ(d[1].devices_behind, 0u);
  EXPECT_EQ(d[1].at_unix_ms - d[0].at_unix_ms, 15000);
  EXPECT_EQ(history.Series("photos").size(), 1u);

  for (size_t i = 0; i < LagHistory::kPoints + 10; ++i) history.Sample();
  EXPECT_EQ(history.Series("docs")["docs"].size(), LagHistory::kPoints);
}

TEST_F(LagHistoryTest, SamplesOnItsOwnUntilDestroyed) {
  store_.usage["docs"].devices = {{"dev-a", 10, 0, "", 0, 0, 0}};
  {
    LagHistory history(registry_.get(), &store_);
    history.Start(absl::Milliseconds(10));
    absl::SleepFor(absl::Milliseconds(200));
    EXPECT_GE(history.Series("docs")["docs"].size(), 2u);
  }  // stops and joins
}

}  // namespace
}  // namespace converge::management
