// GrpcPublisher and FanoutPublisher: Publishers over converge-notify's gRPC API. Publishing never
// blocks a commit: events go to a background thread through a map of the newest seq per
// namespace (a newer seq supersedes an unsent older one: only the newest matters). A failed
// publish is retried with backoff until it succeeds or is superseded.
//
// Thread-safe.
#ifndef CONVERGE_SERVICES_STORE_NOTIFY_CLIENT_H_
#define CONVERGE_SERVICES_STORE_NOTIFY_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include <grpcpp/grpcpp.h>

#include "converge/notification/v1/notification.grpc.pb.h"
#include "services/store/publisher.h"

namespace converge::store {

// GrpcPublisher publishes to converge-notify at `address`; an empty address publishes nowhere.
class GrpcPublisher : public Publisher {
 public:
  // `credentials`: how to reach notify (null: plaintext).
  GrpcPublisher(const std::string& address, std::string service_token,
                std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr,
                const grpc::ChannelArguments& args = grpc::ChannelArguments());
  ~GrpcPublisher() override;

  void Publish(const std::string& ns, uint64_t seq, int64_t committed_at_unix_micros) override;

 private:
  void Run();

  const std::string service_token_;
  std::unique_ptr<notification::v1::NotificationService::Stub> stub_;
  absl::Mutex mu_;
  struct Pending {
    uint64_t seq = 0;
    int64_t committed_at_unix_micros = 0;
  };
  absl::flat_hash_map<std::string, Pending> pending_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// FanoutPublisher publishes every event to each of several notification services, so replicas
// of converge-notify each see every publish (an engine may be subscribed to any of them).
// `targets` is a comma-separated list of "host:port" entries; an entry "all:host:port" stands for
// every address the name resolves to (a headless Kubernetes Service), re-resolved every
// `resolve_every`; those connections check the TLS certificate against `tls_name`.
class FanoutPublisher : public Publisher {
 public:
  FanoutPublisher(const std::string& targets, std::string service_token,
                  std::shared_ptr<grpc::ChannelCredentials> credentials, std::string tls_name = "notification",
                  absl::Duration resolve_every = absl::Seconds(10));
  ~FanoutPublisher() override;

  void Publish(const std::string& ns, uint64_t seq, int64_t committed_at_unix_micros) override;
  // The addresses published to now.
  std::vector<std::string> addresses();
  // Follow publishes to exactly `addresses` among those found in etcd (replicas announced there):
  // new ones are added, those no longer announced dropped. Given addresses stay.
  void Follow(const std::vector<std::string>& addresses);

 private:
  void Resolve();
  // Reconcile publishes to each of `now`, and no longer to those found from `from` before and not now.
  void Reconcile(const absl::flat_hash_set<std::string>& now, const std::string& from) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string service_token_;
  const std::shared_ptr<grpc::ChannelCredentials> credentials_;
  const std::string tls_name_;
  std::vector<std::string> resolved_names_;  // "host:port" of the "all:" entries
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<GrpcPublisher>> publishers_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::string> resolved_from_ ABSL_GUARDED_BY(mu_);  // address -> "all:" name or "etcd"
  absl::Notification stop_;
  std::thread resolver_;
};

}  // namespace converge::store

#endif  // CONVERGE_SERVICES_STORE_NOTIFY_CLIENT_H_
