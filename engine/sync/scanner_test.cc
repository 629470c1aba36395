#include "engine/sync/scanner.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/fs/local_filesystem.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/test_folder.h"

namespace converge::engine {
namespace {

using testing::MakeTestDir;

// Small chunks, so small test files have several.
const ChunkParams kTestChunks{256, 512, 1024, nullptr};
using testing::WriteFile;

class ScannerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = MakeTestDir();
    auto fs = LocalFilesystem::Open(root_);
    ASSERT_TRUE(fs.ok());
    fs_ = std::move(*fs);
    auto index = LocalIndex::Open(MakeTestDir(".index"));
    ASSERT_TRUE(index.ok());
    index_ = std::move(*index);
  }

  // Pretends the store accepted every change as `seq` (what SyncEngine does after a commit).
  void Accept(const ScanResult& scan, uint64_t seq) {
    std::vector<IndexEntry> entries = scan.refreshed;
    for (const LocalChange& c : scan.changes) {
      IndexEntry e{c.version, c.local, scan.scanned_at_ns};
      e.version.seq = seq;
      entries.push_back(e);
    }
    ASSERT_TRUE(index_->Update(entries, std::nullopt).ok());
  }

  std::string root_;
  // Well after the files' mtimes, so recorded stats are trusted.
  FakeClock clock_{absl::Now() + absl::Seconds(10)};
  std::unique_ptr<LocalFilesystem> fs_;
  std::unique_ptr<LocalIndex> index_;
};

TEST_F(ScannerTest, FindsNewFilesAndDirsThenNothingWithoutRehashing) {
  WriteFile(root_ + "/docs/a.txt", "alpha");
  WriteFile(root_ + "/empty", "");
  WriteFile(root_ + "/big.bin", std::string(3 * 1024 + 5, 'z'));
  Scanner scanner(fs_.get(), index_.get(), &clock_, kTestChunks);
  auto scan = scanner.Scan();
  ASSERT_TRUE(scan.ok()) << scan.status();
  ASSERT_EQ(scan->changes.size(), 4u);
  std::map<std::string, FileVersion> by_path;
  for (const LocalChange& c : scan->changes) by_path[c.version.path] = c.version;
  ASSERT_EQ(by_path.size(), 4u);
  EXPECT_GE(by_path["big.bin"].chunks.size(), 4u);  // at most 1024 bytes each
  uint64_t total = 0;
  for (const ChunkRef& c : by_path["big.bin"].chunks) total += c.length;
  EXPECT_EQ(total, 3u * 1024 + 5);
  EXPECT_EQ(by_path["big.bin"].size, 3u * 1024 + 5);
  EXPECT_EQ(by_path["docs"].kind, FileKind::kDirectory);
  EXPECT_EQ(by_path["docs/a.txt"].content_sha256, HashOf("alpha"));
  EXPECT_TRUE(by_path["empty"].chunks.empty());
  EXPECT_EQ(by_path["empty"].content_sha256, HashOf(""));
  for (const LocalChange& c : scan->changes) {
    EXPECT_EQ(c.version.base_seq, 0u);
    EXPECT_TRUE(ValidateFileVersion(c.version).ok()) << c.version.path;
  }
  Accept(*scan, 1);

  auto again = scanner.Scan();
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->changes.empty());
  EXPECT_EQ(again->files_hashed, 0u);
}

