// LeaderElection: one leader among replicas, through an etcd key held under a lease.
//
//   auto election = LeaderElection::Start(etcd, "/converge/leader/management", "replica-a",
//                                         absl::Seconds(5), [](bool leading) { ... });
//
// A candidate creates the key only if absent (a transaction), with its id, under a lease it
// renews every third of the TTL; it leads while it holds the key. Others look every third of the
// TTL and take the key once it is gone: a leader that dies (its lease expires) is replaced
// within about 1.3 TTL, one that stops cleanly (the destructor revokes its lease) within a third
// of it. A leader that cannot renew its lease for a whole TTL steps down (its key may be gone),
// before anyone else can have taken over.
#ifndef CONVERGE_SERVICES_COORD_LEADER_ELECTION_H_
#define CONVERGE_SERVICES_COORD_LEADER_ELECTION_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "services/coord/etcd_client.h"

namespace converge::coord {

class LeaderElection {
 public:
  // `on_change` is told (on the election's thread) each time this replica starts or stops leading.
  static std::unique_ptr<LeaderElection> Start(EtcdClient* etcd, std::string key, std::string id, absl::Duration ttl,
                                               std::function<void(bool leading)> on_change);
  ~LeaderElection();

  bool leading() const { return leading_.load(); }
  const std::string& id() const { return id_; }

 private:
  LeaderElection(EtcdClient* etcd, std::string key, std::string id, absl::Duration ttl,
                 std::function<void(bool)> on_change)
      : etcd_(etcd), key_(std::move(key)), id_(std::move(id)), ttl_(ttl), on_change_(std::move(on_change)) {}
  void Run();
  // Campaign: true once this replica holds the key.
  bool Campaign();
  void SetLeading(bool leading);

  EtcdClient* const etcd_;
  const std::string key_, id_;
  const absl::Duration ttl_;
  const std::function<void(bool)> on_change_;
  std::atomic<bool> leading_{false};
  int64_t lease_ = 0;  // the election thread's
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace converge::coord

#endif  // CONVERGE_SERVICES_COORD_LEADER_ELECTION_H_
