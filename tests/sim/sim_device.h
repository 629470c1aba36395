// SimDevice: one simulated device: a real SyncEngine with its RocksDB index on a power-cut
// filesystem, its folder in memory (MemFilesystem), talking to a SimStore through a
// SimStoreClient. PowerCut() loses what the machine had not made durable and starts the engine
// again on the rest, as a device that lost power and rebooted.
#ifndef CONVERGE_TESTS_SIM_SIM_DEVICE_H_
#define CONVERGE_TESTS_SIM_SIM_DEVICE_H_

#include <functional>
#include <memory>
#include <string>

#include "common/base/clock.h"
#include "engine/sync/local_index.h"
#include "engine/sync/sync_engine.h"
#include "tests/testing/mem_filesystem.h"
#include "tests/testing/power_cut_env.h"
#include "tests/testing/sim_store.h"

namespace converge::sim {

class SimDevice {
 public:
  // `fault` and `defer` are the network's (SimStoreClient); null: a perfect network.
  SimDevice(std::string id, Clock* clock, SimStore* store, engine::EngineOptions options,
            std::function<Fault(const char*)> fault = nullptr,
            std::function<void(std::function<void()>)> defer = nullptr)
      : id_(std::move(id)), clock_(clock), store_(store), options_(std::move(options)), fault_(std::move(fault)),
        defer_(std::move(defer)), fs_(clock) {}

  // Start opens the index and starts the engine (once, then after each power cut).
  absl::Status Start();
  // PowerCut: the index and the folder keep only what was durable; the engine starts again.
  absl::Status PowerCut();

  const std::string& id() const { return id_; }
  engine::MemFilesystem& fs() { return fs_; }
  engine::SyncEngine& engine() { return *engine_; }

 private:
  const std::string id_;
  Clock* const clock_;
  SimStore* const store_;
  const engine::EngineOptions options_;
  const std::function<Fault(const char*)> fault_;
  const std::function<void(std::function<void()>)> defer_;
  engine::MemFilesystem fs_;
  PowerCutEnv env_;  // under the engine's index
  std::unique_ptr<engine::LocalIndex> index_;
  std::unique_ptr<SimStoreClient> client_;
  std::unique_ptr<engine::SyncEngine> engine_;
};

}  // namespace converge::sim

#endif  // CONVERGE_TESTS_SIM_SIM_DEVICE_H_
