// EtcdShardMap: the store shards listed in etcd, the one list every management replica follows:
//
//   /converge/shards/000000 = "store-0.store:7002", /converge/shards/000001 = ...
//
// Start seeds it from --store (an index etcd lacks is created, one it holds at another address is
// an error: shards are never renamed or reordered) and then follows it with a watch: a shard any
// replica appends (AddShard, a transaction that creates the next index only if absent) is
// appended to every replica's ShardList, and new users fill the emptiest shard from then on.
#ifndef CONVERGE_SERVICES_MANAGEMENT_ETCD_SHARD_MAP_H_
#define CONVERGE_SERVICES_MANAGEMENT_ETCD_SHARD_MAP_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "services/coord/etcd_client.h"
#include "services/coord/service_directory.h"
#include "services/management/shard_list.h"

namespace converge::management {

class EtcdShardMap : public ShardDirectory {
 public:
  static absl::StatusOr<std::unique_ptr<EtcdShardMap>> Start(std::shared_ptr<coord::EtcdClient> etcd, ShardList* list);

  absl::StatusOr<uint32_t> Add(const std::string& address) override;

 private:
  EtcdShardMap(std::shared_ptr<coord::EtcdClient> etcd, ShardList* list) : etcd_(std::move(etcd)), list_(list) {}
  // Follow takes etcd's map (index key -> address) into the list.
  void Follow(const coord::Roster::Members& members);

  const std::shared_ptr<coord::EtcdClient> etcd_;
  ShardList* const list_;
  std::unique_ptr<coord::Roster> roster_;
};

}  // namespace converge::management

#endif  // CONVERGE_SERVICES_MANAGEMENT_ETCD_SHARD_MAP_H_
