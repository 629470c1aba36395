#include "engine/fs/local_filesystem.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/test_folder.h"

namespace converge::engine {
namespace {

using testing::MakeTestDir;
using testing::ReadFile;
using testing::WriteFile;

std::vector<std::string> WalkPaths(Filesystem* fs) {
  std::vector<std::string> paths;
  EXPECT_TRUE(fs->Walk([&](const std::string& p, const LocalStat&) { paths.push_back(p); }).ok());
  return paths;
}

TEST(LocalFilesystemTest, WalkIsRepeatableSkipsStateDirAndDoesNotFollowSymlinks) {
  const std::string root = MakeTestDir();
  WriteFile(root + "/b.txt", "b");
  WriteFile(root + "/a/x.txt", "x");
  ASSERT_EQ(symlink("/etc", (root + "/link").c_str()), 0);
  auto fs = LocalFilesystem::Open(root);
  ASSERT_TRUE(fs.ok()) << fs.status();
  WriteFile(root + "/a-b", "sorts before a/");
  WriteFile(root + "/a.txt", "so does this");
  // In byte order of the paths (the index's): a directory before what it holds, which comes
  // where "a/" sorts; the symlink is an entry of its own, not the directory it points to.
  const std::vector<std::string> want = {"a", "a-b", "a.txt", "a/x.txt", "b.txt", "link"};
  EXPECT_EQ(WalkPaths(fs->get()), want);
  // A second walk sees the same tree (regression: a shared directory offset made it empty).
  EXPECT_EQ(WalkPaths(fs->get()), want);
}

TEST(LocalFilesystemTest, SetAsideMovesEntriesIntoTheStateDirAndNeverThroughASymlink) {
  const std::string root = MakeTestDir();
  WriteFile(root + "/d/e/f.txt", "mine");
  WriteFile(root + "/new/a.txt", "a");
  WriteFile(root + "/elsewhere/g.txt", "g");
  ASSERT_EQ(symlink((root + "/elsewhere").c_str(), (root + "/link").c_str()), 0);
  auto fs = LocalFilesystem::Open(root);
  ASSERT_TRUE(fs.ok()) << fs.status();
  auto moved = (*fs)->SetAside("d/e/f.txt", "20261207T0530Z");
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_EQ(*moved, root + "/.converge/reverted/20261207T0530Z/d/e/f.txt");
  EXPECT_EQ(ReadFile(*moved), "mine");
  EXPECT_FALSE(std::filesystem::exists(root + "/d/e/f.txt"));
  ASSERT_TRUE((*fs)->SetAside("new", "20261207T0530Z").ok());  // a directory, with what it holds
  EXPECT_EQ(ReadFile(root + "/.converge/reverted/20261207T0530Z/new/a.txt"), "a");
  EXPECT_TRUE(absl::IsNotFound((*fs)->SetAside("new", "20261207T0530Z").status()));
  EXPECT_FALSE((*fs)->SetAside("link/g.txt", "20261207T0530Z").ok());  // not through the link
  EXPECT_EQ(ReadFile(root + "/elsewhere/g.txt"), "g");
  EXPECT_FALSE((*fs)->SetAside("d/../../etc", "b").ok());
}

TEST(LocalFilesystemTest, InstallIsAtomicAndSetsModeAndMtime) {
  const std::string root = MakeTestDir();
  WriteFile(root + "/f.txt", "old");
  auto fs = LocalFilesystem::Open(root);
  ASSERT_TRUE(fs.ok());
  auto temp = (*fs)->CreateTemp();
  ASSERT_TRUE(temp.ok());
  ASSERT_TRUE((*temp)->Append("new content").ok());
  EXPECT_EQ(ReadFile(root + "/f.txt"), "old");  // nothing visible before Install
  auto installed = (*temp)->Install("f.txt", 0600, 1600000000123456789);
  ASSERT_TRUE(installed.ok()) << installed.status();
  EXPECT_EQ(ReadFile(root + "/f.txt"), "new content");
  EXPECT_EQ(installed->mtime_ns, 1600000000123456789);
  EXPECT_EQ(installed->mode, 0600u);
  auto st = (*fs)->Stat("f.txt");
  ASSERT_TRUE(st.ok());
  EXPECT_TRUE(st->Same(*installed));
  EXPECT_TRUE(std::filesystem::is_empty(root + "/.converge/tmp"));
}

TEST(LocalFilesystemTest, HolesAreReportedAndAppendedHolesStayUnallocated) {
  const std::string root = MakeTestDir();
  auto fs = LocalFilesystem::Open(root);
  ASSERT_TRUE(fs.ok());
  // A file written with holes: 1 MiB of hole, "data", 8 MiB of hole, "tail".
  auto temp = (*fs)->CreateTemp();
  ASSERT_TRUE(temp.ok());
  ASSERT_TRUE((*temp)->AppendHole(1 << 20).ok());
  ASSERT_TRUE((*temp)->Append("data").ok());
  ASSERT_TRUE((*temp)->AppendHole(8 << 20).ok());
  ASSERT_TRUE((*temp)->Append("tail").ok());
  ASSERT_TRUE((*temp)->Install("sparse", 0644, 1600000000000000000).ok());
  struct stat st;
  ASSERT_EQ(stat((root + "/sparse").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, (9 << 20) + 8);
  EXPECT_LE(st.st_blocks * 512, 64 << 10) << "the holes were written as data";
  auto file = (*fs)->OpenRead("sparse");
  ASSERT_TRUE(file.ok());
  auto holes = (*file)->Holes(64 << 10);
  ASSERT_TRUE(holes.ok()) << holes.status();
  // Filesystems report holes at block granularity: the data blocks are whole blocks.
  ASSERT_EQ(holes->size(), 2u);
  EXPECT_EQ((*holes)[0].offset, 0u);
  EXPECT_GE((*holes)[0].length, (1u << 20) - 4096);
  EXPECT_LE((*holes)[1].offset, (1u << 20) + 4096);
  EXPECT_GE((*holes)[1].offset + (*holes)[1].length, (9u << 20) - 4096);
  std::string bytes;
  ASSERT_TRUE((*file)->Read((9 << 20) + 4, 4, &bytes).ok());
  EXPECT_EQ(bytes, "tail");
  // A file that ends in a hole keeps its size; a dense file has none.
  auto end_hole = (*fs)->CreateTemp();
  ASSERT_TRUE(end_hole.ok());
  ASSERT_TRUE((*end_hole)->Append("head").ok());
  ASSERT_TRUE((*end_hole)->AppendHole(4 << 20).ok());
  ASSERT_TRUE((*end_hole)->Install("ends-in-hole", 0644, 1600000000000000000).ok());
  ASSERT_EQ(stat((root + "/ends-in-hole").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, (4 << 20) + 4);
  file = (*fs)->OpenRead("ends-in-hole");
  ASSERT_TRUE(file.ok());
  holes = (*file)->Holes(64 << 10);
  ASSERT_TRUE(holes.ok());
  ASSERT_EQ(holes->size(), 1u);
  EXPECT_EQ((*holes)[0].offset + (*holes)[0].length, (4u << 20) + 4);
  WriteFile(root + "/dense", std::string(1 << 20, '\0'));
  file = (*fs)->OpenRead("dense");
  ASSERT_TRUE(file.ok());
  holes = (*file)->Holes(64 << 10);
  ASSERT_TRUE(holes.ok());
  EXPECT_TRUE(holes->empty());
}

TEST(LocalFilesystemTest, InstalledModesAreNeverSetuidNorWiderThanTheUmask) {
  const mode_t saved = umask(022);
  const std::string root = MakeTestDir();
  auto fs = LocalFilesystem::Open(root);
  ASSERT_TRUE(fs.ok());
  for (const auto& [name, mode, want] : std::vector<std::tuple<std::string, uint32_t, uint32_t>>{
           {"suid", 04755, 0755}, {"world", 0666, 0644}, {"all", 07777, 0755}, {"private", 0600, 0600}}) {
    auto temp = (*fs)->CreateTemp();
    ASSERT_TRUE(temp.ok());
    ASSERT_TRUE((*temp)->Append("x").ok());
    ASSERT_TRUE((*temp)->Install(name, mode, 1).ok());
    struct stat st;
    ASSERT_EQ(stat((root + "/" + name).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, want) << name;
  }
  umask(saved);
}

TEST(LocalFilesystemTest, ADirectorySwappedOutMidInstallGetsNothing) {
  const std::string root = MakeTestDir();
  const std::string outside = MakeTestDir("-outside");
  WriteFile(root + "/d/keep", "k");
  auto fs = LocalFilesystem::Open(root);
  ASSERT_TRUE(fs.ok());
  // Between opening d and renaming into it, d and a directory outside the folder change places
  // (and, for the second install, back).
  (*fs)->set_before_install_for_test([&] {
    ASSERT_EQ(renameat2(AT_FDCWD, (root + "/d").c_str(), AT_FDCWD, outside.c_str(), RENAME_EXCHANGE), 0);
  });
  auto temp = (*fs)->CreateTemp();
  ASSERT_TRUE(temp.ok());
  ASSERT_TRUE((*temp)->Append("planted").ok());
  EXPECT_EQ((*temp)->Install("d/f", 0644, 1).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE((*fs)->MakeSymlink("d/l", "/etc").code() == absl::StatusCode::kFailedPrecondition);
  temp->reset();  // the refused temp file goes
  // An unnamed temp made in d before the swap is refused too (swapped a third time: d is out).
  auto unnamed = (*fs)->CreateTempFor("d/u");
  ASSERT_TRUE(unnamed.ok());
  ASSERT_TRUE((*unnamed)->Append("planted").ok());
  EXPECT_EQ((*unnamed)->Install("d/u", 0644, 1).status().code(), absl::StatusCode::kFailedPrecondition);
  unnamed->reset();
  (*fs)->set_before_install_for_test(nullptr);
  ASSERT_EQ(renameat2(AT_FDCWD, (root + "/d").c_str(), AT_FDCWD, outside.c_str(), RENAME_EXCHANGE), 0);
  // Everything is back in place, and neither directory got anything.
  EXPECT_TRUE(std::filesystem::exists(root + "/d/keep"));
  for (const std::string& name : {"f", "l", "u"}) {
    EXPECT_FALSE(std::filesystem::exists(outside + "/" + name)) << name;
    EXPECT_FALSE(std::filesystem::exists(root + "/d/" + name)) << name;
  }
  EXPECT_TRUE(std::filesystem::is_empty(root + "/.converge/tmp"));
}

// Installs a temp file with `content` over `path`, leaving the directory check to the batch.
absl::StatusOr<LocalStat> InstallBatched(LocalFilesystem* fs, const std::string& path, const std::string& content) {
  auto temp = fs->CreateTempFor(path);
  if (!temp.ok()) return temp.status();
  if (absl::Status s = (*temp)->Append(content); !s.ok()) return s;
  if (absl::Status s = (*temp)->Finish(0644, 1, /*sync=*/false); !s.ok()) return s;
  return (*temp)->Rename(path, /*sync_dir=*/false);
}

TEST(LocalFilesystemTest, InABatchADirectoryMovedOutGivesBackWhatWasInstalledSinceItsLastCheck) {
  const std::string root = MakeTestDir();
  const std::string outside = MakeTestDir("-outside");
  WriteFile(root + "/d/keep", "k");
  auto fs = LocalFilesystem::Open(root);
  ASSERT_TRUE(fs.ok());
  FilesystemBatch batch(fs->get());
  ASSERT_TRUE(InstallBatched(fs->get(), "d/checked", "c").ok());
  ASSERT_TRUE((*fs)->SyncDir("d").ok());  // found in place: what came so far stays
  ASSERT_TRUE(InstallBatched(fs->get(), "d/a", "a").ok());
  // d and a directory outside the folder change places; the batch still holds d, and the next
  // install goes into it, outside, until the directory's check finds it moved.
  ASSERT_EQ(renameat2(AT_FDCWD, (root + "/d").c_str(), AT_FDCWD, outside.c_str(), RENAME_EXCHANGE), 0);
  ASSERT_TRUE(InstallBatched(fs->get(), "d/b", "b").ok());
  EXPECT_EQ(ReadFile(outside + "/b"), "b");
  EXPECT_EQ((*fs)->SyncDir("d").code(), absl::StatusCode::kFailedPrecondition);
  for (const std::string& name : {"a", "b"}) EXPECT_FALSE(std::filesystem::exists(outside + "/" + name)) << name;
  EXPECT_EQ(ReadFile(outside + "/checked"), "c");  // installed while d was in place, and checked so
  EXPECT_TRUE(std::filesystem::is_empty(root + "/.converge/tmp"));
  // The moved directory is not held any more: d names the other directory now.
  EXPECT_FALSE((*fs)->Stat("d/keep")->exists);
  ASSERT_TRUE(InstallBatched(fs->get(), "d/c", "c").ok());
  EXPECT_TRUE(batch.End().ok());
  EXPECT_EQ(ReadFile(root + "/d/c"), "c");
}

TEST(LocalFilesystemTest, InABatchTheEnginesOwnMovesAndRemovalsAreSeenAtOnce) {
  const std::string root = MakeTestDir();
  WriteFile(root + "/d/f", "f");
  WriteFile(root + "/gone/g", "g");
  auto fs = LocalFilesystem::Open(root);
  ASSERT_TRUE(fs.ok());
  FilesystemBatch batch(fs->get());
  ASSERT_TRUE((*fs)->Stat("d/f")->exists);
  ASSERT_TRUE((*fs)->Stat("gone/g")->exists);
  ASSERT_TRUE((*fs)->Rename("d", "e").ok());
  EXPECT_FALSE((*fs)->Stat("d/f")->exists);
  EXPECT_TRUE((*fs)->Stat("e/f")->exists);
  ASSERT_TRUE((*fs)->Remove("gone/g").ok());
  ASSERT_TRUE((*fs)->Remove("gone").ok());
  EXPECT_FALSE((*fs)->Stat("gone/g")->exists);
  // A directory made again where one was removed is the new one.
  ASSERT_TRUE((*fs)->MakeDirs("gone").ok());
  ASSERT_TRUE(InstallBatched(fs->get(), "gone/new", "n").ok());
  ASSERT_TRUE((*fs)->SyncDir("gone").ok());
  EXPECT_TRUE(batch.End().ok());
  EXPECT_EQ(ReadFile(root + "/gone/new"), "n");
  EXPECT_EQ(ReadFile(root + "/e/f"), "f");
}

TEST(LocalFilesystemTest, ATempForAPathHasNoNameUntilInstalled) {
  const std::string root = MakeTestDir();
  WriteFile(root + "/d/old.txt", "old");
  auto fs = LocalFilesystem::Open(root);
  ASSERT_TRUE(fs.ok());
  auto names_in = [](const std::string& dir) {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(dir)) names.push_back(e.path().filename());
    std::sort(names.begin(), names.end());
    return names;
  };
  // A new file: nothing named anywhere while it is written, then installed.
  auto fresh = (*fs)->CreateTempFor("d/new.txt");
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  ASSERT_TRUE((*fresh)->Append("new").ok());
  EXPECT_TRUE(std::filesystem::is_empty(root + "/.converge/tmp"));
  EXPECT_EQ(names_in(root + "/d"), std::vector<std::string>{"old.txt"});
  auto installed = (*fresh)->Install("d/new.txt", 0640, 1600000000000000000);
  ASSERT_TRUE(installed.ok()) << installed.status();
  EXPECT_EQ(ReadFile(root + "/d/new.txt"), "new");
  EXPECT_EQ(installed->mode, 0640u);
  // Over an existing file: replaced whole, by rename.
  auto over = (*fs)->CreateTempFor("d/old.txt");
  ASSERT_TRUE(over.ok());
  ASSERT_TRUE((*over)->Append("replaced").ok());
  ASSERT_TRUE((*over)->Install("d/old.txt", 0644, 1600000000000000000).ok());
  EXPECT_EQ(ReadFile(root + "/d/old.txt"), "replaced");
  // Dropped before it is installed: nothing is left, named or not.
  {
    auto dropped = (*fs)->CreateTempFor("d/dropped.txt");
    ASSERT_TRUE(dropped.ok());
    ASSERT_TRUE((*dropped)->Append("partial").ok());
  }
  const std::vector<std::string> want = {"new.txt", "old.txt"};
  EXPECT_EQ(names_in(root + "/d"), want);
  EXPECT_TRUE(std::filesystem::is_empty(root + "/.converge/tmp"));
}

TEST(LocalFilesystemTest, RenameIfAbsentPlacesANewFileButNeverReplacesOne) {
  const std::string root = MakeTestDir();
  WriteFile(root + "/d/mine.txt", "made here meanwhile");
  auto fs = LocalFilesystem::Open(root);
  ASSERT_TRUE(fs.ok());
  for (uint32_t mode : {0640u, 0600u, 0755u}) {
    // Made with the permission bits it is finished with, or changed to them.
    const std::string name = "d/new" + std::to_string(mode);
    auto made = (*fs)->CreateTempFor(name, 0640);
    ASSERT_TRUE(made.ok()) << made.status();
    ASSERT_TRUE((*made)->Append("new").ok());
    ASSERT_TRUE((*made)->Finish(mode, 1600000000000000000, /*sync=*/false).ok());
    auto placed = (*made)->RenameIfAbsent(name);
    ASSERT_TRUE(placed.ok()) << placed.status();
    EXPECT_EQ(placed->mode, mode);
    EXPECT_EQ(ReadFile(root + "/" + name), "new");
    struct stat st;
    ASSERT_EQ(stat((root + "/" + name).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, mode);
  }
  auto over = (*fs)->CreateTempFor("d/mine.txt", 0644);
  ASSERT_TRUE(over.ok());
  ASSERT_TRUE((*over)->Append("from elsewhere").ok());
  ASSERT_TRUE((*over)->Finish(0644, 1600000000000000000, /*sync=*/false).ok());
  EXPECT_EQ((*over)->RenameIfAbsent("d/mine.txt").status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ReadFile(root + "/d/mine.txt"), "made here meanwhile");
  // Still installable the usual way, over it.
  ASSERT_TRUE((*over)->Rename("d/mine.txt", /*sync_dir=*/true).ok());
  EXPECT_EQ(ReadFile(root + "/d/mine.txt"), "from elsewhere");
}

// A source that is no local file: AppendFrom reads and writes it.
class StringFile : public ReadableFile {
 public:
  explicit StringFile(std::string bytes) : bytes_(std::move(bytes)) {}
  absl::Status Read(uint64_t offset, size_t n, std::string* out) override {
    *out = offset < bytes_.size() ? bytes_.substr(offset, n) : "";
    return absl::OkStatus();
  }

 private:
  std::string bytes_;
};

TEST(LocalFilesystemTest, ATempFileTakesRangesOfAnotherFileBetweenItsBytes) {
  const std::string root = MakeTestDir();
  std::string old;
  for (int i = 0; old.size() < (3 << 20); ++i) old += std::to_string(i * 7919) + ",";
  WriteFile(root + "/d/old.bin", old);
  auto fs = LocalFilesystem::Open(root);
  ASSERT_TRUE(fs.ok());
  auto local = (*fs)->OpenRead("d/old.bin");
  ASSERT_TRUE(local.ok());
  ASSERT_GE((*local)->NativeHandle(), 0) << "a local file is copied in the kernel";
  StringFile remote(old);
  ASSERT_LT(remote.NativeHandle(), 0);
  for (ReadableFile* src : {local->get(), static_cast<ReadableFile*>(&remote)}) {
    auto temp = (*fs)->CreateTempFor("d/new.bin");
    ASSERT_TRUE(temp.ok());
    ASSERT_TRUE((*temp)->Append("head").ok());
    ASSERT_TRUE((*temp)->AppendFrom(src, 1 << 20, (3 << 19) + 7).ok());
    ASSERT_TRUE((*temp)->Append("tail").ok());
    ASSERT_TRUE((*temp)->AppendFrom(src, 0, 10).ok());
    // The source ends first: nothing is made up.
    EXPECT_TRUE(absl::IsAborted((*temp)->AppendFrom(src, old.size() - 10, 20)));
    ASSERT_TRUE((*temp)->Truncate(4 + (3 << 19) + 7 + 4 + 10).ok());
    ASSERT_TRUE((*temp)->Install("d/new.bin", 0644, 1600000000000000000).ok());
    EXPECT_EQ(ReadFile(root + "/d/new.bin"), "head" + old.substr(1 << 20, (3 << 19) + 7) + "tail" + old.substr(0, 10));
  }
  EXPECT_EQ(ReadFile(root + "/d/old.bin"), old);
}

TEST(LocalFilesystemTest, AbandonedTempFilesAreRemoved) {
  const std::string root = MakeTestDir();
  auto fs = LocalFilesystem::Open(root);
  ASSERT_TRUE(fs.ok());
  {
    auto temp = (*fs)->CreateTemp();
    ASSERT_TRUE(temp.ok());
    ASSERT_TRUE((*temp)->Append("partial").ok());
  }
  EXPECT_TRUE(std::filesystem::is_empty(root + "/.converge/tmp"));
  WriteFile(root + "/.converge/tmp/t-leftover", "from a crash");
  auto again = LocalFilesystem::Open(root);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(std::filesystem::is_empty(root + "/.converge/tmp"));
}

TEST(LocalFilesystemTest, NeverWritesThroughSymlinks) {
  const std::string root = MakeTestDir();
  const std::string outside = MakeTestDir(".outside");
  WriteFile(outside + "/victim.txt", "precious");
  ASSERT_EQ(symlink(outside.c_str(), (root + "/escape").c_str()), 0);
  auto fs = LocalFilesystem::Open(root);
  ASSERT_TRUE(fs.ok());

  auto temp = (*fs)->CreateTemp();
  ASSERT_TRUE(temp.ok());
  ASSERT_TRUE((*temp)->Append("evil").ok());
  EXPECT_FALSE((*temp)->Install("escape/victim.txt", 0644, 0).ok());
  EXPECT_FALSE((*fs)->MakeDirs("escape/sub").ok());
  EXPECT_FALSE((*fs)->OpenRead("escape/victim.txt").ok());
  EXPECT_FALSE((*fs)->Remove("escape/victim.txt").ok());
  EXPECT_FALSE((*fs)->Rename("escape/victim.txt", "stolen.txt").ok());
  EXPECT_EQ(ReadFile(outside + "/victim.txt"), "precious");
  EXPECT_FALSE(std::filesystem::exists(outside + "/sub"));
}

TEST(LocalFilesystemTest, RenameDoesNotReplaceAndRemoveKeepsNonEmptyDirs) {
  const std::string root = MakeTestDir();
  WriteFile(root + "/a", "a");
  WriteFile(root + "/b", "b");
  WriteFile(root + "/d/keep", "k");
  auto fs = LocalFilesystem::Open(root);
  ASSERT_TRUE(fs.ok());
  EXPECT_EQ((*fs)->Rename("a", "b").code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ReadFile(root + "/b"), "b");
  EXPECT_EQ((*fs)->Remove("d").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE((*fs)->Remove("a").ok());
  EXPECT_TRUE((*fs)->Remove("a").ok());  // already gone is fine
  EXPECT_FALSE(std::filesystem::exists(root + "/a"));
}

TEST(LocalFilesystemTest, RootIntactDetectsMissingMarkerAndReplacedRoot) {
  const std::string root = MakeTestDir();
  auto fs = LocalFilesystem::Open(root);
  ASSERT_TRUE(fs.ok());
  EXPECT_TRUE((*fs)->RootIntact().ok());
  std::filesystem::remove(root + "/.converge/folder-marker");
  EXPECT_EQ((*fs)->RootIntact().code(), absl::StatusCode::kFailedPrecondition);

  const std::string root2 = MakeTestDir(".2");
  auto fs2 = LocalFilesystem::Open(root2);
  ASSERT_TRUE(fs2.ok());
  std::filesystem::rename(root2, root2 + ".unmounted");
  std::filesystem::create_directories(root2);  // an empty mount point in its place
  EXPECT_EQ((*fs2)->RootIntact().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(LocalFilesystem::Open(root + "/does-not-exist").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace converge::engine

namespace converge::engine {
namespace {

TEST(LocalFilesystemTest, SymlinksAreReadAndMadeAsLinksNeverFollowed) {
  const std::string root = MakeTestDir();
  WriteFile(root + "/dir/f.txt", "f");
  auto fs = LocalFilesystem::Open(root);
  ASSERT_TRUE(fs.ok()) << fs.status();
  ASSERT_TRUE((*fs)->MakeSymlink("dir/to-outside", "/etc").ok());
  ASSERT_TRUE((*fs)->MakeSymlink("rel", "dir/f.txt").ok());
  auto st = (*fs)->Stat("dir/to-outside");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->kind, FileKind::kSymlink);
  EXPECT_FALSE(st->special);
  auto target = (*fs)->ReadLink("dir/to-outside");
  ASSERT_TRUE(target.ok()) << target.status();
  EXPECT_EQ(*target, "/etc");
  // Replaced atomically by another target.
  ASSERT_TRUE((*fs)->MakeSymlink("rel", "elsewhere").ok());
  EXPECT_EQ(*(*fs)->ReadLink("rel"), "elsewhere");
  // Nothing goes through a link: reading or creating below it is refused.
  EXPECT_FALSE((*fs)->OpenRead("dir/to-outside/passwd").ok());
  EXPECT_FALSE((*fs)->MakeDirs("dir/to-outside/sub").ok());
  EXPECT_TRUE(absl::IsInvalidArgument((*fs)->ReadLink("dir/f.txt").status()));
  ASSERT_TRUE((*fs)->Remove("rel").ok());
  EXPECT_FALSE((*fs)->Stat("rel")->exists);
}

}  // namespace
}  // namespace converge::engine
