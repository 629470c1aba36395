// NotificationServer: what converge-notify runs, wired together (main.cc, all-in-one, tests).
#ifndef CONVERGE_SERVICES_NOTIFICATION_NOTIFICATION_SERVER_H_
#define CONVERGE_SERVICES_NOTIFICATION_NOTIFICATION_SERVER_H_

#include <memory>
#include <string>

#include "services/notification/hub.h"
#include "services/notification/notification_service.h"

namespace converge::notification {

class NotificationServer {
 public:
  explicit NotificationServer(std::string service_token)
      : service_(&hub_, std::move(service_token)) {}
  NotificationService* service() { return &service_; }
  Hub* hub() { return &hub_; }

 private:
  Hub hub_;
  NotificationService service_;
};

}  // namespace converge::notification

#endif  // CONVERGE_SERVICES_NOTIFICATION_NOTIFICATION_SERVER_H_
