// The store shard map in a real etcd: seeded from --store, never renamed, appended by two
// replicas at once without losing either, followed by every replica's list.
#include "services/management/etcd_shard_map.h"

#include <cstdlib>
#include <thread>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/etcd_cluster.h"

namespace converge::management {
namespace {

bool WaitFor(const std::function<bool()>& cond) {
  for (int i = 0; i < 250; ++i) {
    if (cond()) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return cond();
}

TEST(EtcdShardMapTest, SeededOnceAppendedByTwoReplicasAtOnceAndFollowedByBoth) {
  auto etcd = testing::EtcdCluster::Start(std::string(getenv("TEST_TMPDIR")) + "/etcd", 1);
  ASSERT_TRUE(etcd.ok()) << etcd.status();
  std::shared_ptr<coord::EtcdClient> client = *coord::EtcdClient::Connect((*etcd)->endpoints());

  ShardList a({"store-0:7002"});
  auto map_a = EtcdShardMap::Start(client, &a);
  ASSERT_TRUE(map_a.ok()) << map_a.status();
  // A replica started with --store naming shard 0 otherwise is refused; one naming none follows.
  ShardList wrong({"elsewhere:7002"});
  absl::StatusOr<std::unique_ptr<EtcdShardMap>> refused = EtcdShardMap::Start(client, &wrong);
  EXPECT_TRUE(absl::IsFailedPrecondition(refused.status())) << refused.status();
  ShardList b;
  auto map_b = EtcdShardMap::Start(client, &b);
  ASSERT_TRUE(map_b.ok()) << map_b.status();
  EXPECT_EQ(b.all(), std::vector<std::string>{"store-0:7002"});

  // Two shards added at once through the two replicas: both get an index of their own.
  absl::StatusOr<uint32_t> one, two;
  std::thread t1([&] { one = (*map_a)->Add("store-1:7002"); });
  std::thread t2([&] { two = (*map_b)->Add("store-2:7002"); });
  t1.join();
  t2.join();
  ASSERT_TRUE(one.ok() && two.ok()) << one.status() << two.status();
  EXPECT_NE(*one, *two);
  EXPECT_EQ(*one + *two, 3u);
  ASSERT_TRUE(WaitFor([&] { return a.size() == 3 && b.size() == 3; }));
  EXPECT_EQ(a.all(), b.all());
  EXPECT_EQ(*a.address(*one), "store-1:7002");
  EXPECT_TRUE(absl::IsAlreadyExists((*map_a)->Add("store-2:7002").status()));

  // A list never loses, renames or reorders a shard.
  EXPECT_TRUE(absl::IsFailedPrecondition(a.Extend({"store-0:7002"})));
  EXPECT_TRUE(absl::IsFailedPrecondition(a.Extend({"store-0:7002", "x:1", "y:1"})));
  EXPECT_EQ(a.size(), 3u);
  EXPECT_FALSE(ValidateShardAddress("host-without-port").ok());
  EXPECT_FALSE(ValidateShardAddress("a b:7002").ok());
  EXPECT_TRUE(ValidateShardAddress("[::1]:7002").ok());
}

}  // namespace
}  // namespace converge::management
