// converge-management: users, devices, namespaces and membership; the operator API.
#include <cstdlib>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "common/logging.h"
#include "common/server_runner.h"
#include "services/management/management_server.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:0", "address to serve on (port 0: any free port)");
ABSL_FLAG(std::string, port_file, "", "write the bound port here");
ABSL_FLAG(std::string, data_dir, "", "folder for the registry's RocksDB (required)");
ABSL_FLAG(std::string, store, "", "address of converge-store (required)");
ABSL_FLAG(std::string, notify, "", "address of converge-notify, handed to engines");
ABSL_FLAG(std::string, token, "", "bearer token guarding the API (or $CONVERGE_TOKEN)");
ABSL_FLAG(std::string, service_token, "", "token for calls to the store (or $CONVERGE_SERVICE_TOKEN)");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warn or error");
ABSL_FLAG(bool, log_json, false, "log JSON lines");

namespace {
std::string FlagOrEnv(const std::string& flag, const char* env) {
  if (!flag.empty() || getenv(env) == nullptr) return flag;
  return getenv(env);
}
}  // namespace

int main(int argc, char** argv) {
  converge::BlockTerminationSignals();
  absl::ParseCommandLine(argc, argv);
  converge::InitLogging(absl::GetFlag(FLAGS_log_level), absl::GetFlag(FLAGS_log_json));
  auto log = converge::GetLogger("management");

  converge::management::ManagementOptions options;
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  options.token = FlagOrEnv(absl::GetFlag(FLAGS_token), "CONVERGE_TOKEN");
  options.service_token = FlagOrEnv(absl::GetFlag(FLAGS_service_token), "CONVERGE_SERVICE_TOKEN");
  options.endpoints.store_address = absl::GetFlag(FLAGS_store);
  options.endpoints.notification_address = absl::GetFlag(FLAGS_notify);
  if (options.token.empty()) log->warn("no --token: the management API is unguarded");
  auto management = converge::management::ManagementServer::Create(options);
  if (!management.ok()) {
    log->error("cannot start: {}", management.status().ToString());
    return 1;
  }
  converge::ServerOptions server_options;
  server_options.listen = absl::GetFlag(FLAGS_listen);
  server_options.port_file = absl::GetFlag(FLAGS_port_file);
  auto server = converge::StartServer(server_options, {(*management)->service()});
  if (!server.ok()) {
    log->error("cannot serve: {}", server.status().ToString());
    return 1;
  }
  log->info("converge-management serving on port {} with data in {}", (*server)->port(),
            options.data_dir);
  int sig = converge::WaitForTerminationSignal();
  log->info("signal {}: shutting down", sig);
  (*server)->Shutdown();
  return 0;
}
