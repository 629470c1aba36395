// Publisher: tells the notification service that a namespace reached a seq. Publishing never
// blocks a commit: events go through a bounded queue to a background thread; when the queue is
// full the oldest event of the same namespace is superseded (only the newest seq matters).
//
// Thread-safe.
#ifndef CONVERGE_SERVICES_STORE_PUBLISHER_H_
#define CONVERGE_SERVICES_STORE_PUBLISHER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "converge/notification/v1/notification.grpc.pb.h"

namespace converge::store {

class Publisher {
 public:
  virtual ~Publisher() = default;
  virtual void Publish(const std::string& ns, uint64_t seq) = 0;
};

// GrpcPublisher publishes to converge-notify at `address`; an empty address publishes nowhere.
class GrpcPublisher : public Publisher {
 public:
  GrpcPublisher(const std::string& address, std::string service_token);
  ~GrpcPublisher() override;

  void Publish(const std::string& ns, uint64_t seq) override;

 private:
  void Run();

  const std::string service_token_;
  std::unique_ptr<notification::v1::NotificationService::Stub> stub_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, uint64_t> pending_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace converge::store

#endif  // CONVERGE_SERVICES_STORE_PUBLISHER_H_
