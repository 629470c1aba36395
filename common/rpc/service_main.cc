#include "common/base/files.h"
#include "common/rpc/service_main.h"

#include <cstdlib>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "common/base/logging.h"
#include "common/base/memory_trim.h"
#include "common/base/metrics.h"
#include "common/rpc/server_runner.h"
#include "common/security/tls.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:0", "address to serve on (port 0: any free port)");
ABSL_FLAG(std::string, port_file, "", "write the bound port here once serving");
ABSL_FLAG(std::string, service_token, "",
          "token for service-to-service calls (or $CONVERGE_SERVICE_TOKEN)");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warn or error");
ABSL_FLAG(bool, log_json, false, "log JSON lines");
ABSL_FLAG(std::string, metrics_listen, "",
          "serve Prometheus metrics over HTTP here (host:port, port 0: any free port; empty: off)");
ABSL_FLAG(std::string, metrics_port_file, "", "write the metrics port here once serving");
ABSL_FLAG(std::string, token_verify_key, "",
          "PEM Ed25519 public key that verifies device tokens (management's token-verify.pub)");

namespace converge {

void InitService(int argc, char** argv) {
  ConfigureAllocator();
  BlockTerminationSignals();
  absl::ParseCommandLine(argc, argv);
  InitLogging(absl::GetFlag(FLAGS_log_level), absl::GetFlag(FLAGS_log_json));
}

std::string FlagOrEnv(const std::string& flag, const char* env) {
  if (!flag.empty() || getenv(env) == nullptr) return flag;
  return getenv(env);
}

std::string ServiceToken() {
  return FlagOrEnv(absl::GetFlag(FLAGS_service_token), "CONVERGE_SERVICE_TOKEN");
}

absl::StatusOr<AuthOptions> ServiceAuthFromFlags(const std::string& operator_token) {
  AuthOptions auth;
  auth.operator_token = operator_token;
  auth.service_token = ServiceToken();
  const std::string key = FlagOrEnv(absl::GetFlag(FLAGS_token_verify_key), "CONVERGE_TOKEN_VERIFY_KEY");
  if (key.empty()) {
    GetLogger("auth")->warn("no --token_verify_key: device tokens are not checked (tests on one machine only)");
    return auth;
  }
  absl::StatusOr<std::unique_ptr<TokenVerifier>> verifier = TokenVerifier::FromPemFile(key);
  if (!verifier.ok()) return verifier.status();
  auth.verifier = std::move(*verifier);
  return auth;
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ServiceChannelCredentials() {
  return ChannelCredentials(TlsFromFlags());
}

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> StartMetricsFromFlags() {
  const std::string listen = absl::GetFlag(FLAGS_metrics_listen);
  if (listen.empty()) return std::unique_ptr<MetricsHttpServer>();
  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> server = MetricsHttpServer::Start(listen, &DefaultMetrics());
  if (!server.ok()) return server.status();
  const std::string port_file = absl::GetFlag(FLAGS_metrics_port_file);
  if (!port_file.empty()) {
    absl::Status written = WriteFileAtomically(port_file, absl::StrCat((*server)->port(), "\n"));
    if (!written.ok()) return written;
  }
  GetLogger("metrics")->info("metrics on http://{}:{}/metrics", listen.substr(0, listen.rfind(':')),
                             (*server)->port());
  return server;
}

int ServeUntilSignal(const std::string& name, const std::vector<grpc::Service*>& services,
                     const std::function<std::shared_ptr<void>(int port, grpc::Server* server)>& on_serving) {
  auto log = GetLogger(name);
  ServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.port_file = absl::GetFlag(FLAGS_port_file);
  const TlsFiles tls = TlsFromFlags();
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> creds = ServerCredentials(tls);
  if (!creds.ok()) {
    log->error("cannot serve: {}", creds.status().ToString());
    return 1;
  }
  options.credentials = *creds;
  if (!tls.enabled()) log->warn("no --tls_ca: serving PLAINTEXT (for tests on one machine only)");
  absl::StatusOr<std::unique_ptr<RunningServer>> server = StartServer(options, services);
  if (!server.ok()) {
    log->error("cannot serve: {}", server.status().ToString());
    return 1;
  }
  log->info("{} serving on port {}", name, (*server)->port());
  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> metrics = StartMetricsFromFlags();
  if (!metrics.ok()) {
    log->error("cannot serve metrics: {}", metrics.status().ToString());
    (*server)->Shutdown();
    return 1;
  }
  std::shared_ptr<void> serving = on_serving ? on_serving((*server)->port(), (*server)->server()) : nullptr;
  const int sig = WaitForTerminationSignal();
  log->info("signal {}: shutting down", sig);
  serving.reset();
  (*server)->Shutdown();
  return 0;
}

}  // namespace converge
