#include "services/management/management_server.h"

#include "common/base/random_id.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "services/management/etcd_registry_kv.h"
#include "services/management/etcd_shard_map.h"
#include "services/management/registry_kv_client.h"

namespace converge::management {

namespace {

// A registry this replica kept under --data_dir before --registry_in_etcd: copied into etcd the
// first time (etcd empty), so that turning etcd on loses no user, device or namespace.
absl::Status ImportLocalRegistry(const std::string& data_dir, EtcdRegistryKv* etcd) {
  const std::string dir = data_dir + "/management.rocksdb";
  if (data_dir.empty() || !std::filesystem::exists(dir + "/CURRENT")) return absl::OkStatus();
  CONVERGE_ASSIGN_OR_RETURN(std::unique_ptr<LocalRegistryKv> local, LocalRegistryKv::Open(dir));
  CONVERGE_ASSIGN_OR_RETURN(size_t copied, ImportRegistry(local.get(), etcd));
  if (copied > 0) GetLogger("management")->info("copied {} registry records from {} into etcd", copied, dir);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<ManagementServer>> ManagementServer::Create(
    const ManagementOptions& options) {
  if (options.data_dir.empty() && !options.registry_in_store && options.registry_etcd == nullptr) {
    return absl::InvalidArgumentError("--data_dir (or --registry_in_store, or --registry_in_etcd) is required");
  }

  if (options.registry_in_store && options.endpoints.store_addresses.empty()) {
    return absl::InvalidArgumentError("--registry_in_store needs --store");
  }
  if (options.endpoints.store_addresses.empty() && options.data_plane == nullptr) {
    return absl::InvalidArgumentError("--store is required");
  }
  if (!options.data_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(options.data_dir, ec);
    if (ec) return absl::UnavailableError(absl::StrCat("create ", options.data_dir, ": ", ec.message()));
  }
  std::unique_ptr<ManagementServer> s(new ManagementServer());
  s->shards_ = std::make_unique<ShardList>(options.endpoints.store_addresses);
  if (options.registry_etcd != nullptr) {
    CONVERGE_ASSIGN_OR_RETURN(s->shard_map_, EtcdShardMap::Start(options.registry_etcd, s->shards_.get()));
  }
  DataPlane* data_plane = options.data_plane;
  if (data_plane == nullptr) {
    s->own_data_plane_ = std::make_unique<GrpcDataPlane>(s->shards_.get(),
                                                        options.endpoints.notification_address,
                                                        options.service_token, options.client_credentials);
    data_plane = s->own_data_plane_.get();
  }
  if (options.registry_etcd != nullptr) {
    auto kv = std::make_unique<EtcdRegistryKv>(options.registry_etcd);
    if (options.registry_in_store) {  // both: the registry moves from the first store shard to etcd
      RegistryKvClient on_store(options.endpoints.store_addresses[0], options.service_token,
                                options.client_credentials);
      CONVERGE_ASSIGN_OR_RETURN(size_t copied, ImportRegistry(&on_store, kv.get()));
      if (copied > 0) GetLogger("management")->info("copied {} registry records from the store into etcd", copied);
    } else {
      CONVERGE_RETURN_IF_ERROR(ImportLocalRegistry(options.data_dir, kv.get()));
    }
    CONVERGE_ASSIGN_OR_RETURN(s->registry_, Registry::Open(std::move(kv), data_plane, Clock::Real()));
  } else if (options.registry_in_store) {
    CONVERGE_ASSIGN_OR_RETURN(
        s->registry_, Registry::Open(std::make_unique<RegistryKvClient>(options.endpoints.store_addresses[0],
                                                                       options.service_token, options.client_credentials),
                                     data_plane, Clock::Real()));
  } else {
    CONVERGE_ASSIGN_OR_RETURN(s->registry_, Registry::Open(options.data_dir + "/management.rocksdb", data_plane, Clock::Real()));
  }
  ShardMap* shard_of = s->registry_.get();
  if (options.registry_etcd != nullptr) {
    CONVERGE_ASSIGN_OR_RETURN(s->placement_, NamespacePlacement::Start(options.registry_etcd, s->registry_.get()));
    shard_of = s->placement_.get();
    NamespacePlacement* placement = s->placement_.get();
    if (s->own_data_plane_ != nullptr) {
      s->own_data_plane_->set_accepts_users([placement](uint32_t shard) { return !placement->drained(shard); });
    }
    if (s->own_data_plane_ != nullptr) {
      s->mover_ = std::make_unique<NamespaceMover>(s->own_data_plane_.get(), s->placement_.get(),
                                                   options.registry_etcd.get());
      s->moves_ = std::make_unique<MoveJobs>(options.registry_etcd.get(), s->mover_.get(), s->placement_.get(),
                                             absl::StrCat("management-", RandomHex(6)));
    }
  }
  if (s->own_data_plane_ != nullptr) s->own_data_plane_->set_shard_map(shard_of);
  CONVERGE_RETURN_IF_ERROR(s->StartService(options, data_plane));
  return s;
}

absl::Status ManagementServer::StartService(const ManagementOptions& options, DataPlane* data_plane) {
  std::shared_ptr<const TokenSigner> signer;
  if (!options.token_signing_key.empty()) {
    CONVERGE_ASSIGN_OR_RETURN(signer, TokenSigner::FromPemFile(options.token_signing_key));
  }
  AuthOptions auth;
  auth.operator_token = options.token;
  auth.service_token = options.service_token;
  service_ = std::make_unique<ManagementService>(registry_.get(), data_plane, std::move(auth), std::move(signer),
                                                 options.device_token_ttl, options.endpoints);
  service_->set_shards(shards_.get(), shard_map_.get());
  service_->set_moves(moves_.get(), placement_.get());
  if (options.lag_sample_interval > absl::ZeroDuration()) {
    lag_ = std::make_unique<LagHistory>(registry_.get(), data_plane);
    lag_->Start(options.lag_sample_interval);
    service_->set_lag_history(lag_.get());
  }
  return absl::OkStatus();
}

}  // namespace converge::management
