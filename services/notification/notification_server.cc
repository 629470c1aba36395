#include "services/notification/notification_server.h"

#include "absl/flags/flag.h"

ABSL_FLAG(absl::Duration, heartbeat_interval, absl::Seconds(2),
          "default heartbeat interval on a quiet Subscribe stream (a subscriber may ask for another)");
ABSL_FLAG(double, fault_drop_events, 0,
          "FAULT INJECTION, tests only: drop this share (0..1) of event deliveries");

namespace converge::notification {

NotificationOptions OptionsFromFlags(AuthOptions auth) {
  NotificationOptions o;
  o.auth = std::move(auth);
  o.default_heartbeat = absl::GetFlag(FLAGS_heartbeat_interval);
  o.fault_drop_ratio = absl::GetFlag(FLAGS_fault_drop_events);
  return o;
}

}  // namespace converge::notification
