// ManagementServer: what converge-management runs, wired together (main.cc, all-in-one, tests).
#ifndef CONVERGE_SERVICES_MANAGEMENT_MANAGEMENT_SERVER_H_
#define CONVERGE_SERVICES_MANAGEMENT_MANAGEMENT_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/management/data_plane_client.h"
#include "services/management/etcd_shard_map.h"
#include "services/management/lag_history.h"
#include "services/management/management_service.h"
#include "services/management/move_jobs.h"
#include "services/management/namespace_mover.h"
#include "services/management/namespace_placement.h"
#include "services/management/registry.h"
#include "services/management/shard_list.h"

namespace converge::coord {
class EtcdClient;
}  // namespace converge::coord

namespace converge::management {

struct ManagementOptions {
  std::string data_dir;
  std::string token;          // the operator credential
  std::string service_token;  // sent to the store and notify over plaintext; accepted from services
  // Signs device tokens (empty: no device tokens; engines must then use the operator token).
  std::string token_signing_key;
  absl::Duration device_token_ttl = absl::Minutes(10);
  // How often the console's lag charts are sampled (0: never; converge-management samples every
  // 15 s when it serves a console).
  absl::Duration lag_sample_interval = absl::ZeroDuration();
  // How management reaches the store and notify (null: plaintext).
  std::shared_ptr<grpc::ChannelCredentials> client_credentials;
  // Handed to engines; store_address is also where namespaces are registered unless `data_plane` is
  // set. Empty addresses tell engines to use the management address (all-in-one server).
  EndpointsConfig endpoints;
  // When set, namespaces are registered here instead of over gRPC. Not owned.
  DataPlane* data_plane = nullptr;
  // Keep the registry on the first store shard instead of under data_dir, so that several
  // management replicas can serve (--registry_in_store).
  bool registry_in_store = false;
  // When set, the registry lives in etcd instead (--registry_in_etcd with --etcd): replicas keep
  // no state of their own and serialise changes with an etcd lock. A registry kept before (under
  // data_dir, or on the store when registry_in_store is set too) is copied into an empty etcd.
  std::shared_ptr<coord::EtcdClient> registry_etcd;
};

class ManagementServer {
 public:
  static absl::StatusOr<std::unique_ptr<ManagementServer>> Create(const ManagementOptions& options);
  ManagementService* service() { return service_.get(); }
  Registry* registry() { return registry_.get(); }

 private:
  ManagementServer() = default;
  // StartService makes the gRPC service over what Create built (and, if asked, the lag samples).
  absl::Status StartService(const ManagementOptions& options, DataPlane* data_plane);
  std::unique_ptr<ShardList> shards_;          // the store shards, from --store (and etcd's map)
  std::unique_ptr<EtcdShardMap> shard_map_;    // with the registry in etcd: follows etcd's shard map
  std::unique_ptr<GrpcDataPlane> own_data_plane_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<NamespacePlacement> placement_;  // with etcd: namespaces moved off their owner's shard
  std::unique_ptr<NamespaceMover> mover_;
  std::unique_ptr<MoveJobs> moves_;  // run by whichever replica leads (etcd election)
  std::unique_ptr<LagHistory> lag_;
  std::unique_ptr<ManagementService> service_;
};

}  // namespace converge::management

#endif  // CONVERGE_SERVICES_MANAGEMENT_MANAGEMENT_SERVER_H_
