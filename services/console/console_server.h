// ConsoleServer: the web console converge-management serves (docs/console.md) — its pages
// (built into the binary) and its JSON API, over HTTPS with the deployment's certificate.
//
//   GET  /, /app.js, /style.css, /vendor/...   the pages (strict Content-Security-Policy)
//   POST /api/session      sign in: {"operator_token": T} or {"user_id": U, "password": P}
//   GET  /api/session      who is signed in, and the session's CSRF token
//   DELETE /api/session    sign out
//   POST /api/v1/<Method>  a management call (ManagementJsonClient), as the signed-in person
//
// The session is an HttpOnly, Secure, SameSite=Strict cookie; every change (POST and DELETE,
// sign-in aside) must carry the session's CSRF token in X-CSRF-Token, and a request whose
// Origin is another site's is refused. Bodies are at most 64 KiB; a small pool of threads serves.
// Thread-safe; the destructor stops serving.
#ifndef CONVERGE_SERVICES_CONSOLE_CONSOLE_SERVER_H_
#define CONVERGE_SERVICES_CONSOLE_CONSOLE_SERVER_H_

#include <memory>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "services/console/management_json_client.h"
#include "services/console/session_store.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace converge::console {

struct ConsoleOptions {
  std::string listen;     // "host:port"; port 0 picks a free one
  std::string tls_cert;   // PEM; empty (with tls_key): plain HTTP, for loopback tests only
  std::string tls_key;
  std::shared_ptr<grpc::Channel> management;  // to management (in process)
  absl::Duration idle = absl::Minutes(30);
  size_t max_sessions = 10'000;
};

class ConsoleServer {
 public:
  static absl::StatusOr<std::unique_ptr<ConsoleServer>> Start(ConsoleOptions options);
  ~ConsoleServer();

  int port() const { return port_; }

 private:
  ConsoleServer(ConsoleOptions options);
  void Route();
  void SignIn(const httplib::Request& req, httplib::Response& res);
  void WhoIsSignedIn(const httplib::Request& req, httplib::Response& res);
  void SignOut(const httplib::Request& req, httplib::Response& res);
  void Call(const httplib::Request& req, httplib::Response& res);
  void Download(const httplib::Request& req, httplib::Response& res);

  const ConsoleOptions options_;
  ManagementJsonClient management_;
  SessionStore sessions_;
  std::unique_ptr<httplib::Server> server_;
  int port_ = 0;
  std::thread thread_;
};

}  // namespace converge::console

#endif  // CONVERGE_SERVICES_CONSOLE_CONSOLE_SERVER_H_
