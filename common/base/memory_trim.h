// How the services and the engine use glibc's heap.
//
// ConfigureAllocator() (first thing in main, before any thread): few arenas, fixed thresholds.
// Chunk bytes pass through 256 KiB - 4 MiB buffers allocated on one gRPC thread and freed on
// another. With glibc's defaults (up to 8 arenas a core) the threads spread over many arenas,
// each arena's heaps were unmapped as soon as they emptied, the dynamic mmap threshold mapped and
// unmapped large buffers, and the store trimmed everything every 5 s: every byte moved landed in
// freshly faulted memory. Page faults cost a lot on a VM (a copy into fresh memory runs at
// 0.33 GB/s here against 20 GB/s into warm memory), and they were a quarter of the CPU each
// engine and the store spent per 100 MiB. Few arenas reuse what other threads freed (small
// allocations still go through each thread's lock-free cache). Not one: under an HTTP/2
// rapid-reset flood, hundreds of threads on one arena's lock kept the store from serving
// normally for 59 s after the flood (31 s with four arenas).
//
// MemoryTrimmer gives freed heap memory back to the system once more than `slack` of it is free
// and the heap has been quiet for two `period`s (or at once above four times the slack): a
// process that moved a large file does not keep its peak resident, and one in steady use keeps
// its working set warm rather than faulting it in again for every file.
//
//   converge::ConfigureAllocator();
//   MemoryTrimmer trim(absl::Seconds(10), kHeapTrimThreshold);  // until it goes out of scope
#ifndef CONVERGE_COMMON_BASE_MEMORY_TRIM_H_
#define CONVERGE_COMMON_BASE_MEMORY_TRIM_H_

#include <cstddef>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace converge {

// Free memory at the heap's top kept rather than returned to the system, and the size from which
// an allocation gets a mapping of its own.
inline constexpr size_t kHeapTrimThreshold = 64 << 20;
inline constexpr size_t kHeapMmapThreshold = 32 << 20;

// The arenas ConfigureAllocator allows: 2 a core, at least 4.
size_t HeapArenas();
void ConfigureAllocator();

// Bytes the heap holds free (released to the system by the next trim once above the slack).
size_t FreeHeapBytes();

// When to trim, from the free heap bytes seen every period.
class TrimDecision {
 public:
  explicit TrimDecision(size_t slack) : slack_(slack) {}
  bool Tick(size_t free_bytes);

 private:
  static constexpr size_t kQuietBytes = 1 << 20;  // less movement than this in a period is quiet
  const size_t slack_;
  size_t last_free_ = 0;
  int quiet_ticks_ = 0;
};

class MemoryTrimmer {
 public:
  MemoryTrimmer(absl::Duration period, size_t slack);
  ~MemoryTrimmer();
  MemoryTrimmer(const MemoryTrimmer&) = delete;
  MemoryTrimmer& operator=(const MemoryTrimmer&) = delete;

 private:
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace converge

#endif  // CONVERGE_COMMON_BASE_MEMORY_TRIM_H_
