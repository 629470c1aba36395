// Real processes under faults: the store, the notification service and three engines on
// loopback while each engine's user keeps creating, editing and deleting files, and
//   - kill -9 hits the store, the notification service, management or an engine every few
//     hundred milliseconds (CONVERGE_CHAOS_KILLS, default 36), each started again;
//   - in a network namespace of the test's own, nftables drops 15% of the packets to and from
//     the services, then cuts them off entirely (a partition), then cuts off only notify;
//   - the store's data directory and one engine's folder sit on small tmpfs mounts that fill up,
//     and are grown again;
//   - fsync and fdatasync fail at random in the store and an engine (libfiu's fiu-run).
// Once the faults stop, every folder must converge with the store and hold exactly each user's
// last write of each path: nothing lost, nothing resurrected, no half-written file (while a disk
// is full, every file present holds some content its user wrote). Each user writes only under
// its own directory, so the expected end state is exact. CONVERGE_CHAOS_SEED replays a schedule.
//
// Namespaces, nftables and mounts need root (as CI runs); without it those tests are skipped
// with the reason.
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/base/sha256.h"
#include "gtest/gtest.h"
#include "tests/cluster.h"

namespace converge::testing {
namespace {

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = getenv(name);
  return v == nullptr ? fallback : strtoull(v, nullptr, 10);
}

int Shell(const std::string& command) {
  const int rc = system(command.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

class E2eFaultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    seed_ = EnvOr("CONVERGE_CHAOS_SEED", static_cast<uint64_t>(absl::ToUnixMicros(absl::Now())));
    std::cout << ::testing::UnitTest::GetInstance()->current_test_info()->name() << ": seed " << seed_
              << " (replay: CONVERGE_CHAOS_SEED=" << seed_ << ")\n";
    rng_.seed(seed_);
    dir_ = std::string(getenv("TEST_TMPDIR")) + "/" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
  }

  void StartCluster(ClusterOptions options = {}) {
    options.dir = dir_;
    options.rescan_interval = absl::Seconds(2);
    auto cluster = Cluster::Start(options);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = std::move(*cluster);
    for (const char* name : {"a", "b", "c"}) ASSERT_TRUE(cluster_->AddEngine(name).ok());
  }

  // UserStep: a user of a random engine (or of `engine`) writes or deletes a file of its own;
  // a tenth of the files are 1-4 MiB (several chunks; a download a fault can cut).
  void UserStep(int engine = -1, size_t max_bytes = 4 << 20) {
    Cluster& c = *cluster_;
    const int e = engine >= 0 ? engine : static_cast<int>(rng_() % 3);
    const std::string path = absl::StrCat("user-", c.name(e), "/dir", rng_() % 3, "/file", rng_() % 8, ".bin");
    if (expected_.count(path) && rng_() % 4 == 0) {
      std::filesystem::remove(c.folder(e) + "/" + path);
      expected_.erase(path);
      ++deletes_;
      return;
    }
    const size_t size = rng_() % 10 == 0 ? std::min<size_t>(max_bytes, (1 << 20) + rng_() % (3 << 20)) : rng_() % 5000;
    std::string content = absl::StrCat("seed ", seed_, " write ", writes_, " ");
    uint64_t x = rng_();
    for (size_t i = 0; i < size; ++i) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      content.push_back(static_cast<char>(x >> 56));
    }
    WriteFile(c.folder(e) + "/" + path, content);
    // On a full disk the user's own write fails part way (or at once): the file then holds what
    // fit, and that is what the folders must agree on.
    const std::string on_disk = ReadFile(c.folder(e) + "/" + path);
    if (on_disk != content) ++short_writes_;
    expected_[path] = on_disk;
    ever_written_.insert(HashOf(on_disk));
    ++writes_;
  }

  // NoHalfWrittenFile: every file of the users' directories, on every engine, holds some content
  // a user wrote (a partly written or partly downloaded file would not).
  void NoHalfWrittenFile() {
    for (int e = 0; e < cluster_->engine_count(); ++e) {
      auto snap = Cluster::SnapshotFolder(cluster_->folder(e));
      if (!snap.ok()) continue;  // changing under us
      for (const auto& [path, hash] : *snap) {
        if (hash == "dir" || !absl::StartsWith(path, "user-")) continue;
        const std::string content = ReadFile(cluster_->folder(e) + "/" + path);
        EXPECT_TRUE(ever_written_.count(HashOf(content)) || content.empty())
            << "seed " << seed_ << ": " << path << " on " << cluster_->name(e) << " holds " << content.size()
            << " bytes no user wrote";
      }
    }
  }

