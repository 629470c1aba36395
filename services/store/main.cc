// converge-store: chunk store, commit logs, file tables and cursors over RocksDB.
#include <string>

#include "absl/flags/flag.h"
#include "common/base/logging.h"
#include "common/base/memory_trim.h"
#include "common/rpc/service_main.h"
#include "services/coord/etcd_flags.h"
#include "services/store/notify_client.h"
#include "services/store/store_server.h"

ABSL_FLAG(std::string, data_dir, "", "folder for the store's RocksDB (required)");
ABSL_FLAG(std::string, notify, "",
          "converge-notify to publish to (empty: none); several replicas: comma-separated host:port, or "
          "all:NAME:PORT for every address NAME resolves to (re-resolved every 10 s); with --etcd, also every "
          "replica announced there");

int main(int argc, char** argv) {
  converge::InitService(argc, argv);
  converge::store::StoreOptions options;
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  options.notify_address = absl::GetFlag(FLAGS_notify);
  options.service_token = converge::ServiceToken();
  auto log = converge::GetLogger("converge-store");
  absl::StatusOr<converge::AuthOptions> auth = converge::ServiceAuthFromFlags("");
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds = converge::ServiceChannelCredentials();
  if (!auth.ok() || !creds.ok()) {
    log->error("cannot start: {}", (!auth.ok() ? auth.status() : creds.status()).ToString());
    return 1;
  }
  options.auth = *auth;
  options.client_credentials = *creds;
  options.mass_delete = converge::store::MassDeletePolicyFromFlags();
  options.per_device = converge::store::DeviceLimitsFromFlags();
  options.compaction = converge::store::CompactionOptionsFromFlags();
  auto store = converge::store::StoreServer::Create(options);
  if (!store.ok()) {
    converge::GetLogger("converge-store")->error("cannot start: {}", store.status().ToString());
    return 1;
  }
  (*store)->db()->ExportMetrics();
  absl::StatusOr<std::unique_ptr<converge::coord::EtcdClient>> etcd = converge::coord::EtcdFromFlags();
  if (!etcd.ok()) {
    log->error("cannot start: {}", etcd.status().ToString());
    return 1;
  }
  std::unique_ptr<converge::coord::Roster> notify_replicas;
  if (*etcd != nullptr && (*store)->fanout() != nullptr) {
    converge::store::FanoutPublisher* fanout = (*store)->fanout();
    notify_replicas = converge::coord::Roster::Follow(etcd->get(), converge::coord::ServicePrefix("notify"),
                                                      [fanout](const converge::coord::Roster::Members& members) {
                                                        fanout->Follow(converge::coord::Addresses(members));
                                                      });
  }
  converge::MemoryTrimmer trim(absl::Seconds(10), converge::kHeapTrimThreshold);
  return converge::ServeUntilSignal("converge-store", {(*store)->service()}, [&](int port, grpc::Server*) -> std::shared_ptr<void> {
    return converge::coord::AnnounceFromFlags(etcd->get(), "store", port);
  });
}