TEST_F(ScannerTest, IgnoredPathsAreNeitherUploadedNorTakenAsDeleted) {
  WriteFile(root_ + "/keep.txt", "kept");
  WriteFile(root_ + "/old.log", "synced before the rule");
  Scanner scanner(fs_.get(), index_.get(), &clock_, kTestChunks);
  auto first = scanner.Scan();
  ASSERT_TRUE(first.ok());
  Accept(*first, 1);

  WriteFile(root_ + "/.convergeignore", "*.log\nbuild/\n!build.txt\n");
  WriteFile(root_ + "/new.log", "noise");
  WriteFile(root_ + "/build/out.o", "object");
  WriteFile(root_ + "/build.txt", "not the directory");
  std::filesystem::remove(root_ + "/old.log");  // ignored now: its deletion is not synced either
  auto scan = scanner.Scan();
  ASSERT_TRUE(scan.ok()) << scan.status();
  std::set<std::string> changed;
  for (const LocalChange& c : scan->changes) changed.insert(c.version.path);
  EXPECT_EQ(changed, (std::set<std::string>{".convergeignore", "build.txt"}));
  EXPECT_EQ(scan->ignored, 3u);  // new.log, build, build/out.o
}

TEST_F(ScannerTest, AChangeOfPermissionBitsAloneIsCommitted) {
  WriteFile(root_ + "/run.sh", "#!/bin/sh\n");
  Scanner scanner(fs_.get(), index_.get(), &clock_, kTestChunks);
  auto first = scanner.Scan();
  ASSERT_TRUE(first.ok());
  Accept(*first, 1);
  std::filesystem::permissions(root_ + "/run.sh", std::filesystem::perms::owner_all);
  auto scan = scanner.Scan();
  ASSERT_TRUE(scan.ok());
  ASSERT_EQ(scan->changes.size(), 1u);
  EXPECT_EQ(scan->changes[0].version.mode, 0700u);
  EXPECT_EQ(scan->changes[0].version.base_seq, 1u);
  EXPECT_EQ(scan->changes[0].version.content_sha256, HashOf("#!/bin/sh\n"));
}

TEST_F(ScannerTest, EditsAndDeletesCarryBaseSeqAndFileId) {
  WriteFile(root_ + "/d/x.txt", "x");
  WriteFile(root_ + "/keep.txt", "keep");
  Scanner scanner(fs_.get(), index_.get(), &clock_, kTestChunks);
  auto first = scanner.Scan();
  ASSERT_TRUE(first.ok());
  Accept(*first, 7);
  std::string x_id;
  for (const LocalChange& c : first->changes) {
    if (c.version.path == "d/x.txt") x_id = c.version.file_id;
  }
  ASSERT_EQ(x_id.size(), kFileIdBytes);

  WriteFile(root_ + "/keep.txt", "keep, edited");
  std::filesystem::remove_all(root_ + "/d");
  clock_.Advance(absl::Seconds(10));
  auto scan = scanner.Scan();
  ASSERT_TRUE(scan.ok());
  ASSERT_EQ(scan->changes.size(), 3u);
  EXPECT_EQ(scan->changes[0].version.path, "keep.txt");
  EXPECT_EQ(scan->changes[0].version.base_seq, 7u);
  EXPECT_FALSE(scan->changes[0].version.deleted);
  // Deletions come children first.
  EXPECT_EQ(scan->changes[1].version.path, "d/x.txt");
  EXPECT_TRUE(scan->changes[1].version.deleted);
  EXPECT_EQ(scan->changes[1].version.file_id, x_id);
  EXPECT_EQ(scan->changes[1].version.base_seq, 7u);
  EXPECT_EQ(scan->changes[2].version.path, "d");
  EXPECT_TRUE(scan->changes[2].version.deleted);
}

