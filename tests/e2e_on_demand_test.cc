// End to end: an on-demand folder (converge-engine --on_demand, a real FUSE mount) beside a
// synced one, over the real services. Skipped, saying why, where /dev/fuse cannot be opened.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/cluster.h"

namespace converge::testing {
namespace {

bool FuseUsable() {
  const int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  close(fd);
  return true;
}

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

// PRead reads `size` bytes at `offset` of an open file; errno's negation on failure.
std::string PRead(int fd, uint64_t offset, size_t size, int* error) {
  std::string out(size, '\0');
  const ssize_t n = pread(fd, out.data(), size, offset);
  *error = n < 0 ? errno : 0;
  out.resize(n < 0 ? 0 : n);
  return out;
}

// ReadAll reads a whole file through the mount ("" and errno set when a read fails).
std::string ReadAll(const std::string& path, int* error) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  *error = fd < 0 ? errno : 0;
  std::string out;
  if (fd < 0) return out;
  char buf[1 << 16];
  for (ssize_t n; (n = read(fd, buf, sizeof(buf))) != 0;) {
    if (n < 0) {
      *error = errno;
      out.clear();
      break;
    }
    out.append(buf, n);
  }
  close(fd);
  return out;
}

std::string ReadAll(const std::string& path) {
  int error = 0;
  return ReadAll(path, &error);
}

std::vector<std::string> Names(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

class E2eOnDemandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!FuseUsable()) GTEST_SKIP() << "/dev/fuse cannot be opened here: on-demand folders need FUSE";
    ClusterOptions options;
    options.dir = std::string(getenv("TEST_TMPDIR")) + "/on-demand";
    std::filesystem::remove_all(options.dir);
    options.engine_args_of["beta"] = {"--on_demand", "--cache_budget=3M"};
    auto cluster = Cluster::Start(options);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = std::move(*cluster);
    ASSERT_TRUE(cluster_->AddEngine("alpha").ok());
    a_ = cluster_->folder(0);
  }
  void TearDown() override {
    if (cluster_ == nullptr) return;
    const std::string b = cluster_->engine_count() > 1 ? cluster_->folder(1) : "";
    cluster_.reset();
    if (!b.empty()) umount2(b.c_str(), MNT_DETACH);  // only if the engine left one behind
  }

  // StartOnDemand starts beta on demand once alpha's files are in the store, and waits until
  // its mount shows `path`.
  void StartOnDemand(const std::string& path) {
    ASSERT_TRUE(WaitFor([&] {
      return cluster_->EngineCommand({"status", "--folder=" + a_}).out.find("up to date") != std::string::npos;
    }, absl::Seconds(30)));
    absl::StatusOr<int> beta = cluster_->AddEngine("beta");
    ASSERT_TRUE(beta.ok()) << beta.status();
    b_ = cluster_->folder(*beta);
    ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(b_ + "/" + path); }, absl::Seconds(30)))
        << cluster_->EngineLog(*beta);
  }

  std::string Status() { return cluster_->EngineCommand({"status", "--folder=" + b_}).out; }

  std::unique_ptr<Cluster> cluster_;
  std::string a_, b_;
};

