#include "engine/sync/planner.h"

#include "gtest/gtest.h"

namespace converge::engine {
namespace {

FileVersion Remote(uint64_t seq, const std::string& content, bool deleted = false) {
  FileVersion v;
  v.path = "f.txt";
  v.seq = seq;
  v.deleted = deleted;
  if (!deleted) v.content_sha256 = HashOf(content);
  return v;
}

FileVersion WithMtime(FileVersion v, int64_t mtime_ns) {
  v.mtime_ns = mtime_ns;
  return v;
}

LocalStat Stat(uint64_t size, int64_t mtime) {
  LocalStat s;
  s.exists = true;
  s.size = size;
  s.mtime_ns = mtime;
  s.ctime_ns = mtime;
  s.inode = 1;
  s.mode = 0644;
  return s;
}

// An index entry for "f.txt" synced at `seq` with `content`, whose local stat is trusted.
IndexEntry Synced(uint64_t seq, const std::string& content, LocalStat local) {
  return IndexEntry{Remote(seq, content), local, local.mtime_ns + 1000000000};
}

LocalHash HashOfContent(const std::string& content, int* calls) {
  return [content, calls]() -> absl::StatusOr<Digest> {
    ++*calls;
    return HashOf(content);
  };
}

TEST(PlannerTest, SkipsWhatTheIndexAlreadyHas) {
  int calls = 0;
  auto a = Plan(Remote(3, "x"), Synced(3, "x", Stat(1, 100)), Stat(1, 100), HashOfContent("x", &calls));
  EXPECT_EQ(*a, Action::kSkip);
  EXPECT_EQ(calls, 0);
}

TEST(PlannerTest, NewRemoteFileIsWritten) {
  int calls = 0;
  EXPECT_EQ(*Plan(Remote(1, "x"), std::nullopt, LocalStat{}, HashOfContent("", &calls)), Action::kWrite);
  EXPECT_EQ(calls, 0);
}

TEST(PlannerTest, UnchangedLocalFileIsReplacedWithoutHashing) {
  int calls = 0;
  EXPECT_EQ(*Plan(Remote(5, "new"), Synced(2, "old", Stat(3, 100)), Stat(3, 100), HashOfContent("old", &calls)),
            Action::kWrite);
  EXPECT_EQ(calls, 0);
}

TEST(PlannerTest, LocalEditAgainstRemoteEditIsAConflict) {
  int calls = 0;
  EXPECT_EQ(*Plan(Remote(5, "theirs"), Synced(2, "old", Stat(3, 100)), Stat(4, 200),
                  HashOfContent("mine", &calls)),
            Action::kConflictThenWrite);
  EXPECT_EQ(calls, 1);  // hashed once for both questions
}

TEST(PlannerTest, LocalAlreadyHasTheRemoteContent) {
  int calls = 0;
  EXPECT_EQ(*Plan(WithMtime(Remote(5, "same"), 200), Synced(2, "old", Stat(3, 100)), Stat(4, 200),
                  HashOfContent("same", &calls)),
            Action::kRecord);
  // The same bytes with another mtime: only the metadata is set, no content moves.
  EXPECT_EQ(*Plan(WithMtime(Remote(5, "same"), 300), Synced(2, "old", Stat(3, 100)), Stat(4, 200),
                  HashOfContent("same", &calls)),
            Action::kSetMetadata);
  // An untracked local file with the same content is adopted, not duplicated.
  EXPECT_EQ(*Plan(WithMtime(Remote(5, "same"), 200), std::nullopt, Stat(4, 200), HashOfContent("same", &calls)),
            Action::kRecord);
  EXPECT_EQ(*Plan(Remote(5, "theirs"), std::nullopt, Stat(4, 200), HashOfContent("mine", &calls)),
            Action::kConflictThenWrite);
  // The same bytes, mode and mtime, and a version with extended attributes: they are set (the
  // local ones are not read); this device's own older version leaves them as they are.
  FileVersion tagged = WithMtime(Remote(5, "same"), 200);
  tagged.xattrs = {{"user.tag", "red"}};
  EXPECT_EQ(*Plan(tagged, Synced(2, "old", Stat(3, 100)), Stat(4, 200), HashOfContent("same", &calls)),
            Action::kSetMetadata);
  EXPECT_EQ(*Plan(tagged, Synced(2, "old", Stat(3, 100)), Stat(4, 200), HashOfContent("same", &calls),
                  /*local_wins=*/true),
            Action::kRecord);
}

TEST(PlannerTest, EditBeatsDeleteBothWays) {
  int calls = 0;
  // Remote deleted, local edited: keep the edit.
  EXPECT_EQ(*Plan(Remote(5, "", true), Synced(2, "old", Stat(3, 100)), Stat(4, 200),
                  HashOfContent("edited", &calls)),
            Action::kKeepLocal);
  // Remote edited, local deleted: take the edit.
  EXPECT_EQ(*Plan(Remote(5, "theirs"), Synced(2, "old", Stat(3, 100)), LocalStat{},
                  HashOfContent("", &calls)),
            Action::kWrite);
}

TEST(PlannerTest, RemoteDeleteOfUnchangedFileRemovesIt) {
  int calls = 0;
  EXPECT_EQ(*Plan(Remote(5, "", true), Synced(2, "old", Stat(3, 100)), Stat(3, 100),
                  HashOfContent("old", &calls)),
            Action::kRemove);
  // Racy stat (recorded too close to mtime): decided by content, still unchanged.
  IndexEntry racy{Remote(2, "old"), Stat(3, 100), 100};
  EXPECT_EQ(*Plan(Remote(5, "", true), racy, Stat(3, 100), HashOfContent("old", &calls)),
            Action::kRemove);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(*Plan(Remote(5, "", true), std::nullopt, LocalStat{}, HashOfContent("", &calls)),
            Action::kRecord);
}

TEST(PlannerTest, Directories) {
  int calls = 0;
  FileVersion dir = Remote(4, "");
  dir.kind = FileKind::kDirectory;
  LocalStat local_dir = Stat(0, 100);
  local_dir.kind = FileKind::kDirectory;
  EXPECT_EQ(*Plan(dir, std::nullopt, LocalStat{}, HashOfContent("", &calls)), Action::kMakeDir);
  EXPECT_EQ(*Plan(dir, std::nullopt, local_dir, HashOfContent("", &calls)), Action::kRecord);
  EXPECT_EQ(*Plan(dir, std::nullopt, Stat(1, 100), HashOfContent("x", &calls)),
            Action::kConflictThenMakeDir);
  EXPECT_EQ(*Plan(Remote(4, "file"), std::nullopt, local_dir, HashOfContent("", &calls)),
            Action::kConflictThenWrite);
}

TEST(PlannerTest, HashErrorsPropagate) {
  auto failing = []() -> absl::StatusOr<Digest> { return absl::UnavailableError("disk gone"); };
  EXPECT_EQ(Plan(Remote(5, "x"), std::nullopt, Stat(4, 200), failing).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST(PlannerTest, AfterTheStoreLostNewerVersionsTheLocalFileWins) {
  int calls = 0;
  // Re-syncing with a store restored from an older backup: no index entry, a differing local
  // file is this device's newer version (kept and uploaded), not a conflict.
  EXPECT_EQ(*Plan(Remote(2, "old"), std::nullopt, Stat(5, 100), HashOfContent("newer", &calls), true),
            Action::kKeepLocal);
  EXPECT_EQ(*Plan(Remote(2, "old"), std::nullopt, Stat(5, 100), HashOfContent("newer", &calls)),
            Action::kConflictThenWrite);
  // The same content and mtime are recorded; a newer local mtime stays (and is uploaded); a
  // missing local file is written (nothing is lost).
  EXPECT_EQ(*Plan(WithMtime(Remote(2, "same"), 100), std::nullopt, Stat(4, 100), HashOfContent("same", &calls), true),
            Action::kRecord);
  EXPECT_EQ(*Plan(WithMtime(Remote(2, "same"), 50), std::nullopt, Stat(4, 100), HashOfContent("same", &calls), true),
            Action::kKeepLocal);
  EXPECT_EQ(*Plan(Remote(2, "old"), std::nullopt, LocalStat{}, HashOfContent("", &calls), true), Action::kWrite);
}

}  // namespace
}  // namespace converge::engine

namespace converge::engine {
namespace {

TEST(PlannerTest, ALocalDeletionAfterThisDevicesOwnCommitWins) {
  // The device committed v2 but its index kept v1 (its write failed); the user then deleted the
  // file. v2 coming back must not bring it back: the deletion is newer.
  FileVersion v1;
  v1.file_id = std::string(kFileIdBytes, 'f');
  v1.path = "a.txt";
  v1.seq = 1;
  FileVersion v2 = v1;
  v2.seq = 2;
  v2.origin_device = "me";
  IndexEntry entry{v1, LocalStat{}, 0};
  entry.local.exists = true;
  LocalStat gone;
  auto no_hash = []() -> absl::StatusOr<Digest> { return absl::InternalError("not needed"); };
  auto own = Plan(v2, entry, gone, no_hash, /*local_wins=*/true);
  ASSERT_TRUE(own.ok());
  EXPECT_EQ(*own, Action::kKeepLocal);
  // Another device's edit still beats the local deletion.
  auto theirs = Plan(v2, entry, gone, no_hash, /*local_wins=*/false);
  ASSERT_TRUE(theirs.ok());
  EXPECT_EQ(*theirs, Action::kWrite);
  // A directory alike.
  v2.kind = FileKind::kDirectory;
  entry.version.kind = FileKind::kDirectory;
  auto dir = Plan(v2, entry, gone, no_hash, /*local_wins=*/true);
  ASSERT_TRUE(dir.ok());
  EXPECT_EQ(*dir, Action::kKeepLocal);
}

}  // namespace
}  // namespace converge::engine
