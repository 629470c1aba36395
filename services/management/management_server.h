// ManagementServer: what converge-management runs, wired together (main.cc, all-in-one, tests).
#ifndef CONVERGE_SERVICES_MANAGEMENT_MANAGEMENT_SERVER_H_
#define CONVERGE_SERVICES_MANAGEMENT_MANAGEMENT_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "services/management/management_service.h"
#include "services/management/registry.h"
#include "services/management/store_sink.h"

namespace converge::management {

struct ManagementOptions {
  std::string data_dir;
  std::string token;          // guards every call
  std::string service_token;  // sent to the store
  // Handed to engines; store_address is also where namespaces are registered unless `sink` is
  // set. Empty addresses tell engines to use the management address (all-in-one server).
  EndpointsConfig endpoints;
  // When set, namespaces are registered here instead of over gRPC. Not owned.
  NamespaceSink* sink = nullptr;
};

class ManagementServer {
 public:
  static absl::StatusOr<std::unique_ptr<ManagementServer>> Create(const ManagementOptions& options);
  ManagementService* service() { return service_.get(); }
  Registry* registry() { return registry_.get(); }

 private:
  ManagementServer() = default;
  std::unique_ptr<StoreNamespaceSink> own_sink_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<ManagementService> service_;
};

}  // namespace converge::management

#endif  // CONVERGE_SERVICES_MANAGEMENT_MANAGEMENT_SERVER_H_
