// The deterministic simulation in CI: CONVERGE_SIM_SEEDS seeds (default 2,000) of 3 devices and
// 200 operations each, split across the test's shards. A failing seed replays with
//   bazel run //tests/sim:simulate -- --seed=N --verbose
#include <cstdlib>
#include <fstream>
#include <iostream>

#include "common/logging.h"
#include "gtest/gtest.h"
#include "tests/sim/simulation.h"

namespace converge::sim {
namespace {

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = getenv(name);
  return v == nullptr ? fallback : strtoull(v, nullptr, 10);
}

TEST(SimulationTest, ThreeDevicesConvergeAndLoseNothingUnderFaults) {
  InitLogging("off");
  const uint64_t seeds = EnvOr("CONVERGE_SIM_SEEDS", 2000);
  const uint64_t first = EnvOr("CONVERGE_SIM_FIRST_SEED", 1);
  const uint64_t shards = EnvOr("TEST_TOTAL_SHARDS", 1);
  const uint64_t shard = EnvOr("TEST_SHARD_INDEX", 0);
  if (const char* f = getenv("TEST_SHARD_STATUS_FILE")) std::ofstream(f) << "";
  SimOptions options;
  SimTotals totals;
  for (uint64_t seed = first + shard; seed < first + seeds; seed += shards) {
    const std::string failure = RunSeed(seed, options, &totals);
    ASSERT_EQ(failure, "") << "seed " << seed << " failed; replay: bazel run //tests/sim:simulate -- --seed=" << seed
                           << " --verbose";
  }
  std::cout << "simulation (shard " << shard << " of " << shards << "): " << totals.Summary() << "\n";
  EXPECT_GT(totals.device_power_cuts, 0u);
  EXPECT_GT(totals.lost_messages, 0u);
}

}  // namespace
}  // namespace converge::sim
