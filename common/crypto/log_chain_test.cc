#include "common/crypto/log_chain.h"

#include <map>
#include <vector>

#include "gtest/gtest.h"

namespace converge::crypto {
namespace {

// A namespace with two member devices and an honest log of `n` commits, alternating devices,
// each made on the head before it.
class LogChainTest : public ::testing::Test {
 protected:
  LogChainTest() : a_(DeviceKeys::Generate()), b_(DeviceKeys::Generate()), mallory_(DeviceKeys::Generate()) {
    members_["a"] = a_.public_key();
    members_["b"] = b_.public_key();
  }

  SignedCommit Make(const DeviceKeys& device, const std::string& id, LogHead seen, char body) {
    SignedCommit c;
    c.namespace_id = "ns";
    c.device_id = id;
    c.seen = seen;
    c.body.fill(static_cast<uint8_t>(body));
    Sign(device, &c);
    return c;
  }

  // Log returns commits 1..n (index i is seq i + 1) and the heads after each.
  std::vector<SignedCommit> Log(int n, std::vector<LogHead>* heads) {
    std::vector<SignedCommit> log;
    LogHead head;
    for (int i = 0; i < n; ++i) {
      log.push_back(i % 2 ? Make(b_, "b", head, 'a' + i) : Make(a_, "a", head, 'a' + i));
      head = NextHead(head, log.back());
      heads->push_back(head);
    }
    return log;
  }

  LogVerifier::KeyOf Members() {
    return [this](absl::string_view id) -> const DevicePublicKey* {
      auto it = members_.find(std::string(id));
      return it == members_.end() ? nullptr : &it->second;
    };
  }

  DeviceKeys a_, b_, mallory_;
  std::map<std::string, DevicePublicKey> members_;
  MemoryHeadHistory history_;
};

TEST_F(LogChainTest, AnHonestLogIsAcceptedAndEveryDeviceReachesTheSameHead) {
  std::vector<LogHead> heads;
  const std::vector<SignedCommit> log = Log(5, &heads);
  LogVerifier v("ns", Members(), &history_);
  for (size_t i = 0; i < log.size(); ++i) ASSERT_TRUE(v.Accept(i + 1, log[i]).ok()) << i;
  EXPECT_EQ(v.head(), heads.back());
  MemoryHeadHistory other_history;
  LogVerifier other("ns", Members(), &other_history);
  for (size_t i = 0; i < log.size(); ++i) ASSERT_TRUE(other.Accept(i + 1, log[i]).ok());
  EXPECT_TRUE(v.CompareHead(other.head()).ok());
  EXPECT_TRUE(v.CompareHead(heads[1]).ok());
  EXPECT_TRUE(v.CheckCaughtUp(5).ok());
}

TEST_F(LogChainTest, DroppedReplayedAndReorderedCommitsAreRefused) {
  std::vector<LogHead> heads;
  const std::vector<SignedCommit> log = Log(4, &heads);
  LogVerifier v("ns", Members(), &history_);
  ASSERT_TRUE(v.Accept(1, log[0]).ok());
  EXPECT_EQ(v.Accept(3, log[2]).code(), absl::StatusCode::kDataLoss);  // 2 dropped
  EXPECT_EQ(v.Accept(1, log[0]).code(), absl::StatusCode::kDataLoss);  // replayed
  EXPECT_EQ(v.Accept(2, log[2]).code(), absl::StatusCode::kDataLoss);  // 3 served as 2: its seen head is not ours
  ASSERT_TRUE(v.Accept(2, log[1]).ok());
  EXPECT_EQ(v.head(), heads[1]);
}

TEST_F(LogChainTest, ForgedAlteredAndForeignCommitsAreRefused) {
  std::vector<LogHead> heads;
  const std::vector<SignedCommit> log = Log(1, &heads);
  LogVerifier v("ns", Members(), &history_);
  SignedCommit altered = log[0];
  altered.body[0] ^= 1;
  EXPECT_EQ(v.Accept(1, altered).code(), absl::StatusCode::kDataLoss);
  SignedCommit relabelled = log[0];
  relabelled.device_id = "b";
  EXPECT_EQ(v.Accept(1, relabelled).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(v.Accept(1, Make(mallory_, "mallory", {}, 'm')).code(), absl::StatusCode::kDataLoss);
  SignedCommit other_ns = Make(a_, "a", {}, 'x');
  other_ns.namespace_id = "other";
  Sign(a_, &other_ns);
  EXPECT_EQ(v.Accept(1, other_ns).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(v.head().seq, 0u);
  EXPECT_TRUE(v.Accept(1, log[0]).ok());
}

TEST_F(LogChainTest, AForkShowsWhenDevicesCompareHeadsOrACommitSawTheOtherBranch) {
  // The store shows device A one commit 2 and device B another.
  std::vector<LogHead> heads;
  const std::vector<SignedCommit> log = Log(1, &heads);
  const SignedCommit branch_a = Make(a_, "a", heads[0], 'A');
  const SignedCommit branch_b = Make(b_, "b", heads[0], 'B');
  LogVerifier va("ns", Members(), &history_);
  MemoryHeadHistory hb;
  LogVerifier vb("ns", Members(), &hb);
  ASSERT_TRUE(va.Accept(1, log[0]).ok());
  ASSERT_TRUE(vb.Accept(1, log[0]).ok());
  ASSERT_TRUE(va.Accept(2, branch_a).ok());
  ASSERT_TRUE(vb.Accept(2, branch_b).ok());
  EXPECT_EQ(va.CompareHead(vb.head()).code(), absl::StatusCode::kDataLoss);
  // B's next commit, made on its branch, reaches A: its seen head is not A's head at 2.
  const SignedCommit next_b = Make(b_, "b", vb.head(), 'C');
  EXPECT_EQ(va.Accept(3, next_b).code(), absl::StatusCode::kDataLoss);
}

TEST_F(LogChainTest, AHeadAnnouncedAheadIsCheckedOnArrivalAndAgainstTheStoresEnd) {
  std::vector<LogHead> heads;
  const std::vector<SignedCommit> log = Log(3, &heads);
  LogVerifier v("ns", Members(), &history_);
  ASSERT_TRUE(v.CompareHead(heads[2]).ok());  // B has reached 3; this device is at 0
  ASSERT_TRUE(v.Accept(1, log[0]).ok());
  // The store says its log ends at 1: it withholds what B announced.
  EXPECT_EQ(v.CheckCaughtUp(1).code(), absl::StatusCode::kDataLoss);
  ASSERT_TRUE(v.Accept(2, log[1]).ok());
  // A different commit 3 than the one B announced.
  EXPECT_EQ(v.Accept(3, Make(a_, "a", heads[1], 'Z')).code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(v.Accept(3, log[2]).ok());
  EXPECT_TRUE(v.CheckCaughtUp(3).ok());
}

TEST_F(LogChainTest, AVerifierResumedFromItsLastHeadCatchesARollback) {
  std::vector<LogHead> heads;
  const std::vector<SignedCommit> log = Log(3, &heads);
  // The engine restarts at head 3; the store has been restored from an older backup and serves
  // a new commit 2.
  LogVerifier v("ns", Members(), &history_, heads[2]);
  EXPECT_EQ(v.Accept(2, Make(a_, "a", heads[0], 'R')).code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(v.Accept(4, Make(b_, "b", heads[2], 'n')).ok());
}

}  // namespace
}  // namespace converge::crypto
