// MetricsHttpServer: serves a MetricsRegistry as Prometheus text at GET /metrics (and "ok" at
// GET /healthz) over plain HTTP/1.0 on its own thread. Meant for loopback or a scrape network;
// one request per connection, bounded request size and read time.
//
//   auto server = MetricsHttpServer::Start("127.0.0.1:0", &DefaultMetrics());
//   int port = (*server)->port();
//
// Thread-safe; the destructor stops the thread.
#ifndef CONVERGE_COMMON_METRICS_HTTP_H_
#define CONVERGE_COMMON_METRICS_HTTP_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "common/metrics.h"

namespace converge {

class MetricsHttpServer {
 public:
  // Start binds `listen` ("host:port", IPv4 or [IPv6]; port 0 picks a free one).
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(const std::string& listen,
                                                                  const MetricsRegistry* registry);
  ~MetricsHttpServer();

  int port() const { return port_; }

 private:
  MetricsHttpServer(int listen_fd, int stop_fd, int port, const MetricsRegistry* registry)
      : listen_fd_(listen_fd), stop_fd_(stop_fd), port_(port), registry_(registry) {}
  void Run();
  void Serve(int fd);

  const int listen_fd_;
  const int stop_fd_;
  const int port_;
  const MetricsRegistry* const registry_;
  std::thread thread_;
};

// HttpGet fetches http://host:port/path and returns the body of a 200 response (tests, CLI).
absl::StatusOr<std::string> HttpGet(const std::string& host_port, const std::string& path);

}  // namespace converge

#endif  // CONVERGE_COMMON_METRICS_HTTP_H_
