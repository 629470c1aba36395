// MetricsHttpServer: serves a MetricsRegistry as Prometheus text at GET /metrics (and "ok" at
// GET /healthz) over plain HTTP, with cpp-httplib on a small pool of its own threads. Meant for
// loopback or a scrape network: bounded request size and read time.
//
//   auto server = MetricsHttpServer::Start("127.0.0.1:0", &DefaultMetrics());
//   int port = (*server)->port();
//
// Thread-safe; the destructor stops serving.
#ifndef CONVERGE_COMMON_RPC_METRICS_HTTP_H_
#define CONVERGE_COMMON_RPC_METRICS_HTTP_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "common/base/metrics.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace converge {

struct HostPort {
  std::string host;
  int port = 0;
};

// SplitHostPort reads "host:port" or "[v6]:port" (InvalidArgument otherwise).
absl::StatusOr<HostPort> SplitHostPort(const std::string& address);

class MetricsHttpServer {
 public:
  // Start binds `listen` ("host:port", IPv4 or [IPv6]; port 0 picks a free one).
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(const std::string& listen,
                                                                  const MetricsRegistry* registry);
  ~MetricsHttpServer();

  int port() const { return port_; }

 private:
  MetricsHttpServer(std::unique_ptr<httplib::Server> server, int port);

  std::unique_ptr<httplib::Server> server_;
  const int port_;
  std::thread thread_;
};

// HttpGet fetches http://host:port/path and returns the body of a 200 response (tests, CLI).
absl::StatusOr<std::string> HttpGet(const std::string& host_port, const std::string& path);

}  // namespace converge

#endif  // CONVERGE_COMMON_RPC_METRICS_HTTP_H_
