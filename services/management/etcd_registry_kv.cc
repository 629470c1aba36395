#include "services/management/etcd_registry_kv.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/base/random_id.h"

namespace converge::management {
namespace {

constexpr char kRecords[] = "/converge/registry/records/";
constexpr char kLock[] = "/converge/registry/lock";
constexpr absl::Duration kLease = absl::Seconds(30);
constexpr absl::Duration kWaitForLock = absl::Seconds(15);

std::string Key(const std::string& key) { return kRecords + key; }

absl::Status NotHeld(const std::string& key) {
  return absl::AbortedError(absl::StrCat("registry write of ", key,
                                         ": this replica no longer holds the registry lock (its lease ran out); retry"));
}

}  // namespace

EtcdRegistryKv::EtcdRegistryKv(std::shared_ptr<coord::EtcdClient> etcd)
    : etcd_(std::move(etcd)), holder_(absl::StrCat("management-", RandomHex(8))) {}

absl::StatusOr<std::string> EtcdRegistryKv::Get(const std::string& key) {
  absl::StatusOr<std::optional<coord::EtcdKeyValue>> kv = etcd_->Get(Key(key));
  if (!kv.ok()) return kv.status();
  if (!kv->has_value()) return absl::NotFoundError(absl::StrCat("no registry record ", key));
  return (*kv)->value;
}

std::optional<coord::EtcdClient::Guard> EtcdRegistryKv::Held() {
  absl::MutexLock lock(&mu_);
  if (token_.empty()) return std::nullopt;
  return coord::EtcdClient::Guard{kLock, token_};
}

absl::Status EtcdRegistryKv::Put(const std::string& key, const std::string& value) {
  std::optional<coord::EtcdClient::Guard> guard = Held();
  if (!guard.has_value()) return etcd_->Put(Key(key), value).status();
  absl::StatusOr<bool> put = etcd_->PutIf(Key(key), value, *guard);
  if (!put.ok()) return put.status();
  return *put ? absl::OkStatus() : NotHeld(key);
}

absl::Status EtcdRegistryKv::Delete(const std::string& key) {
  std::optional<coord::EtcdClient::Guard> guard = Held();
  if (!guard.has_value()) return etcd_->Delete(Key(key)).status();
  absl::StatusOr<bool> deleted = etcd_->DeleteIf(Key(key), *guard);
  if (!deleted.ok()) return deleted.status();
  return *deleted ? absl::OkStatus() : NotHeld(key);
}

absl::Status EtcdRegistryKv::Scan(const std::string& prefix, const ScanFn& fn) {
  const std::string full = Key(prefix);
  return etcd_->Scan(full, [&](const coord::EtcdKeyValue& kv) {
    return fn(absl::string_view(kv.key).substr(full.size()), kv.value);
  });
}

absl::StatusOr<RegistryKv::Lease> EtcdRegistryKv::Lock() {
  std::string token;
  {
    absl::MutexLock lock(&mu_);
    token = absl::StrCat(holder_, "/", ++changes_);
  }
  absl::StatusOr<int64_t> lease = etcd_->GrantLease(kLease);
  if (!lease.ok()) return lease.status();
  const absl::Time give_up = absl::Now() + kWaitForLock;
  absl::Duration wait = absl::Milliseconds(5);
  while (true) {
    absl::StatusOr<std::optional<coord::EtcdKeyValue>> held = etcd_->CreateIfAbsent(kLock, token, *lease);
    if (held.ok() && (!held->has_value() || (*held)->value == token)) break;  // ours (an answer lost: still ours)
    if (!held.ok() && !absl::IsAborted(held.status())) {
      etcd_->RevokeLease(*lease).IgnoreError();
      return held.status();
    }
    if (absl::Now() > give_up) {
      etcd_->RevokeLease(*lease).IgnoreError();
      return absl::UnavailableError("another management replica holds the registry lock; retry");
    }
    absl::SleepFor(wait);
    wait = std::min(wait * 2, absl::Milliseconds(200));
  }
  {
    absl::MutexLock lock(&mu_);
    token_ = token;
  }
  return Lease([this, token, lease = *lease] { Release(token, lease); });
}

void EtcdRegistryKv::Release(const std::string& token, int64_t lease) {
  {
    absl::MutexLock lock(&mu_);
    if (token_ == token) token_.clear();
  }
  // The lock key goes with its lease; if etcd cannot be told, the lease runs out by itself.
  etcd_->RevokeLease(lease).IgnoreError();
}

absl::StatusOr<size_t> ImportRegistry(RegistryKv* from, EtcdRegistryKv* to) {
  absl::StatusOr<RegistryKv::Lease> lease = to->Lock();
  if (!lease.ok()) return lease.status();
  // Empty? The first record answers it: the scan stops there (a large registry is not read).
  bool found = false;
  absl::Status scanned = to->Scan("", [&](absl::string_view, absl::string_view) {
    found = true;
    return absl::CancelledError("etcd holds registry records");
  });
  if (found) return size_t{0};
  if (!scanned.ok()) return scanned;
  size_t copied = 0;
  absl::Status copy = from->Scan("", [&](absl::string_view key, absl::string_view value) {
    ++copied;
    return to->Put(std::string(key), std::string(value));
  });
  if (!copy.ok()) return copy;
  return copied;
}

}  // namespace converge::management
