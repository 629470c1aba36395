#include "services/notification/hub.h"

#include "absl/strings/str_cat.h"
#include "common/path.h"
#include "common/status_macros.h"

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
    s->Deliver(ns, head == heads_.end() ? 0 : head->second);
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

size_t Hub::Publish(const std::string& ns, uint64_t seq) {
  absl::MutexLock lock(&mu_);
  uint64_t& head = heads_[ns];
  if (seq > head) head = seq;
  auto subs = by_namespace_.find(ns);
  if (subs == by_namespace_.end()) return 0;
  for (Subscriber* s : subs->second) s->Deliver(ns, seq);
  return subs->second.size();
}

size_t Hub::subscriber_count() const {
  absl::MutexLock lock(&mu_);
  return namespaces_of_.size();
}

}  // namespace converge::notification
