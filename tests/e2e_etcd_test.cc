// Services coordinating through a real etcd (three members of Debian's etcd-server): notify
// replicas announce themselves under leases and the store publishes to every replica announced,
// finding new ones at once and dropping dead ones within the lease's TTL, while etcd loses a
// member and then its leader.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "services/coord/etcd_client.h"
#include "services/coord/service_directory.h"
#include "tests/cluster.h"
#include "tests/etcd_cluster.h"

namespace converge::testing {
namespace {

bool WaitFor(const std::function<bool()>& cond, absl::Duration timeout) {
  for (const absl::Time until = absl::Now() + timeout; absl::Now() < until;) {
    if (cond()) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return cond();
}

std::vector<std::string> Announced(coord::EtcdClient* etcd) {
  absl::StatusOr<coord::EtcdListing> listed = etcd->List(coord::ServicePrefix("notify"));
  std::vector<std::string> out;
  if (listed.ok()) {
    for (const coord::EtcdKeyValue& kv : listed->kvs) out.push_back(kv.value);
  }
  return out;
}

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

double Publishes(Cluster* c, const std::string& replica) {
  absl::StatusOr<std::string> scrape = c->ServiceMetrics(replica);
  return scrape.ok() ? Cluster::MetricValue(*scrape, "converge_notify_publishes_total") : -1;
}

TEST(E2eEtcdTest, TheStorePublishesToEveryNotifyReplicaAnnouncedInEtcdAndDropsDeadOnes) {
  const std::string dir = std::string(getenv("TEST_TMPDIR")) + "/etcd-e2e";
  std::filesystem::remove_all(dir);
  auto etcd = EtcdCluster::Start(dir + "/etcd", 3);
  ASSERT_TRUE(etcd.ok()) << etcd.status();
  const std::vector<std::string> coord = {"--etcd=" + (*etcd)->endpoints(), "--advertise_host=127.0.0.1",
                                          "--etcd_lease_ttl=2s"};
  ClusterOptions options;
  options.dir = dir + "/cluster";
  options.rescan_interval = absl::Seconds(60);
  options.notify_args = coord;
  options.store_args = coord;
  auto cluster = Cluster::Start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  Cluster* c = cluster->get();
  ASSERT_TRUE(c->AddEngine("a").ok());
  ASSERT_TRUE(c->AddEngine("b").ok());
  auto client = coord::EtcdClient::Connect((*etcd)->endpoints());
  ASSERT_TRUE(client.ok());
  coord::EtcdClient* e = client->get();
  ASSERT_TRUE(WaitFor([&] { return Contains(Announced(e), c->notify_address()); }, absl::Seconds(10)));

  // A second replica: announced, and the store publishes to it from then on.
  absl::StatusOr<int> b_port = c->AddNotifyReplica("notify-b");
  ASSERT_TRUE(b_port.ok()) << b_port.status();
  const std::string b = absl::StrCat("127.0.0.1:", *b_port);
  ASSERT_TRUE(WaitFor([&] { return Contains(Announced(e), b); }, absl::Seconds(10)));
  WriteFile(c->folder(0) + "/one.txt", "one");
  ASSERT_TRUE(WaitFor([&] { return ReadFile(c->folder(1) + "/one.txt") == "one"; }, absl::Seconds(10)));
  EXPECT_TRUE(WaitFor([&] { return Publishes(c, "notify-b") >= 1; }, absl::Seconds(5)))
      << ReadFile(c->logs_dir() + "/store.log");

  // Killed: gone from etcd within its lease's TTL, and from the store's fan-out.
  const absl::Time killed = absl::Now();
  c->KillNotifyReplica("notify-b");
  ASSERT_TRUE(WaitFor([&] { return !Contains(Announced(e), b); }, absl::Seconds(10)));
  const absl::Duration gone = absl::Now() - killed;
  EXPECT_LT(gone, absl::Seconds(4));  // a 2 s TTL, renewed every 2/3 s
  EXPECT_TRUE(WaitFor([&] { return absl::StrContains(ReadFile(c->logs_dir() + "/store.log"),
                                                     absl::StrCat("notification replica ", b, " is gone")); },
                      absl::Seconds(5)));

  // etcd's leader killed: after its re-election a third replica is still found and published to,
  // and the folders go on syncing.
  const int leader = (*etcd)->Leader();
  ASSERT_GE(leader, 0);
  (*etcd)->Kill(leader);
  absl::StatusOr<int> c_port = c->AddNotifyReplica("notify-c");
  ASSERT_TRUE(c_port.ok()) << c_port.status();
  const absl::Time added = absl::Now();
  ASSERT_TRUE(WaitFor([&] { return Contains(Announced(e), absl::StrCat("127.0.0.1:", *c_port)); }, absl::Seconds(15)));
  const absl::Duration found = absl::Now() - added;
  WriteFile(c->folder(1) + "/two.txt", "two");
  ASSERT_TRUE(WaitFor([&] { return ReadFile(c->folder(0) + "/two.txt") == "two"; }, absl::Seconds(10)));
  EXPECT_TRUE(WaitFor([&] { return Publishes(c, "notify-c") >= 1; }, absl::Seconds(5)))
      << ReadFile(c->logs_dir() + "/store.log");
  std::printf("FIGURES etcd: a killed notify replica left etcd after %s (lease TTL 2 s); with etcd's leader "
              "killed a new replica was announced in %s\n",
              absl::FormatDuration(gone).c_str(), absl::FormatDuration(found).c_str());
}

// The shard map in etcd: a store shard added through one management replica is followed by the
// other at once, new users fill it, and engines are given its address.
TEST(E2eEtcdTest, AStoreShardAddedThroughOneReplicaIsFollowedByTheOther) {
  const std::string dir = std::string(getenv("TEST_TMPDIR")) + "/etcd-shards";
  std::filesystem::remove_all(dir);
  auto etcd = EtcdCluster::Start(dir + "/etcd", 1);
  ASSERT_TRUE(etcd.ok()) << etcd.status();
  ClusterOptions options;
  options.dir = dir + "/cluster";
  options.store_shards = 2;
  options.listed_store_shards = 1;  // management starts knowing shard 0 only
  options.management_replicas = 2;
  options.management_args = {"--etcd=" + (*etcd)->endpoints(), "--registry_in_etcd"};
  auto cluster = Cluster::Start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  Cluster* c = cluster->get();
  const std::string first = "--management=" + c->management_address(0);
  const std::string second = "--management=" + c->management_address(1);
  CommandResult listed = c->Convergectl({second, "shards", "list"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_FALSE(absl::StrContains(listed.out, c->store_address(1))) << listed.out;
  EXPECT_TRUE(absl::StrContains(listed.out, "etcd's shard map")) << listed.out;

  CommandResult added = c->Convergectl({first, "shards", "add", c->store_address(1)});
  ASSERT_EQ(added.exit_code, 0) << added.err;
  EXPECT_TRUE(absl::StrContains(added.out, "store shard 1 is " + c->store_address(1))) << added.out;
  const absl::Time at = absl::Now();
  ASSERT_TRUE(WaitFor([&] { return absl::StrContains(c->Convergectl({second, "shards", "list"}).out, c->store_address(1)); },
                      absl::Seconds(5)));
  const absl::Duration followed = absl::Now() - at;

  // New users fill the emptiest shard: created through the other replica, it lands on shard 1,
  // and an engine asking for its namespace is given shard 1's address.
  ASSERT_EQ(c->Convergectl({second, "users", "create", "newcomer"}).exit_code, 0);
  ASSERT_EQ(c->Convergectl({second, "namespaces", "create", "fresh", "--owner=newcomer"}).exit_code, 0);
  CommandResult endpoints = c->Convergectl({first, "endpoints", "fresh"});
  EXPECT_TRUE(absl::StrContains(endpoints.out, "shard 1") && absl::StrContains(endpoints.out, c->store_address(1)))
      << endpoints.out << endpoints.err;
  CommandResult shards = c->Convergectl({first, "shards", "list"});
  EXPECT_TRUE(absl::StrContains(shards.out, c->store_address(1) + "  1")) << shards.out;

  // The same shard twice, or not an address: refused, the map unchanged.
  CommandResult again = c->Convergectl({second, "shards", "add", c->store_address(1)});
  EXPECT_NE(again.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(again.err, "already")) << again.err;
  CommandResult bad = c->Convergectl({second, "shards", "add", "no-port-here"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(bad.err, "not a store address")) << bad.err;
  std::printf("FIGURES etcd shard map: a shard added through one management replica was listed by the other "
              "after %s\n", absl::FormatDuration(followed).c_str());
}

}  // namespace
}  // namespace converge::testing
