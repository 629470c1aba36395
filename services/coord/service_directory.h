// Where replicas find each other: each announces itself under a key with a lease (gone within the
// lease's TTL when its process dies, at once when it stops cleanly), and whoever needs the
// replicas of a kind follows that key prefix with a watch.
//
//   /converge/services/<kind>/<name> = "<address>"
//
//   auto me = Announcement::Start(etcd, ServiceKey("notify", name), "10.0.0.3:7002", absl::Seconds(5));
//   auto notify = Roster::Follow(etcd, ServicePrefix("notify"), [](const std::map<std::string, std::string>& m) {...});
#ifndef CONVERGE_SERVICES_COORD_SERVICE_DIRECTORY_H_
#define CONVERGE_SERVICES_COORD_SERVICE_DIRECTORY_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "services/coord/etcd_client.h"

namespace converge::coord {

std::string ServicePrefix(const std::string& kind);
std::string ServiceKey(const std::string& kind, const std::string& name);

// Announcement keeps `key` = `value` in etcd under a lease it renews every third of `ttl`. If the
// lease was lost (etcd out of reach for longer than the TTL), or etcd did not answer at the start,
// it is granted again and the key put again once etcd answers. The destructor revokes the lease:
// the key goes at once.
class Announcement {
 public:
  static std::unique_ptr<Announcement> Start(EtcdClient* etcd, std::string key, std::string value, absl::Duration ttl);
  ~Announcement();

  int64_t lease() const;

 private:
  Announcement(EtcdClient* etcd, std::string key, std::string value, absl::Duration ttl)
      : etcd_(etcd), key_(std::move(key)), value_(std::move(value)), ttl_(ttl) {}
  absl::Status Announce();
  void Run();

  EtcdClient* const etcd_;
  const std::string key_, value_;
  const absl::Duration ttl_;
  std::atomic<int64_t> lease_{0};
  absl::Notification stop_;
  std::thread thread_;
};

// Roster follows the keys under a prefix: `on_change` gets the whole set (key suffix -> value)
// at the start and after every change, on the roster's own thread.
class Roster {
 public:
  using Members = std::map<std::string, std::string>;
  static std::unique_ptr<Roster> Follow(EtcdClient* etcd, std::string prefix, std::function<void(const Members&)> on_change);
  ~Roster();

 private:
  Roster(EtcdClient* etcd, std::string prefix, std::function<void(const Members&)> on_change)
      : etcd_(etcd), prefix_(std::move(prefix)), on_change_(std::move(on_change)) {}
  void Run();

  EtcdClient* const etcd_;
  const std::string prefix_;
  const std::function<void(const Members&)> on_change_;
  absl::Notification stop_;
  std::thread thread_;
};

// Addresses: the members' values that are well-formed "host:port" addresses (what etcd holds is
// checked like any input: no empty, spaced, over-long or port-less value becomes a target).
std::vector<std::string> Addresses(const Roster::Members& members);

}  // namespace converge::coord

#endif  // CONVERGE_SERVICES_COORD_SERVICE_DIRECTORY_H_
