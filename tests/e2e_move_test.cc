// Online namespace moves between store shards, on loopback with a real etcd (three members),
// two store shards, management and engines: a namespace moves while its devices write, and
// nothing is lost or applied twice; engines follow on their next call; the shard it left
// refuses it; an etcd member killed during the move changes nothing. Prints the move's copy
// time, its write pause and the time engines took to follow.
#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/cluster.h"
#include "tests/etcd_cluster.h"

namespace converge::testing {
namespace {

// The number after `label` in `text` (-1 if none).
int64_t NumberAfter(const std::string& text, const std::string& label) {
  const size_t at = text.find(label);
  if (at == std::string::npos) return -1;
  size_t end = at + label.size();
  while (end < text.size() && isdigit(static_cast<unsigned char>(text[end]))) ++end;
  int64_t n = -1;
  return absl::SimpleAtoi(text.substr(at + label.size(), end - at - label.size()), &n) ? n : -1;
}

TEST(E2eMoveTest, ANamespaceMovesToAnotherShardWhileItsDevicesWriteAndNothingIsLost) {
  const std::string dir = std::string(getenv("TEST_TMPDIR")) + "/move";
  std::filesystem::remove_all(dir);
  auto etcd = EtcdCluster::Start(dir + "/etcd", 3);
  ASSERT_TRUE(etcd.ok()) << etcd.status();
  ClusterOptions options;
  options.dir = dir + "/cluster";
  options.store_shards = 2;
  options.management_args = {"--etcd=" + (*etcd)->endpoints(), "--registry_in_etcd"};
  auto cluster = Cluster::Start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  Cluster* c = cluster->get();
  ASSERT_TRUE(c->AddEngine("alpha").ok());
  ASSERT_TRUE(c->AddEngine("beta").ok());
  CommandResult before = c->Convergectl({"endpoints", "shared"});
  ASSERT_TRUE(absl::StrContains(before.out, "shard 0")) << before.out << before.err;

  // History to copy: 300 files and edits of them.
  for (int i = 0; i < 300; ++i) WriteFile(absl::StrCat(c->folder(0), "/old/f", i, ".txt"), absl::StrCat("old ", i));
  ASSERT_TRUE(c->WaitConverged(absl::Seconds(60)).ok()) << "logs in " << c->logs_dir();
  for (int i = 0; i < 300; i += 3) WriteFile(absl::StrCat(c->folder(0), "/old/f", i, ".txt"), absl::StrCat("edited ", i));

  // Both devices write all through the move: one file every 25 ms each.
  std::atomic<bool> stop{false};
  std::atomic<int> written[2] = {0, 0};
  auto writer = [&](int engine) {
    for (int i = 0; !stop && i < 2000; ++i) {
      WriteFile(absl::StrCat(c->folder(engine), "/live/", c->name(engine), "-", i, ".txt"), absl::StrCat("write ", i));
      written[engine] = i + 1;
      absl::SleepFor(absl::Milliseconds(25));
    }
  };
  std::thread a(writer, 0), b(writer, 1);
  absl::SleepFor(absl::Milliseconds(500));
  (*etcd)->Kill(2);  // a member lost mid-move: the quorum holds, nothing visible
  const absl::Time move_start = absl::Now();
  CommandResult moved = c->Convergectl({"shards", "move", "shared", "1"});
  const absl::Time move_end = absl::Now();
  absl::SleepFor(absl::Milliseconds(500));
  stop = true;
  a.join();
  b.join();
  ASSERT_EQ(moved.exit_code, 0) << moved.err << " logs in " << c->logs_dir();
  EXPECT_TRUE(absl::StrContains(moved.out, "from shard 0 to 1")) << moved.out;
  const int64_t pause_ms = NumberAfter(moved.out, "writes paused ");
  EXPECT_GE(pause_ms, 0) << moved.out;
  EXPECT_LE(pause_ms, 1000) << moved.out;  // the bound on a commit's wait

  // Management names shard 1 now; shard 0 refuses the namespace with the moved mark.
  CommandResult after = c->Convergectl({"endpoints", "shared"});
  EXPECT_TRUE(absl::StrContains(after.out, "shard 1") && absl::StrContains(after.out, c->store_address(1)))
      << after.out << after.err;
  CommandResult listed = c->Convergectl({"shards", "list"});
  EXPECT_TRUE(absl::StrContains(listed.out, c->store_address(1))) << listed.out;

  // The engines follow: a file written after the move reaches the other device through shard 1.
  WriteFile(c->folder(0) + "/after-move.txt", "through shard 1");
  const absl::Time followed_from = absl::Now();
  ASSERT_TRUE(WaitFor([&] { return ReadFile(c->folder(1) + "/after-move.txt") == "through shard 1"; },
                      absl::Seconds(30)))
      << "logs in " << c->logs_dir();
  const absl::Duration follow = absl::Now() - followed_from;

  // Nothing lost, nothing twice: both folders hold every file either device wrote, as written.
  ASSERT_TRUE(c->WaitConverged(absl::Seconds(60)).ok()) << "logs in " << c->logs_dir();
  for (int engine = 0; engine < 2; ++engine) {
    for (int i = 0; i < written[engine]; ++i) {
      const std::string rel = absl::StrCat("/live/", c->name(engine), "-", i, ".txt");
      ASSERT_EQ(ReadFile(c->folder(1 - engine) + rel), absl::StrCat("write ", i)) << rel;
    }
  }
  for (int i = 0; i < 300; ++i) {
    ASSERT_EQ(ReadFile(absl::StrCat(c->folder(1), "/old/f", i, ".txt")),
              absl::StrCat(i % 3 == 0 ? "edited " : "old ", i));
  }
  auto files = std::filesystem::recursive_directory_iterator(c->folder(1) + "/live");
  int count = 0;
  for (const auto& e : files) count += e.is_regular_file() && !absl::StrContains(e.path().string(), ".converge") ? 1 : 0;
  EXPECT_EQ(count, written[0] + written[1]);  // no conflict copies, nothing twice

  // Moving it again where it is: refused clearly.
  CommandResult again = c->Convergectl({"shards", "move", "shared", "1"});
  EXPECT_NE(again.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(again.err, "already")) << again.err;
  // Draining shard 1: its user goes elsewhere, the namespace moves back, new users avoid it.
  ASSERT_EQ(c->Convergectl({"users", "create", "zoe"}).exit_code, 0);
  CommandResult users = c->Convergectl({"users", "list", "--json"});
  CommandResult drained = c->Convergectl({"shards", "drain", "1"});
  ASSERT_EQ(drained.exit_code, 0) << drained.err << " logs in " << c->logs_dir();
  EXPECT_TRUE(absl::StrContains(drained.out, "1 users placed elsewhere, 1 namespaces moved")) << drained.out;
  EXPECT_TRUE(absl::StrContains(c->Convergectl({"endpoints", "shared"}).out, "shard 0"));
  ASSERT_EQ(c->Convergectl({"users", "create", "newbie"}).exit_code, 0);
  ASSERT_EQ(c->Convergectl({"namespaces", "create", "fresh", "--owner=newbie"}).exit_code, 0);
  ASSERT_EQ(c->Convergectl({"namespaces", "create", "zoes", "--owner=zoe"}).exit_code, 0);
  EXPECT_TRUE(absl::StrContains(c->Convergectl({"endpoints", "fresh"}).out, "shard 0"));
  EXPECT_TRUE(absl::StrContains(c->Convergectl({"endpoints", "zoes"}).out, "shard 0"));
  EXPECT_TRUE(absl::StrContains(c->Convergectl({"shards", "list"}).out, "drained"));
  WriteFile(c->folder(1) + "/after-drain.txt", "back on shard 0");
  EXPECT_TRUE(WaitFor([&] { return ReadFile(c->folder(0) + "/after-drain.txt") == "back on shard 0"; },
                      absl::Seconds(30)))
      << "logs in " << c->logs_dir();
  EXPECT_TRUE(absl::StrContains(users.out, "zoe")) << users.out;

  std::string summary = moved.out;
  while (!summary.empty() && summary.back() == '\n') summary.pop_back();
  std::printf("FIGURES namespace move: %d + %d files written during it; %s; move took %s; engines followed "
              "(a new file on the other device) in %s\n",
              written[0].load(), written[1].load(), summary.c_str(),
              absl::FormatDuration(move_end - move_start).c_str(), absl::FormatDuration(follow).c_str());
}

// An on-demand folder (a FUSE mount) keeps its mount through a move: its next call meets the
// moved mark, asks management, and goes on with the new shard.
TEST(E2eMoveTest, AnOnDemandMountFollowsAMove) {
  const int fuse = open("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (fuse < 0) GTEST_SKIP() << "/dev/fuse cannot be opened here: on-demand folders need FUSE";
  close(fuse);
  const std::string dir = std::string(getenv("TEST_TMPDIR")) + "/move-on-demand";
  std::filesystem::remove_all(dir);
  auto etcd = EtcdCluster::Start(dir + "/etcd", 1);
  ASSERT_TRUE(etcd.ok()) << etcd.status();
  ClusterOptions options;
  options.dir = dir + "/cluster";
  options.store_shards = 2;
  options.management_args = {"--etcd=" + (*etcd)->endpoints(), "--registry_in_etcd"};
  options.engine_args_of["gamma"] = {"--on_demand"};
  auto cluster = Cluster::Start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  Cluster* c = cluster->get();
  ASSERT_TRUE(c->AddEngine("alpha").ok());
  WriteFile(c->folder(0) + "/before.txt", "before the move");
  ASSERT_TRUE(WaitFor([&] {
    return absl::StrContains(c->EngineCommand({"status", "--folder=" + c->folder(0)}).out, "up to date");
  }, absl::Seconds(30)));
  absl::StatusOr<int> gamma = c->AddEngine("gamma");
  ASSERT_TRUE(gamma.ok()) << gamma.status();
  const std::string mount = c->folder(*gamma);
  ASSERT_TRUE(WaitFor([&] { return ReadFile(mount + "/before.txt") == "before the move"; }, absl::Seconds(30)))
      << c->EngineLog(*gamma);

  CommandResult moved = c->Convergectl({"shards", "move", "shared", "1"});
  ASSERT_EQ(moved.exit_code, 0) << moved.err;
  WriteFile(c->folder(0) + "/after.txt", "after the move");
  EXPECT_TRUE(WaitFor([&] { return ReadFile(mount + "/after.txt") == "after the move"; }, absl::Seconds(30)))
      << c->EngineLog(*gamma);
  WriteFile(mount + "/from-mount.txt", "written through the mount");
  EXPECT_TRUE(WaitFor([&] { return ReadFile(c->folder(0) + "/from-mount.txt") == "written through the mount"; },
                      absl::Seconds(30)))
      << c->EngineLog(*gamma);
  EXPECT_TRUE(absl::StrContains(c->EngineLog(*gamma), "moved: its store is " + c->store_address(1)))
      << c->EngineLog(*gamma);
  cluster->reset();
  umount2(mount.c_str(), MNT_DETACH);  // only if the engine left it behind
}

}  // namespace
}  // namespace converge::testing