  // ConvergedExactly: all folders and the store agree, and hold exactly the users' last writes.
  void ConvergedExactly(absl::Duration limit = absl::Seconds(120)) {
    Cluster& c = *cluster_;
    absl::Status converged = c.WaitConverged(limit);
    ASSERT_TRUE(converged.ok()) << "seed " << seed_ << ": " << converged;
    for (int e = 0; e < c.engine_count(); ++e) {
      for (const auto& [path, content] : expected_) {
        const std::string got = ReadFile(c.folder(e) + "/" + path);
        EXPECT_TRUE(got == content) << "seed " << seed_ << ": " << path << " on " << c.name(e) << " has "
                                    << got.size() << " bytes, want " << content.size();
      }
      auto snap = Cluster::SnapshotFolder(c.folder(e));
      ASSERT_TRUE(snap.ok());
      for (const auto& [path, hash] : *snap) {
        if (hash == "dir") continue;
        EXPECT_TRUE(expected_.count(path)) << "seed " << seed_ << ": " << path << " on " << c.name(e)
                                           << " was deleted, or is a conflict copy, or a stray file";
      }
    }
  }

  void TearDown() override {
    cluster_.reset();  // its processes stop before their disks go
    for (const std::string& m : mounts_) umount2(m.c_str(), MNT_DETACH);
  }

  // MountTmpfs puts a tmpfs of `megabytes` at `path` (unmounted when the test ends).
  bool MountTmpfs(const std::string& path, int megabytes) {
    std::filesystem::create_directories(path);
    if (mount("tmpfs", path.c_str(), "tmpfs", 0, absl::StrCat("size=", megabytes, "m").c_str()) != 0) return false;
    mounts_.push_back(path);
    return true;
  }
  static bool ResizeTmpfs(const std::string& path, int megabytes) {
    return mount("tmpfs", path.c_str(), "tmpfs", MS_REMOUNT, absl::StrCat("size=", megabytes, "m").c_str()) == 0;
  }

  std::string Summary() const {
    return absl::StrCat(writes_, " writes (", short_writes_, " cut short by a full disk), ", deletes_, " deletes, ", expected_.size(),
                        " files in the end, identical on 3 engines and the store; data lost: 0");
  }

  uint64_t seed_ = 0;
  std::mt19937_64 rng_;
  std::string dir_;
  std::unique_ptr<Cluster> cluster_;
  std::map<std::string, std::string> expected_;  // path -> content; absent: deleted
  std::set<Digest> ever_written_;
  int writes_ = 0, deletes_ = 0, short_writes_ = 0;
  std::vector<std::string> mounts_;
};

TEST_F(E2eFaultsTest, KilledServicesAndEnginesLoseNothing) {
  const int kills = static_cast<int>(EnvOr("CONVERGE_CHAOS_KILLS", 36));
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  Cluster& c = *cluster_;
  std::map<std::string, int> killed;
  for (int k = 0; k < kills; ++k) {
    for (int i = 0, n = 1 + static_cast<int>(rng_() % 4); i < n; ++i) UserStep();
    absl::SleepFor(absl::Milliseconds(50 + rng_() % 300));
    const int target = static_cast<int>(rng_() % 6);  // 0 store, 1 notify, 2..4 engines, 5 management
    if (target == 5) {
      c.KillManagement(0);
      ++killed["management"];
      absl::SleepFor(absl::Milliseconds(rng_() % 200));
      ASSERT_TRUE(c.StartManagement(0).ok());
    } else if (target == 0) {
      c.KillStore();
      ++killed["store"];
      absl::SleepFor(absl::Milliseconds(rng_() % 200));
      ASSERT_TRUE(c.StartStore().ok());
    } else if (target == 1) {
      c.KillNotify();
      ++killed["notify"];
      absl::SleepFor(absl::Milliseconds(rng_() % 200));
      ASSERT_TRUE(c.RestartNotify().ok());
    } else {
      const int e = target - 2;
      c.StopEngine(e, /*kill=*/true);
      ++killed[absl::StrCat("engine ", c.name(e))];
      if (rng_() % 2) UserStep(e);  // the user keeps working while the engine is down
      absl::SleepFor(absl::Milliseconds(rng_() % 200));
      ASSERT_TRUE(c.StartEngine(e).ok());
    }
  }
  ASSERT_NO_FATAL_FAILURE(ConvergedExactly());
  NoHalfWrittenFile();
  std::string counts;
  int total = 0;
  for (const auto& [who, n] : killed) {
    absl::StrAppend(&counts, " ", who, " x", n);
    total += n;
  }
  std::cout << "kill -9: " << total << " kills (" << counts << " ), " << Summary() << "\n";
  EXPECT_EQ(total, kills);
}

