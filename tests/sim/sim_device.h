// SimDevice: one simulated device: a real SyncEngine with its RocksDB index on a power-cut
// filesystem, its folder in memory (MemFilesystem), talking to a SimStore through a
// SimStoreClient (in an end-to-end encrypted namespace: through an EncryptingStoreClient and its
// LogGuard, whose head file is a real one, kept across power cuts). PowerCut() loses what the machine had not made durable and starts the engine
// again on the rest, as a device that lost power and rebooted.
#ifndef CONVERGE_TESTS_SIM_SIM_DEVICE_H_
#define CONVERGE_TESTS_SIM_SIM_DEVICE_H_

#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <string>

#include "common/base/clock.h"
#include "common/crypto/device_keys.h"
#include "common/crypto/keyring.h"
#include "engine/keys/encrypting_store_client.h"
#include "engine/keys/key_directory_client.h"
#include "engine/keys/log_guard.h"
#include "engine/sync/local_index.h"
#include "engine/sync/sync_engine.h"
#include "tests/testing/mem_filesystem.h"
#include "tests/testing/power_cut_env.h"
#include "tests/testing/sim_store.h"

namespace converge::sim {

// SimMembers: management's key directory as log guards read it: every device granted.
class SimMembers : public engine::KeyDirectoryClient {
 public:
  void Add(const std::string& id, const crypto::DevicePublicKey& key) { keys_[id] = key.ToBytes(); }
  absl::StatusOr<engine::KeyListing> List() override;
  absl::StatusOr<engine::KeyRecord> Publish(const std::string&) override { return Unused(); }
  absl::Status Grant(const engine::KeyRecord&) override { return Unused(); }
  absl::StatusOr<engine::KeyRecord> Own() override { return Unused(); }
  absl::Status SetRecovery(const std::string&, const std::string&) override { return Unused(); }
  absl::StatusOr<std::string> GetRecovery() override { return Unused(); }

 private:
  static absl::Status Unused() { return absl::UnimplementedError("not in the simulation"); }
  std::map<std::string, std::string> keys_;
};

class SimDevice {
 public:
  // `fault` and `defer` are the network's (SimStoreClient); null: a perfect network.
  SimDevice(std::string id, Clock* clock, SimStore* store, engine::EngineOptions options,
            std::function<Fault(const char*)> fault = nullptr,
            std::function<void(std::function<void()>)> defer = nullptr)
      : id_(std::move(id)), clock_(clock), store_(store), options_(std::move(options)), fault_(std::move(fault)),
        defer_(std::move(defer)), fs_(clock) {}

  // Encrypt: from Start on, sync through `ring`, signing with a key pair of this device that
  // `members` lists; the verified head is kept in `head_file`. Call before Start.
  void Encrypt(const crypto::Keyring& ring, SimMembers* members, std::string head_file);

  // Start opens the index and starts the engine (once, then after each power cut).
  absl::Status Start();
  // PowerCut: the index and the folder keep only what was durable; the engine starts again.
  absl::Status PowerCut();

  const std::string& id() const { return id_; }
  engine::MemFilesystem& fs() { return fs_; }
  engine::SyncEngine& engine() { return *engine_; }
  // The encrypting client (null in a plain namespace).
  engine::EncryptingStoreClient* encrypting() { return encrypting_.get(); }

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
  std::optional<crypto::Keyring> ring_;
  std::optional<crypto::DeviceKeys> keys_;
  SimMembers* members_ = nullptr;
  std::string head_file_;
  std::unique_ptr<engine::LogGuard> guard_;
  std::unique_ptr<engine::EncryptingStoreClient> encrypting_;
  std::unique_ptr<engine::SyncEngine> engine_;
};

}  // namespace converge::sim

#endif  // CONVERGE_TESTS_SIM_SIM_DEVICE_H_
