#include "common/rpc/metrics_http.h"

#include <httplib.h>

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace converge {
namespace {

constexpr size_t kMaxRequestBytes = 8 << 10;
constexpr int kThreads = 2;
constexpr char kContentType[] = "text/plain; version=0.0.4";

}  // namespace

absl::StatusOr<HostPort> SplitHostPort(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return absl::InvalidArgumentError(absl::StrCat("no port in '", address, "'"));
  HostPort hp;
  absl::string_view host(address.data(), colon);
  if (absl::ConsumePrefix(&host, "[") && !absl::ConsumeSuffix(&host, "]")) {
    return absl::InvalidArgumentError(absl::StrCat("bad IPv6 address in '", address, "'"));
  }
  hp.host = std::string(host);
  if (!absl::SimpleAtoi(address.substr(colon + 1), &hp.port) || hp.port < 0 || hp.port > 65535 || hp.host.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("bad address '", address, "' (host:port)"));
  }
  return hp;
}


MetricsHttpServer::MetricsHttpServer(std::unique_ptr<httplib::Server> server, int port)
    : server_(std::move(server)), port_(port) {}

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(const std::string& listen,
                                                                            const MetricsRegistry* registry) {
  absl::StatusOr<HostPort> hp = SplitHostPort(listen);
  if (!hp.ok()) return hp.status();
  auto server = std::make_unique<httplib::Server>();
  server->new_task_queue = [] { return new httplib::ThreadPool(kThreads); };
  server->set_read_timeout(5, 0);
  server->set_write_timeout(5, 0);
  server->set_keep_alive_max_count(1);
  server->set_payload_max_length(kMaxRequestBytes);
  server->Get("/metrics", [registry](const httplib::Request&, httplib::Response& res) {
    res.set_content(registry->Text(), kContentType);
  });
  server->Get("/healthz", [](const httplib::Request&, httplib::Response& res) { res.set_content("ok\n", kContentType); });
  server->set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.status == 404) res.set_content("try /metrics\n", kContentType);
  });
  const int port = hp->port == 0 ? server->bind_to_any_port(hp->host) : (server->bind_to_port(hp->host, hp->port) ? hp->port : -1);
  if (port <= 0) return absl::UnavailableError(absl::StrCat("cannot listen on ", listen));
  std::unique_ptr<MetricsHttpServer> out(new MetricsHttpServer(std::move(server), port));
  httplib::Server* raw = out->server_.get();
  out->thread_ = std::thread([raw] { raw->listen_after_bind(); });
  return out;
}

MetricsHttpServer::~MetricsHttpServer() {
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

absl::StatusOr<std::string> HttpGet(const std::string& host_port, const std::string& path) {
  absl::StatusOr<HostPort> hp = SplitHostPort(host_port);
  if (!hp.ok()) return hp.status();
  httplib::Client client(hp->host, hp->port);
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(10, 0);
  httplib::Result res = client.Get(path);
  if (!res) {
    return absl::UnavailableError(absl::StrCat("GET ", path, " from ", host_port, ": ", httplib::to_string(res.error())));
  }
  if (res->status != 200) return absl::UnavailableError(absl::StrCat("GET ", path, ": HTTP ", res->status));
  return res->body;
}

}  // namespace converge
