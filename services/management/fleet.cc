#include "services/management/fleet.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/conflict_name.h"
#include "common/path.h"
#include "common/status_macros.h"

namespace converge::management {

absl::StatusOr<std::vector<DeviceReport>> Fleet::Devices(const std::string& user_id, std::string* store_error) {
  CONVERGE_ASSIGN_OR_RETURN(std::vector<Device> devices, registry_->ListDevices(user_id));
  std::map<std::string, absl::StatusOr<NamespaceUsage>> usage;  // asked once per namespace
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
      for (const DeviceUsage& u : it->second->devices) {
        if (u.device_id != d.device_id) continue;
        r.namespaces.push_back(DevicePosition{ns, d.device_id, d.name, u.acked_seq, it->second->head_seq,
                                              u.lag_commits, u.lag_bytes, u.lag_seconds, u.evicted,
                                              u.pins_watermark, u.blocked_count, u.blocked});
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
  for (const DeviceUsage& u : r.usage.devices) {
    if (!names.count(u.device_id)) continue;  // a former member's cursor
    r.devices.push_back(DevicePosition{ns, u.device_id, names[u.device_id], u.acked_seq, r.usage.head_seq,
                                       u.lag_commits, u.lag_bytes, u.lag_seconds, u.evicted, u.pins_watermark,
                                       u.blocked_count, u.blocked});
  }
  return r;
}

namespace {

ConflictCopy Copy(const ConflictRecord& r) {
  ConflictCopy c{r.namespace_id, r.copy_path, r.original_path, r.device_id, "", r.seq, r.resolved,
                 r.resolved_at_unix_ms, r.resolved_by};
  if (std::optional<ConflictCopyName> name = ParseConflictName(r.copy_path)) c.detected_at = name->detected_at;
  return c;
}

}  // namespace

absl::StatusOr<std::vector<ConflictCopy>> Fleet::Conflicts(const std::string& ns, bool include_resolved) {
  std::vector<std::string> namespaces;
  if (ns.empty()) {
    CONVERGE_ASSIGN_OR_RETURN(std::vector<Namespace> all, registry_->ListNamespaces(""));
    for (const Namespace& n : all) namespaces.push_back(n.namespace_id);
  } else {
    CONVERGE_RETURN_IF_ERROR(registry_->GetNamespace(ns).status());
    namespaces.push_back(ns);
  }
  std::vector<ConflictCopy> out;
  for (const std::string& n : namespaces) {
    absl::StatusOr<std::vector<ConflictRecord>> records = store_->ListConflicts(n, include_resolved);
    if (records.ok()) {
      for (const ConflictRecord& r : *records) out.push_back(Copy(r));
      continue;
    }
    if (!absl::IsUnimplemented(records.status())) return records.status();
    // A store from before conflict records: the live conflict copies, by name.
    CONVERGE_ASSIGN_OR_RETURN(NamespaceUsage usage, store_->Usage(n));
    for (const std::string& path : usage.conflict_paths) {
      std::optional<ConflictCopyName> c = ParseConflictName(path);
      if (!c.has_value()) continue;
      out.push_back(ConflictCopy{n, path, c->original_path, c->device, c->detected_at});
    }
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const ConflictCopy& a, const ConflictCopy& b) { return a.detected_at < b.detected_at; });
  return out;
}

absl::StatusOr<ConflictCopy> Fleet::ResolveConflict(const std::string& ns, const std::string& copy_path) {
  CONVERGE_RETURN_IF_ERROR(registry_->GetNamespace(ns).status());
  CONVERGE_ASSIGN_OR_RETURN(ConflictRecord r, store_->ResolveConflict(ns, copy_path));
  return Copy(r);
}

absl::StatusOr<CompactionSummary> Fleet::Compact(const std::string& ns) {
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

absl::StatusOr<std::vector<PendingDelete>> Fleet::PendingDeletes(const std::string& ns, bool include_resolved) {
  std::vector<std::string> namespaces;
  if (ns.empty()) {
    CONVERGE_ASSIGN_OR_RETURN(std::vector<Namespace> all, registry_->ListNamespaces(""));
    for (const Namespace& n : all) namespaces.push_back(n.namespace_id);
  } else {
    CONVERGE_RETURN_IF_ERROR(registry_->GetNamespace(ns).status());
    namespaces.push_back(ns);
  }
  std::vector<PendingDelete> out;
  for (const std::string& n : namespaces) {
    CONVERGE_ASSIGN_OR_RETURN(std::vector<PendingDelete> held, store_->ListHeldDeletes(n));
    for (PendingDelete& p : held) {
      if (include_resolved || p.state == "pending") out.push_back(std::move(p));
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const PendingDelete& a, const PendingDelete& b) {
    return a.created_at_unix_ms < b.created_at_unix_ms;
  });
  return out;
}

absl::StatusOr<PendingDelete> Fleet::ResolvePendingDelete(const std::string& ns, const std::string& id, bool approve) {
  CONVERGE_RETURN_IF_ERROR(registry_->GetNamespace(ns).status());
  return store_->ResolveHeldDelete(ns, id, approve);
}

}  // namespace converge::management
