// Everything coordinating through etcd at once, on loopback with real processes: three etcd
// members, two management replicas (registry and shard map in etcd), two notify replicas
// (announced there), two store shards, engines of two users. While 200 enrollments run through
// both management replicas and both users' engines write, one namespace moves to the other
// shard; an etcd member is killed (and restarted), then etcd's leader, then a management replica,
// a notify replica and the store shard holding both namespaces (restarted). All folders converge, every file written arrives once, and every
// enrollment either succeeded once or failed with a clear status. Prints the etcd re-election
// pause, the move's write pause and the time engines took to follow it.
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "services/coord/etcd_client.h"
#include "tests/cluster.h"
#include "tests/etcd_cluster.h"

namespace converge::testing {
namespace {

constexpr int kEnrollments = 200;

std::string Trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

// A writer: a file into `folder` every 40 ms until stopped.
class Writer {
 public:
  Writer(std::string folder, std::string tag) : folder_(std::move(folder)), tag_(std::move(tag)) {
    thread_ = std::thread([this] {
      for (int i = 0; !stop_ && i < 5000; ++i) {
        WriteFile(absl::StrCat(folder_, "/live/", tag_, "-", i, ".txt"), absl::StrCat(tag_, " ", i));
        written_ = i + 1;
        absl::SleepFor(absl::Milliseconds(40));
      }
    });
  }
  int Stop() {
    stop_ = true;
    thread_.join();
    return written_;
  }
  // Every file it wrote is in `other`, as written.
  ::testing::AssertionResult ArrivedIn(const std::string& other) const {
    for (int i = 0; i < written_; ++i) {
      const std::string rel = absl::StrCat("/live/", tag_, "-", i, ".txt");
      if (ReadFile(other + rel) != absl::StrCat(tag_, " ", i)) return ::testing::AssertionFailure() << rel << " missing";
    }
    return ::testing::AssertionSuccess();
  }

