// Fleet: the operator's view of users' devices and namespaces, joining what management records
// (the registry) with what the store knows (cursors, last seen, lag, usage, conflict copies).
// Logic only; knows no gRPC.
//
// Thread-safe (the registry and the sink are).
#ifndef CONVERGE_SERVICES_MANAGEMENT_FLEET_H_
#define CONVERGE_SERVICES_MANAGEMENT_FLEET_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/management/registry.h"

namespace converge::management {

// A device's position in one namespace.
struct DevicePosition {
  std::string namespace_id;
  std::string device_id;
  std::string device_name;
  uint64_t acked_seq = 0;
  uint64_t head_seq = 0;
  uint64_t lag_commits = 0;
  uint64_t lag_bytes = 0;
  double lag_seconds = 0;
  bool evicted = false;
  bool pins_watermark = false;
  uint64_t blocked_count = 0;
  std::vector<std::string> blocked;
};

struct DeviceReport {
  Device device;
  int64_t last_seen_unix_ms = 0;
  std::string software_version;
  std::vector<DevicePosition> namespaces;
};

struct NamespaceReport {
  Namespace ns;
  NamespaceUsage usage;
  std::vector<DevicePosition> devices;
};

struct ConflictCopy {
  std::string namespace_id;
  std::string path;
  std::string original_path;
  std::string device;
  std::string detected_at;  // as in the name: 20261127T101500Z
  uint64_t seq = 0;          // the commit that made the copy (0: not known to the store)
  bool resolved = false;
  int64_t resolved_at_unix_ms = 0;
  std::string resolved_by;
};

class Fleet {
 public:
  Fleet(Registry* registry, NamespaceSink* store) : registry_(registry), store_(store) {}

  // Devices of one user (or all). When the store cannot be asked about a namespace, the
  // devices are still listed, without its view, and *store_error says why.
  absl::StatusOr<std::vector<DeviceReport>> Devices(const std::string& user_id, std::string* store_error);
  absl::StatusOr<DeviceReport> GetDevice(const std::string& device_id, std::string* store_error);
  absl::StatusOr<NamespaceReport> NamespaceStatus(const std::string& ns);
  // Conflicts in one namespace (or every namespace), ordered by detection time: the open ones
  // the store recorded (resolved ones too if asked).
  absl::StatusOr<std::vector<ConflictCopy>> Conflicts(const std::string& ns, bool include_resolved = false);
  absl::StatusOr<ConflictCopy> ResolveConflict(const std::string& ns, const std::string& copy_path);
  absl::StatusOr<CompactionSummary> Compact(const std::string& ns);
  // Evict: NotFound unless `device_id` is a member of `ns`.
  absl::Status Evict(const std::string& ns, const std::string& device_id);
  // Held mass deletes in one namespace (or all), oldest first; only pending ones unless
  // include_resolved.
  absl::StatusOr<std::vector<PendingDelete>> PendingDeletes(const std::string& ns, bool include_resolved);
  absl::StatusOr<PendingDelete> ResolvePendingDelete(const std::string& ns, const std::string& id, bool approve);

 private:
  Registry* const registry_;
  NamespaceSink* const store_;
};

}  // namespace converge::management

#endif  // CONVERGE_SERVICES_MANAGEMENT_FLEET_H_
