// DeviceNames: the names the devices of this engine's namespace registered with ("laptop"), asked
// of converge-management (ListMembers, which a member device may call) and kept: the engine's
// history and conflict listings show them beside the device ids. An id not known yet makes one
// new ask, at most every kRefreshInterval; management out of reach leaves names unknown ("").
//
//   DeviceNames names(management_stub, "ns1");
//   std::string who = names.NameOf("dev-a6e0d83b8e6adf2e");  // "laptop", or "" if unknown
//
// Thread-safe.
#ifndef CONVERGE_ENGINE_CLIENT_DEVICE_NAMES_H_
#define CONVERGE_ENGINE_CLIENT_DEVICE_NAMES_H_

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "converge/management/v1/management.grpc.pb.h"

namespace converge::engine {

class DeviceNames {
 public:
  static constexpr absl::Duration kRefreshInterval = absl::Seconds(30);

  DeviceNames(management::v1::ManagementService::StubInterface* management, std::string namespace_id)
      : management_(management), namespace_id_(std::move(namespace_id)) {}

  std::string NameOf(const std::string& device_id);

 private:
  void RefreshLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  management::v1::ManagementService::StubInterface* const management_;
  const std::string namespace_id_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::string> names_ ABSL_GUARDED_BY(mu_);
  absl::Time last_asked_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_CLIENT_DEVICE_NAMES_H_
