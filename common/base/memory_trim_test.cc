#include "common/base/memory_trim.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace converge {
namespace {

constexpr size_t kMiB = 1 << 20;

long ThreadMinorFaults() {
  rusage usage{};
  getrusage(RUSAGE_THREAD, &usage);
  return usage.ru_minflt;
}

size_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  size_t total = 0, resident = 0;
  statm >> total >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

// Touches every page of a fresh allocation; the barrier keeps the compiler from dropping it.
char* Touched(size_t bytes) {
  char* p = static_cast<char*>(malloc(bytes));
  memset(p, 1, bytes);
  asm volatile("" : : "r"(p) : "memory");
  return p;
}

TEST(MemoryTrimTest, AFreedBufferIsReusedWarmByTheNextOne) {
  ConfigureAllocator();
  EXPECT_GE(HeapArenas(), 4u) << "one arena's lock kept a flooded store from recovering";
  // On a worker thread, as a gRPC handler's buffers are: with glibc's defaults an 8 MiB buffer
  // is a mapping of its own, unmapped on free, and the next one faults all its pages in again.
  long faults = -1;
  std::thread([&] {
    const size_t bytes = 8 * kMiB;
    free(Touched(bytes));
    const long before = ThreadMinorFaults();
    free(Touched(bytes));
    faults = ThreadMinorFaults() - before;
  }).join();
  EXPECT_GE(faults, 0);
  EXPECT_LT(faults, 64) << "an 8 MiB buffer is 2,048 pages; faulting them again is the cost removed";
}

TEST(TrimDecisionTest, AHeapInUseKeepsItsFreeMemoryUntilItGoesQuiet) {
  TrimDecision decide(64 * kMiB);
  EXPECT_FALSE(decide.Tick(100 * kMiB));
  EXPECT_FALSE(decide.Tick(120 * kMiB)) << "moving: a transfer is running";
  EXPECT_FALSE(decide.Tick(90 * kMiB));
  EXPECT_FALSE(decide.Tick(90 * kMiB)) << "quiet for one period only";
  EXPECT_TRUE(decide.Tick(90 * kMiB)) << "quiet for two periods";
  EXPECT_FALSE(decide.Tick(90 * kMiB)) << "just trimmed";
}

TEST(TrimDecisionTest, FreeMemoryBelowTheSlackStaysAndFarAboveGoesAtOnce) {
  TrimDecision decide(64 * kMiB);
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(decide.Tick(60 * kMiB));
  EXPECT_TRUE(decide.Tick(300 * kMiB));
}

TEST(MemoryTrimTest, TheTrimmerReturnsFreeMemoryAboveTheSlackOnly) {
  ConfigureAllocator();
  auto hold_and_free = [] {
    std::vector<char*> blocks;
    for (int i = 0; i < 12; ++i) blocks.push_back(Touched(4 * kMiB));  // 48 MiB below the trim threshold
    for (char* block : blocks) free(block);
  };
  hold_and_free();
  ASSERT_GE(FreeHeapBytes(), 40 * kMiB);
  {
    MemoryTrimmer lenient(absl::Milliseconds(10), 1024 * kMiB);
    absl::SleepFor(absl::Milliseconds(100));
  }
  const size_t kept = ResidentBytes();
  EXPECT_GE(FreeHeapBytes(), 40 * kMiB) << "free memory below the slack stays warm";
  MemoryTrimmer strict(absl::Milliseconds(10), kMiB);
  size_t resident = kept;
  for (int i = 0; i < 200 && kept - resident < 40 * kMiB; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
    resident = ResidentBytes();
  }
  EXPECT_GE(kept - resident, 40 * kMiB) << "resident " << kept << " -> " << resident;
}

}  // namespace
}  // namespace converge
