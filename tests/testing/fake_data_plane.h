// FakeDataPlane: management's DataPlane as tables in memory. It records what management tells
// it (members, owners, quotas, revocations) and answers from canned usage, held deletes and
// conflicts. `next_status`, when set, fails the calls that tell; `down` fails the ones that ask.
#ifndef CONVERGE_TESTS_TESTING_FAKE_DATA_PLANE_H_
#define CONVERGE_TESTS_TESTING_FAKE_DATA_PLANE_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/model/namespace_state.h"
#include "services/management/registry.h"

namespace converge::management {

class FakeDataPlane : public DataPlane {
 public:
  absl::Status RegisterNamespace(const std::string& ns, const std::string& owner,
                                 const std::vector<std::string>& members, bool is_encrypted) override {
    if (!next_status.ok()) return next_status;
    told[ns] = members;
    owners[ns] = owner;
    encrypted[ns] = is_encrypted;
    return absl::OkStatus();
  }
  absl::StatusOr<uint64_t> SetQuota(const std::string& user, uint64_t bytes) override {
    if (!next_status.ok()) return next_status;
    quotas[user] = bytes;
    return 0;
  }
  absl::Status RevokeDevices(const std::vector<std::string>& devices, absl::Time) override {
    revoked.insert(revoked.end(), devices.begin(), devices.end());
    return absl::OkStatus();
  }
  absl::StatusOr<NamespaceStats> Usage(const std::string& ns) override {
    if (down) return absl::UnavailableError("store down");
    return usage[ns];
  }
  absl::StatusOr<std::vector<HeldDelete>> ListHeldDeletes(const std::string& ns) override {
    if (down) return absl::UnavailableError("store down");
    return held[ns];
  }
  absl::StatusOr<HeldDelete> ResolveHeldDelete(const std::string& ns, const std::string& id, bool approve) override {
    for (HeldDelete& h : held[ns]) {
      if (h.id != id) continue;
      h.state = approve ? HeldDelete::State::kApproved : HeldDelete::State::kRejected;
      return h;
    }
    return absl::NotFoundError(id);
  }
  absl::StatusOr<std::vector<ConflictRecord>> ListConflicts(const std::string& ns, bool include_resolved) override {
    if (down) return absl::UnavailableError("store down");
    std::vector<ConflictRecord> out;
    for (const ConflictRecord& c : conflicts[ns]) {
      if (include_resolved || !c.resolved) out.push_back(c);
    }
    return out;
  }
  absl::StatusOr<ConflictRecord> ResolveConflict(const std::string& ns, const std::string& copy_path) override {
    for (ConflictRecord& c : conflicts[ns]) {
      if (c.copy_path != copy_path) continue;
      c.resolved = true;
      c.resolved_by = "operator";
      return c;
    }
    return absl::NotFoundError(copy_path);
  }
  absl::StatusOr<CompactionResult> Compact(const std::string& ns) override {
    if (down) return absl::UnavailableError("store down");
    compacted.push_back(ns);
    return CompactionResult{};
  }
  absl::Status Evict(const std::string& ns, const std::string& device_id) override {
    evicted[ns].push_back(device_id);
    return absl::OkStatus();
  }
  uint32_t shard_count() const override { return 1; }

  absl::Status next_status;
  bool down = false;
  std::map<std::string, std::vector<std::string>> told;  // namespace -> members
  std::map<std::string, std::string> owners;
  std::map<std::string, bool> encrypted;
  std::map<std::string, uint64_t> quotas;
  std::vector<std::string> revoked;
  std::map<std::string, NamespaceStats> usage;
  std::map<std::string, std::vector<HeldDelete>> held;
  std::map<std::string, std::vector<ConflictRecord>> conflicts;
  std::vector<std::string> compacted;
  std::map<std::string, std::vector<std::string>> evicted;
};

}  // namespace converge::management

#endif  // CONVERGE_TESTS_TESTING_FAKE_DATA_PLANE_H_
