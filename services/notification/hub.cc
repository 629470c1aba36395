#include "services/notification/hub.h"

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/model/path.h"

namespace converge::notification {

absl::Status Hub::Subscribe(Subscriber* s, const std::vector<std::string>& namespaces) {
  if (namespaces.empty() || namespaces.size() > kMaxNamespacesPerSubscription) {
    return absl::InvalidArgumentError(absl::StrCat("subscribe to 1..",
                                                   kMaxNamespacesPerSubscription,
                                                   " namespaces, got ", namespaces.size()));
  }
  for (const std::string& ns : namespaces) CONVERGE_RETURN_IF_ERROR(ValidateId("namespace id", ns));
  absl::MutexLock lock(&mu_);
  for (const std::string& ns : namespaces) {
    by_namespace_[ns].insert(s);
    auto head = heads_.find(ns);
    s->Deliver(HeadEvent{ns, head == heads_.end() ? 0 : head->second, 0});
    // What the namespace's other devices verified last, to compare with at once.
    if (auto kept = announced_.find(ns); kept != announced_.end()) {
      for (const auto& [device, a] : kept->second) {
        if (device != s->device_id()) s->Announce(a);
      }
    }
  }
  std::vector<std::string>& mine = namespaces_of_[s];
  mine.insert(mine.end(), namespaces.begin(), namespaces.end());
  return absl::OkStatus();
}

void Hub::Unsubscribe(Subscriber* s) {
  absl::MutexLock lock(&mu_);
  auto it = namespaces_of_.find(s);
  if (it == namespaces_of_.end()) return;
  for (const std::string& ns : it->second) {
    auto subs = by_namespace_.find(ns);
    if (subs == by_namespace_.end()) continue;
    subs->second.erase(s);
    if (subs->second.empty()) by_namespace_.erase(subs);
  }
  namespaces_of_.erase(it);
}

size_t Hub::Publish(const HeadEvent& event) {
  absl::MutexLock lock(&mu_);
  uint64_t& head = heads_[event.namespace_id];
  if (event.seq > head) head = event.seq;
  auto subs = by_namespace_.find(event.namespace_id);
  if (subs == by_namespace_.end()) return 0;
  std::uniform_real_distribution<double> coin(0, 1);
  size_t told = 0;
  for (Subscriber* s : subs->second) {
    if (drop_ratio_ > 0 && coin(rng_) < drop_ratio_) {
      ++dropped_;
      continue;
    }
    s->Deliver(event);
    ++told;
  }
  return told;
}

size_t Hub::Announce(const Announcement& a) {
  absl::MutexLock lock(&mu_);
  Announcement& kept = announced_[a.namespace_id][a.device_id];
  if (a.seq < kept.seq) return 0;
  kept = a;
  auto subs = by_namespace_.find(a.namespace_id);
  if (subs == by_namespace_.end()) return 0;
  size_t told = 0;
  for (Subscriber* s : subs->second) {
    if (s->device_id() == a.device_id) continue;
    s->Announce(a);
    ++told;
  }
  return told;
}

std::vector<HeadEvent> Hub::Heads(Subscriber* s) const {
  absl::MutexLock lock(&mu_);
  std::vector<HeadEvent> out;
  auto it = namespaces_of_.find(s);
  if (it == namespaces_of_.end()) return out;
  for (const std::string& ns : it->second) {
    auto head = heads_.find(ns);
    out.push_back(HeadEvent{ns, head == heads_.end() ? 0 : head->second, 0});
  }
  return out;
}

size_t Hub::Heartbeat(absl::Time now) {
  absl::MutexLock lock(&mu_);
  size_t told = 0;
  for (const auto& [s, namespaces] : namespaces_of_) {
    if (!s->HeartbeatDue(now)) continue;
    ++told;
    for (const std::string& ns : namespaces) {
      auto head = heads_.find(ns);
      s->Deliver(HeadEvent{ns, head == heads_.end() ? 0 : head->second, 0, /*heartbeat=*/true});
    }
  }
  return told;
}

void Hub::set_drop_ratio(double ratio) {
  absl::MutexLock lock(&mu_);
  drop_ratio_ = ratio;
}

uint64_t Hub::dropped() const {
  absl::MutexLock lock(&mu_);
  return dropped_;
}

size_t Hub::CloseDevice(const std::string& device_id) {
  absl::MutexLock lock(&mu_);
  size_t closed = 0;
  for (const auto& [s, namespaces] : namespaces_of_) {
    if (s->device_id() == device_id) {
      s->Close();
      ++closed;
    }
  }
  return closed;
}

size_t Hub::subscriber_count() const {
  absl::MutexLock lock(&mu_);
  return namespaces_of_.size();
}

}  // namespace converge::notification
