// RegistryKvClient: the registry's records on the first store shard (RegistryRead/Write/Lock), so
// that several management replicas share one registry. Changes hold the store's registry lease
// (30 s, released at the end of each change); a replica waits up to 15 s for it.
#ifndef CONVERGE_SERVICES_MANAGEMENT_REGISTRY_KV_CLIENT_H_
#define CONVERGE_SERVICES_MANAGEMENT_REGISTRY_KV_CLIENT_H_

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "converge/store/v1/store.grpc.pb.h"
#include "services/management/registry_kv.h"

namespace converge::management {

class RegistryKvClient : public RegistryKv {
 public:
  // `credentials`: the service certificate (null: plaintext with `service_token`).
  RegistryKvClient(const std::string& store_address, std::string service_token,
                  std::shared_ptr<grpc::ChannelCredentials> credentials);

  absl::StatusOr<std::string> Get(const std::string& key) override;
  absl::Status Put(const std::string& key, const std::string& value) override;
  absl::Status Delete(const std::string& key) override;
  absl::Status Scan(const std::string& prefix, const ScanFn& fn) override;
  absl::StatusOr<Lease> Lock() override;

 private:
  std::unique_ptr<grpc::ClientContext> Ctx();

  std::unique_ptr<store::v1::StoreService::Stub> stub_;
  const std::string service_token_;
  const std::string holder_;  // this replica's name for the lease
};

}  // namespace converge::management

#endif  // CONVERGE_SERVICES_MANAGEMENT_REGISTRY_KV_CLIENT_H_