// The test's own network namespace (loopback only), so that nftables rules touch nothing else.
bool EnterOwnNetworkNamespace(std::string* why) {
  if (geteuid() != 0) {
    *why = "needs root (network namespace, nftables)";
    return false;
  }
  if (unshare(CLONE_NEWNET) != 0) {
    *why = absl::StrCat("unshare(CLONE_NEWNET): ", strerror(errno));
    return false;
  }
  if (Shell("ip link set lo up") != 0) {
    *why = "ip link set lo up failed";
    return false;
  }
  if (Shell("nft list tables >/dev/null") != 0) {
    *why = "nft is not usable (nftables package?)";
    return false;
  }
  return true;
}

// Nft replaces the test's nftables table with one dropping per `rules`; returns the packets
// dropped by the table it replaced.
uint64_t Nft(const std::string& rules) {
  uint64_t dropped = 0;
  FILE* p = popen("nft list table inet converge_faults 2>/dev/null", "r");
  if (p != nullptr) {
    char line[512];
    while (fgets(line, sizeof(line), p) != nullptr) {
      const std::string l = line;
      const size_t at = l.find("counter packets ");
      if (at != std::string::npos) dropped += strtoull(l.c_str() + at + 16, nullptr, 10);
    }
    pclose(p);
  }
  Shell("nft delete table inet converge_faults 2>/dev/null");
  if (!rules.empty()) {
    const std::string script = absl::StrCat(
        "table inet converge_faults {\n  chain out {\n    type filter hook output priority 0; policy accept;\n", rules,
        "  }\n}\n");
    const std::string file = std::string(getenv("TEST_TMPDIR")) + "/nft.rules";
    std::ofstream(file) << script;
    EXPECT_EQ(Shell("nft -f " + file), 0) << script;
  }
  return dropped;
}

int PortOf(const std::string& address) { return atoi(address.substr(address.rfind(':') + 1).c_str()); }

TEST_F(E2eFaultsTest, PacketLossAndPartitionsLoseNothing) {
  std::string why;
  if (!EnterOwnNetworkNamespace(&why)) GTEST_SKIP() << why;
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  Cluster& c = *cluster_;
  const std::string services = absl::StrCat("{ ", PortOf(c.store_address()), ", ", PortOf(c.notify_address()), " }");
  auto users_for = [&](absl::Duration d) {
    const absl::Time end = absl::Now() + d;
    while (absl::Now() < end) {
      UserStep(-1, 2 << 20);
      absl::SleepFor(absl::Milliseconds(100 + rng_() % 200));
    }
  };
  // 1. 15% of the packets to and from the services are lost.
  Nft(absl::StrCat("    tcp dport ", services, " numgen random mod 100 < 15 counter drop\n",
                   "    tcp sport ", services, " numgen random mod 100 < 15 counter drop\n"));
  users_for(absl::Seconds(15));
  uint64_t dropped = Nft(absl::StrCat("    tcp dport ", services, " counter drop\n    tcp sport ", services, " counter drop\n"));
  std::cout << "packet loss: " << dropped << " packets dropped\n";
  // 2. A partition: the services are unreachable; users keep working.
  users_for(absl::Seconds(8));
  const uint64_t partition = Nft(absl::StrCat("    tcp dport ", PortOf(c.notify_address()), " counter drop\n    tcp sport ",
                                              PortOf(c.notify_address()), " counter drop\n"));
  std::cout << "partition: " << partition << " packets dropped\n";
  // 3. Only notify is cut off: changes still arrive (pulls on the periodic scan).
  users_for(absl::Seconds(8));
  const uint64_t notify_cut = Nft("");
  std::cout << "notify cut off: " << notify_cut << " packets dropped\n";
  ASSERT_NO_FATAL_FAILURE(ConvergedExactly());
  NoHalfWrittenFile();
  EXPECT_GT(dropped, 0u);
  EXPECT_GT(partition, 0u);
  std::cout << "network faults: " << dropped + partition + notify_cut << " packets dropped in all, " << Summary() << "\n";
}

