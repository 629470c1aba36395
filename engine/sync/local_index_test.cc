#include "engine/sync/local_index.h"

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/sha256.h"
#include "common/model/model.h"
#include "gtest/gtest.h"
#include "tests/testing/power_cut_env.h"

namespace converge::engine {
namespace {

IndexEntry Entry(const std::string& path, uint64_t seq, const std::string& content, uint64_t inode, bool deleted = false) {
  IndexEntry e;
  e.version.file_id = std::string(kFileIdBytes, 'f');
  e.version.path = path;
  e.version.seq = seq;
  e.version.deleted = deleted;
  if (!deleted && !content.empty()) {
    e.version.size = content.size();
    e.version.chunks = {{HashOf(content), static_cast<uint32_t>(content.size())}};
    e.version.content_sha256 = ContentDigest(e.version.chunks);
  }
  if (!deleted) {
    e.local.exists = true;
    e.local.kind = FileKind::kFile;
    e.local.size = content.size();
    e.local.inode = inode;
    e.local.mtime_ns = 1700000000000000000 + static_cast<int64_t>(seq);
  }
  e.recorded_at_ns = 1700000001000000000;
  return e;
}

class LocalIndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/local_index_" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    Open();
  }
  void Open() {
    index_.reset();
    absl::StatusOr<std::unique_ptr<LocalIndex>> index = LocalIndex::Open(dir_);
    ASSERT_TRUE(index.ok()) << index.status();
    index_ = std::move(*index);
  }
  std::vector<std::string> LivePaths() {
    std::vector<std::string> paths;
    EXPECT_TRUE(index_->ForEachLive([&](const IndexEntry& e) { paths.push_back(e.version.path); }).ok());
    return paths;
  }

  std::string dir_;
  std::unique_ptr<LocalIndex> index_;
};

TEST_F(LocalIndexTest, EntriesAndTheCursorSurviveReopen) {
  ASSERT_TRUE(index_->Update({Entry("b.txt", 1, "bee", 11), Entry("a/x.txt", 2, "ex", 12)}, 2).ok());
  Open();
  EXPECT_EQ(index_->cursor(), 2u);
  absl::StatusOr<std::optional<IndexEntry>> b = index_->Get("b.txt");
  ASSERT_TRUE(b.ok() && b->has_value());
  EXPECT_EQ((*b)->version.seq, 1u);
  EXPECT_EQ((*b)->local.inode, 11u);
  EXPECT_EQ((*b)->version.chunks, Entry("b.txt", 1, "bee", 11).version.chunks);
  EXPECT_FALSE(index_->Get("never.txt")->has_value());
  EXPECT_EQ(LivePaths(), (std::vector<std::string>{"a/x.txt", "b.txt"}));
}

TEST_F(LocalIndexTest, EntriesNotAppliedAreFoundWithoutAWalkAndSurviveReopen) {
  std::vector<std::string> listed;
  auto list = [&] {
    listed.clear();
    EXPECT_TRUE(index_->ForEachNotApplied([&](const IndexEntry& e) { listed.push_back(e.version.path); }).ok());
    return listed;
  };
  ASSERT_TRUE(index_->Update({Entry("a.txt", 1, "a", 1), Entry("b.txt", 1, "b", 2)}, 1).ok());
  EXPECT_TRUE(list().empty());
  IndexEntry edited = Entry("a.txt", 2, "a2", 1);
  edited.not_applied = true;
  IndexEntry deleted = Entry("b.txt", 3, "", 0, /*deleted=*/true);
  deleted.not_applied = true;
  ASSERT_TRUE(index_->Update({edited, deleted}, 3).ok());
  Open();
  EXPECT_EQ(list(), (std::vector<std::string>{"a.txt", "b.txt"}));
  EXPECT_TRUE(index_->Get("b.txt")->value().not_applied);
  ASSERT_TRUE(index_->Update({Entry("a.txt", 4, "a4", 1)}, 4).ok());  // applied (or overridden) now
  EXPECT_EQ(list(), std::vector<std::string>{"b.txt"});
  EXPECT_FALSE(index_->Get("a.txt")->value().not_applied);
  ASSERT_TRUE(index_->ForgetSyncState().ok());
  EXPECT_TRUE(list().empty());
}

TEST_F(LocalIndexTest, TombstonesAreKeptButNotListedAsLive) {
  ASSERT_TRUE(index_->Update({Entry("gone.txt", 1, "g", 21), Entry("kept.txt", 1, "k", 22)}, 1).ok());
  ASSERT_TRUE(index_->Update({Entry("gone.txt", 2, "", 0, /*deleted=*/true)}, 2).ok());
  EXPECT_EQ(LivePaths(), std::vector<std::string>{"kept.txt"});
  absl::StatusOr<std::optional<IndexEntry>> gone = index_->Get("gone.txt");
  ASSERT_TRUE(gone.ok() && gone->has_value());
  EXPECT_TRUE((*gone)->version.deleted);
  EXPECT_EQ((*gone)->version.seq, 2u);
}

