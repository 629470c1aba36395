// Two management replicas sharing one registry, kept on the store (--registry_in_store) or in a
// real three-member etcd (--registry_in_etcd): what one records the other serves at once,
// concurrent changes of the same record on both are decided once, engines enroll through either,
// and one replica killed leaves the other serving.
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <fstream>
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

std::string Trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

bool WaitForContent(const std::string& path, const std::string& want, absl::Duration timeout) {
  for (absl::Time end = absl::Now() + timeout; absl::Now() < end; absl::SleepFor(absl::Milliseconds(50))) {
    std::ifstream in(path, std::ios::binary);
    if (std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()) == want) return true;
  }
  return false;
}

// Two management replicas over one registry: what one records the other serves, a user raced on
// both is created once, engines enroll through either, and one killed leaves the other serving.
// `between` runs after the races (e.g. etcd losing its leader), `after` at the end with the
// replica left and the two engines' folders.
void TwoReplicasShareOneRegistry(
    ClusterOptions options, const std::function<void()>& between,
    const std::function<void(Cluster&, const std::string& management, int alpha, int beta)>& after = nullptr) {
  options.management_replicas = 2;
  std::filesystem::remove_all(options.dir);
  auto started = Cluster::Start(options);
  ASSERT_TRUE(started.ok()) << started.status();
  Cluster& cluster = **started;
  const std::string second = "--management=" + cluster.management_address(1);

  // The cluster made user e2e and namespace shared through replica 0: replica 1 sees them.
  CommandResult users = cluster.Convergectl({second, "users", "list"});
  ASSERT_EQ(users.exit_code, 0) << users.err;
  EXPECT_TRUE(absl::StrContains(users.out, "e2e")) << users.out;

  // The same user created on both replicas at once, 10 times over: each is created exactly once.
  for (int i = 0; i < 10; ++i) {
    const std::string user = absl::StrCat("racer", i);
    std::atomic<int> created{0}, exists{0};
    std::string said[2];
    std::vector<std::thread> threads;
    for (int replica = 0; replica < 2; ++replica) {
      threads.emplace_back([&, replica] {
        CommandResult r = cluster.Convergectl({"--management=" + cluster.management_address(replica), "users",
                                               "create", user});
        said[replica] = absl::StrCat("exit ", r.exit_code, ": ", r.out, r.err);
        if (r.exit_code == 0) ++created;
        // The other is refused as a duplicate (what the winner may log on stderr is not a refusal).
        if (r.exit_code != 0 && (absl::StrContains(r.err, "ALREADY_EXISTS") || absl::StrContains(r.err, "exists"))) {
          ++exists;
        }
      });
    }
    for (std::thread& t : threads) t.join();
    EXPECT_EQ(created.load(), 1) << user << "; replica 0 " << said[0] << "; replica 1 " << said[1];
    EXPECT_EQ(exists.load(), 1) << user << "; replica 0 " << said[0] << "; replica 1 " << said[1];
  }

  between();

  // An enrollment token made on replica 1; one engine enrolls through each replica.
  CommandResult enroll = cluster.Convergectl({second, "users", "enroll", "e2e", "--uses=2"});
  ASSERT_EQ(enroll.exit_code, 0) << enroll.err;
  const std::string token = Trimmed(enroll.out);
  auto alpha = cluster.AddEngine("alpha", {"e2e", "shared", token, cluster.management_address(0)});
  auto beta = cluster.AddEngine("beta", {"e2e", "shared", token, cluster.management_address(1)});
  ASSERT_TRUE(alpha.ok() && beta.ok());
  std::ofstream(cluster.folder(*alpha) + "/hello.txt") << "through two replicas";
  EXPECT_TRUE(WaitForContent(cluster.folder(*beta) + "/hello.txt", "through two replicas", absl::Seconds(30)))
      << "logs in " << cluster.logs_dir();
  CommandResult members = cluster.Convergectl({"members", "list", "shared"});
  EXPECT_TRUE(absl::StrContains(members.out, "alpha") && absl::StrContains(members.out, "beta")) << members.out;

  // Replica 0 dies; replica 1 serves reads and changes (the registry lock does not outlive a
  // finished change).
  cluster.KillManagement(0);
  EXPECT_EQ(cluster.Convergectl({second, "users", "create", "after"}).exit_code, 0);
  CommandResult list = cluster.Convergectl({second, "users", "list", "--json"});
  EXPECT_TRUE(absl::StrContains(list.out, "\"after\"")) << list.out;
  std::ofstream(cluster.folder(*beta) + "/back.txt") << "still syncing";
  EXPECT_TRUE(WaitForContent(cluster.folder(*alpha) + "/back.txt", "still syncing", absl::Seconds(30)));
  if (after) after(cluster, second, *alpha, *beta);
}

TEST(E2eManagementReplicasTest, TwoReplicasShareOneRegistryOnTheStore) {
  ClusterOptions options;
  options.dir = std::string(getenv("TEST_TMPDIR")) + "/replicas";
  TwoReplicasShareOneRegistry(options, [] {});
}

