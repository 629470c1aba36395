// simulate: the deterministic simulation by hand.
//   simulate --seeds=100000 [--first=1]   many seeds; stops at the first failure
//   simulate --seed=N --verbose           one seed, every step printed
//   simulate --writers=1 ...              only the first device edits (no conflict copy allowed)
//   simulate --no-power-cuts --keep-going  no device or store power cuts; count every failure
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "common/base/logging.h"
#include "tests/sim/simulation.h"

int main(int argc, char** argv) {
  uint64_t first = 1, seeds = 1000, failed = 0;
  bool keep_going = false;
  converge::sim::SimOptions options;
  std::string level = "off";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* flag) { return strtoull(a.c_str() + strlen(flag), nullptr, 10); };
    if (a.rfind("--seeds=", 0) == 0) seeds = value("--seeds=");
    else if (a.rfind("--first=", 0) == 0) first = value("--first=");
    else if (a.rfind("--seed=", 0) == 0) first = value("--seed="), seeds = 1;
    else if (a.rfind("--operations=", 0) == 0) options.operations = static_cast<int>(value("--operations="));
    else if (a.rfind("--devices=", 0) == 0) options.devices = static_cast<int>(value("--devices="));
    else if (a.rfind("--writers=", 0) == 0) options.writers = static_cast<int>(value("--writers="));
    else if (a == "--encrypted") options.encrypted = true;
    else if (a == "--verbose") options.verbose = true, level = "info";
    else if (a == "--debug") options.verbose = true, level = "debug";
    else if (a == "--no-power-cuts") options.device_power_cut = options.store_power_cut = 0;
    else if (a == "--keep-going") keep_going = true;
    else {
      std::cerr << "usage: simulate [--seeds=N --first=N | --seed=N] [--operations=N] [--devices=N] [--writers=N] [--encrypted] [--no-power-cuts] [--keep-going] [--verbose]\n";
      return 2;
    }
  }
  converge::InitLogging(level);
  converge::sim::SimTotals totals;
  for (uint64_t seed = first; seed < first + seeds; ++seed) {
    const std::string failure = converge::sim::RunSeed(seed, options, &totals);
    if (!failure.empty()) {
      std::cerr << "seed " << seed << " FAILED: " << failure << "\n";
      if (!keep_going) return 1;
      ++failed;
    }
    if ((seed - first + 1) % 1000 == 0) std::cerr << (seed - first + 1) << " seeds ok\n";
  }
  std::cout << totals.Summary() << "\n";
  if (failed > 0) std::cerr << failed << " of " << seeds << " seeds failed\n";
  return failed > 0 ? 1 : 0;
}
