// NamespacePlacement: the namespaces an online move put on another shard than their owner's,
// in etcd and followed by every management replica:
//
//   /converge/placement/<namespace> = "<shard index>"
//
// A ShardMap: a placed namespace's shard, else what the registry says (its owner's shard). A
// move writes the key at its switch (namespace_mover.h); every replica's watch sees it within
// milliseconds, and GetEndpoints names the new shard from then on.
#ifndef CONVERGE_SERVICES_MANAGEMENT_NAMESPACE_PLACEMENT_H_
#define CONVERGE_SERVICES_MANAGEMENT_NAMESPACE_PLACEMENT_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "services/coord/etcd_client.h"
#include "services/coord/service_directory.h"
#include "services/management/registry.h"

namespace converge::management {

inline constexpr char kPlacementPrefix[] = "/converge/placement/";
inline constexpr char kDrainedPrefix[] = "/converge/drained/";

class NamespacePlacement : public ShardMap {
 public:
  // Start reads the placements and follows them. `fallback` (the registry) answers for the rest;
  // not owned.
  static absl::StatusOr<std::unique_ptr<NamespacePlacement>> Start(std::shared_ptr<coord::EtcdClient> etcd,
                                                                   ShardMap* fallback);

  absl::StatusOr<uint32_t> ShardOfUser(const std::string& user_id) override { return fallback_->ShardOfUser(user_id); }
  absl::StatusOr<uint32_t> ShardOfNamespace(const std::string& ns) override;

  // Place puts `ns` on `shard` for every replica (an etcd write, taken here at once).
  absl::Status Place(const std::string& ns, uint32_t shard);
  // How many namespaces are placed on each shard by a move.
  absl::flat_hash_map<std::string, uint32_t> placed();

  // Drained shards (/converge/drained/<index>): they take no new users.
  absl::Status SetDrained(uint32_t shard);
  bool drained(uint32_t shard);

 private:
  NamespacePlacement(std::shared_ptr<coord::EtcdClient> etcd, ShardMap* fallback)
      : etcd_(std::move(etcd)), fallback_(fallback) {}
  void Follow(const coord::Roster::Members& members);

  const std::shared_ptr<coord::EtcdClient> etcd_;
  ShardMap* const fallback_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, uint32_t> placed_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<uint32_t> drained_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<coord::Roster> roster_;
  std::unique_ptr<coord::Roster> drained_roster_;
};

}  // namespace converge::management

#endif  // CONVERGE_SERVICES_MANAGEMENT_NAMESPACE_PLACEMENT_H_
