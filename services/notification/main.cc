// converge-notify: fans "namespace N is at seq S" out to subscribed engines. Memory only. With
// --etcd it announces itself there (stores publish to every replica announced).
#include "common/base/logging.h"
#include "common/rpc/service_main.h"
#include "services/coord/etcd_flags.h"
#include "services/notification/notification_server.h"

int main(int argc, char** argv) {
  converge::InitService(argc, argv);
  auto log = converge::GetLogger("converge-notify");
  absl::StatusOr<converge::AuthOptions> auth = converge::ServiceAuthFromFlags("");
  if (!auth.ok()) {
    log->error("cannot start: {}", auth.status().ToString());
    return 1;
  }
  absl::StatusOr<std::unique_ptr<converge::coord::EtcdClient>> etcd = converge::coord::EtcdFromFlags();
  if (!etcd.ok()) {
    log->error("cannot start: {}", etcd.status().ToString());
    return 1;
  }
  converge::notification::NotificationServer notify(converge::notification::OptionsFromFlags(*auth));
  return converge::ServeUntilSignal("converge-notify", {notify.service()}, [&](int port, grpc::Server*) -> std::shared_ptr<void> {
    return converge::coord::AnnounceFromFlags(etcd->get(), "notify", port);
  });
}
