// A move made on a device meets another device's change of the same file. The engine learns of
// its own moves from the watcher, which may report them only after a pull has started (both
// wake at once after a pause): the pull asks for what is queued first, so a move that lost the
// race to the store is undone, not kept as a second copy.
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/base/clock.h"
#include "engine/sync/sync_engine.h"
#include "gtest/gtest.h"
#include "tests/sim/sim_device.h"
#include "tests/testing/fake_clock.h"

namespace converge::sim {
namespace {

class EngineMovesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = SimStore::Create(&clock_, {"a", "b"});
    ASSERT_TRUE(store.ok());
    store_ = std::move(*store);
    a_ = std::make_unique<SimDevice>("a", &clock_, store_.get(), engine::EngineOptions{});
    b_ = std::make_unique<SimDevice>("b", &clock_, store_.get(), engine::EngineOptions{});
    ASSERT_TRUE(a_->Start().ok());
    ASSERT_TRUE(b_->Start().ok());
  }

  // The paths of a device's folder that are files, with their contents.
  static std::map<std::string, std::string> Files(SimDevice& d) {
    std::map<std::string, std::string> files;
    for (auto& [path, content] : d.fs().Snapshot()) {
      if (content != "/") files.emplace(path, content);
    }
    return files;
  }

  FakeClock clock_;
  std::unique_ptr<SimStore> store_;
  std::unique_ptr<SimDevice> a_, b_;
};

TEST_F(EngineMovesTest, AMoveReportedOnlyWhenThePullStartsIsUndoneForAnEarlierMove) {
  ASSERT_TRUE(a_->fs().UserWrite("plan.txt", "plan").ok());
  ASSERT_TRUE(a_->fs().UserWrite("notes.txt", "draft").ok());
  ASSERT_TRUE(a_->engine().SyncOnce().ok());
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(b_->engine().SyncOnce().ok());
  ASSERT_EQ(Files(*b_), Files(*a_));

  // a moves both files and commits first; b moves plan.txt elsewhere and edits notes.txt.
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(a_->fs().UserRename("plan.txt", "a/plan.txt").ok());
  ASSERT_TRUE(a_->fs().UserRename("notes.txt", "docs/notes.txt").ok());
  ASSERT_TRUE(a_->engine().SyncOnce().ok());
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(b_->fs().UserRename("plan.txt", "b/plan.txt").ok());
  ASSERT_TRUE(b_->fs().UserWrite("notes.txt", "draft, edited on b").ok());
  // b's watcher has not reported anything when the pull starts: the pull asks it to.
  int flushes = 0;
  b_->engine().set_local_event_flush([&] {
    if (flushes++ == 0) b_->engine().NotifyLocalPaths({{"plan.txt", false}, {"b", false}, {"notes.txt", false}});
  });
  ASSERT_TRUE(b_->engine().PullAndApply().ok());
  EXPECT_GE(flushes, 1);
  // a's move was first: plan.txt is at a's new name only; notes.txt moved with b's edit in it.
  EXPECT_EQ(Files(*b_), (std::map<std::string, std::string>{{"a/plan.txt", "plan"},
                                                             {"docs/notes.txt", "draft, edited on b"}}));

  // The scan commits the edit at the new name; a ends with the same folder, no copies.
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(b_->engine().SyncOnce().ok());
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(a_->engine().SyncOnce().ok());
  EXPECT_EQ(Files(*a_), Files(*b_));
}

}  // namespace
}  // namespace converge::sim
