// What every Converge service's main() shares: the common flags (--listen, --port_file,
// --service_token, --log_level, --log_json, --metrics_listen), logging setup, and serving until SIGTERM/SIGINT.
//
//   int main(int argc, char** argv) {
//     converge::InitService(argc, argv);
//     ... build the service from its own flags ...
//     return converge::ServeUntilSignal("converge-store", {service});
//   }
#ifndef CONVERGE_COMMON_RPC_SERVICE_MAIN_H_
#define CONVERGE_COMMON_RPC_SERVICE_MAIN_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/status/statusor.h"
#include "common/rpc/metrics_http.h"
#include "common/security/auth.h"

ABSL_DECLARE_FLAG(std::string, listen);
ABSL_DECLARE_FLAG(std::string, port_file);
ABSL_DECLARE_FLAG(std::string, service_token);
ABSL_DECLARE_FLAG(std::string, log_level);
ABSL_DECLARE_FLAG(bool, log_json);
ABSL_DECLARE_FLAG(std::string, metrics_listen);
ABSL_DECLARE_FLAG(std::string, metrics_port_file);
ABSL_DECLARE_FLAG(std::string, token_verify_key);

namespace converge {

// InitService blocks the termination signals (before any thread starts), parses the command
// line and sets up logging.
void InitService(int argc, char** argv);

// FlagOrEnv returns `flag` unless it is empty and the environment variable `env` is set.
std::string FlagOrEnv(const std::string& flag, const char* env);

// ServiceToken is --service_token, or $CONVERGE_SERVICE_TOKEN.
std::string ServiceToken();

// ServiceAuthFromFlags: who may call this service — `operator_token`, the service token, and
// device tokens verified with --token_verify_key (none verified when it is empty: a warning).
absl::StatusOr<AuthOptions> ServiceAuthFromFlags(const std::string& operator_token);

// ServiceChannelCredentials: how this service calls another one — TLS with its own certificate
// as the client certificate (mutual TLS), or plaintext when TLS is off.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ServiceChannelCredentials();

// StartMetricsFromFlags serves DefaultMetrics() on --metrics_listen (writing
// --metrics_port_file); a null server when the flag is empty.
absl::StatusOr<std::unique_ptr<MetricsHttpServer>> StartMetricsFromFlags();

// ServeUntilSignal serves `services` on --listen (writing --port_file) until SIGTERM or SIGINT,
// then shuts down gracefully. Returns main()'s exit code. `on_serving`, if given, is called with
// the port and the gRPC server (for in-process channels) once it serves; what it returns is kept until the shutdown begins (e.g. this replica's
// announcement in etcd, withdrawn before the server stops).
int ServeUntilSignal(const std::string& name, const std::vector<grpc::Service*>& services,
                     const std::function<std::shared_ptr<void>(int port, grpc::Server* server)>& on_serving = nullptr);

}  // namespace converge

#endif  // CONVERGE_COMMON_RPC_SERVICE_MAIN_H_