TEST_F(ScannerTest, ARewriteWithTheSameBytesIsAnMtimeChangeOnly) {
  WriteFile(root_ + "/f", "same");
  Scanner scanner(fs_.get(), index_.get(), &clock_, kTestChunks);
  auto first = scanner.Scan();
  ASSERT_TRUE(first.ok());
  Accept(*first, 1);
  WriteFile(root_ + "/f", "same");  // rewritten, same content, a new mtime
  const timespec old_times[2] = {{0, UTIME_OMIT}, {978307200, 0}};  // touch -d 2001-01-01
  ASSERT_EQ(utimensat(AT_FDCWD, (root_ + "/f").c_str(), old_times, 0), 0);
  clock_.Advance(absl::Seconds(10));
  auto scan = scanner.Scan();
  ASSERT_TRUE(scan.ok());
  ASSERT_EQ(scan->changes.size(), 1u);
  const FileVersion& v = scan->changes[0].version;
  EXPECT_EQ(v.content_sha256, first->changes[0].version.content_sha256);
  EXPECT_EQ(v.file_id, first->changes[0].version.file_id);
  EXPECT_EQ(v.mtime_ns, 978307200LL * 1000000000LL);
  EXPECT_EQ(scan->files_hashed, 1u);
  Accept(*scan, 2);

  // Rewritten again with the same bytes and the same mtime: only the inode's other fields
  // changed, nothing to commit.
  WriteFile(root_ + "/f", "same");
  ASSERT_EQ(utimensat(AT_FDCWD, (root_ + "/f").c_str(), old_times, 0), 0);
  clock_.Advance(absl::Seconds(10));
  auto again = scanner.Scan();
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->changes.empty());
  EXPECT_EQ(again->refreshed.size(), 1u);
}

TEST_F(ScannerTest, ScansReadTheFolderAndTheIndexSideBySide) {
  // Names on both sides of "a/" in byte order, and a deeper tree.
  for (const char* path : {"a/x", "a-b", "a.txt", "a0", "a b", "z/1/2/3", "old.log"}) {
    WriteFile(root_ + "/" + path, path);
  }
  Scanner scanner(fs_.get(), index_.get(), &clock_, kTestChunks);
  auto first = scanner.Scan();
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->changes.size(), 11u);
  Accept(*first, 1);
  // A full scan settles what its stat shows unchanged as it walks, and counts it as before.
  WriteFile(root_ + "/.convergeignore", "*.log\n");
  auto second = scanner.Scan();
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_EQ(second->changes.size(), 1u);
  EXPECT_EQ(second->changes[0].version.path, ".convergeignore");
  EXPECT_EQ(second->entries_seen, 11u);  // a a/x a-b a.txt a0 "a b" z z/1 z/1/2 z/1/2/3 .convergeignore
  EXPECT_EQ(second->ignored, 1u);        // old.log: synced before the rule, neither sent nor deleted
  Accept(*second, 2);

  auto none = scanner.Suspects(scanner.filter());
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->empty()) << absl::StrJoin(*none, ", ");

  std::filesystem::remove(root_ + "/a.txt");
  WriteFile(root_ + "/a/y", "new");
  WriteFile(root_ + "/a-b", "edited, longer");
  std::filesystem::remove_all(root_ + "/z/1/2");
  WriteFile(root_ + "/zz", "last");
  auto suspects = scanner.Suspects(scanner.filter());
  ASSERT_TRUE(suspects.ok()) << suspects.status();
  EXPECT_EQ(*suspects, (std::vector<std::string>{"a-b", "a.txt", "a/y", "z/1/2", "zz"}));
}

