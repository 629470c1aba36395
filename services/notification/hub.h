// Hub: who listens to which namespace, and the newest seq published for each.
//
//   hub.Subscribe(&subscriber, {"ns1", "ns2"});   // subscriber gets the current heads at once
//   hub.Publish({"ns1", 42, t});                  // every subscriber of ns1 gets (ns1, 42)
//   hub.Heartbeat(absl::Now());                   // heads again to quiet subscribers
//   hub.Unsubscribe(&subscriber);                 // no Deliver runs after this returns
//
// Thread-safe. Deliver is called with the hub's lock held: it must not block or call back into
// the hub.
#ifndef CONVERGE_SERVICES_NOTIFICATION_HUB_H_
#define CONVERGE_SERVICES_NOTIFICATION_HUB_H_

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace converge::notification {

inline constexpr size_t kMaxNamespacesPerSubscription = 1000;

// A device's signed, verified log head (end-to-end encrypted namespaces), passed on as is.
struct Announcement {
  std::string namespace_id;
  std::string device_id;
  uint64_t seq = 0;
  std::string hash;       // 32 bytes
  std::string signature;  // 64 bytes
};

struct HeadEvent {
  std::string namespace_id;
  uint64_t seq = 0;
  int64_t committed_at_unix_micros = 0;  // 0: unknown
  bool heartbeat = false;                // a repeat of the head on a quiet stream
};

class Subscriber {
 public:
  virtual ~Subscriber() = default;
  // Deliver queues one event; must not block.
  virtual void Deliver(const HeadEvent& event) = 0;
  // Announce queues another device's announcement (a newer one of that device replaces it);
  // must not block.
  virtual void Announce(const Announcement& a) {}
  // HeartbeatDue reports whether the subscriber's stream has been quiet long enough that it
  // should get its heads again; must not block.
  virtual bool HeartbeatDue(absl::Time now) { return false; }
  // The device whose stream this is ("" if unknown).
  virtual std::string device_id() const { return ""; }
  // Close ends the stream (the device was revoked); must not block or call back into the hub.
  virtual void Close() {}
};

class Hub {
 public:
  // Subscribe registers `s` for `namespaces` and delivers the known head of each (seq 0 if
  // nothing was published yet, so the subscriber pulls from its cursor). InvalidArgument for a
  // bad namespace id, an empty list or more than kMaxNamespacesPerSubscription.
  absl::Status Subscribe(Subscriber* s, const std::vector<std::string>& namespaces);
  void Unsubscribe(Subscriber* s);

  // Publish records the event's seq as the head of its namespace (if newer) and delivers it to
  // every subscriber of the namespace; returns how many were told.
  size_t Publish(const HeadEvent& event);

  // Announce keeps `a` as its device's newest announcement in its namespace (an older seq than
  // the kept one is ignored) and passes it to every other device's subscriber of the namespace;
  // returns how many.
  size_t Announce(const Announcement& a);

  // Heads returns the known head of every namespace `s` subscribed to.
  std::vector<HeadEvent> Heads(Subscriber* s) const;

  // Heartbeat delivers the heads again (as heartbeats) to every subscriber whose HeartbeatDue
  // says so; returns how many got one.
  size_t Heartbeat(absl::Time now);

  // Fault injection for tests: drop this share (0..1) of deliveries; heads still advance, so
  // heartbeats reveal the loss.
  void set_drop_ratio(double ratio);
  uint64_t dropped() const;

  size_t subscriber_count() const;

  // CloseDevice closes every stream of `device_id`; returns how many.
  size_t CloseDevice(const std::string& device_id);

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, absl::flat_hash_set<Subscriber*>> by_namespace_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<Subscriber*, std::vector<std::string>> namespaces_of_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, uint64_t> heads_ ABSL_GUARDED_BY(mu_);
  // namespace -> device -> its newest announcement (devices are the tokens' own: bounded by the
  // namespace's members).
  absl::flat_hash_map<std::string, absl::flat_hash_map<std::string, Announcement>> announced_ ABSL_GUARDED_BY(mu_);
  double drop_ratio_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_){std::random_device{}()};
};

}  // namespace converge::notification

#endif  // CONVERGE_SERVICES_NOTIFICATION_HUB_H_