 private:
  const std::string folder_, tag_;
  std::atomic<bool> stop_{false};
  std::atomic<int> written_{0};
  std::thread thread_;
};

TEST(E2eCoordinationTest, EnrollmentsSyncsAndAMoveSurviveEtcdManagementAndNotifyReplicasKilled) {
  const std::string dir = std::string(getenv("TEST_TMPDIR")) + "/coordination";
  std::filesystem::remove_all(dir);
  auto etcd = EtcdCluster::Start(dir + "/etcd", 3);
  ASSERT_TRUE(etcd.ok()) << etcd.status();
  const std::vector<std::string> coord = {"--etcd=" + (*etcd)->endpoints(), "--advertise_host=127.0.0.1",
                                          "--etcd_lease_ttl=2s"};
  ClusterOptions options;
  options.dir = dir + "/cluster";
  options.store_shards = 2;
  options.management_replicas = 2;
  options.management_args = {"--etcd=" + (*etcd)->endpoints(), "--registry_in_etcd"};
  options.notify_args = coord;
  options.store_args = coord;
  auto cluster = Cluster::Start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  Cluster* c = cluster->get();
  absl::StatusOr<int> notify_b = c->AddNotifyReplica("notify-b");
  ASSERT_TRUE(notify_b.ok()) << notify_b.status();
  const std::string second = "--management=" + c->management_address(1);

  // Two users, on the two shards: e2e ("shared", shard 0) and zoe ("zoes", shard 1).
  ASSERT_EQ(c->Convergectl({"users", "create", "zoe"}).exit_code, 0);
  ASSERT_EQ(c->Convergectl({"namespaces", "create", "zoes", "--owner=zoe"}).exit_code, 0);
  const std::string zoe_token = Trimmed(c->Convergectl({"users", "enroll", "zoe", "--uses=4"}).out);
  ASSERT_TRUE(c->AddEngine("alpha").ok());
  ASSERT_TRUE(c->AddEngine("beta").ok());
  auto gamma = c->AddEngine("gamma", {"zoe", "zoes", zoe_token, c->management_address(1)});
  auto delta = c->AddEngine("delta", {"zoe", "zoes", zoe_token});
  ASSERT_TRUE(gamma.ok() && delta.ok());
  ASSERT_TRUE(absl::StrContains(c->Convergectl({"endpoints", "shared"}).out, "shard 0"));

  // 200 enrollments through both replicas, devices of both users, all through what follows.
  std::mutex mu;
  std::map<int, std::string> failed;  // enrollment -> its status
  std::atomic<int> enrolled{0};
  std::thread enrollments([&] {
    for (int i = 0; i < kEnrollments; ++i) {
      absl::StatusOr<TestDevice> d = c->MakeDevice(i % 2 == 0 ? "e2e" : "zoe", i % 2 == 0 ? "shared" : "zoes", false,
                                                   absl::StrCat("enroll-", i), i % 4 < 2 ? 0 : 1);
      if (d.ok()) {
        ++enrolled;
      } else {
        std::lock_guard<std::mutex> lock(mu);
        failed[i] = d.status().ToString();
      }
      absl::SleepFor(absl::Milliseconds(30));
    }
  });
  Writer a(c->folder(0), "alpha"), g(c->folder(*gamma), "gamma"), b(c->folder(1), "beta");

  // An etcd member killed and restarted: nothing visible.
  absl::SleepFor(absl::Seconds(1));
  const int leader = (*etcd)->Leader();
  ASSERT_GE(leader, 0);
  const int follower = (leader + 1) % 3;
  (*etcd)->Kill(follower);
  absl::SleepFor(absl::Seconds(1));
  ASSERT_TRUE((*etcd)->Restart(follower).ok());
  ASSERT_TRUE(WaitFor([&] { return (*etcd)->Healthy(follower); }, absl::Seconds(20)));

  // The move, asked of the replica that may not lead (the leader runs it).
  CommandResult moved = c->Convergectl({second, "shards", "move", "shared", "1"});
  ASSERT_EQ(moved.exit_code, 0) << moved.err << " logs in " << c->logs_dir();
  WriteFile(c->folder(0) + "/after-move.txt", "through shard 1");
  const absl::Time moved_at = absl::Now();
  ASSERT_TRUE(WaitFor([&] { return ReadFile(c->folder(1) + "/after-move.txt") == "through shard 1"; },
                      absl::Seconds(30)))
      << "logs in " << c->logs_dir();
  const absl::Duration follow = absl::Now() - moved_at;

  // etcd's leader killed: how long a write waits for the re-election.
  auto client = coord::EtcdClient::Connect((*etcd)->endpoints());
  ASSERT_TRUE(client.ok());
  const int etcd_leader = (*etcd)->Leader();
  ASSERT_GE(etcd_leader, 0);
  (*etcd)->Kill(etcd_leader);
  const absl::Time killed = absl::Now();
  absl::StatusOr<int64_t> put = absl::UnavailableError("not yet");
  while (!put.ok() && absl::Now() - killed < absl::Seconds(20)) put = (*client)->Put("/test/after-election", "x");
  ASSERT_TRUE(put.ok()) << put.status();
  const absl::Duration reelection = absl::Now() - killed;

  // A management replica and a notify replica killed.
  c->KillManagement(0);
  c->KillNotifyReplica("notify-b");
  // The store shard both namespaces are on now, killed and restarted: engines retry and resume.
  c->KillStore(1);
  absl::SleepFor(absl::Milliseconds(500));
  ASSERT_TRUE(c->StartStore(1).ok());
  enrollments.join();
  absl::SleepFor(absl::Seconds(1));
  const int wrote_a = a.Stop(), wrote_g = g.Stop(), wrote_b = b.Stop();

  // Every folder converges; every file written arrives once.
  WriteFile(c->folder(1) + "/last.txt", "last");
  WriteFile(c->folder(*delta) + "/last.txt", "last");
  ASSERT_TRUE(WaitFor([&] { return ReadFile(c->folder(0) + "/last.txt") == "last" &&
                                   ReadFile(c->folder(*gamma) + "/last.txt") == "last"; },
                      absl::Seconds(60)))
      << "logs in " << c->logs_dir();
  ASSERT_TRUE(WaitFor([&] {
    auto x = Cluster::SnapshotFolder(c->folder(0)), y = Cluster::SnapshotFolder(c->folder(1));
    auto z = Cluster::SnapshotFolder(c->folder(*gamma)), w = Cluster::SnapshotFolder(c->folder(*delta));
    return x.ok() && y.ok() && z.ok() && w.ok() && *x == *y && *z == *w;
  }, absl::Seconds(60))) << "logs in " << c->logs_dir();
  EXPECT_TRUE(a.ArrivedIn(c->folder(1)));
  EXPECT_TRUE(b.ArrivedIn(c->folder(0)));
  EXPECT_TRUE(g.ArrivedIn(c->folder(*delta)));

  // Each enrollment succeeded once or failed clearly: a device of each name at most once, one
  // for each success; the failures are those through the killed replica, or etcd's pause.
  CommandResult devices = c->Convergectl({second, "devices", "list", "--json"});
  ASSERT_EQ(devices.exit_code, 0) << devices.err;
  int listed = 0;
  for (int i = 0; i < kEnrollments; ++i) {
    // The device's own name field (its namespaces' status repeats it as deviceName).
    const std::string name = absl::StrCat("\"name\": \"enroll-", i, "\"");
    size_t at = devices.out.find(name), n = 0;
    for (; at != std::string::npos; at = devices.out.find(name, at + 1)) ++n;
    EXPECT_LE(n, 1u) << name;
    std::lock_guard<std::mutex> lock(mu);
    if (!failed.count(i)) EXPECT_EQ(n, 1u) << name << " succeeded but is not listed";
    listed += static_cast<int>(n);
  }
  std::map<std::string, int> kinds;  // the failures, by the first words of their status
  for (const auto& [i, status] : failed) {
    ++kinds[status.substr(0, 60)];
    EXPECT_TRUE(absl::StrContains(status, "UNAVAILABLE") || absl::StrContains(status, "DEADLINE") ||
                absl::StrContains(status, "ABORTED"))
        << "enrollment " << i << ": " << status;
  }
  // The replica left standing refused only while the store shard was down (or etcd elected).
  for (const auto& [i, status] : failed) {
    if (i % 4 >= 2) {
      EXPECT_TRUE(absl::StrContains(status, "store") || absl::StrContains(status, "etcd")) << i << ": " << status;
    }
  }
  EXPECT_GE(enrolled.load(), kEnrollments / 4);
  for (const auto& [kind, n] : kinds) std::printf("FIGURES coordination: %d enrollments failed with %s...\n", n, kind.c_str());
  std::printf("FIGURES coordination: %d of %d enrollments succeeded (%d listed, %zu failed clearly); "
              "files written: %d, %d, %d; %s; engines followed the move in %s; a write waited %s for etcd's "
              "re-election\n",
              enrolled.load(), kEnrollments, listed, failed.size(), wrote_a, wrote_b, wrote_g, Trimmed(moved.out).c_str(),
              absl::FormatDuration(follow).c_str(), absl::FormatDuration(reelection).c_str());
}

}  // namespace
}  // namespace converge::testing
