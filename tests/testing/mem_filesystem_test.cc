#include "tests/testing/mem_filesystem.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"

namespace converge::engine {
namespace {

std::string Read(MemFilesystem& fs, const std::string& path) {
  auto f = fs.OpenRead(path);
  if (!f.ok()) return "<" + f.status().ToString() + ">";
  std::string out;
  EXPECT_TRUE((*f)->Read(0, 1 << 20, &out).ok());
  return out;
}

TEST(MemFilesystemTest, WalksLikeTheLocalFilesystem) {
  FakeClock clock;
  MemFilesystem fs(&clock);
  ASSERT_TRUE(fs.UserWrite("b/x", "1").ok());
  ASSERT_TRUE(fs.UserWrite("a.txt", "2").ok());
  ASSERT_TRUE(fs.UserWrite("a/y", "3").ok());
  ASSERT_TRUE(fs.UserMkdir("a/z").ok());
  std::vector<std::string> seen;
  ASSERT_TRUE(fs.Walk([&](const std::string& p, const LocalStat&) { seen.push_back(p); }).ok());
  // In byte order of the paths, as LocalFilesystem::Walk ("a.txt" before "a/y").
  EXPECT_EQ(seen, (std::vector<std::string>{"a", "a.txt", "a/y", "a/z", "b", "b/x"}));
  auto st = fs.Stat("a.txt/nothing");
  ASSERT_TRUE(st.ok());
  EXPECT_FALSE(st->exists);
}

TEST(MemFilesystemTest, APowerCutKeepsOnlyWhatWasSynced) {
  FakeClock clock;
  MemFilesystem fs(&clock);
  ASSERT_TRUE(fs.UserWrite("kept", "old").ok());
  // Installed with fsync of file and directory: survives.
  auto t = fs.CreateTemp();
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE((*t)->Append("durable").ok());
  ASSERT_TRUE((*t)->Install("synced", 0644, 1).ok());
  // Renamed into place without any fsync: gone, and the old content is back.
  auto u = fs.CreateTemp();
  ASSERT_TRUE((*u)->Append("new").ok());
  ASSERT_TRUE((*u)->Finish(0644, 1, /*sync=*/false).ok());
  ASSERT_TRUE((*u)->Rename("kept", /*sync_dir=*/false).ok());
  // File synced, directory not: the name is not there after the cut.
  auto v = fs.CreateTemp();
  ASSERT_TRUE((*v)->Append("orphan").ok());
  ASSERT_TRUE((*v)->Finish(0644, 1, /*sync=*/true).ok());
  ASSERT_TRUE((*v)->Rename("unnamed", /*sync_dir=*/false).ok());
  EXPECT_EQ(Read(fs, "kept"), "new");
  fs.PowerCut();
  EXPECT_EQ(Read(fs, "synced"), "durable");
  EXPECT_EQ(Read(fs, "kept"), "old");
  EXPECT_FALSE(fs.Stat("unnamed")->exists);
}

TEST(MemFilesystemTest, ADiskThatIgnoresFsyncLosesInstalledFiles) {
  FakeClock clock;
  MemFilesystem fs(&clock);
  fs.set_ignore_fsync(true);
  auto t = fs.CreateTemp();
  ASSERT_TRUE((*t)->Append("data").ok());
  ASSERT_TRUE((*t)->Install("f", 0644, 1).ok());
  fs.PowerCut();
  EXPECT_FALSE(fs.Stat("f")->exists);
}

TEST(MemFilesystemTest, RenamesMoveWholeDirectoriesAndNeverReplace) {
  FakeClock clock;
  MemFilesystem fs(&clock);
  ASSERT_TRUE(fs.UserWrite("d/e/f", "x").ok());
  ASSERT_TRUE(fs.UserWrite("g", "y").ok());
  EXPECT_TRUE(absl::IsAlreadyExists(fs.Rename("d", "g")));
  ASSERT_TRUE(fs.Rename("d", "h").ok());
  EXPECT_EQ(Read(fs, "h/e/f"), "x");
  EXPECT_FALSE(fs.Stat("d/e/f")->exists);
  fs.PowerCut();  // the rename was durable with its directory
  EXPECT_EQ(Read(fs, "h/e/f"), "x");
  EXPECT_TRUE(absl::IsFailedPrecondition(fs.Remove("h")));
}

TEST(MemFilesystemTest, AFullDiskRefusesWrites) {
  FakeClock clock;
  MemFilesystem fs(&clock);
  fs.set_full(true);
  auto t = fs.CreateTemp();
  EXPECT_TRUE(absl::IsResourceExhausted((*t)->Append("x")));
  EXPECT_TRUE(absl::IsResourceExhausted(fs.MakeDirs("new/dir")));
}

}  // namespace
}  // namespace converge::engine
