// Clock: injected time, so logic can be tested with a fake clock.
// Thread-safe: all methods may be called concurrently.
#ifndef CONVERGE_COMMON_BASE_CLOCK_H_
#define CONVERGE_COMMON_BASE_CLOCK_H_

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

}  // namespace converge

#endif  // CONVERGE_COMMON_BASE_CLOCK_H_
