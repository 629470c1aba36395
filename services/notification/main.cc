// converge-notify: fans "namespace N is at seq S" out to subscribed engines. Memory only.
#include "common/base/logging.h"
#include "common/rpc/service_main.h"
#include "services/notification/notification_server.h"

int main(int argc, char** argv) {
  converge::InitService(argc, argv);
  absl::StatusOr<converge::AuthOptions> auth = converge::ServiceAuthFromFlags("");
  if (!auth.ok()) {
    converge::GetLogger("converge-notify")->error("cannot start: {}", auth.status().ToString());
    return 1;
  }
  converge::notification::NotificationServer notify(converge::notification::OptionsFromFlags(*auth));
  return converge::ServeUntilSignal("converge-notify", {notify.service()});
}
