// Hub: who listens to which namespace, and the newest seq published for each.
//
//   hub.Subscribe(&subscriber, {"ns1", "ns2"});   // subscriber gets the current heads at once
//   hub.Publish("ns1", 42);                       // every subscriber of ns1 gets (ns1, 42)
//   hub.Unsubscribe(&subscriber);                 // no Deliver runs after this returns
//
// Thread-safe. Deliver is called with the hub's lock held: it must not block or call back into
// the hub.
#ifndef CONVERGE_SERVICES_NOTIFICATION_HUB_H_
#define CONVERGE_SERVICES_NOTIFICATION_HUB_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace converge::notification {

inline constexpr size_t kMaxNamespacesPerSubscription = 1000;

class Subscriber {
 public:
  virtual ~Subscriber() = default;
  // Deliver queues one event; must not block.
  virtual void Deliver(const std::string& ns, uint64_t seq) = 0;
};

class Hub {
 public:
  // Subscribe registers `s` for `namespaces` and delivers the known head of each (seq 0 if
  // nothing was published yet, so the subscriber pulls from its cursor). InvalidArgument for a
  // bad namespace id, an empty list or more than kMaxNamespacesPerSubscription.
  absl::Status Subscribe(Subscriber* s, const std::vector<std::string>& namespaces);
  void Unsubscribe(Subscriber* s);

  // Publish records `seq` as the head of `ns` (if newer) and delivers it to every subscriber of
  // `ns`; returns how many were told.
  size_t Publish(const std::string& ns, uint64_t seq);

  size_t subscriber_count() const;

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, absl::flat_hash_set<Subscriber*>> by_namespace_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<Subscriber*, std::vector<std::string>> namespaces_of_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, uint64_t> heads_ ABSL_GUARDED_BY(mu_);
};

}  // namespace converge::notification

#endif  // CONVERGE_SERVICES_NOTIFICATION_HUB_H_
