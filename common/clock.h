// Clock: injected time, so logic can be tested with a fake clock.
// Thread-safe: all methods may be called concurrently.
#ifndef CONVERGE_COMMON_CLOCK_H_
#define CONVERGE_COMMON_CLOCK_H_

#include <atomic>
#include <cstdint>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace converge {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  // RealClock returns the process-wide system clock.
  static Clock* Real();
};

// FakeClock is a Clock tests move by hand.
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

#endif  // CONVERGE_COMMON_CLOCK_H_
