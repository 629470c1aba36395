// End-to-end tests of fidelity with real services and engines (TLS, loopback): what arrives is
// what was there. Type changes made on one device (file <-> directory <-> symlink) are plain
// changes everywhere else, never conflict copies; an mtime or mode change alone travels without
// moving content bytes; sparse files keep their holes.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>

#include <filesystem>
#include <functional>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/cluster.h"

namespace converge::testing {
namespace {

struct stat Lstat(const std::string& path) {
  struct stat st = {};
  if (lstat(path.c_str(), &st) != 0) st.st_mode = 0;
  return st;
}

int64_t MtimeNs(const std::string& path) {
  const struct stat st = Lstat(path);
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

// Conflicts: every path in a folder whose name marks a conflict copy.
std::vector<std::string> Conflicts(const std::string& folder) {
  std::vector<std::string> found;
  for (auto it = std::filesystem::recursive_directory_iterator(folder); it != std::filesystem::end(it); ++it) {
    const std::string rel = std::filesystem::relative(it->path(), folder).string();
    if (absl::StartsWith(rel, ".converge")) {
      it.disable_recursion_pending();
      continue;
    }
    if (absl::StrContains(rel, "(conflict ")) found.push_back(rel);
  }
  return found;
}

class E2eFidelityTest : public ::testing::Test {
 protected:
  void Start(int engines = 2) {
    ClusterOptions options;
    options.dir = std::string(getenv("TEST_TMPDIR")) + "/" +
                  ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(options.dir);
    auto cluster = Cluster::Start(options);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = std::move(*cluster);
    const char* names[] = {"laptop", "desktop", "tablet"};
    for (int i = 0; i < engines; ++i) ASSERT_TRUE(cluster_->AddEngine(names[i]).ok());
  }

  std::string Path(int engine, const std::string& rel) { return cluster_->folder(engine) + "/" + rel; }

  void Converge(absl::Duration timeout = absl::Seconds(60)) {
    absl::Status converged = cluster_->WaitConverged(timeout);
    ASSERT_TRUE(converged.ok()) << converged << "; logs in " << cluster_->logs_dir();
  }

  // WaitFor polls `done` every 20 ms for up to `timeout`.
  static bool WaitFor(const std::function<bool()>& done, absl::Duration timeout = absl::Seconds(30)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      if (done()) return true;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return done();
  }

  double StoreBytes(const char* direction) {
    auto scrape = cluster_->ServiceMetrics("store");
    return scrape.ok() ? Cluster::MetricValue(*scrape, absl::StrCat("converge_store_chunk_bytes_total{direction=\"",
                                                                     direction, "\"}"))
                       : -1;
  }

  std::unique_ptr<Cluster> cluster_;
};

// The sequence (a file, replaced by a directory 0.3 s later, replaced by a file again),
// then the other type changes, at several speeds against the other engine's sync: only laptop
// edits, so no conflict copy may appear anywhere.
TEST_F(E2eFidelityTest, TypeChangesMadeOnOneDeviceNeverMakeAConflictCopy) {
  Start();
  const std::string morph = Path(0, "morph");
  for (const absl::Duration gap : {absl::Milliseconds(300), absl::Milliseconds(0), absl::Milliseconds(120)}) {
    std::filesystem::remove_all(morph);
    WriteFile(morph, "x");
    absl::SleepFor(gap);
    std::filesystem::remove(morph);
    WriteFile(morph + "/inner", "y");
    absl::SleepFor(gap);
    std::filesystem::remove_all(morph);
    WriteFile(morph, "z");
    absl::SleepFor(gap);
    // A file becomes a symlink, the symlink a directory, the directory a symlink.
    std::filesystem::remove(morph);
    ASSERT_EQ(symlink("elsewhere", morph.c_str()), 0);
    absl::SleepFor(gap);
    std::filesystem::remove(morph);
    WriteFile(morph + "/deep/er", "w");
    absl::SleepFor(gap);
    std::filesystem::remove_all(morph);
    ASSERT_EQ(symlink("target", morph.c_str()), 0);
    Converge();
    EXPECT_TRUE(S_ISLNK(Lstat(Path(1, "morph")).st_mode)) << "gap " << gap;
    std::filesystem::remove(morph);
    WriteFile(morph, "final");
    Converge();
    EXPECT_EQ(ReadFile(Path(1, "morph")), "final");
    EXPECT_EQ(Conflicts(cluster_->folder(0)), std::vector<std::string>()) << "gap " << gap;
    EXPECT_EQ(Conflicts(cluster_->folder(1)), std::vector<std::string>()) << "gap " << gap;
  }
  EXPECT_FALSE(absl::StrContains(cluster_->EngineLog(1), "conflict:")) << cluster_->EngineLog(1);
}

// touch -d and chmod alone are changes: committed, applied, and no content byte moves.
TEST_F(E2eFidelityTest, AnMtimeOrModeChangeAloneTravelsWithoutContentBytes) {
  Start();
  WriteFile(Path(0, "old.txt"), std::string(256 * 1024, 'o'));
  WriteFile(Path(0, "script.sh"), "#!/bin/sh\necho hi\n");
  Converge();
  ASSERT_TRUE(WaitFor([&] { return MtimeNs(Path(1, "old.txt")) == MtimeNs(Path(0, "old.txt")); }))
      << "the mtime of a new file travels with it";
  const double in = StoreBytes("in"), out = StoreBytes("out");

  const timespec y2001[2] = {{0, UTIME_OMIT}, {978307200, 0}};  // touch -d 2001-01-01
  ASSERT_EQ(utimensat(AT_FDCWD, Path(0, "old.txt").c_str(), y2001, AT_SYMLINK_NOFOLLOW), 0);
  ASSERT_EQ(chmod(Path(0, "script.sh").c_str(), 0750), 0);
  ASSERT_TRUE(WaitFor([&] { return MtimeNs(Path(1, "old.txt")) == 978307200LL * 1000000000LL; }))
      << "desktop keeps mtime " << MtimeNs(Path(1, "old.txt")) << "; logs in " << cluster_->logs_dir();
  ASSERT_TRUE(WaitFor([&] { return (Lstat(Path(1, "script.sh")).st_mode & 0777) == 0750; }));
  Converge();
  EXPECT_EQ(ReadFile(Path(1, "old.txt")), std::string(256 * 1024, 'o'));
  EXPECT_EQ(StoreBytes("in"), in) << "an mtime change uploaded content";
  EXPECT_EQ(StoreBytes("out"), out) << "an mtime change downloaded content";

  // And back the other way: desktop touches, laptop follows.
  const timespec y2010[2] = {{0, UTIME_OMIT}, {1262304000, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, Path(1, "script.sh").c_str(), y2010, AT_SYMLINK_NOFOLLOW), 0);
  ASSERT_TRUE(WaitFor([&] { return MtimeNs(Path(0, "script.sh")) == 1262304000LL * 1000000000LL; }));
  EXPECT_EQ(Lstat(Path(0, "script.sh")).st_mode & 0777, 0750u);
  EXPECT_EQ(Conflicts(cluster_->folder(0)), std::vector<std::string>());
  EXPECT_EQ(Conflicts(cluster_->folder(1)), std::vector<std::string>());
}

// Bytes the file at `path` has allocated on disk.
uint64_t Allocated(const std::string& path) { return static_cast<uint64_t>(Lstat(path).st_blocks) * 512; }

// MakeSparse makes a file of `size` bytes that holds `data` at each offset given and holes
// elsewhere (truncate -s, then writes).
void MakeSparse(const std::string& path, uint64_t size, const std::vector<std::pair<uint64_t, std::string>>& data) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  const std::string temp = path + ".making";
  const int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, static_cast<off_t>(size)), 0);
  for (const auto& [offset, bytes] : data) {
    ASSERT_EQ(pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset)), static_cast<ssize_t>(bytes.size()));
  }
  close(fd);
  ASSERT_EQ(rename(temp.c_str(), path.c_str()), 0);
}

