// FakeClock: a Clock tests move by hand.
// Thread-safe: Now and Advance may be called concurrently.
#ifndef CONVERGE_TESTS_TESTING_FAKE_CLOCK_H_
#define CONVERGE_TESTS_TESTING_FAKE_CLOCK_H_

#include <atomic>
#include <cstdint>

#include "absl/time/time.h"
#include "common/base/clock.h"

namespace converge {

class FakeClock : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1700000000))
      : now_ns_(absl::ToUnixNanos(start)) {}
  absl::Time Now() const override { return absl::FromUnixNanos(now_ns_.load()); }
  void Advance(absl::Duration d) { now_ns_ += absl::ToInt64Nanoseconds(d); }

 private:
  std::atomic<int64_t> now_ns_;
};

}  // namespace converge

#endif  // CONVERGE_TESTS_TESTING_FAKE_CLOCK_H_
