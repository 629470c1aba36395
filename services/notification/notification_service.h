// NotificationService: Subscribe streams over gRPC's callback API (one reactor per stream, no
// thread held per subscriber), Publish from the store. One background thread sends heartbeats
// (the known heads again) on streams that have been quiet for their heartbeat interval.
#ifndef CONVERGE_SERVICES_NOTIFICATION_NOTIFICATION_SERVICE_H_
#define CONVERGE_SERVICES_NOTIFICATION_NOTIFICATION_SERVICE_H_

#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/rpc/call_limiter.h"
#include "common/security/auth.h"
#include "converge/notification/v1/notification.grpc.pb.h"
#include "services/notification/hub.h"

namespace converge::notification {

struct NotificationOptions {
  // Who may call: devices (token) subscribe to the namespaces their token names; services (mutual
  // TLS or the service token) publish and revoke.
  AuthOptions auth;
  absl::Duration default_heartbeat = absl::Seconds(2);
  absl::Duration min_heartbeat = absl::Milliseconds(100);
  absl::Duration max_heartbeat = absl::Seconds(60);
  // Streams one device may hold open at once (an engine holds one); 0: no limit.
  int max_streams_per_device = 8;
  // Fault injection (tests only): drop this share of event deliveries.
  double fault_drop_ratio = 0;
};

class NotificationService final : public v1::NotificationService::CallbackService {
 public:
  NotificationService(Hub* hub, NotificationOptions options);
  ~NotificationService() override;

  grpc::ServerWriteReactor<v1::Event>* Subscribe(grpc::CallbackServerContext* ctx,
                                                 const v1::SubscribeRequest* req) override;
  grpc::ServerUnaryReactor* Publish(grpc::CallbackServerContext* ctx,
                                    const v1::PublishRequest* req,
                                    v1::PublishResponse* resp) override;
  // AnnounceHead: a device's signed log head, passed to the namespace's other subscribers.
  grpc::ServerUnaryReactor* AnnounceHead(grpc::CallbackServerContext* ctx, const v1::AnnounceHeadRequest* req,
                                         v1::AnnounceHeadResponse* resp) override;
  grpc::ServerUnaryReactor* RevokeDevices(grpc::CallbackServerContext* ctx, const v1::RevokeDevicesRequest* req,
                                          v1::RevokeDevicesResponse* resp) override;
  // Revoke refuses the devices' tokens until `until` and closes their streams; returns how many.
  size_t Revoke(const std::vector<std::string>& device_ids, absl::Time until);

 private:
  Hub* const hub_;
  const NotificationOptions options_;
  Authenticator auth_;
  CallLimiter streams_;
  absl::Notification stop_;
  std::thread heartbeats_;
};

}  // namespace converge::notification

#endif  // CONVERGE_SERVICES_NOTIFICATION_NOTIFICATION_SERVICE_H_