TEST_F(E2eOnDemandTest, EveryFileIsListedAndReadsFetchOnlyWhatTheyNeed) {
  const std::string big = RandomBytes(8 << 20, 1);
  WriteFile(a_ + "/big.bin", big);
  WriteFile(a_ + "/docs/a.txt", "alpha");
  std::filesystem::create_directories(a_ + "/empty");
  ASSERT_EQ(chmod((a_ + "/docs/a.txt").c_str(), 0640), 0);
  for (int i = 0; i < 3000; ++i) WriteFile(absl::StrCat(a_, "/many/f", i), "");  // listed in many pieces
  StartOnDemand("docs/a.txt");

  EXPECT_EQ(Names(b_), (std::vector<std::string>{".converge", "big.bin", "docs", "empty", "many"}));
  ASSERT_TRUE(WaitFor([&] { return Names(b_ + "/many").size() == 3000; }, absl::Seconds(20)));
  EXPECT_EQ(Names(b_ + "/many"), Names(a_ + "/many"));
  struct stat sa {}, sb {};
  ASSERT_EQ(stat((a_ + "/big.bin").c_str(), &sa), 0);
  ASSERT_EQ(stat((b_ + "/big.bin").c_str(), &sb), 0);
  EXPECT_EQ(sb.st_size, sa.st_size);
  EXPECT_EQ(sb.st_mtim.tv_sec, sa.st_mtim.tv_sec);
  EXPECT_EQ(sb.st_mtim.tv_nsec, sa.st_mtim.tv_nsec);
  ASSERT_EQ(stat((b_ + "/docs/a.txt").c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 07777, 0640u);
  EXPECT_TRUE(S_ISDIR(sb.st_mode) == false);
  std::string status;
  ASSERT_TRUE(WaitFor([&] {
    status = Status();
    return status.find("on demand  3002 files (8.0 MiB) shown, 0 B cached") != std::string::npos;
  }, absl::Seconds(10))) << status;

  const int fd = open((b_ + "/big.bin").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0) << strerror(errno);
  absl::Cleanup closer = [fd] { close(fd); };
  int error = 0;
  EXPECT_EQ(PRead(fd, 0, 100, &error), big.substr(0, 100));  // head -c 100
  ASSERT_TRUE(WaitFor([&] {
    status = Status();
    return status.find(" fetched since start") != std::string::npos && status.find(" 0 B fetched") == std::string::npos;
  }, absl::Seconds(10))) << status;
  std::mt19937_64 rng(3);
  for (int i = 0; i < 30; ++i) {  // never-fetched ranges at random offsets, byte for byte
    const uint64_t offset = rng() % big.size();
    const size_t size = 1 + rng() % (300 << 10);
    EXPECT_EQ(PRead(fd, offset, size, &error), big.substr(offset, size)) << offset << "+" << size;
    EXPECT_EQ(error, 0);
  }
  // The whole file, through a 3 MiB cache while this reader holds it open.
  EXPECT_EQ(ReadAll(b_ + "/big.bin"), big);
  EXPECT_EQ(ReadAll(b_ + "/docs/a.txt"), "alpha");

  // A change on alpha shows up on beta's mount.
  WriteFile(a_ + "/docs/a.txt", "alpha, edited");
  WriteFile(a_ + "/later.txt", "later");
  EXPECT_TRUE(WaitFor([&] { return ReadAll(b_ + "/docs/a.txt") == "alpha, edited"; }, absl::Seconds(20)));
  EXPECT_TRUE(WaitFor([&] { return ReadAll(b_ + "/later.txt") == "later"; }, absl::Seconds(20)));
  status = Status();
  EXPECT_NE(status.find("budget"), std::string::npos) << status;
}

TEST_F(E2eOnDemandTest, OfflineCachedFilesReadAndOthersFailWithEioNamedInStatus) {
  WriteFile(a_ + "/cached.txt", "kept here");
  WriteFile(a_ + "/remote.bin", RandomBytes(1 << 20, 2));
  const std::string pinned = RandomBytes(512 << 10, 4);
  WriteFile(a_ + "/trip/map.bin", pinned);
  StartOnDemand("remote.bin");
  EXPECT_EQ(ReadAll(b_ + "/cached.txt"), "kept here");
  CommandResult pin = cluster_->EngineCommand({"pin", "--folder=" + b_, "trip"});
  ASSERT_EQ(pin.exit_code, 0) << pin.err;
  std::string status;
  ASSERT_TRUE(WaitFor([&] {
    status = Status();
    return status.find("pinned     trip (512.0 KiB cached)") != std::string::npos;
  }, absl::Seconds(20))) << status;
  EXPECT_EQ(cluster_->EngineCommand({"pin", "--folder=" + a_, "trip"}).exit_code, 1);  // not on demand

  cluster_->StopStore();
  EXPECT_EQ(ReadAll(b_ + "/cached.txt"), "kept here");
  EXPECT_TRUE(ReadAll(b_ + "/trip/map.bin") == pinned);  // fetched by the pin, never read before
  const int fd = open((b_ + "/remote.bin").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0) << strerror(errno);
  int error = 0;
  EXPECT_EQ(PRead(fd, 0, 4096, &error), "");
  EXPECT_EQ(error, EIO);
  close(fd);
  EXPECT_TRUE(WaitFor([&] {
    status = Status();
    return status.find("read(s) refused with EIO; latest: remote.bin: ") != std::string::npos;
  }, absl::Seconds(10))) << status;

  // Restarted while the store is still down: the listing it saved is shown, cached files read.
  cluster_->StopEngine(1);
  ASSERT_TRUE(cluster_->StartEngine(1).ok());
  EXPECT_TRUE(WaitFor([&] { return ReadAll(b_ + "/cached.txt") == "kept here"; }, absl::Seconds(30)))
      << cluster_->EngineLog(1);
  EXPECT_TRUE(ReadAll(b_ + "/trip/map.bin") == pinned);
  int failed = 0;
  EXPECT_EQ(ReadAll(b_ + "/remote.bin", &failed), "");
  EXPECT_EQ(failed, EIO);

  ASSERT_TRUE(cluster_->StartStore().ok());
  EXPECT_TRUE(WaitFor([&] { return ReadAll(b_ + "/remote.bin").size() == (1u << 20); }, absl::Seconds(20)));
  WriteFile(a_ + "/after.txt", "after the outage");  // followed from the log again
  EXPECT_TRUE(WaitFor([&] { return ReadAll(b_ + "/after.txt") == "after the outage"; }, absl::Seconds(20)));

  CommandResult unpin = cluster_->EngineCommand({"unpin", "--folder=" + b_, "trip"});
  ASSERT_EQ(unpin.exit_code, 0) << unpin.err;
  EXPECT_TRUE(WaitFor([&] {
    status = Status();
    return status.find("on demand") != std::string::npos && status.find("pinned ") == std::string::npos;
  }, absl::Seconds(10))) << status;
}

TEST_F(E2eOnDemandTest, WritesThroughTheMountReachTheOtherDevice) {
  WriteFile(a_ + "/log.txt", "line 1\n");
  WriteFile(a_ + "/old/x.txt", "x");
  WriteFile(a_ + "/old/deep/y.txt", "y");
  WriteFile(a_ + "/doomed.txt", "doomed");
  StartOnDemand("doomed.txt");

  const std::string big = RandomBytes(5 << 20, 7);
  WriteFile(b_ + "/made/on/beta.bin", big);  // mkdir -p, then a 5 MiB file in 64 KiB writes
  const int log = open((b_ + "/log.txt").c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(log, 0) << strerror(errno);
  ASSERT_EQ(write(log, "line 2\n", 7), 7);  // appended to the copy fetched on open
  close(log);
  ASSERT_EQ(rename((b_ + "/old").c_str(), (b_ + "/new").c_str()), 0) << strerror(errno);
  ASSERT_EQ(unlink((b_ + "/doomed.txt").c_str()), 0) << strerror(errno);
  ASSERT_EQ(symlink("new/x.txt", (b_ + "/link").c_str()), 0) << strerror(errno);
  ASSERT_EQ(chmod((b_ + "/new/x.txt").c_str(), 0600), 0) << strerror(errno);
  const struct timespec when[2] = {{0, UTIME_OMIT}, {1700000000, 5}};
  ASSERT_EQ(utimensat(AT_FDCWD, (b_ + "/made/on/beta.bin").c_str(), when, 0), 0) << strerror(errno);
  EXPECT_NE(link((b_ + "/log.txt").c_str(), (b_ + "/hard").c_str()), 0);  // hard links are not synced
  EXPECT_EQ(errno, EPERM);
  EXPECT_TRUE(ReadAll(b_ + "/made/on/beta.bin") == big);  // read back at once, before the upload
  EXPECT_EQ(ReadAll(b_ + "/new/deep/y.txt"), "y");

  EXPECT_TRUE(WaitFor([&] { return ReadFile(a_ + "/made/on/beta.bin") == big; }, absl::Seconds(30)))
      << cluster_->EngineLog(1);
  EXPECT_TRUE(WaitFor([&] { return ReadFile(a_ + "/log.txt") == "line 1\nline 2\n"; }, absl::Seconds(20)));
  EXPECT_TRUE(WaitFor([&] { return ReadFile(a_ + "/new/deep/y.txt") == "y"; }, absl::Seconds(20)));
  EXPECT_TRUE(WaitFor([&] { return !std::filesystem::exists(a_ + "/old") && !std::filesystem::exists(a_ + "/doomed.txt"); },
                      absl::Seconds(20)));
  char target[64] = {};
  EXPECT_GT(readlink((a_ + "/link").c_str(), target, sizeof(target) - 1), 0);
  EXPECT_STREQ(target, "new/x.txt");
  struct stat st {};
  ASSERT_EQ(stat((a_ + "/new/x.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_EQ(stat((a_ + "/made/on/beta.bin").c_str(), &st), 0);
  EXPECT_EQ(st.st_mtim.tv_sec, 1700000000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 5);
  std::string status;
  EXPECT_TRUE(WaitFor([&] {
    status = Status();
    return status.find("uploads    none waiting") != std::string::npos;
  }, absl::Seconds(10))) << status;
  // The folder's history, as a synced folder's (the control socket beside the mount).
  CommandResult history = cluster_->EngineCommand({"history", "--folder=" + b_, "log.txt"});
  EXPECT_EQ(history.exit_code, 0) << history.err;
  EXPECT_NE(history.out.find("seq "), history.out.rfind("seq ")) << history.out;  // two versions
  // And alpha's next change of the moved file comes back through the mount.
  WriteFile(a_ + "/new/x.txt", "x, edited on alpha");
  EXPECT_TRUE(WaitFor([&] { return ReadAll(b_ + "/new/x.txt") == "x, edited on alpha"; }, absl::Seconds(20)));
}

TEST_F(E2eOnDemandTest, AnEngineKilledWithItsMountBusyMountsAgainAndLosesNoWrittenByte) {
  const std::string data = RandomBytes(2 << 20, 3);
  WriteFile(a_ + "/f.bin", data);
  StartOnDemand("f.bin");
  const int fd = open((b_ + "/f.bin").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0) << strerror(errno);
  int error = 0;
  EXPECT_EQ(PRead(fd, 0, 1000, &error), data.substr(0, 1000));
  // A file being written when the engine dies: open, its bytes written, not closed.
  const std::string written = RandomBytes(1 << 20, 9);
  const int out = open((b_ + "/unfinished.bin").c_str(), O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(out, 0) << strerror(errno);
  ASSERT_EQ(write(out, written.data(), written.size()), static_cast<ssize_t>(written.size()));
  cluster_->StopEngine(1, /*kill=*/true);  // kill -9 with files open on the mount
  EXPECT_EQ(PRead(fd, 1 << 20, 1000, &error), "");  // past what the kernel read ahead
  EXPECT_NE(error, 0);  // the dead mount answers ENOTCONN
  close(fd);
  close(out);
  EXPECT_FALSE(std::filesystem::exists(a_ + "/unfinished.bin"));  // it never settled
  ASSERT_TRUE(cluster_->StartEngine(1).ok());
  EXPECT_TRUE(WaitFor([&] { return ReadAll(b_ + "/f.bin") == data; }, absl::Seconds(30)))
      << cluster_->EngineLog(1);
  int read_error = 0;
  const std::string read_back = ReadAll(b_ + "/unfinished.bin", &read_error);
  EXPECT_TRUE(read_back == written) << read_back.size() << " bytes read back, errno " << read_error << "\n"
                                    << cluster_->EngineLog(1);
  EXPECT_TRUE(WaitFor([&] { return ReadFile(a_ + "/unfinished.bin") == written; }, absl::Seconds(30)))
      << cluster_->EngineLog(1);
  EXPECT_EQ(ReadFile(a_ + "/f.bin"), data);
}

}  // namespace
}  // namespace converge::testing