std::string Noise(size_t n, uint64_t seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    s[i] = static_cast<char>(seed >> 56);
  }
  return s;
}

// The case (truncate -s 64M; printf tail >>), a VM-image-like file with data in the
// middle, and a small sparse file (the batched path): each arrives with the same content and
// about the allocation it had, and the holes move no bytes. Filling a hole and punching one
// travel as edits that keep the allocation.
TEST_F(E2eFidelityTest, SparseFilesArriveSparse) {
  Start();
  const double in = StoreBytes("in"), out = StoreBytes("out");
  MakeSparse(Path(0, "big.img"), 64 << 20, {{64 << 20, "tail"}});
  MakeSparse(Path(0, "vm/disk.raw"), 48 << 20, {{0, Noise(64 << 10, 1)}, {20 << 20, Noise(1 << 20, 2)}});
  MakeSparse(Path(0, "small.db"), 900 << 10, {{256 << 10, Noise(8 << 10, 3)}});
  Converge();
  for (const char* name : {"big.img", "vm/disk.raw", "small.db"}) {
    EXPECT_EQ(Lstat(Path(1, name)).st_size, Lstat(Path(0, name)).st_size) << name;
    EXPECT_TRUE(ReadFile(Path(1, name)) == ReadFile(Path(0, name))) << name;
    EXPECT_LE(Allocated(Path(1, name)), Allocated(Path(0, name)) + (64 << 10))
        << name << " arrived dense: " << Allocated(Path(1, name)) << " bytes allocated, "
        << Allocated(Path(0, name)) << " on laptop";
  }
  // Data bytes only: 4 + 64 KiB + 1 MiB + 8 KiB, and what the filesystem rounds them to.
  EXPECT_LT(StoreBytes("in") - in, 2 << 20) << "holes were uploaded";
  EXPECT_LT(StoreBytes("out") - out, 2 << 20) << "holes were downloaded";

  // Writing into a hole is an edit; the rest stays a hole.
  const std::string disk = Path(0, "vm/disk.raw");
  const int fd = open(disk.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  const std::string filled = Noise(1 << 20, 4);
  ASSERT_EQ(pwrite(fd, filled.data(), filled.size(), 40 << 20), static_cast<ssize_t>(filled.size()));
  ASSERT_EQ(fsync(fd), 0);
  close(fd);
  ASSERT_TRUE(WaitFor([&] { return ReadFile(Path(1, "vm/disk.raw")) == ReadFile(disk); }))
      << "logs in " << cluster_->logs_dir();
  Converge();
  EXPECT_LE(Allocated(Path(1, "vm/disk.raw")), Allocated(disk) + (64 << 10));
  EXPECT_GE(Allocated(Path(1, "vm/disk.raw")), uint64_t{2} << 20);

  // Punching a hole (fallocate) gives the allocation back on the other device too.
  const int punch = open(disk.c_str(), O_WRONLY);
  ASSERT_GE(punch, 0);
  ASSERT_EQ(fallocate(punch, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 20 << 20, 1 << 20), 0);
  close(punch);
  ASSERT_TRUE(WaitFor([&] { return ReadFile(Path(1, "vm/disk.raw")) == ReadFile(disk); }));
  Converge();
  EXPECT_LE(Allocated(Path(1, "vm/disk.raw")), Allocated(disk) + (64 << 10));
  EXPECT_EQ(Conflicts(cluster_->folder(1)), std::vector<std::string>());
}

std::string GetXattr(const std::string& path, const std::string& name) {
  std::string value(65536, '\0');
  const ssize_t n = lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
  return n < 0 ? "<none>" : value.substr(0, static_cast<size_t>(n));
}

void SetXattr(const std::string& path, const std::string& name, const std::string& value) {
  ASSERT_EQ(lsetxattr(path.c_str(), name.c_str(), value.data(), value.size(), 0), 0) << name << ": " << strerror(errno);
}

// With the namespace option on, "user." attributes travel with the content, alone (setfattr on
// a synced file moves no content byte), and their removal too. With it off (the default), none
// travels. (The bounds are the model's: ext4 keeps no value as large as the bound.)
TEST_F(E2eFidelityTest, UserExtendedAttributesTravelWhenTheNamespaceSyncsThem) {
  Start(0);
  CommandResult set = cluster_->Convergectl({"namespaces", "set", "shared", "--xattrs=on"});
  ASSERT_EQ(set.exit_code, 0) << set.err;
  EXPECT_TRUE(absl::StrContains(set.out, "extended attributes synced")) << set.out;
  ASSERT_TRUE(cluster_->AddEngine("laptop").ok());
  ASSERT_TRUE(cluster_->AddEngine("desktop").ok());

  // A new file with attributes: they arrive with it.
  const std::string temp = Path(0, ".photo.making");
  WriteFile(temp, "jpeg bytes");
  SetXattr(temp, "user.xdg.origin.url", "https://example.com/photo.jpg");
  SetXattr(temp, "user.rating", std::string("5\0stars", 7));
  ASSERT_EQ(rename(temp.c_str(), Path(0, "photo.jpg").c_str()), 0);
  Converge();
  EXPECT_EQ(GetXattr(Path(1, "photo.jpg"), "user.xdg.origin.url"), "https://example.com/photo.jpg");
  EXPECT_EQ(GetXattr(Path(1, "photo.jpg"), "user.rating"), std::string("5\0stars", 7));

  // An attribute changed alone, and one removed: no content byte moves.
  const double in = StoreBytes("in"), out = StoreBytes("out");
  SetXattr(Path(0, "photo.jpg"), "user.rating", "4");
  ASSERT_EQ(lremovexattr(Path(0, "photo.jpg").c_str(), "user.xdg.origin.url"), 0);
  ASSERT_TRUE(WaitFor([&] { return GetXattr(Path(1, "photo.jpg"), "user.rating") == "4"; }))
      << "logs in " << cluster_->logs_dir();
  ASSERT_TRUE(WaitFor([&] { return GetXattr(Path(1, "photo.jpg"), "user.xdg.origin.url") == "<none>"; }));
  Converge();
  EXPECT_EQ(StoreBytes("in"), in) << "an attribute change uploaded content";
  EXPECT_EQ(StoreBytes("out"), out) << "an attribute change downloaded content";
  EXPECT_EQ(ReadFile(Path(1, "photo.jpg")), "jpeg bytes");

  // And from the other device, with an edit of the content.
  WriteFile(Path(1, "photo.jpg"), "edited jpeg");
  SetXattr(Path(1, "photo.jpg"), "user.edited.by", "desktop");
  ASSERT_TRUE(WaitFor([&] { return GetXattr(Path(0, "photo.jpg"), "user.edited.by") == "desktop"; }));
  Converge();
  EXPECT_EQ(ReadFile(Path(0, "photo.jpg")), "edited jpeg");
  EXPECT_EQ(Conflicts(cluster_->folder(0)), std::vector<std::string>());

  // Off again: engines that start now keep attributes to themselves.
  set = cluster_->Convergectl({"namespaces", "set", "shared", "--xattrs=off"});
  ASSERT_EQ(set.exit_code, 0) << set.err;
  ASSERT_TRUE(cluster_->AddEngine("tablet").ok());
  Converge();
  EXPECT_EQ(ReadFile(Path(2, "photo.jpg")), "edited jpeg");
  EXPECT_EQ(GetXattr(Path(2, "photo.jpg"), "user.edited.by"), "<none>");
}

// The default: a namespace syncs no extended attributes.
TEST_F(E2eFidelityTest, ExtendedAttributesStayLocalByDefault) {
  Start();
  WriteFile(Path(0, "doc.txt"), "text");
  SetXattr(Path(0, "doc.txt"), "user.tag", "red");
  Converge();
  EXPECT_EQ(ReadFile(Path(1, "doc.txt")), "text");
  EXPECT_EQ(GetXattr(Path(1, "doc.txt"), "user.tag"), "<none>");
}

}  // namespace
}  // namespace converge::testing
