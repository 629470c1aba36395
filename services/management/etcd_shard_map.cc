#include "services/management/etcd_shard_map.h"

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/base/logging.h"

namespace converge::management {
namespace {

constexpr char kShards[] = "/converge/shards/";
constexpr int kMaxAttempts = 10;

std::string ShardKey(size_t index) { return absl::StrFormat("%s%06d", kShards, index); }

// The shards in index order, if the map is whole (indexes 0..n-1, valid addresses).
absl::StatusOr<std::vector<std::string>> InOrder(const coord::Roster::Members& members) {
  std::vector<std::string> out;
  for (const auto& [name, address] : members) {  // names are zero-padded: in index order
    size_t index = 0;
    if (!absl::SimpleAtoi(name, &index) || index != out.size()) {
      return absl::DataLossError(absl::StrCat("etcd's shard map has '", name, "' where shard ", out.size(), " belongs"));
    }
    if (absl::Status valid = ValidateShardAddress(address); !valid.ok()) {
      return absl::DataLossError(absl::StrCat("etcd's shard ", index, ": ", valid.message()));
    }
    out.push_back(address);
  }
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<EtcdShardMap>> EtcdShardMap::Start(std::shared_ptr<coord::EtcdClient> etcd,
                                                                  ShardList* list) {
  const std::vector<std::string> given = list->all();
  for (size_t i = 0; i < given.size(); ++i) {
    absl::StatusOr<std::optional<coord::EtcdKeyValue>> there = etcd->CreateIfAbsent(ShardKey(i), given[i]);
    if (!there.ok()) return there.status();
    if (there->has_value() && (*there)->value != given[i]) {
      return absl::FailedPreconditionError(absl::StrCat("--store names ", given[i], " as shard ", i,
                                                        " but etcd's shard map has ", (*there)->value,
                                                        " (shards are never renamed or reordered)"));
    }
  }
  absl::StatusOr<coord::EtcdListing> listed = etcd->List(kShards);
  if (!listed.ok()) return listed.status();
  coord::Roster::Members members;
  for (const coord::EtcdKeyValue& kv : listed->kvs) members[kv.key.substr(sizeof(kShards) - 1)] = kv.value;
  absl::StatusOr<std::vector<std::string>> shards = InOrder(members);
  if (!shards.ok()) return shards.status();
  if (absl::Status extended = list->Extend(*shards); !extended.ok()) return extended;
  std::unique_ptr<EtcdShardMap> map(new EtcdShardMap(std::move(etcd), list));
  EtcdShardMap* self = map.get();
  map->roster_ = coord::Roster::Follow(map->etcd_.get(), kShards, [self](const coord::Roster::Members& m) { self->Follow(m); });
  GetLogger("management")->info("store shards from etcd's shard map: {}", list->size());
  return map;
}

void EtcdShardMap::Follow(const coord::Roster::Members& members) {
  auto log = GetLogger("management");
  absl::StatusOr<std::vector<std::string>> shards = InOrder(members);
  if (!shards.ok()) {
    log->error("{} (keeping the {} shards known)", shards.status().message(), list_->size());
    return;
  }
  const size_t before = list_->size();
  if (absl::Status extended = list_->Extend(*shards); !extended.ok()) {
    log->error("etcd's shard map: {} (keeping the {} shards known)", extended.message(), before);
    return;
  }
  for (size_t i = before; i < shards->size(); ++i) log->info("store shard {} added: {}", i, (*shards)[i]);
}

absl::StatusOr<uint32_t> EtcdShardMap::Add(const std::string& address) {
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    absl::StatusOr<coord::EtcdListing> listed = etcd_->List(kShards);
    if (!listed.ok()) return listed.status();
    for (size_t i = 0; i < listed->kvs.size(); ++i) {
      if (listed->kvs[i].value == address) {
        return absl::AlreadyExistsError(absl::StrCat(address, " is store shard ", i, " already"));
      }
    }
    const size_t next = listed->kvs.size();
    absl::StatusOr<std::optional<coord::EtcdKeyValue>> there = etcd_->CreateIfAbsent(ShardKey(next), address);
    if (!there.ok()) return there.status();
    if (!there->has_value() || (*there)->value == address) {
      GetLogger("management")->info("store shard {} appended to etcd's shard map: {}", next, address);
      return static_cast<uint32_t>(next);
    }
    // Another replica appended a shard at this index first: try the next one.
  }
  return absl::AbortedError("the shard map kept changing while adding a shard; retry");
}

}  // namespace converge::management