TEST_F(E2eFaultsTest, FullDisksLoseNothing) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (tmpfs mounts)";
  // Mounts in a mount namespace of the test's own (the services inherit it): they vanish with
  // the test's process even if it dies.
  ASSERT_EQ(unshare(CLONE_NEWNS), 0) << strerror(errno);
  ASSERT_EQ(mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), 0) << strerror(errno);
  const std::string store_disk = dir_ + "/data/store";
  const std::string b_disk = dir_ + "/folders/b";
  ASSERT_TRUE(MountTmpfs(store_disk, 48)) << strerror(errno);
  ASSERT_TRUE(MountTmpfs(b_disk, 6)) << strerror(errno);
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  // The test is the store's supervisor, as compose's restart policy would be. Debian's RocksDB
  // (7.8, built with assertions) aborts when it appends to a WAL after a write to it met the full
  // disk (fixed upstream in 9.1); a store that finds no room to open exits (1) until there is.
  // Either way it starts again on what was durable.
  struct Supervisor {
    std::atomic<bool> on{true};
    std::atomic<int> restarts{0};
    std::thread thread;
    ~Supervisor() {
      on = false;
      if (thread.joinable()) thread.join();
    }
  } supervisor;
  supervisor.thread = std::thread([&] {
    while (supervisor.on) {
      absl::StatusOr<int> exited = cluster_->StoreExit(0, absl::Milliseconds(50));
      if (!exited.ok()) continue;
      EXPECT_TRUE(*exited == 1 || *exited == 75 || *exited == 128 + SIGABRT) << "the store exited with " << *exited;
      ++supervisor.restarts;
      cluster_->StartStore().IgnoreError();
    }
  });
  // The least free space each disk had, sampled from now on: the store's disk is full for the
  // moment a memtable flush (a large chunk batch skips the WAL and reaches disk then) does not
  // fit, and RocksDB removes the partial file again (a failed download frees its temp file too).
  std::atomic<uintmax_t> store_free{UINTMAX_MAX}, b_free{UINTMAX_MAX};
  std::atomic<bool> sampling{true};
  std::thread sampler([&] {
    while (sampling) {
      std::error_code ec;
      const auto s = std::filesystem::space(store_disk, ec);
      if (!ec && s.available < store_free) store_free = s.available;
      const auto b = std::filesystem::space(b_disk, ec);
      if (!ec && b.available < b_free) b_free = b.available;
      absl::SleepFor(absl::Milliseconds(5));
    }
  });
  // Users of a and c write (with history, the store keeps every version) more than the store's
  // disk and b's disk hold.
  for (int i = 0; i < 400 && writes_ < 400; ++i) {
    UserStep(i % 2 == 0 ? 0 : 2);
    if (i % 10 == 0) absl::SleepFor(absl::Milliseconds(100));
    uint64_t written = 0;
    for (const auto& [p, c] : expected_) written += c.size();
    if (written > (90u << 20)) break;
  }
  // 8 s more for the engines to push against the full disks.
  absl::SleepFor(absl::Seconds(8));
  sampling = false;
  sampler.join();
  std::cout << "full: store disk down to " << store_free / 1024 << " KiB free, b's disk down to " << b_free / 1024
            << " KiB free\n";
  EXPECT_LT(store_free, 10u << 20) << "the store's disk never filled";
  const std::string a_log = cluster_->EngineLog(0);
  const std::string c_log = cluster_->EngineLog(2);
  EXPECT_TRUE(absl::StrContains(a_log, "No space") || absl::StrContains(c_log, "No space") || supervisor.restarts > 0)
      << "no upload was refused for a full store disk; logs in " << cluster_->logs_dir();
  EXPECT_LT(b_free, 1u << 20) << "b's disk never filled";
  NoHalfWrittenFile();
  // Users of b keep working on a full disk (what fits), then the disks grow.
  for (int i = 0; i < 5; ++i) UserStep(1, 1000);
  ASSERT_TRUE(ResizeTmpfs(store_disk, 600));
  ASSERT_TRUE(ResizeTmpfs(b_disk, 600));
  ASSERT_NO_FATAL_FAILURE(ConvergedExactly(absl::Seconds(180)));
  NoHalfWrittenFile();
  std::cout << "disk full: " << supervisor.restarts << " store restarts; " << Summary() << "\n";
}

