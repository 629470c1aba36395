// NotificationService: Subscribe streams over gRPC's callback API (one reactor per stream, no
// thread held per subscriber), Publish from the store.
#ifndef CONVERGE_SERVICES_NOTIFICATION_NOTIFICATION_SERVICE_H_
#define CONVERGE_SERVICES_NOTIFICATION_NOTIFICATION_SERVICE_H_

#include <string>

#include "converge/notification/v1/notification.grpc.pb.h"
#include "services/notification/hub.h"

namespace converge::notification {

class NotificationService final : public v1::NotificationService::CallbackService {
 public:
  // `service_token` guards Publish (empty: unguarded).
  NotificationService(Hub* hub, std::string service_token)
      : hub_(hub), service_token_(std::move(service_token)) {}

  grpc::ServerWriteReactor<v1::Event>* Subscribe(grpc::CallbackServerContext* ctx,
                                                 const v1::SubscribeRequest* req) override;
  grpc::ServerUnaryReactor* Publish(grpc::CallbackServerContext* ctx,
                                    const v1::PublishRequest* req,
                                    v1::PublishResponse* resp) override;

 private:
  Hub* const hub_;
  const std::string service_token_;
};

}  // namespace converge::notification

#endif  // CONVERGE_SERVICES_NOTIFICATION_NOTIFICATION_SERVICE_H_
