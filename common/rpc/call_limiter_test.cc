#include "common/rpc/call_limiter.h"

#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace converge {
namespace {

TEST(CallLimiterTest, RefusesOverTheLimitPerCallerAndFreesOnRelease) {
  CallLimiter limiter({/*max_in_flight=*/2});
  std::vector<CallLimiter::Slot> held;
  for (int i = 0; i < 2; ++i) {
    auto slot = limiter.Acquire("dev-a");
    ASSERT_TRUE(slot.ok());
    held.push_back(std::move(*slot));
  }
  auto third = limiter.Acquire("dev-a", "streams");
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(third.status().message().find("2 streams open"), absl::string_view::npos) << third.status();
  EXPECT_TRUE(limiter.Acquire("dev-b").ok());  // another device is not affected
  EXPECT_EQ(limiter.refused(), 1u);
  held.pop_back();
  EXPECT_EQ(limiter.in_flight("dev-a"), 1);
  EXPECT_TRUE(limiter.Acquire("dev-a").ok());
  held.clear();
  EXPECT_EQ(limiter.in_flight("dev-a"), 0);
}

TEST(CallLimiterTest, MovedSlotsReleaseOnceAndZeroMeansUnlimited) {
  CallLimiter limiter({/*max_in_flight=*/1});
  {
    auto slot = limiter.Acquire("d");
    ASSERT_TRUE(slot.ok());
    CallLimiter::Slot moved = std::move(*slot);
    CallLimiter::Slot assigned;
    assigned = std::move(moved);
    EXPECT_EQ(limiter.in_flight("d"), 1);
  }
  EXPECT_EQ(limiter.in_flight("d"), 0);
  CallLimiter unlimited({});
  std::vector<CallLimiter::Slot> held;
  for (int i = 0; i < 1000; ++i) held.push_back(*unlimited.Acquire("d"));
  EXPECT_EQ(unlimited.refused(), 0u);
}

TEST(CallLimiterTest, RateLimitAllowsABurstThenTheSustainedRate) {
  CallLimiter limiter({/*max_in_flight=*/0, /*calls_per_second=*/100, /*burst=*/50});
  int admitted = 0;
  for (int i = 0; i < 200; ++i) admitted += limiter.Acquire("dev").ok() ? 1 : 0;
  EXPECT_GE(admitted, 50);
  EXPECT_LE(admitted, 55);  // the burst, and what refilled meanwhile
  auto refused = limiter.Acquire("dev");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(refused.status().message().find("a second"), absl::string_view::npos) << refused.status();
  EXPECT_TRUE(limiter.Acquire("other").ok());
  absl::SleepFor(absl::Milliseconds(100));  // ~10 tokens back
  admitted = 0;
  for (int i = 0; i < 50; ++i) admitted += limiter.Acquire("dev").ok() ? 1 : 0;
  EXPECT_GE(admitted, 8);
  EXPECT_LE(admitted, 20);
}

}  // namespace
TEST(CallLimiterTest, WorkIsChargedToTheCallersRateAndOnlyTheirs) {
  CallLimiter limiter({/*max_in_flight=*/8, /*calls_per_second=*/1, /*burst=*/100});
  auto slot = limiter.Acquire("greedy");
  ASSERT_TRUE(slot.ok());
  EXPECT_TRUE(limiter.Charge("greedy", 90).ok());  // 99 left after the call itself
  EXPECT_EQ(limiter.Charge("greedy", 50).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(limiter.Charge("greedy", 9).ok());
  EXPECT_EQ(limiter.Acquire("greedy").status().code(), absl::StatusCode::kResourceExhausted);  // bucket empty
  EXPECT_TRUE(limiter.Acquire("modest").ok());
}

}  // namespace converge