TEST_F(E2eFaultsTest, FailingFsyncLosesNothing) {
  const std::string fiu_run = "/usr/bin/fiu-run", fiu_ctrl = "/usr/bin/fiu-ctrl";
  if (!std::filesystem::exists(fiu_run) || !std::filesystem::exists(fiu_ctrl)) {
    GTEST_SKIP() << "needs libfiu's fiu-run and fiu-ctrl (package fiu-utils)";
  }
  // The store and the engines run under fiu-run (LD_PRELOAD of libfiu's POSIX wrappers), each
  // listening for commands on a control pipe under the test's directory.
  ClusterOptions options;
  const std::string ctrl = dir_ + "-fiu";
  options.store_wrapper = {fiu_run, "-x", "-f", ctrl};
  options.engine_wrapper = {fiu_run, "-x", "-f", ctrl};
  ASSERT_NO_FATAL_FAILURE(StartCluster(options));
  Cluster& c = *cluster_;
  auto fiu = [&](const std::string& command) {
    for (int pid : {c.store_pid(), c.engine_pid(0), c.engine_pid(1)}) {
      EXPECT_EQ(Shell(absl::StrCat(fiu_ctrl, " -f ", ctrl, " -c '", command, "' ", pid)), 0) << command;
    }
  };
  // The test is the store's supervisor: a store that exits (it does when RocksDB cannot recover
  // from a failed WAL sync) is started again, as compose's restart policy would.
  int store_restarts = 0;
  auto supervise = [&] {
    absl::StatusOr<int> exited = c.StoreExit(0, absl::ZeroDuration());
    if (!exited.ok()) return;
    EXPECT_EQ(*exited, 75) << "the store exited other than by its unrecoverable-write exit";
    ++store_restarts;
    EXPECT_TRUE(c.StartStore().ok());
  };
  for (int i = 0; i < 20; ++i) UserStep();
  ASSERT_NO_FATAL_FAILURE(ConvergedExactly());
  // A third of all fsync and fdatasync calls of the store and of engines a and b fail (EIO).
  fiu("enable_random name=posix/io/sync/*,probability=0.3,failinfo=5");
  const absl::Time end = absl::Now() + absl::Seconds(15);
  int during = 0;
  while (absl::Now() < end) {
    UserStep(-1, 2 << 20);
    ++during;
    absl::SleepFor(absl::Milliseconds(100 + rng_() % 200));
    supervise();
  }
  NoHalfWrittenFile();
  fiu("disable name=posix/io/sync/*");
  for (int i = 0; i < 10; ++i) {
    supervise();
    absl::SleepFor(absl::Milliseconds(100));
  }
  // Failed syncs surfaced as errors (and were retried), in the engines' logs.
  int surfaced = 0;
  for (const char* log : {"/engine-a.log", "/engine-b.log"}) {
    const std::string text = ReadFile(c.logs_dir() + log);
    for (size_t at = text.find("Input/output error"); at != std::string::npos; at = text.find("Input/output error", at + 1)) {
      ++surfaced;
    }
  }
  std::cout << "fsync faults: " << surfaced << " I/O errors logged by engines a and b\n";
  EXPECT_GT(surfaced, 0) << "no fsync failed: was libfiu's preload in effect?";
  ASSERT_NO_FATAL_FAILURE(ConvergedExactly(absl::Seconds(180)));
  NoHalfWrittenFile();
  std::cout << "failing fsync: " << during << " user steps under faults, " << store_restarts
            << " store restarts after an unrecoverable write; " << Summary() << "\n";
}

}  // namespace
}  // namespace converge::testing
