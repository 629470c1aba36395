// converge-store: chunk store, commit logs, file tables and cursors over RocksDB.
#include <cstdlib>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "common/logging.h"
#include "common/server_runner.h"
#include "services/store/store_server.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:0", "address to serve on (port 0: any free port)");
ABSL_FLAG(std::string, port_file, "", "write the bound port here");
ABSL_FLAG(std::string, data_dir, "", "folder for the store's RocksDB (required)");
ABSL_FLAG(std::string, notify, "", "address of converge-notify (empty: none)");
ABSL_FLAG(std::string, service_token, "", "token for service-to-service calls (or $CONVERGE_SERVICE_TOKEN)");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warn or error");
ABSL_FLAG(bool, log_json, false, "log JSON lines");

int main(int argc, char** argv) {
  converge::BlockTerminationSignals();
  absl::ParseCommandLine(argc, argv);
  converge::InitLogging(absl::GetFlag(FLAGS_log_level), absl::GetFlag(FLAGS_log_json));
  auto log = converge::GetLogger("store");

  converge::store::StoreOptions options;
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  options.notify_address = absl::GetFlag(FLAGS_notify);
  options.service_token = absl::GetFlag(FLAGS_service_token);
  if (options.service_token.empty() && getenv("CONVERGE_SERVICE_TOKEN") != nullptr) {
    options.service_token = getenv("CONVERGE_SERVICE_TOKEN");
  }
  auto store = converge::store::StoreServer::Create(options);
  if (!store.ok()) {
    log->error("cannot start: {}", store.status().ToString());
    return 1;
  }
  converge::ServerOptions server_options;
  server_options.listen = absl::GetFlag(FLAGS_listen);
  server_options.port_file = absl::GetFlag(FLAGS_port_file);
  auto server = converge::StartServer(server_options, {(*store)->service()});
  if (!server.ok()) {
    log->error("cannot serve: {}", server.status().ToString());
    return 1;
  }
  log->info("converge-store serving on port {} with data in {}", (*server)->port(), options.data_dir);
  int sig = converge::WaitForTerminationSignal();
  log->info("signal {}: shutting down", sig);
  (*server)->Shutdown();
  return 0;
}
