#include "services/management/management_server.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "services/management/store_registry_kv.h"

namespace converge::management {

absl::StatusOr<std::unique_ptr<ManagementServer>> ManagementServer::Create(
    const ManagementOptions& options) {
  if (options.data_dir.empty() && !options.registry_in_store) {
    return absl::InvalidArgumentError("--data_dir (or --registry_in_store) is required");
  }
  if (options.registry_in_store && options.endpoints.store_addresses.empty()) {
    return absl::InvalidArgumentError("--registry_in_store needs --store");
  }
  if (options.endpoints.store_addresses.empty() && options.sink == nullptr) {
    return absl::InvalidArgumentError("--store is required");
  }
  if (!options.data_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(options.data_dir, ec);
    if (ec) return absl::UnavailableError(absl::StrCat("create ", options.data_dir, ": ", ec.message()));
  }
  std::unique_ptr<ManagementServer> s(new ManagementServer());
  NamespaceSink* sink = options.sink;
  if (sink == nullptr) {
    s->own_sink_ = std::make_unique<StoreNamespaceSink>(options.endpoints.store_addresses,
                                                        options.endpoints.notification_address,
                                                        options.service_token, options.client_credentials);
    sink = s->own_sink_.get();
  }
  if (options.registry_in_store) {
    CONVERGE_ASSIGN_OR_RETURN(
        s->registry_, Registry::Open(std::make_unique<StoreRegistryKv>(options.endpoints.store_addresses[0],
                                                                       options.service_token, options.client_credentials),
                                     sink, Clock::Real()));
  } else {
    CONVERGE_ASSIGN_OR_RETURN(s->registry_, Registry::Open(options.data_dir + "/management.rocksdb", sink, Clock::Real()));
  }
  if (s->own_sink_ != nullptr) s->own_sink_->set_shard_map(s->registry_.get());
  std::shared_ptr<const TokenSigner> signer;
  if (!options.token_signing_key.empty()) {
    CONVERGE_ASSIGN_OR_RETURN(signer, TokenSigner::FromPemFile(options.token_signing_key));
  }
  AuthOptions auth;
  auth.operator_token = options.token;
  auth.service_token = options.service_token;
  s->service_ = std::make_unique<ManagementService>(s->registry_.get(), sink, std::move(auth), std::move(signer),
                                                    options.device_token_ttl, options.endpoints);
  return s;
}

}  // namespace converge::management
