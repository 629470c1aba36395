// StoreNamespaceSink: tells converge-store about namespaces and their members over gRPC.
#ifndef CONVERGE_SERVICES_MANAGEMENT_STORE_SINK_H_
#define CONVERGE_SERVICES_MANAGEMENT_STORE_SINK_H_

#include <memory>
#include <string>

#include "converge/store/v1/store.grpc.pb.h"
#include "services/management/registry.h"

namespace converge::management {

class StoreNamespaceSink : public NamespaceSink {
 public:
  StoreNamespaceSink(const std::string& store_address, std::string service_token);
  // Returns the store's status (Unavailable if it cannot be reached within 5 s).
  absl::Status RegisterNamespace(const std::string& ns,
                                 const std::vector<std::string>& member_device_ids) override;
  absl::StatusOr<NamespaceUsage> Usage(const std::string& ns) override;
  absl::StatusOr<std::vector<PendingDelete>> ListHeldDeletes(const std::string& ns) override;
  absl::StatusOr<PendingDelete> ResolveHeldDelete(const std::string& ns, const std::string& id, bool approve) override;

 private:
  std::unique_ptr<store::v1::StoreService::Stub> stub_;
  const std::string service_token_;
};

}  // namespace converge::management

#endif  // CONVERGE_SERVICES_MANAGEMENT_STORE_SINK_H_
