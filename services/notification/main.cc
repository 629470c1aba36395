// converge-notify: fans "namespace N is at seq S" out to subscribed engines. Memory only.
#include "common/service_main.h"
#include "services/notification/notification_server.h"

int main(int argc, char** argv) {
  converge::InitService(argc, argv);
  converge::notification::NotificationServer notify(converge::notification::OptionsFromFlags(converge::ServiceToken()));
  return converge::ServeUntilSignal("converge-notify", {notify.service()});
}
