#include "services/coord/leader_election.h"

#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/etcd_cluster.h"

namespace converge::coord {
namespace {

bool WaitFor(const std::function<bool()>& cond, absl::Duration limit) {
  for (const absl::Time until = absl::Now() + limit; absl::Now() < until; absl::SleepFor(absl::Milliseconds(10))) {
    if (cond()) return true;
  }
  return cond();
}

TEST(LeaderElectionTest, OneLeadsAndAnotherTakesOverWhenItGoesOrItsEtcdMemberDies) {
  const std::string dir = std::string(getenv("TEST_TMPDIR")) + "/election";
  auto etcd = testing::EtcdCluster::Start(dir, 3);
  ASSERT_TRUE(etcd.ok()) << etcd.status();
  auto client = EtcdClient::Connect((*etcd)->endpoints());
  ASSERT_TRUE(client.ok());
  std::atomic<int> changes{0};
  auto a = LeaderElection::Start(client->get(), "/test/leader", "a", absl::Seconds(2), [&](bool) { ++changes; });
  ASSERT_TRUE(WaitFor([&] { return a->leading(); }, absl::Seconds(5)));
  auto b = LeaderElection::Start(client->get(), "/test/leader", "b", absl::Seconds(2), nullptr);
  auto c = LeaderElection::Start(client->get(), "/test/leader", "c", absl::Seconds(2), nullptr);
  absl::SleepFor(absl::Seconds(3));  // several rounds of campaigning: still one leader
  EXPECT_TRUE(a->leading());
  EXPECT_FALSE(b->leading() || c->leading());
  auto held = (*client)->Get("/test/leader");
  ASSERT_TRUE(held.ok() && held->has_value());
  EXPECT_EQ((*held)->value, "a");

  // The leader stops: another leads within a third of the TTL or so (0.67 s), and only one.
  const absl::Time gone = absl::Now();
  a.reset();
  EXPECT_EQ(changes.load(), 2);  // led, then stopped leading
  ASSERT_TRUE(WaitFor([&] { return b->leading() || c->leading(); }, absl::Seconds(3)));
  const absl::Duration takeover = absl::Now() - gone;
  EXPECT_LT(takeover, absl::Seconds(3));
  absl::SleepFor(absl::Milliseconds(1500));
  EXPECT_NE(b->leading(), c->leading());

  // etcd loses its leader: the election goes on (one leader, the same or another).
  const int etcd_leader = (*etcd)->Leader();
  ASSERT_GE(etcd_leader, 0);
  (*etcd)->Kill(etcd_leader);
  absl::SleepFor(absl::Seconds(3));
  EXPECT_TRUE(WaitFor([&] { return b->leading() != c->leading(); }, absl::Seconds(10)));
  std::printf("FIGURES leader election (TTL 2 s): a stopped leader was replaced in %s\n",
              absl::FormatDuration(takeover).c_str());
}

}  // namespace
}  // namespace converge::coord
