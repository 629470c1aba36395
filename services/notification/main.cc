// converge-notify: fans "namespace N is at seq S" out to subscribed engines. Memory only.
#include <cstdlib>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "common/logging.h"
#include "common/server_runner.h"
#include "services/notification/notification_server.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:0", "address to serve on (port 0: any free port)");
ABSL_FLAG(std::string, port_file, "", "write the bound port here");
ABSL_FLAG(std::string, service_token, "", "token the store must send with Publish (or $CONVERGE_SERVICE_TOKEN)");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warn or error");
ABSL_FLAG(bool, log_json, false, "log JSON lines");

int main(int argc, char** argv) {
  converge::BlockTerminationSignals();
  absl::ParseCommandLine(argc, argv);
  converge::InitLogging(absl::GetFlag(FLAGS_log_level), absl::GetFlag(FLAGS_log_json));
  auto log = converge::GetLogger("notify");
  std::string token = absl::GetFlag(FLAGS_service_token);
  if (token.empty() && getenv("CONVERGE_SERVICE_TOKEN") != nullptr) token = getenv("CONVERGE_SERVICE_TOKEN");

  converge::notification::NotificationServer notify(token);
  converge::ServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.port_file = absl::GetFlag(FLAGS_port_file);
  auto server = converge::StartServer(options, {notify.service()});
  if (!server.ok()) {
    log->error("cannot serve: {}", server.status().ToString());
    return 1;
  }
  log->info("converge-notify serving on port {}", (*server)->port());
  int sig = converge::WaitForTerminationSignal();
  log->info("signal {}: shutting down", sig);
  (*server)->Shutdown();
  return 0;
}
