// The deterministic simulation in CI: CONVERGE_SIM_SEEDS seeds (default 2,000) of 3 devices and
// 200 operations each, in two halves (one per shard), every other seed in an end-to-end encrypted
// namespace. A failing seed replays with
//   bazel run //tests/sim:simulate -- --seed=N --verbose
#include <cstdlib>
#include <iostream>

#include "common/base/logging.h"
#include "gtest/gtest.h"
#include "tests/sim/simulation.h"

namespace converge::sim {
namespace {

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = getenv(name);
  return v == nullptr ? fallback : strtoull(v, nullptr, 10);
}

// RunHalf runs the seeds of one half (seed % 2 == half). Two tests, so that gtest's sharding
// (test i runs on shard i % shards) gives each of the two shards one half; unsharded, one
// process runs both.
void RunHalf(uint64_t half) {
  InitLogging("off");
  const uint64_t seeds = EnvOr("CONVERGE_SIM_SEEDS", 2000);
  const uint64_t first = EnvOr("CONVERGE_SIM_FIRST_SEED", 1);
  SimOptions options;
  SimTotals totals;
  for (uint64_t seed = first + half; seed < first + seeds; seed += 2) {
    // Every other seed of each half in an end-to-end encrypted namespace.
    options.encrypted = (seed / 2) % 2 == 1;
    const std::string failure = RunSeed(seed, options, &totals);
    ASSERT_EQ(failure, "") << "seed " << seed << " failed; replay: bazel run //tests/sim:simulate -- --seed=" << seed
                           << (options.encrypted ? " --encrypted" : "") << " --verbose";
  }
  std::cout << "simulation (half " << half << "): " << totals.Summary() << "\n";
  EXPECT_EQ(totals.seeds, seeds / 2 + (half < seeds % 2 ? 1 : 0));
  EXPECT_GT(totals.device_power_cuts, 0u);
  EXPECT_GT(totals.lost_messages, 0u);
  EXPECT_GT(totals.moved_in_place, 0u);
  EXPECT_GT(totals.snapshots, 0u);
  EXPECT_GT(totals.encrypted_seeds, totals.seeds / 3);
}

// Edits from one device only (type changes, touches, renames among them) never make a conflict
// copy anywhere, faults or not: a conflict copy means two devices changed the same path.
TEST(SimulationTest, OneWritersEditsNeverMakeAConflictCopy) {
  InitLogging("off");
  const uint64_t seeds = EnvOr("CONVERGE_SIM_SEEDS", 2000) / 4;
  SimOptions options;
  options.writers = 1;
  SimTotals totals;
  for (uint64_t seed = 1; seed <= seeds; ++seed) {
    const std::string failure = RunSeed(100000 + seed, options, &totals);
    ASSERT_EQ(failure, "") << "seed " << 100000 + seed << " failed; replay: bazel run //tests/sim:simulate -- --seed="
                           << 100000 + seed << " --writers=1 --verbose";
  }
  std::cout << "simulation (one writer): " << totals.Summary() << "\n";
  EXPECT_EQ(totals.conflict_copies, 0u);
  EXPECT_GT(totals.type_changes, 0u);
  EXPECT_GT(totals.touches, 0u);
  EXPECT_GT(totals.device_power_cuts, 0u);
}

TEST(SimulationTest, ThreeDevicesConvergeAndLoseNothingUnderFaultsOddSeeds) { RunHalf(0); }
TEST(SimulationTest, ThreeDevicesConvergeAndLoseNothingUnderFaultsEvenSeeds) { RunHalf(1); }

}  // namespace
}  // namespace converge::sim