TEST_F(ScannerTest, SuspectsAreWhatAFullScanWouldFindChangedToldByStatAlone) {
  WriteFile(root_ + "/keep.txt", "kept");
  WriteFile(root_ + "/docs/a.txt", "alpha");
  WriteFile(root_ + "/docs/b.txt", "beta");
  WriteFile(root_ + "/gone/x.txt", "x");
  WriteFile(root_ + "/gone/y.txt", "y");
  Scanner scanner(fs_.get(), index_.get(), &clock_, kTestChunks);
  auto first = scanner.Scan();
  ASSERT_TRUE(first.ok());
  Accept(*first, 1);
  auto none = scanner.Suspects(scanner.filter());
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->empty());

  WriteFile(root_ + "/keep.txt", "kept, and edited");
  std::filesystem::remove_all(root_ + "/gone");
  std::filesystem::remove(root_ + "/docs/b.txt");
  WriteFile(root_ + "/docs/b.txt/now-a-directory", "b");
  WriteFile(root_ + "/fresh/1", "one");
  WriteFile(root_ + "/fresh/deeper/2", "two");
  WriteFile(root_ + "/.convergeignore", "*.log\n");
  WriteFile(root_ + "/noise.log", "ignored");
  auto suspects = scanner.Suspects(scanner.filter());
  ASSERT_TRUE(suspects.ok()) << suspects.status();
  // A directory stands for what it holds; nothing ignored; docs/a.txt was not touched.
  EXPECT_EQ(*suspects, (std::vector<std::string>{".convergeignore", "docs/b.txt", "fresh", "gone", "keep.txt"}));
  // And a targeted scan of them finds what a full scan finds.
  auto changed = [](const ScanResult& scan) {
    std::set<std::pair<std::string, bool>> paths;
    for (const LocalChange& c : scan.changes) paths.emplace(c.version.path, c.version.deleted);
    return paths;
  };
  auto targeted = scanner.ScanPaths(*suspects);
  auto full = scanner.Scan();
  ASSERT_TRUE(targeted.ok() && full.ok());
  EXPECT_EQ(changed(*targeted), changed(*full));
  EXPECT_EQ(changed(*full).size(), 11u);  // 3 gone, b now a directory and its file, fresh and its 3, keep, the rules
}

