// NotificationListener: keeps a Subscribe stream to converge-notify open and reports each
// namespace head to a callback. Reconnects with jittered exponential backoff; every (re)connect
// first delivers the current head, so an event lost while disconnected only delays a pull.
//
// Thread-safe. Owns one thread between Start and Stop.
#ifndef CONVERGE_ENGINE_NOTIFICATION_LISTENER_H_
#define CONVERGE_ENGINE_NOTIFICATION_LISTENER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "converge/notification/v1/notification.grpc.pb.h"

namespace converge::engine {

class NotificationListener {
 public:
  using OnHead = std::function<void(uint64_t seq)>;
  NotificationListener(std::shared_ptr<grpc::Channel> channel, std::string device_id,
                       std::string namespace_id, OnHead on_head);
  ~NotificationListener();

  void Start();
  void Stop();

 private:
  void Run();

  std::unique_ptr<notification::v1::NotificationService::Stub> stub_;
  const std::string device_id_;
  const std::string namespace_id_;
  const OnHead on_head_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* current_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::thread thread_;
};

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_NOTIFICATION_LISTENER_H_
