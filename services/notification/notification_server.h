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
  explicit NotificationServer(NotificationOptions options) : service_(&hub_, options) {
    hub_.set_drop_ratio(options.fault_drop_ratio);
  }
  NotificationService* service() { return &service_; }
  // RevokeDevices: what the RevokeDevices RPC does, in process (the all-in-one server).
  size_t RevokeDevices(const std::vector<std::string>& device_ids, absl::Time until) {
    return service_.Revoke(device_ids, until);
  }
  Hub* hub() { return &hub_; }

 private:
  Hub hub_;  // outlives the service and its streams
  NotificationService service_;
};

// OptionsFromFlags: the notification flags (--heartbeat_interval, --fault_drop_events) shared
// by converge-notify and converge-server.
NotificationOptions OptionsFromFlags(AuthOptions auth);

}  // namespace converge::notification

#endif  // CONVERGE_SERVICES_NOTIFICATION_NOTIFICATION_SERVER_H_