TEST_F(ScannerTest, MissingMarkerIsNeverEverythingDeleted) {
  WriteFile(root_ + "/f", "data");
  Scanner scanner(fs_.get(), index_.get(), &clock_, kTestChunks);
  auto first = scanner.Scan();
  ASSERT_TRUE(first.ok());
  Accept(*first, 1);
  std::filesystem::remove_all(root_ + "/f");
  std::filesystem::remove(root_ + "/.converge/folder-marker");  // looks like an unmounted disk
  auto scan = scanner.Scan();
  EXPECT_EQ(scan.status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace converge::engine

namespace converge::engine {
namespace {

TEST_F(ScannerTest, RecreatedPathBuildsOnItsTombstone) {
  WriteFile(root_ + "/f.txt", "v1");
  Scanner scanner(fs_.get(), index_.get(), &clock_, kTestChunks);
  auto first = scanner.Scan();
  ASSERT_TRUE(first.ok());
  Accept(*first, 3);
  std::filesystem::remove(root_ + "/f.txt");
  auto deleted = scanner.Scan();
  ASSERT_TRUE(deleted.ok());
  ASSERT_EQ(deleted->changes.size(), 1u);
  Accept(*deleted, 4);  // the tombstone
  int live = 0;
  ASSERT_TRUE(index_->ForEachLive([&](const IndexEntry&) { ++live; }).ok());
  EXPECT_EQ(live, 0);  // scans do not read tombstones
  auto tombstone = index_->Get("f.txt");
  ASSERT_TRUE(tombstone.ok() && tombstone->has_value());
  EXPECT_TRUE((*tombstone)->version.deleted);

  WriteFile(root_ + "/f.txt", "v2");
  clock_.Advance(absl::Seconds(10));
  auto again = scanner.Scan();
  ASSERT_TRUE(again.ok());
  ASSERT_EQ(again->changes.size(), 1u);
  EXPECT_EQ(again->changes[0].version.base_seq, 4u);
  EXPECT_FALSE(again->changes[0].version.deleted);
}

TEST_F(ScannerTest, ScanPathsLooksOnlyAtReportedPathsAndTheirSubtrees) {
  WriteFile(root_ + "/keep/one.txt", "1");
  WriteFile(root_ + "/gone/deep/two.txt", "2");
  WriteFile(root_ + "/edited.txt", "old");
  Scanner scanner(fs_.get(), index_.get(), &clock_, kTestChunks);
  auto first = scanner.Scan();
  ASSERT_TRUE(first.ok());
  Accept(*first, 1);

  // Changes everywhere, but only some are reported.
  WriteFile(root_ + "/edited.txt", "new content");
  WriteFile(root_ + "/keep/unreported.txt", "u");
  std::filesystem::remove_all(root_ + "/gone");
  WriteFile(root_ + "/fresh/sub/three.txt", "3");
  clock_.Advance(absl::Seconds(10));
  auto scan = scanner.ScanPaths({"edited.txt", "gone", "fresh/sub/three.txt", "fresh", "../evil", ".converge"});
  ASSERT_TRUE(scan.ok()) << scan.status();
  std::map<std::string, FileVersion> by_path;
  for (const LocalChange& c : scan->changes) by_path[c.version.path] = c.version;
  EXPECT_EQ(by_path.count("keep/unreported.txt"), 0u);  // the full scan finds it later
  EXPECT_EQ(by_path["edited.txt"].content_sha256, HashOf("new content"));
  EXPECT_TRUE(by_path["gone"].deleted);
  EXPECT_TRUE(by_path["gone/deep"].deleted);
  EXPECT_TRUE(by_path["gone/deep/two.txt"].deleted);
  EXPECT_EQ(by_path["fresh"].kind, FileKind::kDirectory);
  EXPECT_EQ(by_path["fresh/sub"].kind, FileKind::kDirectory);
  EXPECT_EQ(by_path["fresh/sub/three.txt"].content_sha256, HashOf("3"));
  EXPECT_EQ(by_path.size(), 7u) << [&] { std::string all; for (auto& [p, v] : by_path) all += p + " "; return all; }();
  // Deletions come children first; creations parents first.
  std::vector<std::string> order;
  for (const LocalChange& c : scan->changes) order.push_back(c.version.path);
  auto pos = [&](const std::string& p) { return std::find(order.begin(), order.end(), p) - order.begin(); };
  EXPECT_LT(pos("gone/deep/two.txt"), pos("gone"));
  EXPECT_LT(pos("fresh"), pos("fresh/sub/three.txt"));
  EXPECT_EQ(scan->files_hashed, 2u);
}

TEST_F(ScannerTest, ScanPathsAddsNewParentsOfAReportedFile) {
  Scanner scanner(fs_.get(), index_.get(), &clock_, kTestChunks);
  WriteFile(root_ + "/a/b/c.txt", "c");
  auto scan = scanner.ScanPaths({"a/b/c.txt"});
  ASSERT_TRUE(scan.ok()) << scan.status();
  std::vector<std::string> order;
  for (const LocalChange& c : scan->changes) order.push_back(c.version.path);
  EXPECT_EQ(order, (std::vector<std::string>{"a", "a/b", "a/b/c.txt"}));
}

TEST_F(ScannerTest, AMovedFileOrDirectoryKeepsItsFileIdsAndIsNotReadAgain) {
  for (int i = 0; i < 50; ++i) WriteFile(root_ + "/photos/" + std::to_string(i % 3) + "/p" + std::to_string(i), "photo " + std::to_string(i));
  WriteFile(root_ + "/big.bin", std::string(5000, 'b'));
  Scanner scanner(fs_.get(), index_.get(), &clock_, kTestChunks);
  auto first = scanner.Scan();
  ASSERT_TRUE(first.ok());
  Accept(*first, 1);
  std::map<std::string, std::string> ids;
  for (const LocalChange& c : first->changes) ids[c.version.path] = c.version.file_id;

  clock_.Advance(absl::Seconds(10));
  std::filesystem::create_directories(root_ + "/albums");
  std::filesystem::rename(root_ + "/photos", root_ + "/albums/2026");
  std::filesystem::rename(root_ + "/big.bin", root_ + "/big renamed.bin");
  auto scan = scanner.ScanPaths({"albums", "albums/2026", "photos", "big.bin", "big renamed.bin"});
  ASSERT_TRUE(scan.ok()) << scan.status();
  EXPECT_EQ(scan->moves, 51u);
  EXPECT_EQ(scan->files_hashed, 0u);  // renamed, not rewritten: nothing read
  // Each move is followed by its old path's tombstone; only the old directories are deleted.
  std::vector<std::string> plain_deletions;
  for (size_t i = 0; i < scan->changes.size(); ++i) {
    const LocalChange& c = scan->changes[i];
    if (!c.moved_from.empty()) {
      ASSERT_LT(i + 1, scan->changes.size());
      EXPECT_EQ(scan->changes[i + 1].version.path, c.moved_from);
      EXPECT_TRUE(scan->changes[i + 1].moved);
      EXPECT_EQ(c.version.file_id, ids[c.moved_from]);
      EXPECT_EQ(scan->changes[i + 1].version.file_id, ids[c.moved_from]);
    }
    if (c.version.deleted && !c.moved) plain_deletions.push_back(c.version.path);
  }
  EXPECT_EQ(plain_deletions, (std::vector<std::string>{"photos/2", "photos/1", "photos/0", "photos"}));

  // Only the new name reported (the watcher delivered the old one in another batch): the index
  // knows where the inode was synced, and it is gone from there.
  Accept(*scan, 2);
  clock_.Advance(absl::Seconds(10));
  std::filesystem::rename(root_ + "/big renamed.bin", root_ + "/albums/big.bin");
  auto alone = scanner.ScanPaths({"albums/big.bin"});
  ASSERT_TRUE(alone.ok()) << alone.status();
  ASSERT_EQ(alone->changes.size(), 2u);
  EXPECT_EQ(alone->changes[0].moved_from, "big renamed.bin");
  EXPECT_EQ(alone->changes[0].version.file_id, ids["big.bin"]);
  EXPECT_TRUE(alone->changes[1].moved);
  EXPECT_EQ(alone->files_hashed, 0u);
}

TEST_F(ScannerTest, ALargeFolderIsComparedInPartsWithItsMovesAndDeletionsAcrossThem) {
  WriteFile(root_ + "/a/old.bin", std::string(5000, 'o'));
  for (const char* name : {"1", "2", "3"}) WriteFile(root_ + "/m/" + name, name);
  Scanner scanner(fs_.get(), index_.get(), &clock_, kTestChunks);
  auto first = scanner.Scan();
  ASSERT_TRUE(first.ok()) << first.status();
  Accept(*first, 1);
  std::string old_id;
  for (const LocalChange& c : first->changes) {
    if (c.version.path == "a/old.bin") old_id = c.version.file_id;
  }

  // More new files than a part holds, between a file moved away (in the first part) and where
  // it went (in a later one), and a directory deleted with its files.
  clock_.Advance(absl::Seconds(10));
  const size_t count = kScanPart + 100;
  for (size_t i = 0; i < count; ++i) WriteFile(absl::StrCat(root_, "/n/f", 100000 + i), absl::StrCat("new ", i));
  std::filesystem::create_directories(root_ + "/zz");
  std::filesystem::rename(root_ + "/a/old.bin", root_ + "/zz/renamed.bin");
  std::filesystem::remove_all(root_ + "/m");
  size_t largest = 0;
  scanner.set_change_sink(1000, [&](std::vector<LocalChange>* changes, int64_t) {
    largest = std::max(largest, changes->size());
    changes->clear();
    return absl::OkStatus();
  });
  // The reported directory is too large to look at alone: the whole folder is scanned.
  auto scan = scanner.ScanPaths({"n"});
  ASSERT_TRUE(scan.ok()) << scan.status();
  EXPECT_TRUE(scan->whole_folder);
  EXPECT_EQ(scan->moves, 1u);
  EXPECT_EQ(scan->files_hashed, count);  // the moved file is not read
  EXPECT_LE(largest, 1000u);
  std::vector<std::string> plain_deletions;
  size_t created = scan->handed_over;
  for (size_t i = 0; i < scan->changes.size(); ++i) {
    const LocalChange& c = scan->changes[i];
    if (!c.moved_from.empty()) {
      EXPECT_EQ(c.version.path, "zz/renamed.bin");
      EXPECT_EQ(c.moved_from, "a/old.bin");
      EXPECT_EQ(c.version.file_id, old_id);
      ASSERT_LT(i + 1, scan->changes.size());
      EXPECT_TRUE(scan->changes[i + 1].moved);
      continue;
    }
    if (c.version.deleted && !c.moved) plain_deletions.push_back(c.version.path);
    if (!c.version.deleted) ++created;
  }
  EXPECT_EQ(plain_deletions, (std::vector<std::string>{"m/3", "m/2", "m/1", "m"}));
  EXPECT_EQ(created, count + 2);  // and the directories n and zz
}

TEST_F(ScannerTest, AChangeSinkTakesNewFilesBatchByBatchInWalkOrderUntilAMove) {
  for (int i = 0; i < 25; ++i) WriteFile(root_ + "/new/f" + std::to_string(100 + i), "file " + std::to_string(i));
  Scanner scanner(fs_.get(), index_.get(), &clock_, kTestChunks);
  std::vector<std::vector<std::string>> taken;
  scanner.set_change_sink(10, [&](std::vector<LocalChange>* changes, int64_t) {
    taken.emplace_back();
    for (const LocalChange& c : *changes) taken.back().push_back(c.version.path);
    changes->clear();
    return absl::OkStatus();
  });
  auto scan = scanner.ScanPaths({"new"});
  ASSERT_TRUE(scan.ok()) << scan.status();
  // The directory, then its files in name order: two batches taken, the rest left in the result.
  ASSERT_EQ(taken.size(), 2u);
  EXPECT_EQ(taken[0].size(), 10u);
  EXPECT_EQ(taken[0][0], "new");
  EXPECT_EQ(taken[0][1], "new/f100");
  EXPECT_EQ(taken[1][0], "new/f109");
  EXPECT_EQ(scan->handed_over, 20u);
  ASSERT_EQ(scan->changes.size(), 6u);
  EXPECT_EQ(scan->changes[0].version.path, "new/f119");

  // A move among them: from there on nothing more is taken (its tombstone goes with the rest).
  scanner.set_change_sink(0, nullptr);
  auto whole = scanner.ScanPaths({"new"});
  ASSERT_TRUE(whole.ok());
  Accept(*whole, 1);
  clock_.Advance(absl::Seconds(10));
  std::filesystem::rename(root_ + "/new/f100", root_ + "/new/a-moved");
  for (int i = 0; i < 25; ++i) WriteFile(root_ + "/new/g" + std::to_string(100 + i), "more " + std::to_string(i));
  taken.clear();
  scanner.set_change_sink(10, [&](std::vector<LocalChange>* changes, int64_t) {
    taken.emplace_back();
    changes->clear();
    return absl::OkStatus();
  });
  auto moved = scanner.ScanPaths({"new"});
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_TRUE(taken.empty());
  EXPECT_EQ(moved->moves, 1u);
  EXPECT_EQ(moved->changes.size(), 27u);  // the move, its tombstone, 25 new files
}

TEST_F(ScannerTest, SymlinksAreCommittedAsLinksAndNeverFollowed) {
  WriteFile(root_ + "/real/f.txt", "f");
  std::filesystem::create_directory_symlink(root_ + "/real", root_ + "/link");
  std::filesystem::create_symlink("/etc/passwd", root_ + "/passwd");
  Scanner scanner(fs_.get(), index_.get(), &clock_, kTestChunks);
  auto scan = scanner.ScanPaths({"link", "link/f.txt", "passwd"});
  ASSERT_TRUE(scan.ok()) << scan.status();
  std::map<std::string, FileVersion> by_path;
  for (const LocalChange& c : scan->changes) by_path[c.version.path] = c.version;
  ASSERT_EQ(by_path.size(), 2u);  // nothing below the link
  EXPECT_EQ(by_path["link"].kind, FileKind::kSymlink);
  EXPECT_EQ(by_path["link"].symlink_target, root_ + "/real");
  EXPECT_EQ(by_path["passwd"].symlink_target, "/etc/passwd");
  EXPECT_EQ(by_path["passwd"].content_sha256, HashOf("/etc/passwd"));
  EXPECT_TRUE(by_path["passwd"].chunks.empty());
  EXPECT_TRUE(ValidateFileVersion(by_path["passwd"]).ok());
  EXPECT_EQ(scan->files_hashed, 0u);  // /etc/passwd was not read
  Accept(*scan, 1);
  // Unchanged links are not committed again; a retargeted one is, on top of its version.
  clock_.Advance(absl::Seconds(10));
  auto again = scanner.Scan();
  ASSERT_TRUE(again.ok());
  std::vector<std::string> changed;
  for (const LocalChange& c : again->changes) changed.push_back(c.version.path);
  EXPECT_EQ(changed, (std::vector<std::string>{"real", "real/f.txt"}));  // not scanned before
  std::filesystem::remove(root_ + "/passwd");
  std::filesystem::create_symlink("/etc/hosts", root_ + "/passwd");
  clock_.Advance(absl::Seconds(10));
  auto retargeted = scanner.ScanPaths({"passwd"});
  ASSERT_TRUE(retargeted.ok());
  ASSERT_EQ(retargeted->changes.size(), 1u);
  EXPECT_EQ(retargeted->changes[0].version.symlink_target, "/etc/hosts");
  EXPECT_EQ(retargeted->changes[0].version.base_seq, 1u);
}

// An apply that installed a version and lost its index record to a power cut (the intent was
// recorded first): the file is taken as synced, not as an edit made here; a file that differs
// from the intended version is an edit.
TEST_F(ScannerTest, AFileAnApplyInstalledButDidNotRecordIsNotAnEdit) {
  WriteFile(root_ + "/a.txt", "old");
  Scanner scanner(fs_.get(), index_.get(), &clock_, kTestChunks);
  auto first = scanner.Scan();
  ASSERT_TRUE(first.ok());
  Accept(*first, 1);

  WriteFile(root_ + "/a.txt", "new from elsewhere");
  WriteFile(root_ + "/b.txt", "edited here");
  auto st = fs_->Stat("a.txt");
  ASSERT_TRUE(st.ok());
  FileVersion installed = first->changes[0].version;
  installed.seq = 2;
  installed.size = st->size;
  installed.mtime_ns = st->mtime_ns;
  installed.mode = st->mode & 0777;
  installed.content_sha256 = HashOf("new from elsewhere");
  installed.chunks = {ChunkRef{installed.content_sha256, static_cast<uint32_t>(st->size)}};
  FileVersion other = installed;
  other.path = "b.txt";
  other.content_sha256 = HashOf("what the apply meant");
  ASSERT_TRUE(index_->RecordIntents({installed, other}).ok());

  auto scan = scanner.Scan();
  ASSERT_TRUE(scan.ok()) << scan.status();
  ASSERT_EQ(scan->changes.size(), 1u);
  EXPECT_EQ(scan->changes[0].version.path, "b.txt");
  ASSERT_EQ(scan->refreshed.size(), 1u);
  EXPECT_EQ(scan->refreshed[0].version.seq, 2u);
  EXPECT_EQ(scan->refreshed[0].version.content_sha256, HashOf("new from elsewhere"));
  Accept(*scan, 3);
  auto intent = index_->GetIntent("a.txt");
  ASSERT_TRUE(intent.ok());
  EXPECT_FALSE(intent->has_value());  // recorded now: the intent is gone
}

}  // namespace
}  // namespace converge::engine
