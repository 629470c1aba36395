#include "services/store/registry_area.h"

#include <filesystem>
#include <map>

#include "common/base/clock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"

namespace converge::store {
namespace {

class RegistryAreaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string dir = std::string(getenv("TEST_TMPDIR")) + "/registry_area";
    std::filesystem::remove_all(dir);
    auto db = StoreDb::Open(dir);
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
    area_ = std::make_unique<RegistryArea>(db_.get(), &clock_);
  }
  FakeClock clock_;
  std::unique_ptr<StoreDb> db_;
  std::unique_ptr<RegistryArea> area_;
};

TEST_F(RegistryAreaTest, OneHolderAtATimeAndOnlyTheHolderWrites) {
  EXPECT_EQ(area_->Write("a", {{"k", "v"}}, {}).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(area_->Lock("a", absl::Seconds(30)));
  EXPECT_FALSE(area_->Lock("b", absl::Seconds(30)));  // a holds it
  EXPECT_EQ(area_->Write("b", {{"k", "from b"}}, {}).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(area_->Write("a", {{"u1", "one"}, {"u2", "two"}, {"x", "other"}}, {}).ok());
  EXPECT_EQ(*area_->Get("u1"), "one");
  std::map<std::string, std::string> seen;
  ASSERT_TRUE(area_->Scan("u", [&](const std::string& k, const std::string& v) { seen[k] = v; }).ok());
  EXPECT_EQ(seen, (std::map<std::string, std::string>{{"u1", "one"}, {"u2", "two"}}));
  area_->Release("a");
  EXPECT_TRUE(area_->Lock("b", absl::Seconds(30)));
  ASSERT_TRUE(area_->Write("b", {}, {"u1"}).ok());
  EXPECT_TRUE(absl::IsNotFound(area_->Get("u1").status()));
}

TEST_F(RegistryAreaTest, AnExpiredLeaseNeitherBlocksNorWrites) {
  ASSERT_TRUE(area_->Lock("a", absl::Seconds(30)));
  clock_.Advance(absl::Seconds(31));  // a stalled: its lease ran out
  EXPECT_EQ(area_->Write("a", {{"k", "stale"}}, {}).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(area_->Lock("b", absl::Seconds(30)));
  EXPECT_TRUE(absl::IsNotFound(area_->Get("k").status()));
}

}  // namespace
}  // namespace converge::store
