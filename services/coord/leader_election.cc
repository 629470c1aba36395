#include "services/coord/leader_election.h"

#include <algorithm>

#include "common/base/logging.h"

namespace converge::coord {

std::unique_ptr<LeaderElection> LeaderElection::Start(EtcdClient* etcd, std::string key, std::string id,
                                                      absl::Duration ttl, std::function<void(bool)> on_change) {
  std::unique_ptr<LeaderElection> e(new LeaderElection(etcd, std::move(key), std::move(id), ttl, std::move(on_change)));
  e->thread_ = std::thread([p = e.get()] { p->Run(); });
  return e;
}

LeaderElection::~LeaderElection() {
  stop_.Notify();
  if (thread_.joinable()) thread_.join();
  if (lease_ != 0) etcd_->RevokeLease(lease_).IgnoreError();  // the key goes: another takes over at once
  SetLeading(false);
}

void LeaderElection::SetLeading(bool leading) {
  if (leading_.exchange(leading) == leading) return;
  GetLogger("etcd")->info("{} {} {}", id_, leading ? "leads" : "no longer leads", key_);
  if (on_change_) on_change_(leading);
}

bool LeaderElection::Campaign() {
  absl::StatusOr<std::optional<EtcdKeyValue>> held = etcd_->Get(key_);
  if (!held.ok() || held->has_value()) return false;  // someone leads (or etcd is out of reach)
  absl::StatusOr<int64_t> lease = etcd_->GrantLease(ttl_);
  if (!lease.ok()) return false;
  absl::StatusOr<std::optional<EtcdKeyValue>> there = etcd_->CreateIfAbsent(key_, id_, *lease);
  if (!there.ok() || there->has_value()) {  // another candidate was quicker
    etcd_->RevokeLease(*lease).IgnoreError();
    return false;
  }
  lease_ = *lease;
  return true;
}

void LeaderElection::Run() {
  const absl::Duration every = std::max(ttl_ / 3, absl::Milliseconds(50));
  absl::Time renewed = absl::Now();
  while (!stop_.HasBeenNotified()) {
    if (!leading_) {
      if (Campaign()) {
        renewed = absl::Now();
        SetLeading(true);
        continue;
      }
    } else {
      absl::Status kept = etcd_->KeepAlive(lease_);
      if (kept.ok()) {
        renewed = absl::Now();
      } else if (absl::IsNotFound(kept) || absl::Now() - renewed >= ttl_) {
        // The lease is gone, or may be: someone else may lead now.
        GetLogger("etcd")->warn("{}: lost its lease on {} ({})", id_, key_, kept.ToString());
        // Let go for good (etcd keeps a lease alive across its own re-election): another takes over.
        if (!absl::IsNotFound(kept)) etcd_->RevokeLease(lease_).IgnoreError();
        lease_ = 0;
        SetLeading(false);
      }
    }
    stop_.WaitForNotificationWithTimeout(every);
  }
}

}  // namespace converge::coord
