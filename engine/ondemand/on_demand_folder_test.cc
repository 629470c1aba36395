#include "engine/ondemand/on_demand_folder.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "engine/ondemand/writer_for_test.h"
#include "gtest/gtest.h"
#include "tests/testing/sim_store.h"
#include "tests/testing/test_folder.h"

namespace converge::engine {
namespace {

// Keeps the latest listing in memory, as the daemon keeps it in a file.
class MemListings : public ListingStore {
 public:
  absl::Status Save(const Listing& listing) override {
    saved_ = listing;
    ++saves_;
    return absl::OkStatus();
  }
  absl::StatusOr<Listing> Load() override {
    if (saves_ == 0) return absl::NotFoundError("none saved");
    return saved_;
  }
  int saves_ = 0;

 private:
  Listing saved_;
};

bool WaitFor(const std::function<bool()>& cond) {
  for (int i = 0; i < 500; ++i) {
    if (cond()) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return cond();
}

// One device syncs through the store's logic; the other follows it on demand (not mounted).
class OnDemandFolderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(writer_.Open().ok());
    reader_ = std::make_unique<sim::SimStoreClient>(writer_.store.get(), "dev2");
    options_.state_path = testing::MakeTestDir();
    options_.mount = false;
    options_.listings = &listings_;
    options_.save_interval = absl::ZeroDuration();
  }
  void Write(const std::string& path, const std::string& content) {
    ASSERT_TRUE(writer_.fs->UserWrite(path, content).ok());
    ASSERT_TRUE(writer_.Sync().ok());
  }
  static bool Shows(OnDemandFolder& f, const std::string& path) { return f.view()->Stat(path).ok(); }

  WriterForTest writer_;
  std::unique_ptr<sim::SimStoreClient> reader_;
  MemListings listings_;
  OnDemandOptions options_;
};

TEST_F(OnDemandFolderTest, ANewHeadIsFollowedThroughTheLog) {
  Write("a.txt", "a");
  OnDemandFolder folder(reader_.get(), options_, [](const OnDemandStatus&) {});
  ASSERT_TRUE(folder.Start().ok());
  EXPECT_TRUE(Shows(folder, "a.txt"));
  Write("b.txt", "b");
  ASSERT_TRUE(writer_.fs->UserRemove("a.txt").ok());
  ASSERT_TRUE(writer_.Sync().ok());
  folder.NotifyRemoteHead(writer_.index->cursor());
  EXPECT_TRUE(WaitFor([&] { return Shows(folder, "b.txt") && !Shows(folder, "a.txt"); }));
  EXPECT_EQ(folder.view()->seq(), writer_.index->cursor());
  EXPECT_EQ(*folder.view()->Read("b.txt", 0, 10), "b");
  folder.Stop();
  ASSERT_GE(listings_.saves_, 1);
  EXPECT_EQ(listings_.Load()->seq, writer_.index->cursor());
}

TEST_F(OnDemandFolderTest, TheListingSavedIsShownBeforeTheStoreAnswers) {
  Write("docs/kept.txt", "kept");
  {
    OnDemandFolder first(reader_.get(), options_, [](const OnDemandStatus&) {});
    ASSERT_TRUE(first.Start().ok());
    ASSERT_EQ(*first.view()->Read("docs/kept.txt", 0, 10), "kept");  // cached now
  }
  Write("later.txt", "later");
  OnDemandFolder offline(nullptr, options_, [](const OnDemandStatus&) {});  // not enrolled yet
  ASSERT_TRUE(offline.Start().ok());
  EXPECT_TRUE(Shows(offline, "docs/kept.txt"));
  EXPECT_EQ(*offline.view()->Read("docs/kept.txt", 0, 10), "kept");
  EXPECT_FALSE(Shows(offline, "later.txt"));
  offline.Connect(reader_.get());
  EXPECT_TRUE(WaitFor([&] { return Shows(offline, "later.txt"); }));
  EXPECT_EQ(*offline.view()->Read("later.txt", 0, 10), "later");
}

}  // namespace
}  // namespace converge::engine
