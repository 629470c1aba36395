// converge-server: management, store and notification in one process on one port, the embedded
// default for a single machine. The three talk through in-process adapters instead of gRPC;
// engines use this one address for everything. The separate binaries remain the way to deploy
// the services apart.
#include <string>

#include "absl/flags/flag.h"
#include "common/base/logging.h"
#include "common/base/memory_trim.h"
#include "common/rpc/service_main.h"
#include "services/management/management_server.h"
#include "services/notification/notification_server.h"
#include "services/store/store_server.h"

ABSL_FLAG(std::string, data_dir, "", "folder for all state (required)");
ABSL_FLAG(std::string, token, "", "the operators' bearer token (or $CONVERGE_TOKEN)");
ABSL_FLAG(std::string, token_signing_key, "",
          "PEM Ed25519 private key that signs device tokens (or $CONVERGE_TOKEN_SIGNING_KEY)");

namespace {

// Store -> notification hub, in process.
class HubPublisher : public converge::store::Publisher {
 public:
  explicit HubPublisher(converge::notification::Hub* hub) : hub_(hub) {}
  void Publish(const std::string& ns, uint64_t seq, int64_t committed_at_unix_micros) override {
    hub_->Publish(converge::notification::HeadEvent{ns, seq, committed_at_unix_micros});
  }

 private:
  converge::notification::Hub* hub_;
};

// Management -> the store's commit log and chunks and the notification server, in process.
class InProcessDataPlane : public converge::management::DataPlane {
 public:
  InProcessDataPlane(converge::store::CommitLog* log, converge::store::ChunkStore* chunks,
                     converge::notification::NotificationServer* notify)
      : log_(log), chunks_(chunks), notify_(notify) {}
  absl::Status RegisterNamespace(const std::string& ns, const std::string& owner,
                                 const std::vector<std::string>& members, bool encrypted) override {
    return log_->RegisterNamespace(ns, owner, members, encrypted);
  }
  absl::StatusOr<uint64_t> SetQuota(const std::string& user, uint64_t bytes) override {
    return chunks_->SetQuota(user, bytes);
  }
  absl::Status RevokeDevices(const std::vector<std::string>& devices, absl::Time until) override {
    notify_->RevokeDevices(devices, until);
    return absl::OkStatus();
  }
  absl::StatusOr<converge::NamespaceStats> Usage(const std::string& ns) override { return log_->Stats(ns); }
  absl::StatusOr<std::vector<converge::ConflictRecord>> ListConflicts(const std::string& ns,
                                                                      bool include_resolved) override {
    return log_->ListConflicts(ns, include_resolved);
  }
  absl::StatusOr<converge::ConflictRecord> ResolveConflict(const std::string& ns,
                                                           const std::string& copy_path) override {
    return log_->ResolveConflict(ns, copy_path, "operator");
  }
  absl::StatusOr<converge::CompactionResult> Compact(const std::string& ns) override {
    absl::StatusOr<converge::CompactionResult> r = log_->Compact(ns, retention_);
    if (!r.ok()) return r.status();
    absl::StatusOr<converge::store::ChunkStore::SweepResult> swept = log_->CollectGarbage(chunk_grace_);
    if (!swept.ok()) return swept.status();
    r->chunks_dropped = swept->chunks_dropped;
    r->bytes_dropped = swept->bytes_dropped;
    return r;
  }
  absl::Status Evict(const std::string& ns, const std::string& device_id) override { return log_->Evict(ns, device_id); }
  absl::StatusOr<std::vector<converge::HeldDelete>> ListHeldDeletes(const std::string& ns) override {
    return log_->ListHeld(ns);
  }
  absl::StatusOr<converge::HeldDelete> ResolveHeldDelete(const std::string& ns, const std::string& id,
                                                         bool approve) override {
    return log_->ResolveHeld(ns, id, approve);
  }
  uint32_t shard_count() const override { return 1; }
  void set_compaction(absl::Duration retention, absl::Duration chunk_grace) {
    retention_ = retention;
    chunk_grace_ = chunk_grace;
  }

 private:
  converge::store::CommitLog* log_;
  converge::store::ChunkStore* chunks_;
  converge::notification::NotificationServer* notify_;
  absl::Duration retention_ = converge::store::kDefaultHistoryRetention;
  absl::Duration chunk_grace_ = absl::Hours(1);
};

}  // namespace

int main(int argc, char** argv) {
  converge::InitService(argc, argv);
  auto log = converge::GetLogger("converge-server");
  const std::string data_dir = absl::GetFlag(FLAGS_data_dir);
  if (data_dir.empty()) {
    log->error("--data_dir is required");
    return 2;
  }
  const std::string service_token = converge::ServiceToken();
  absl::StatusOr<converge::AuthOptions> auth = converge::ServiceAuthFromFlags("");
  if (!auth.ok()) {
    log->error("cannot start: {}", auth.status().ToString());
    return 2;
  }
  converge::notification::NotificationServer notify(converge::notification::OptionsFromFlags(*auth));
  HubPublisher publisher(notify.hub());

  converge::store::StoreOptions store_options;
  store_options.data_dir = data_dir + "/store";
  store_options.service_token = service_token;
  store_options.auth = *auth;
  store_options.publisher = &publisher;
  store_options.mass_delete = converge::store::MassDeletePolicyFromFlags();
  store_options.per_device = converge::store::DeviceLimitsFromFlags();
  store_options.compaction = converge::store::CompactionOptionsFromFlags();
  auto store = converge::store::StoreServer::Create(store_options);
  if (!store.ok()) {
    log->error("cannot start the store: {}", store.status().ToString());
    return 1;
  }
  (*store)->db()->ExportMetrics();
  InProcessDataPlane data_plane((*store)->log(), (*store)->chunks(), &notify);
  data_plane.set_compaction(store_options.compaction.history_retention, store_options.compaction.chunk_grace);

  converge::management::ManagementOptions management_options;
  management_options.data_dir = data_dir + "/management";
  management_options.token = converge::FlagOrEnv(absl::GetFlag(FLAGS_token), "CONVERGE_TOKEN");
  management_options.service_token = service_token;
  management_options.token_signing_key =
      converge::FlagOrEnv(absl::GetFlag(FLAGS_token_signing_key), "CONVERGE_TOKEN_SIGNING_KEY");
  management_options.data_plane = &data_plane;  // endpoints stay empty: engines use this server's address
  auto management = converge::management::ManagementServer::Create(management_options);
  if (!management.ok()) {
    log->error("cannot start management: {}", management.status().ToString());
    return 1;
  }
  converge::MemoryTrimmer trim(absl::Seconds(10), converge::kHeapTrimThreshold);
  return converge::ServeUntilSignal(
      "converge-server", {(*management)->service(), (*store)->service(), notify.service()});
}
