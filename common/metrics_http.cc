#include "common/metrics_http.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace converge {
namespace {

constexpr size_t kMaxRequestBytes = 8192;
constexpr int kIoTimeoutMs = 2000;

absl::Status SplitHostPort(const std::string& address, std::string* host, int* port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), port) || *port < 0 ||
      *port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("want host:port, got \"", address, "\""));
  }
  *host = address.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  return absl::OkStatus();
}

// OpenSocket returns a socket connected to (connect_to) or listening on address.
absl::StatusOr<int> OpenSocket(const std::string& address, bool connect_to, int* bound_port) {
  std::string host;
  int port = 0;
  if (absl::Status s = SplitHostPort(address, &host, &port); !s.ok()) return s;
  struct addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (connect_to ? 0 : AI_PASSIVE);
  struct addrinfo* res = nullptr;
  const std::string port_str = absl::StrCat(port);
  if (int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), port_str.c_str(), &hints, &res); rc != 0) {
    return absl::InvalidArgumentError(absl::StrCat("resolve ", address, ": ", gai_strerror(rc)));
  }
  const int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    freeaddrinfo(res);
    return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  }
  int rc;
  if (connect_to) {
    rc = connect(fd, res->ai_addr, res->ai_addrlen);
  } else {
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    rc = bind(fd, res->ai_addr, res->ai_addrlen);
    if (rc == 0) rc = ::listen(fd, 64);
  }
  freeaddrinfo(res);
  if (rc != 0) {
    const int err = errno;
    close(fd);
    return absl::UnavailableError(absl::StrCat(connect_to ? "connect " : "listen ", address, ": ", strerror(err)));
  }
  if (bound_port != nullptr) {
    struct sockaddr_storage addr = {};
    socklen_t len = sizeof(addr);
    getsockname(fd, reinterpret_cast<struct sockaddr*>(&addr), &len);
    *bound_port = addr.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port)
                                             : ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  }
  return fd;
}

// ReadUntil reads from fd until `done(buffer)` or the limit, timeout or end of stream.
bool ReadUntil(int fd, std::string* buf, size_t limit, const std::function<bool(const std::string&)>& done) {
  char tmp[4096];
  while (!done(*buf)) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, kIoTimeoutMs) <= 0) return false;
    const ssize_t n = read(fd, tmp, sizeof(tmp));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return done(*buf) || (n == 0 && limit == SIZE_MAX);
    buf->append(tmp, static_cast<size_t>(n));
    if (buf->size() > limit) return false;
  }
  return true;
}

void WriteAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(const std::string& listen,
                                                                            const MetricsRegistry* registry) {
  int port = 0;
  absl::StatusOr<int> fd = OpenSocket(listen, /*connect_to=*/false, &port);
  if (!fd.ok()) return fd.status();
  const int stop = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop < 0) {
    close(*fd);
    return absl::InternalError(absl::StrCat("eventfd: ", strerror(errno)));
  }
  std::unique_ptr<MetricsHttpServer> server(new MetricsHttpServer(*fd, stop, port, registry));
  MetricsHttpServer* raw = server.get();
  server->thread_ = std::thread([raw] { raw->Run(); });
  return server;
}

MetricsHttpServer::~MetricsHttpServer() {
  const uint64_t one = 1;
  if (write(stop_fd_, &one, sizeof(one)) < 0) GetLogger("metrics")->warn("stop: {}", strerror(errno));
  if (thread_.joinable()) thread_.join();
  close(listen_fd_);
  close(stop_fd_);
}

void MetricsHttpServer::Run() {
  struct pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
  while (true) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    Serve(fd);
    close(fd);
  }
}

void MetricsHttpServer::Serve(int fd) {
  std::string request;
  const bool complete = ReadUntil(fd, &request, kMaxRequestBytes, [](const std::string& b) {
    return absl::StrContains(b, "\r\n\r\n") || absl::StrContains(b, "\n\n");
  });
  std::string status = "200 OK";
  std::string body;
  if (!complete) {
    status = "400 Bad Request";
    body = "bad request\n";
  } else if (absl::StartsWith(request, "GET /metrics ") || absl::StartsWith(request, "GET /metrics?")) {
    body = registry_->Text();
  } else if (absl::StartsWith(request, "GET /healthz ")) {
    body = "ok\n";
  } else if (!absl::StartsWith(request, "GET ")) {
    status = "405 Method Not Allowed";
    body = "only GET\n";
  } else {
    status = "404 Not Found";
    body = "try /metrics\n";
  }
  WriteAll(fd, absl::StrCat("HTTP/1.0 ", status, "\r\nContent-Type: text/plain; version=0.0.4\r\n",
                            "Content-Length: ", body.size(), "\r\nConnection: close\r\n\r\n", body));
}

absl::StatusOr<std::string> HttpGet(const std::string& host_port, const std::string& path) {
  absl::StatusOr<int> fd = OpenSocket(host_port, /*connect_to=*/true, nullptr);
  if (!fd.ok()) return fd.status();
  WriteAll(*fd, absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: ", host_port, "\r\n\r\n"));
  std::string response;
  const bool ok = ReadUntil(*fd, &response, SIZE_MAX, [](const std::string&) { return false; });
  close(*fd);
  if (!ok) return absl::UnavailableError(absl::StrCat("GET ", path, " from ", host_port, ": no full response"));
  const size_t header_end = response.find("\r\n\r\n");
  if (header_end == std::string::npos) return absl::DataLossError("malformed HTTP response");
  if (!absl::StartsWith(response, "HTTP/1.0 200") && !absl::StartsWith(response, "HTTP/1.1 200")) {
    return absl::UnavailableError(absl::StrCat("GET ", path, ": ", response.substr(0, response.find('\r'))));
  }
  return response.substr(header_end + 4);
}

}  // namespace converge
