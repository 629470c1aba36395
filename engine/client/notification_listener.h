// NotificationListener: keeps a Subscribe stream to converge-notify open and reports each
// namespace head to a callback. Reconnects with jittered exponential backoff; every (re)connect
// calls on_connected (the engine pulls from its cursor: events published while the stream was
// down, or before a restarted notification service knew the head, are not lost). The stream
// asks for heartbeats; one silent for kMissedHeartbeats intervals is taken as dead and
// reconnected.
//
// Thread-safe. Owns two threads (the stream and its watchdog) between Start and Stop.
#ifndef CONVERGE_ENGINE_CLIENT_NOTIFICATION_LISTENER_H_
#define CONVERGE_ENGINE_CLIENT_NOTIFICATION_LISTENER_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "converge/notification/v1/notification.grpc.pb.h"

namespace converge::engine {

inline constexpr int kMissedHeartbeats = 3;

class NotificationListener {
 public:
  // Another device's signed log head (end-to-end encrypted namespaces), as the service passed
  // it on: unchecked.
  struct Announced {
    std::string device_id;
    uint64_t seq = 0;
    std::string hash;
    std::string signature;
  };
  struct Callbacks {
    std::function<void(uint64_t seq)> on_head;
    std::function<void()> on_connected;
    std::function<void(const Announced&)> on_announced;  // optional
  };
  NotificationListener(std::shared_ptr<grpc::Channel> channel, std::string device_id,
                       std::string namespace_id, absl::Duration heartbeat, Callbacks callbacks);
  // With `connect`, a channel that keeps failing is replaced by a fresh one (gRPC's own
  // reconnection can stay in its failure state long after the service is back).
  NotificationListener(std::function<std::shared_ptr<grpc::Channel>()> connect, std::string device_id,
                       std::string namespace_id, absl::Duration heartbeat, Callbacks callbacks);
  ~NotificationListener();

  void Start();
  void Stop();

  // Announce sends this device's signed log head to the service, from a thread of its own (the
  // newest waiting one replaces an older; a failed send is retried with the next). The newest is
  // sent again on every reconnect: a restarted service has forgotten the heads it kept for
  // devices that subscribe later.
  void Announce(Announced head);

  // How many times a stream was declared dead for silence (tests, status).
  int silent_reconnects() const;

 private:
  void Run();
  void Watchdog();
  void SendAnnouncements();

  std::unique_ptr<notification::v1::NotificationService::Stub> stub_;  // used by Run() only
  std::function<std::shared_ptr<grpc::Channel>()> connect_;
  const std::string device_id_;
  const std::string namespace_id_;
  const absl::Duration heartbeat_;
  const Callbacks callbacks_;
  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* current_ ABSL_GUARDED_BY(mu_) = nullptr;
  absl::Time last_heard_ ABSL_GUARDED_BY(mu_);
  int silent_reconnects_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
  std::thread watchdog_;
  std::shared_ptr<grpc::Channel> announce_channel_;  // SendAnnouncements' (until connect_ replaces it)
  std::optional<Announced> to_announce_ ABSL_GUARDED_BY(mu_);
  std::optional<Announced> newest_announced_ ABSL_GUARDED_BY(mu_);  // sent again on reconnect
  std::thread announcer_;
};

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_CLIENT_NOTIFICATION_LISTENER_H_
