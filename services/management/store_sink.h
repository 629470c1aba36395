// StoreNamespaceSink: tells converge-store about namespaces and their members over gRPC.
#ifndef CONVERGE_SERVICES_MANAGEMENT_STORE_SINK_H_
#define CONVERGE_SERVICES_MANAGEMENT_STORE_SINK_H_

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "converge/notification/v1/notification.grpc.pb.h"
#include "converge/store/v1/store.grpc.pb.h"
#include "services/management/registry.h"

namespace converge::management {

class StoreNamespaceSink : public NamespaceSink {
 public:
  // `credentials`: how management reaches the store and notify (null: plaintext). An empty
  // `notify_address` tells no notification service about revocations.
  StoreNamespaceSink(const std::string& store_address, const std::string& notify_address, std::string service_token,
                     std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr);
  // Returns the store's status (Unavailable if it cannot be reached within 5 s).
  absl::Status RegisterNamespace(const std::string& ns, const std::string& owner_user_id,
                                 const std::vector<std::string>& member_device_ids) override;
  absl::StatusOr<uint64_t> SetQuota(const std::string& user_id, uint64_t quota_bytes) override;
  absl::Status RevokeDevices(const std::vector<std::string>& device_ids, absl::Time until) override;
  absl::StatusOr<NamespaceUsage> Usage(const std::string& ns) override;
  absl::StatusOr<std::vector<PendingDelete>> ListHeldDeletes(const std::string& ns) override;
  absl::StatusOr<PendingDelete> ResolveHeldDelete(const std::string& ns, const std::string& id, bool approve) override;

 private:
  std::unique_ptr<store::v1::StoreService::Stub> stub_;
  std::unique_ptr<notification::v1::NotificationService::Stub> notify_;
  const std::string service_token_;
};

}  // namespace converge::management

#endif  // CONVERGE_SERVICES_MANAGEMENT_STORE_SINK_H_
