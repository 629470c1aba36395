// MoveJobs over a real etcd, with the store shards played by a recording transport: a move asked
// of any replica runs once, on the leader; a job a dead leader left is run again from the start,
// or only finished when it had switched already.
#include "services/management/move_jobs.h"

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "services/coord/etcd_client.h"
#include "services/management/namespace_mover.h"
#include "services/management/namespace_placement.h"
#include "tests/etcd_cluster.h"

namespace converge::management {
namespace {

// Every namespace's owner lives on shard 0.
class OwnersOnShardZero : public ShardMap {
 public:
  absl::StatusOr<uint32_t> ShardOfUser(const std::string&) override { return 0; }
  absl::StatusOr<uint32_t> ShardOfNamespace(const std::string&) override { return 0; }
};

// Records what a move asks of the shards; every shard's head is 7.
class RecordingShards : public MoveTransport {
 public:
  uint32_t shard_count() const override { return 2; }
  absl::StatusOr<uint64_t> SetGate(uint32_t shard, const std::string& ns, MoveGate gate, bool drop) override {
    static const char* const kNames[] = {"open", "leaving", "frozen", "moved", "arriving"};
    Note(absl::StrCat(ns, "@", shard, ":", kNames[static_cast<int>(gate)], drop ? "+drop" : ""));
    return 7;
  }
  absl::StatusOr<uint64_t> Copy(uint32_t from, uint32_t to, const std::string& ns, uint64_t after, uint64_t* bytes) override {
    Note(absl::StrCat(ns, ":copy ", from, "->", to, " after ", after));
    *bytes += 100;
    return 7;
  }
  std::string calls() {
    absl::MutexLock lock(&mu_);
    return absl::StrJoin(calls_, ", ");
  }

 private:
  void Note(std::string call) {
    absl::MutexLock lock(&mu_);
    calls_.push_back(std::move(call));
  }
  absl::Mutex mu_;
  std::vector<std::string> calls_;
};

bool WaitFor(const std::function<bool()>& cond, absl::Duration limit) {
  for (const absl::Time until = absl::Now() + limit; absl::Now() < until; absl::SleepFor(absl::Milliseconds(10))) {
    if (cond()) return true;
  }
  return cond();
}

class MoveJobsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string dir = std::string(getenv("TEST_TMPDIR")) + "/" +
                            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    auto etcd = testing::EtcdCluster::Start(dir, 1);
    ASSERT_TRUE(etcd.ok()) << etcd.status();
    etcd_ = std::move(*etcd);
    auto client = coord::EtcdClient::Connect(etcd_->endpoints());
    ASSERT_TRUE(client.ok());
    client_ = std::move(*client);
  }

  // A management replica's part: the placement it follows, its mover and its jobs.
  struct Replica {
    std::unique_ptr<NamespacePlacement> placement;
    std::unique_ptr<NamespaceMover> mover;
    std::unique_ptr<MoveJobs> jobs;
  };
  Replica StartReplica(const std::string& id) {
    Replica r;
    auto placement = NamespacePlacement::Start(client_, &owners_);
    EXPECT_TRUE(placement.ok()) << placement.status();
    r.placement = std::move(*placement);
    r.mover = std::make_unique<NamespaceMover>(&shards_, r.placement.get(), client_.get());
    r.jobs = std::make_unique<MoveJobs>(client_.get(), r.mover.get(), r.placement.get(), id, absl::Seconds(1));
    return r;
  }

  std::unique_ptr<testing::EtcdCluster> etcd_;
  std::shared_ptr<coord::EtcdClient> client_;
  OwnersOnShardZero owners_;
  RecordingShards shards_;
};

TEST_F(MoveJobsTest, AMoveAskedOfAnyReplicaRunsOnceOnTheLeader) {
  Replica a = StartReplica("a"), b = StartReplica("b");
  ASSERT_TRUE(WaitFor([&] { return a.jobs->leading() || b.jobs->leading(); }, absl::Seconds(5)));
  Replica& follower = a.jobs->leading() ? b : a;
  absl::StatusOr<MoveReport> moved = follower.jobs->Request("ns", 1, absl::Seconds(20));
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_EQ(moved->from, 0u);
  EXPECT_EQ(moved->to, 1u);
  EXPECT_EQ(moved->head_seq, 7u);
  EXPECT_EQ(shards_.calls(),
            "ns@1:arriving+drop, ns@0:leaving, ns:copy 0->1 after 0, ns:copy 0->1 after 7, ns@0:frozen, "
            "ns:copy 0->1 after 7, ns@1:open, ns@0:moved+drop");
  // Both replicas place it on shard 1 now; moving it there again is refused.
  EXPECT_TRUE(WaitFor([&] { return *a.placement->ShardOfNamespace("ns") == 1 && *b.placement->ShardOfNamespace("ns") == 1; },
                      absl::Seconds(5)));
  EXPECT_TRUE(absl::IsFailedPrecondition(follower.jobs->Request("ns", 1, absl::Seconds(20)).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(follower.jobs->Request("ns", 5, absl::Seconds(20)).status()));
}

TEST_F(MoveJobsTest, AJobADeadLeaderSwitchedIsOnlyFinished) {
  // What a leader that died right after the switch leaves: the placement names shard 1, the job
  // says which shard it left.
  ASSERT_TRUE(client_->Put(absl::StrCat(kPlacementPrefix, "ns"), "1").ok());
  ASSERT_TRUE(client_->Put("/converge/jobs/move/ns", "1 abc from=0").ok());
  Replica r = StartReplica("next");
  ASSERT_TRUE(WaitFor([&] {
    auto outcome = client_->Get("/converge/jobs/outcome/ns");
    return outcome.ok() && outcome->has_value() && absl::StartsWith((*outcome)->value, "abc\t0\t");
  }, absl::Seconds(10))) << shards_.calls();
  EXPECT_EQ(shards_.calls(), "ns@1:open, ns@0:moved+drop");  // no copy, no freeze
  auto job = client_->Get("/converge/jobs/move/ns");
  ASSERT_TRUE(job.ok());
  EXPECT_FALSE(job->has_value());  // done
}

TEST_F(MoveJobsTest, AJobADeadLeaderLeftBeforeTheSwitchRunsAgainFromTheStart) {
  ASSERT_TRUE(client_->Put("/converge/jobs/move/ns", "1 def").ok());
  Replica r = StartReplica("next");
  ASSERT_TRUE(WaitFor([&] {
    auto outcome = client_->Get("/converge/jobs/outcome/ns");
    return outcome.ok() && outcome->has_value() && absl::StartsWith((*outcome)->value, "def\t0\t");
  }, absl::Seconds(10))) << shards_.calls();
  // From the start: the target's partial copy dropped, the source (maybe frozen) leaving again.
  EXPECT_TRUE(absl::StartsWith(shards_.calls(), "ns@1:arriving+drop, ns@0:leaving, ns:copy 0->1 after 0"))
      << shards_.calls();
  EXPECT_EQ(*r.placement->ShardOfNamespace("ns"), 1u);
}

}  // namespace
}  // namespace converge::management