TEST_F(LocalIndexTest, ALiveCursorReadsPageByPageTheEntriesAsTheyWereWhenItWasMade) {
  std::vector<IndexEntry> entries;
  for (int i = 0; i < 600; ++i) entries.push_back(Entry(absl::StrCat("f", 1000 + i), 1, "x", 100 + i));
  entries.push_back(Entry("gone", 1, "g", 99));
  ASSERT_TRUE(index_->Update(entries, 1).ok());
  ASSERT_TRUE(index_->Update({Entry("gone", 2, "", 0, /*deleted=*/true)}, 2).ok());
  absl::StatusOr<std::unique_ptr<LocalIndex::LiveCursor>> cursor = index_->Live();
  ASSERT_TRUE(cursor.ok()) << cursor.status();
  std::vector<std::string> read;
  while ((*cursor)->Valid()) {
    read.push_back((*cursor)->entry().version.path);
    if (read.size() == 10) {
      // Its caller uses the index meanwhile (an entry behind it, one ahead, one changed): the
      // cursor goes on with the entries as they were.
      ASSERT_TRUE(index_->Update({Entry("e-behind", 3, "b", 7), Entry("f1500-ahead", 3, "a", 8),
                                  Entry("f1300", 3, "", 0, /*deleted=*/true)}, 3).ok());
      ASSERT_TRUE(index_->Get("f1000").ok());
    }
    ASSERT_TRUE((*cursor)->Next().ok());
  }
  ASSERT_EQ(read.size(), 600u);  // three pages; no tombstone
  EXPECT_TRUE(std::is_sorted(read.begin(), read.end()));
  EXPECT_EQ(read.front(), "f1000");
  EXPECT_EQ(read.back(), "f1599");
  EXPECT_EQ(std::count(read.begin(), read.end(), "f1300"), 1);
  cursor->reset();
  absl::StatusOr<std::unique_ptr<LocalIndex::LiveCursor>> again = index_->Live();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->entry().version.path, "e-behind");
}

TEST_F(LocalIndexTest, ListsWhatIsBelowADirectoryOnly) {
  ASSERT_TRUE(index_->Update({Entry("d", 1, "", 30), Entry("d/one", 1, "1", 31), Entry("d/sub/two", 1, "2", 32),
                              Entry("d2/other", 1, "3", 33), Entry("e", 1, "4", 34)},
                             1)
                  .ok());
  std::vector<std::string> under;
  ASSERT_TRUE(index_->ForEachLiveUnder("d", [&](const IndexEntry& e) { under.push_back(e.version.path); }).ok());
  EXPECT_EQ(under, (std::vector<std::string>{"d/one", "d/sub/two"}));
}

TEST_F(LocalIndexTest, FindsAChunkAndAnInodeByTheirLastSyncedPath) {
  ASSERT_TRUE(index_->Update({Entry("photo.jpg", 1, "pixels", 41)}, 1).ok());
  absl::StatusOr<std::optional<std::string>> chunk = index_->FindChunk(HashOf("pixels"));
  ASSERT_TRUE(chunk.ok());
  EXPECT_EQ(chunk->value_or(""), "photo.jpg");
  EXPECT_FALSE(index_->FindChunk(HashOf("other"))->has_value());
  EXPECT_EQ(index_->FindInode(41)->value_or(""), "photo.jpg");
  EXPECT_FALSE(index_->FindInode(42)->has_value());
}

TEST_F(LocalIndexTest, ForgettingTheSyncStateKeepsTheSettings) {
  ASSERT_TRUE(index_->SetSetting("device_id", "dev-1").ok());
  ASSERT_TRUE(index_->Update({Entry("a", 5, "a", 51)}, 5).ok());
  ASSERT_TRUE(index_->ForgetSyncState().ok());
  EXPECT_EQ(index_->cursor(), 0u);
  EXPECT_TRUE(LivePaths().empty());
  EXPECT_FALSE(index_->FindChunk(HashOf("a"))->has_value());
  Open();
  EXPECT_EQ(index_->cursor(), 0u);
  EXPECT_EQ(index_->GetSetting("device_id")->value_or(""), "dev-1");
  EXPECT_FALSE(index_->GetSetting("absent")->has_value());
}

TEST_F(LocalIndexTest, AnUpdateIsDurableWhenItReturnsAndAFailedOneLeavesTheOlderState) {
  PowerCutEnv env;  // in memory
  {
    absl::StatusOr<std::unique_ptr<LocalIndex>> index = LocalIndex::Open("/index", env.env());
    ASSERT_TRUE(index.ok()) << index.status();
    ASSERT_TRUE((*index)->Update({Entry("first", 1, "1", 61)}, 1).ok());
    ASSERT_TRUE((*index)->Update({Entry("second", 2, "2", 62), Entry("third", 2, "3", 63)}, 2).ok());
    env.Cut();
    EXPECT_FALSE((*index)->Update({Entry("fourth", 3, "4", 64)}, 3).ok());
  }
  ASSERT_TRUE(env.Recover().ok());
  absl::StatusOr<std::unique_ptr<LocalIndex>> index = LocalIndex::Open("/index", env.env());
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ((*index)->cursor(), 2u);
  EXPECT_TRUE((*index)->Get("third")->has_value());
  EXPECT_FALSE((*index)->Get("fourth")->has_value());
}

}  // namespace
}  // namespace converge::engine
