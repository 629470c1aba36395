// Fleet: the operator's view of users' devices and namespaces, joining what management records
// (the registry) with what the store knows (cursors, last seen, lag, usage, conflict copies).
// Logic only; knows no gRPC.
//
// Thread-safe (the registry and the data_plane are).
#ifndef CONVERGE_SERVICES_MANAGEMENT_FLEET_H_
#define CONVERGE_SERVICES_MANAGEMENT_FLEET_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/management/registry.h"

namespace converge::management {

// A device's position in one namespace: the store's cursor, with the device's name and the
// namespace's head.
struct DevicePosition {
  std::string namespace_id;
  std::string device_name;
  uint64_t head_seq = 0;
  DeviceCursor cursor;
};

struct DeviceReport {
  Device device;
  int64_t last_seen_unix_ms = 0;
  std::string software_version;
  std::vector<DevicePosition> namespaces;
};

struct NamespaceReport {
  Namespace ns;
  NamespaceStats usage;
  std::vector<DevicePosition> devices;
};

class Fleet {
 public:
  Fleet(Registry* registry, DataPlane* store) : registry_(registry), store_(store) {}

  // Devices of one user (or all). When the store cannot be asked about a namespace, the
  // devices are still listed, without its view, and *store_error says why.
  absl::StatusOr<std::vector<DeviceReport>> Devices(const std::string& user_id, std::string* store_error);
  absl::StatusOr<DeviceReport> GetDevice(const std::string& device_id, std::string* store_error);
  absl::StatusOr<NamespaceReport> NamespaceStatus(const std::string& ns);
  // Conflicts in one namespace (or every namespace), ordered by the detection time in the
  // copies' names: the open ones the store recorded (resolved ones too if asked).
  absl::StatusOr<std::vector<ConflictRecord>> Conflicts(const std::string& ns, bool include_resolved = false);
  absl::StatusOr<ConflictRecord> ResolveConflict(const std::string& ns, const std::string& copy_path);
  absl::StatusOr<CompactionResult> Compact(const std::string& ns);
  // Evict: NotFound unless `device_id` is a member of `ns`.
  absl::Status Evict(const std::string& ns, const std::string& device_id);
  // Held mass deletes in one namespace (or all), oldest first; only pending ones unless
  // include_resolved.
  // Members lists namespace `ns`'s devices for `asking_device` ("" for an operator): a device
  // may list only the namespaces it is a member of (PermissionDenied otherwise).
  absl::StatusOr<std::vector<Device>> Members(const std::string& ns, const std::string& asking_device);
  // DeviceName: the name a device registered with (its id's owner knows it as "laptop"); "" for
  // a device the registry does not know.
  std::string DeviceName(const std::string& device_id);
  absl::StatusOr<std::vector<HeldDelete>> PendingDeletes(const std::string& ns, bool include_resolved);
  absl::StatusOr<HeldDelete> ResolvePendingDelete(const std::string& ns, const std::string& id, bool approve);

 private:
  Registry* const registry_;
  DataPlane* const store_;
};

}  // namespace converge::management

#endif  // CONVERGE_SERVICES_MANAGEMENT_FLEET_H_
