#include "common/base/memory_trim.h"

#include <malloc.h>

namespace converge {

MemoryTrimmer::MemoryTrimmer(absl::Duration period)
    : thread_([this, period] {
        while (!stop_.WaitForNotificationWithTimeout(period)) malloc_trim(0);
      }) {}

MemoryTrimmer::~MemoryTrimmer() {
  stop_.Notify();
  thread_.join();
}

}  // namespace converge
