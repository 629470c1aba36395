#include "common/base/memory_trim.h"

#include <malloc.h>

#include <algorithm>
#include <thread>

namespace converge {

size_t HeapArenas() { return std::max<size_t>(4, 2 * std::thread::hardware_concurrency()); }

void ConfigureAllocator() {
  mallopt(M_ARENA_MAX, static_cast<int>(HeapArenas()));
  mallopt(M_MMAP_THRESHOLD, static_cast<int>(kHeapMmapThreshold));
  mallopt(M_TRIM_THRESHOLD, static_cast<int>(kHeapTrimThreshold));
  mallopt(M_TOP_PAD, 16 << 20);
}

size_t FreeHeapBytes() { return mallinfo2().fordblks; }

bool TrimDecision::Tick(size_t free_bytes) {
  const size_t moved = free_bytes > last_free_ ? free_bytes - last_free_ : last_free_ - free_bytes;
  quiet_ticks_ = moved < kQuietBytes ? quiet_ticks_ + 1 : 0;
  last_free_ = free_bytes;
  if (free_bytes > 4 * slack_ || (free_bytes > slack_ && quiet_ticks_ >= 2)) {
    quiet_ticks_ = 0;
    return true;
  }
  return false;
}

MemoryTrimmer::MemoryTrimmer(absl::Duration period, size_t slack)
    : thread_([this, period, slack] {
        TrimDecision decide(slack);
        while (!stop_.WaitForNotificationWithTimeout(period)) {
          if (decide.Tick(FreeHeapBytes())) malloc_trim(0);
        }
      }) {}

MemoryTrimmer::~MemoryTrimmer() {
  stop_.Notify();
  thread_.join();
}

}  // namespace converge
