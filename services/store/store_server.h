// StoreServer: everything converge-store runs, wired together; used by main.cc, the all-in-one
// server and tests.
#ifndef CONVERGE_SERVICES_STORE_STORE_SERVER_H_
#define CONVERGE_SERVICES_STORE_STORE_SERVER_H_

#include <memory>
#include <string>

#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "services/store/chunk_store.h"
#include "services/store/commit_log.h"
#include "services/store/namespace_transfer.h"
#include "services/store/publisher.h"
#include "services/store/store_db.h"
#include "services/store/store_service.h"

namespace converge::store {

class FanoutPublisher;

// Compaction and garbage collection (commit_log.h Compact, CollectGarbage).
struct CompactionOptions {
  absl::Duration history_retention = kDefaultHistoryRetention;
  absl::Duration interval = absl::Minutes(10);  // 0: only when asked (the Compact RPC)
  absl::Duration chunk_grace = absl::Hours(1);
};

struct StoreOptions {
  std::string data_dir;
  std::string notify_address;  // empty: no notifications
  std::string service_token;  // sent to notify over plaintext
  // Who may call (devices by token, services by certificate or token); see common/security/auth.h.
  AuthOptions auth;
  // How the store calls converge-notify (null: plaintext).
  std::shared_ptr<grpc::ChannelCredentials> client_credentials;
  // When set, commits are published here instead of to notify_address (the all-in-one server
  // hands in its notification hub). Not owned.
  Publisher* publisher = nullptr;
  MassDeletePolicy mass_delete;
  CallLimiter::Limits per_device = kDefaultDeviceLimits;
  CompactionOptions compaction;
};

// DeviceLimitsFromFlags: --max_calls_per_device and --max_call_rate_per_device (converge-store
// and converge-server).
CallLimiter::Limits DeviceLimitsFromFlags();

// MassDeletePolicyFromFlags: --mass_delete_min_files and --mass_delete_share (converge-store
// and converge-server).
MassDeletePolicy MassDeletePolicyFromFlags();

// CompactionOptionsFromFlags: --history_retention, --compact_interval and --chunk_grace.
CompactionOptions CompactionOptionsFromFlags();

class StoreServer {
 public:
  static absl::StatusOr<std::unique_ptr<StoreServer>> Create(const StoreOptions& options);
  ~StoreServer();

  StoreService* service() { return service_.get(); }
  CommitLog* log() { return log_.get(); }
  ChunkStore* chunks() { return chunks_.get(); }
  StoreDb* db() { return db_.get(); }
  // The notify replicas it publishes to (null when StoreOptions gave a publisher).
  FanoutPublisher* fanout() { return fanout_; }

 private:
  StoreServer() = default;
  void CompactEvery(const CompactionOptions& options);
  std::unique_ptr<StoreDb> db_;
  std::unique_ptr<ChunkStore> chunks_;
  std::unique_ptr<CommitLog> log_;
  std::unique_ptr<Publisher> own_publisher_;
  FanoutPublisher* fanout_ = nullptr;  // own_publisher_, when the store made it
  std::unique_ptr<RegistryArea> registry_;
  std::unique_ptr<NamespaceTransfer> transfer_;
  std::unique_ptr<StoreService> service_;
  absl::Notification stop_;
  std::thread compactor_;  // joined first by the destructor
};

}  // namespace converge::store

#endif  // CONVERGE_SERVICES_STORE_STORE_SERVER_H_
