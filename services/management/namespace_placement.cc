#include "services/management/namespace_placement.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/logging.h"
#include "common/model/path.h"

namespace converge::management {
namespace {

// The placements etcd holds that are well formed (a namespace id, a shard index); the rest is
// logged and ignored (what etcd holds is input like any other).
absl::flat_hash_map<std::string, uint32_t> Parse(const coord::Roster::Members& members) {
  absl::flat_hash_map<std::string, uint32_t> out;
  for (const auto& [ns, value] : members) {
    uint32_t shard = 0;
    if (!ValidateId("namespace id", ns).ok() || !absl::SimpleAtoi(value, &shard)) {
      GetLogger("management")->error("etcd's placement of '{}' is malformed ('{}'): ignored", ns, value);
      continue;
    }
    out[ns] = shard;
  }
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<NamespacePlacement>> NamespacePlacement::Start(std::shared_ptr<coord::EtcdClient> etcd,
                                                                              ShardMap* fallback) {
  absl::StatusOr<coord::EtcdListing> listed = etcd->List(kPlacementPrefix);
  if (!listed.ok()) return listed.status();
  coord::Roster::Members members;
  for (const coord::EtcdKeyValue& kv : listed->kvs) members[kv.key.substr(sizeof(kPlacementPrefix) - 1)] = kv.value;
  std::unique_ptr<NamespacePlacement> p(new NamespacePlacement(std::move(etcd), fallback));
  p->Follow(members);
  NamespacePlacement* self = p.get();
  p->roster_ = coord::Roster::Follow(p->etcd_.get(), kPlacementPrefix,
                                     [self](const coord::Roster::Members& m) { self->Follow(m); });
  absl::StatusOr<coord::EtcdListing> drained = p->etcd_->List(kDrainedPrefix);
  if (!drained.ok()) return drained.status();
  auto follow_drained = [self](const coord::Roster::Members& m) {
    absl::flat_hash_set<uint32_t> shards;
    for (const auto& [index, unused] : m) {
      uint32_t shard = 0;
      if (absl::SimpleAtoi(index, &shard)) shards.insert(shard);
    }
    absl::MutexLock lock(&self->mu_);
    self->drained_ = std::move(shards);
  };
  coord::Roster::Members now;
  for (const coord::EtcdKeyValue& kv : drained->kvs) now[kv.key.substr(sizeof(kDrainedPrefix) - 1)] = kv.value;
  follow_drained(now);
  p->drained_roster_ = coord::Roster::Follow(p->etcd_.get(), kDrainedPrefix, follow_drained);
  return p;
}

void NamespacePlacement::Follow(const coord::Roster::Members& members) {
  absl::flat_hash_map<std::string, uint32_t> parsed = Parse(members);
  absl::MutexLock lock(&mu_);
  placed_ = std::move(parsed);
}

absl::StatusOr<uint32_t> NamespacePlacement::ShardOfNamespace(const std::string& ns) {
  {
    absl::MutexLock lock(&mu_);
    auto it = placed_.find(ns);
    if (it != placed_.end()) return it->second;
  }
  return fallback_->ShardOfNamespace(ns);
}

absl::Status NamespacePlacement::Place(const std::string& ns, uint32_t shard) {
  absl::StatusOr<int64_t> put = etcd_->Put(absl::StrCat(kPlacementPrefix, ns), absl::StrCat(shard));
  if (!put.ok()) return put.status();
  absl::MutexLock lock(&mu_);
  placed_[ns] = shard;
  return absl::OkStatus();
}

absl::flat_hash_map<std::string, uint32_t> NamespacePlacement::placed() {
  absl::MutexLock lock(&mu_);
  return placed_;
}

absl::Status NamespacePlacement::SetDrained(uint32_t shard) {
  absl::StatusOr<int64_t> put = etcd_->Put(absl::StrCat(kDrainedPrefix, shard), "drained");
  if (!put.ok()) return put.status();
  absl::MutexLock lock(&mu_);
  drained_.insert(shard);
  return absl::OkStatus();
}

bool NamespacePlacement::drained(uint32_t shard) {
  absl::MutexLock lock(&mu_);
  return drained_.contains(shard);
}

}  // namespace converge::management