// The registry in etcd (three members), its leader killed once the races are done: the replicas
// go on (enrollments, a change, syncing) through the two members left; then a second member
// killed (no quorum): changes are refused clearly and the folders still sync.
TEST(E2eManagementReplicasTest, TwoReplicasShareOneRegistryInEtcd) {
  const std::string dir = std::string(getenv("TEST_TMPDIR")) + "/replicas-etcd";
  auto etcd = EtcdCluster::Start(dir + "/etcd", 3);
  ASSERT_TRUE(etcd.ok()) << etcd.status();
  ClusterOptions options;
  options.dir = dir + "/cluster";
  options.management_args = {"--etcd=" + (*etcd)->endpoints(), "--registry_in_etcd"};
  TwoReplicasShareOneRegistry(
      options,
      [&] {
        const int leader = (*etcd)->Leader();
        ASSERT_GE(leader, 0);
        (*etcd)->Kill(leader);
      },
      [&](Cluster& cluster, const std::string& management, int alpha, int beta) {
        // Quorum lost (a second member killed): registry changes are refused with a clear status,
        // and the engines keep syncing with the endpoints and tokens they hold.
        for (int i = 0; i < (*etcd)->size(); ++i) {
          if ((*etcd)->running(i)) {
            (*etcd)->Kill(i);
            break;
          }
        }
        const absl::Time asked = absl::Now();
        CommandResult refused = cluster.Convergectl({management, "users", "create", "no-quorum"});
        const absl::Duration took = absl::Now() - asked;
        EXPECT_NE(refused.exit_code, 0) << refused.out;
        EXPECT_TRUE(absl::StrContains(refused.err, "UNAVAILABLE") && absl::StrContains(refused.err, "etcd"))
            << refused.err;
        EXPECT_LT(took, absl::Seconds(10));
        std::ofstream(cluster.folder(alpha) + "/no-quorum.txt") << "synced without etcd";
        EXPECT_TRUE(WaitForContent(cluster.folder(beta) + "/no-quorum.txt", "synced without etcd", absl::Seconds(30)));
        std::printf("FIGURES etcd quorum lost: a registry change was refused in %s: %s\n",
                    absl::FormatDuration(took).c_str(), refused.err.substr(0, 200).c_str());
      });
  // Nothing of the registry stayed in a replica's own folder.
  EXPECT_FALSE(std::filesystem::exists(options.dir + "/data/management/management.rocksdb"));
}

// An upgrade: replicas that kept the registry on the store are restarted with it in etcd (both
// flags, as the Kubernetes manifests pass them): the first copies it over, and users, devices and
// namespaces are all there; the second finds etcd holding it and copies nothing again.
TEST(E2eManagementReplicasTest, ARegistryKeptOnTheStoreMovesIntoEtcdOnUpgrade) {
  const std::string dir = std::string(getenv("TEST_TMPDIR")) + "/replicas-upgrade";
  std::filesystem::remove_all(dir);
  auto etcd = EtcdCluster::Start(dir + "/etcd", 1);
  ASSERT_TRUE(etcd.ok()) << etcd.status();
  ClusterOptions options;
  options.dir = dir + "/cluster";
  options.management_replicas = 2;
  auto started = Cluster::Start(options);
  ASSERT_TRUE(started.ok()) << started.status();
  Cluster& cluster = **started;
  ASSERT_EQ(cluster.Convergectl({"users", "create", "before-upgrade"}).exit_code, 0);
  auto engine = cluster.AddEngine("laptop");
  ASSERT_TRUE(engine.ok()) << engine.status();
  bool member = false;  // its engine enrolls as it starts
  for (const absl::Time until = absl::Now() + absl::Seconds(20); !member && absl::Now() < until;) {
    member = absl::StrContains(cluster.Convergectl({"members", "list", "shared"}).out, "laptop");
    if (!member) absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_TRUE(member) << "logs in " << cluster.logs_dir();
  const std::vector<std::string> to_etcd = {"--etcd=" + (*etcd)->endpoints(), "--registry_in_etcd"};
  for (int replica : {0, 1}) {
    cluster.KillManagement(replica);
    ASSERT_TRUE(cluster.StartManagement(replica, to_etcd).ok()) << "logs in " << cluster.logs_dir();
  }
  const std::string second = "--management=" + cluster.management_address(1);
  CommandResult users = cluster.Convergectl({second, "users", "list"});
  EXPECT_TRUE(absl::StrContains(users.out, "before-upgrade") && absl::StrContains(users.out, "e2e")) << users.out;
  CommandResult members = cluster.Convergectl({second, "members", "list", "shared"});
  EXPECT_TRUE(absl::StrContains(members.out, "laptop")) << members.out;
  const std::string log0 = ReadFile(cluster.logs_dir() + "/management.log");
  const std::string log1 = ReadFile(cluster.logs_dir() + "/management-1.log");
  EXPECT_TRUE(absl::StrContains(log0, "registry records from the store into etcd")) << log0;
  EXPECT_FALSE(absl::StrContains(log1, "registry records from the store into etcd")) << log1;
  // Changes now go to etcd: made on one replica, seen on the other.
  ASSERT_EQ(cluster.Convergectl({"users", "create", "after-upgrade"}).exit_code, 0);
  EXPECT_TRUE(absl::StrContains(cluster.Convergectl({second, "users", "list"}).out, "after-upgrade"));
  absl::StatusOr<std::unique_ptr<coord::EtcdClient>> client = coord::EtcdClient::Connect((*etcd)->endpoints());
  ASSERT_TRUE(client.ok());
  EXPECT_GT((*client)->List("/converge/registry/records/")->kvs.size(), 3u);
}

}  // namespace
}  // namespace converge::testing
