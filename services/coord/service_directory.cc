#include "services/coord/service_directory.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/logging.h"

namespace converge::coord {

std::string ServicePrefix(const std::string& kind) { return absl::StrCat("/converge/services/", kind, "/"); }
std::string ServiceKey(const std::string& kind, const std::string& name) { return ServicePrefix(kind) + name; }

std::unique_ptr<Announcement> Announcement::Start(EtcdClient* etcd, std::string key, std::string value,
                                                 absl::Duration ttl) {
  std::unique_ptr<Announcement> a(new Announcement(etcd, std::move(key), std::move(value), ttl));
  if (absl::Status s = a->Announce(); !s.ok()) {
    // Not fatal: the replica serves, and is announced as soon as etcd answers.
    GetLogger("etcd")->warn("{}: not announced yet ({}); trying again", a->key_, s.ToString());
  }
  a->thread_ = std::thread([p = a.get()] { p->Run(); });
  return a;
}

Announcement::~Announcement() {
  stop_.Notify();
  if (thread_.joinable()) thread_.join();
  if (const int64_t lease = lease_.load(); lease != 0) etcd_->RevokeLease(lease).IgnoreError();
}

int64_t Announcement::lease() const { return lease_.load(); }

absl::Status Announcement::Announce() {
  absl::StatusOr<int64_t> lease = etcd_->GrantLease(ttl_);
  if (!lease.ok()) return lease.status();
  absl::StatusOr<int64_t> put = etcd_->Put(key_, value_, *lease);
  if (!put.ok()) {
    etcd_->RevokeLease(*lease).IgnoreError();
    return put.status();
  }
  lease_ = *lease;
  GetLogger("etcd")->info("announced {} = {} (lease {:x}, {})", key_, value_, *lease, absl::FormatDuration(ttl_));
  return absl::OkStatus();
}

void Announcement::Run() {
  static auto log = GetLogger("etcd");
  const absl::Duration every = std::max(ttl_ / 3, absl::Milliseconds(100));
  bool was_ok = true;
  while (!stop_.WaitForNotificationWithTimeout(every)) {
    absl::Status s = lease_.load() == 0 ? absl::NotFoundError("no lease yet") : etcd_->KeepAlive(lease_.load());
    if (absl::IsNotFound(s)) {
      if (lease_.load() != 0) log->warn("{}: its lease expired; announcing it again", key_);
      s = Announce();
    }
    if (s.ok() != was_ok) {
      if (s.ok()) {
        log->info("{}: announced again", key_);
      } else {
        log->warn("{}: cannot renew its lease ({}); it goes from etcd if this lasts {}", key_, s.ToString(),
                  absl::FormatDuration(ttl_));
      }
      was_ok = s.ok();
    }
  }
}

std::unique_ptr<Roster> Roster::Follow(EtcdClient* etcd, std::string prefix,
                                       std::function<void(const Members&)> on_change) {
  std::unique_ptr<Roster> r(new Roster(etcd, std::move(prefix), std::move(on_change)));
  r->thread_ = std::thread([p = r.get()] { p->Run(); });
  return r;
}

Roster::~Roster() {
  stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

void Roster::Run() {
  static auto log = GetLogger("etcd");
  while (!stop_.HasBeenNotified()) {
    absl::StatusOr<EtcdListing> listed = etcd_->List(prefix_);
    if (!listed.ok()) {
      log->warn("listing {}: {} (trying again)", prefix_, listed.status().ToString());
      if (stop_.WaitForNotificationWithTimeout(absl::Seconds(1))) return;
      continue;
    }
    Members members;
    for (const EtcdKeyValue& kv : listed->kvs) members[kv.key.substr(prefix_.size())] = kv.value;
    on_change_(members);
    absl::Status watched = etcd_->Watch(prefix_, listed->revision + 1, [&](const EtcdEvent& e) {
      const std::string name = e.kv.key.substr(prefix_.size());
      if (e.deleted) {
        members.erase(name);
      } else {
        members[name] = e.kv.value;
      }
      on_change_(members);
      return true;
    }, &stop_);
    if (!watched.ok()) log->info("{} (listing again)", watched.ToString());
  }
}

std::vector<std::string> Addresses(const Roster::Members& members) {
  static auto log = GetLogger("etcd");
  std::vector<std::string> out;
  for (const auto& [name, address] : members) {
    const size_t colon = address.rfind(':');
    int port = 0;
    const bool ok = !address.empty() && address.size() <= 255 && colon != std::string::npos && colon > 0 &&
                    absl::SimpleAtoi(address.substr(colon + 1), &port) && port > 0 && port < 65536 &&
                    address.find_first_of(" \t\n\r,/") == std::string::npos;
    if (!ok) {
      log->warn("'{}' announced '{}': not a host:port address (ignored)", name, address.substr(0, 80));
      continue;
    }
    out.push_back(address);
  }
  return out;
}

}  // namespace converge::coord
