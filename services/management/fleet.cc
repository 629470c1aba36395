#include "services/management/fleet.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/model/conflict_name.h"
#include "common/model/path.h"

namespace converge::management {

absl::StatusOr<std::vector<DeviceReport>> Fleet::Devices(const std::string& user_id, std::string* store_error) {
  CONVERGE_ASSIGN_OR_RETURN(std::vector<Device> devices, registry_->ListDevices(user_id));
  std::map<std::string, absl::StatusOr<NamespaceStats>> usage;  // asked once per namespace
  std::vector<DeviceReport> out;
  for (const Device& d : devices) {
    DeviceReport r;
    r.device = d;
    CONVERGE_ASSIGN_OR_RETURN(std::vector<std::string> namespaces, registry_->NamespacesOf(d.device_id));
    for (const std::string& ns : namespaces) {
      auto it = usage.find(ns);
      if (it == usage.end()) it = usage.emplace(ns, store_->Usage(ns)).first;
      if (!it->second.ok()) {
        if (store_error->empty()) *store_error = it->second.status().ToString();
        continue;
      }
      for (const DeviceCursor& u : it->second->devices) {
        if (u.device_id != d.device_id) continue;
        r.namespaces.push_back(DevicePosition{ns, d.name, it->second->head_seq, u});
        if (u.last_seen_unix_ms > r.last_seen_unix_ms) {
          r.last_seen_unix_ms = u.last_seen_unix_ms;
          if (!u.software_version.empty()) r.software_version = u.software_version;
        }
      }
    }
    out.push_back(std::move(r));
  }
  return out;
}

absl::StatusOr<DeviceReport> Fleet::GetDevice(const std::string& device_id, std::string* store_error) {
  CONVERGE_RETURN_IF_ERROR(ValidateId("device id", device_id));
  CONVERGE_ASSIGN_OR_RETURN(Device device, registry_->GetDevice(device_id));
  CONVERGE_ASSIGN_OR_RETURN(std::vector<DeviceReport> all, Devices(device.user_id, store_error));
  for (DeviceReport& r : all) {
    if (r.device.device_id == device_id) return std::move(r);
  }
  return absl::NotFoundError(absl::StrCat("unknown device '", device_id, "'"));
}

absl::StatusOr<NamespaceReport> Fleet::NamespaceStatus(const std::string& ns) {
  NamespaceReport r;
  CONVERGE_ASSIGN_OR_RETURN(r.ns, registry_->GetNamespace(ns));
  CONVERGE_ASSIGN_OR_RETURN(r.usage, store_->Usage(ns));
  CONVERGE_ASSIGN_OR_RETURN(std::vector<Device> members, registry_->ListMembers(ns));
  std::map<std::string, std::string> names;
  for (const Device& d : members) names[d.device_id] = d.name;
  for (const DeviceCursor& u : r.usage.devices) {
    if (!names.count(u.device_id)) continue;  // a former member's cursor
    r.devices.push_back(DevicePosition{ns, names[u.device_id], r.usage.head_seq, u});
  }
  return r;
}

namespace {

// DetectedAt: the time in a conflict copy's name ("20261127T101500Z"; "" if it has none).
std::string DetectedAt(const ConflictRecord& r) {
  std::optional<ConflictCopyName> name = ParseConflictName(r.copy_path);
  return name.has_value() ? name->detected_at : "";
}

}  // namespace

absl::StatusOr<std::vector<ConflictRecord>> Fleet::Conflicts(const std::string& ns, bool include_resolved) {
  std::vector<std::string> namespaces;
  if (ns.empty()) {
    CONVERGE_ASSIGN_OR_RETURN(std::vector<Namespace> all, registry_->ListNamespaces(""));
    for (const Namespace& n : all) namespaces.push_back(n.namespace_id);
  } else {
    CONVERGE_RETURN_IF_ERROR(registry_->GetNamespace(ns).status());
    namespaces.push_back(ns);
  }
  std::vector<ConflictRecord> out;
  for (const std::string& n : namespaces) {
    CONVERGE_ASSIGN_OR_RETURN(std::vector<ConflictRecord> records, store_->ListConflicts(n, include_resolved));
    for (ConflictRecord& r : records) out.push_back(std::move(r));
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const ConflictRecord& a, const ConflictRecord& b) { return DetectedAt(a) < DetectedAt(b); });
  return out;
}

absl::StatusOr<ConflictRecord> Fleet::ResolveConflict(const std::string& ns, const std::string& copy_path) {
  CONVERGE_RETURN_IF_ERROR(registry_->GetNamespace(ns).status());
  return store_->ResolveConflict(ns, copy_path);
}

absl::StatusOr<CompactionResult> Fleet::Compact(const std::string& ns) {
  CONVERGE_RETURN_IF_ERROR(registry_->GetNamespace(ns).status());
  return store_->Compact(ns);
}

absl::Status Fleet::Evict(const std::string& ns, const std::string& device_id) {
  CONVERGE_RETURN_IF_ERROR(registry_->GetNamespace(ns).status());
  CONVERGE_ASSIGN_OR_RETURN(std::vector<Device> members, registry_->ListMembers(ns));
  for (const Device& d : members) {
    if (d.device_id == device_id) return store_->Evict(ns, device_id);
  }
  return absl::NotFoundError(absl::StrCat("device '", device_id, "' is not a member of '", ns, "'"));
}

absl::StatusOr<std::vector<HeldDelete>> Fleet::PendingDeletes(const std::string& ns, bool include_resolved) {
  std::vector<std::string> namespaces;
  if (ns.empty()) {
    CONVERGE_ASSIGN_OR_RETURN(std::vector<Namespace> all, registry_->ListNamespaces(""));
    for (const Namespace& n : all) namespaces.push_back(n.namespace_id);
  } else {
    CONVERGE_RETURN_IF_ERROR(registry_->GetNamespace(ns).status());
    namespaces.push_back(ns);
  }
  std::vector<HeldDelete> out;
  for (const std::string& n : namespaces) {
    CONVERGE_ASSIGN_OR_RETURN(std::vector<HeldDelete> held, store_->ListHeldDeletes(n));
    for (HeldDelete& p : held) {
      if (include_resolved || p.state == HeldDelete::State::kPending) out.push_back(std::move(p));
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const HeldDelete& a, const HeldDelete& b) {
    return a.created_at_unix_ms < b.created_at_unix_ms;
  });
  return out;
}

absl::StatusOr<HeldDelete> Fleet::ResolvePendingDelete(const std::string& ns, const std::string& id, bool approve) {
  CONVERGE_RETURN_IF_ERROR(registry_->GetNamespace(ns).status());
  return store_->ResolveHeldDelete(ns, id, approve);
}

absl::StatusOr<std::vector<Device>> Fleet::Members(const std::string& ns, const std::string& asking_device) {
  CONVERGE_ASSIGN_OR_RETURN(std::vector<Device> members, registry_->ListMembers(ns));
  const bool member = std::any_of(members.begin(), members.end(),
                                  [&](const Device& d) { return d.device_id == asking_device; });
  if (!asking_device.empty() && !member) {
    return absl::PermissionDeniedError("only the namespace's members may list them");
  }
  return members;
}

std::string Fleet::DeviceName(const std::string& device_id) {
  absl::StatusOr<Device> d = registry_->GetDevice(device_id);
  return d.ok() ? d->name : "";
}

}  // namespace converge::management
