// Starting and stopping gRPC servers the same way in every service.
//
//   BlockTerminationSignals();                 // first thing in main()
//   auto server = StartServer(options, {&service});
//   WaitForTerminationSignal();                // SIGTERM or SIGINT
//   (*server)->Shutdown();
//
// Every server binds the given address (port 0 picks a free port), serves gRPC health checking
// and server reflection, and can write the bound port to a file for whoever started it.
#ifndef CONVERGE_COMMON_RPC_SERVER_RUNNER_H_
#define CONVERGE_COMMON_RPC_SERVER_RUNNER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace converge {

struct ServerOptions {
  std::string listen = "127.0.0.1:0";
  // When set, the bound port is written here (atomically) once the server is up.
  std::string port_file;
  // Null: plaintext. See common/security/tls.h.
  std::shared_ptr<grpc::ServerCredentials> credentials;
  // Limits that blunt hostile clients (see docs/security.md): message sizes, concurrent streams
  // on one connection, and the threads all calls share.
  int max_receive_message_bytes = 16 << 20;
  int max_send_message_bytes = 16 << 20;
  int max_concurrent_streams_per_connection = 256;
  int max_threads = 256;
  absl::Duration shutdown_grace = absl::Seconds(5);
};

class RunningServer {
 public:
  RunningServer(std::unique_ptr<grpc::Server> server, int port, absl::Duration grace)
      : server_(std::move(server)), port_(port), grace_(grace) {}
  ~RunningServer() { Shutdown(); }

  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  grpc::Server* server() { return server_.get(); }
  // Shutdown stops accepting calls, lets running calls finish within the grace period, then
  // cancels the rest. Idempotent.
  void Shutdown();

 private:
  std::unique_ptr<grpc::Server> server_;
  int port_;
  absl::Duration grace_;
  bool stopped_ = false;
};

// StartServer registers `services` and starts serving. Returns Unavailable if the address
// cannot be bound.
absl::StatusOr<std::unique_ptr<RunningServer>> StartServer(
    const ServerOptions& options, const std::vector<grpc::Service*>& services);

// BlockTerminationSignals blocks SIGTERM and SIGINT in the calling thread and the threads it
// starts afterwards, so WaitForTerminationSignal can receive them. Call it first in main().
void BlockTerminationSignals();

// WaitForTerminationSignal returns the signal number once SIGTERM or SIGINT arrives.
int WaitForTerminationSignal();

}  // namespace converge

#endif  // CONVERGE_COMMON_RPC_SERVER_RUNNER_H_
