#include "services/console/console_server.h"

#include <httplib.h>

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/base/logging.h"
#include "common/rpc/metrics_http.h"
#include "services/console/assets.h"

namespace converge::console {
namespace {

constexpr int kThreads = 8;
constexpr size_t kMaxBodyBytes = 64 << 10;
constexpr char kCookie[] = "cv_session";
constexpr char kJson[] = "application/json";
constexpr absl::Duration kOperatorSession = absl::Hours(8);
constexpr char kCsp[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

void Fail(httplib::Response& res, const absl::Status& s) {
  res.status = ManagementJsonClient::HttpStatusOf(s);
  res.set_content(ManagementJsonClient::ErrorJson(s), kJson);
}

std::string CookieOf(const httplib::Request& req) {
  for (absl::string_view part : absl::StrSplit(req.get_header_value("Cookie"), ';')) {
    part = absl::StripAsciiWhitespace(part);
    if (absl::ConsumePrefix(&part, kCookie) && absl::ConsumePrefix(&part, "=")) return std::string(part);
  }
  return "";
}

// PercentEncoded: RFC 5987's encoding of a file name for Content-Disposition.
std::string PercentEncoded(const std::string& name) {
  std::string out;
  for (unsigned char c : name) {
    if (absl::ascii_isalnum(c) || c == '.' || c == '-' || c == '_') {
      out.push_back(static_cast<char>(c));
    } else {
      absl::StrAppend(&out, "%", absl::Hex(c, absl::kZeroPad2));
    }
  }
  return out;
}

// Every value here is plain: a fixed word, a validated user id, base64url, a number.
std::string SessionJson(const Session& s) {
  return absl::StrCat(R"({"kind": ")", s.is_operator() ? "operator" : "user", R"(", "user_id": ")", s.user_id,
                      R"(", "csrf": ")", s.csrf, R"(", "expires_at_unix_ms": )", absl::ToUnixMillis(s.expires_at), "}");
}

}  // namespace

ConsoleServer::ConsoleServer(ConsoleOptions options)
    : options_(std::move(options)),
      management_(options_.management),
      sessions_(Clock::Real(), options_.idle, options_.max_sessions) {}

absl::StatusOr<std::unique_ptr<ConsoleServer>> ConsoleServer::Start(ConsoleOptions options) {
  absl::StatusOr<HostPort> hp = SplitHostPort(options.listen);
  if (!hp.ok()) return hp.status();
  if (options.tls_cert.empty() != options.tls_key.empty()) {
    return absl::InvalidArgumentError("the console needs both a certificate and its key (or neither)");
  }
  std::unique_ptr<ConsoleServer> out(new ConsoleServer(std::move(options)));
  if (out->options_.tls_cert.empty()) {
    out->server_ = std::make_unique<httplib::Server>();
  } else {
    auto tls = std::make_unique<httplib::SSLServer>(out->options_.tls_cert.c_str(), out->options_.tls_key.c_str());
    if (!tls->is_valid()) {
      return absl::InvalidArgumentError(absl::StrCat("the console cannot use the certificate '",
                                                     out->options_.tls_cert, "' and its key"));
    }
    out->server_ = std::move(tls);
  }
  httplib::Server& server = *out->server_;
  server.new_task_queue = [] { return new httplib::ThreadPool(kThreads); };
  server.set_read_timeout(10, 0);
  server.set_write_timeout(30, 0);
  server.set_payload_max_length(kMaxBodyBytes);
  server.set_tcp_nodelay(true);  // an answer in one go, not held back 40 ms for a delayed ACK
  out->Route();
  const int port = hp->port == 0 ? server.bind_to_any_port(hp->host)
                                 : (server.bind_to_port(hp->host, hp->port) ? hp->port : -1);
  if (port <= 0) return absl::UnavailableError(absl::StrCat("the console cannot listen on ", out->options_.listen));
  out->port_ = port;
  httplib::Server* raw = out->server_.get();
  out->thread_ = std::thread([raw] { raw->listen_after_bind(); });
  return out;
}

ConsoleServer::~ConsoleServer() {
  if (server_ != nullptr) server_->stop();
  if (thread_.joinable()) thread_.join();
}

void ConsoleServer::Route() {
  httplib::Server& server = *server_;
  const bool tls = !options_.tls_cert.empty();
  server.set_pre_routing_handler([tls](const httplib::Request& req, httplib::Response& res) {
    res.set_header("Content-Security-Policy", kCsp);
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("X-Frame-Options", "DENY");
    res.set_header("Referrer-Policy", "no-referrer");
    res.set_header("Cross-Origin-Opener-Policy", "same-origin");
    if (tls) res.set_header("Strict-Transport-Security", "max-age=31536000");
    // Another site's page may not make this one act: a request from a foreign origin is refused.
    const std::string origin = req.get_header_value("Origin");
    if (!origin.empty() && origin != absl::StrCat(tls ? "https://" : "http://", req.get_header_value("Host"))) {
      Fail(res, absl::PermissionDeniedError("a request from another origin"));
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  using Handler = void (ConsoleServer::*)(const httplib::Request&, httplib::Response&);
  auto bind = [this](Handler h) {
    return [this, h](const httplib::Request& req, httplib::Response& res) { (this->*h)(req, res); };
  };
  server.Post("/api/session", bind(&ConsoleServer::SignIn));
  server.Get("/api/session", bind(&ConsoleServer::WhoIsSignedIn));
  server.Delete("/api/session", bind(&ConsoleServer::SignOut));
  server.Post(R"(/api/v1/([A-Za-z]+))", bind(&ConsoleServer::Call));
  server.Get("/api/download", bind(&ConsoleServer::Download));
  // The pages (after the API: routes match in the order they were added).
  server.Get(R"(/[A-Za-z0-9_./-]*)", [](const httplib::Request& req, httplib::Response& res) {
    const Asset* asset = FindAsset(req.path);
    if (asset == nullptr || absl::StrContains(req.path, "..")) {
      res.status = 404;
      res.set_content("not found\n", "text/plain");
      return;
    }
    res.set_header("Cache-Control", req.path == "/" ? "no-store" : "no-cache");
    res.set_content(reinterpret_cast<const char*>(asset->data), asset->size, asset->content_type);
  });
}

void ConsoleServer::SignIn(const httplib::Request& req, httplib::Response& res) {
  const bool tls = !options_.tls_cert.empty();
  absl::StatusOr<ManagementJsonClient::SignInBody> body = ManagementJsonClient::ParseSignIn(req.body);
  if (!body.ok()) return Fail(res, body.status());
  std::optional<Session> session;
  if (!body->operator_token.empty()) {
    // The operator token is checked by management, as on any call.
    if (!management_.CheckOperator(body->operator_token).ok()) {
      return Fail(res, absl::UnauthenticatedError("that is not the operator token"));
    }
    session = sessions_.Create(body->operator_token, "", absl::Now() + kOperatorSession);
  } else {
    absl::StatusOr<std::pair<std::string, absl::Time>> token = management_.SignIn(body->user_id, body->password);
    if (!token.ok()) return Fail(res, token.status());
    session = sessions_.Create(token->first, body->user_id, token->second);
  }
  res.set_header("Set-Cookie", absl::StrCat(kCookie, "=", session->id, "; Path=/; HttpOnly; SameSite=Strict",
                                            tls ? "; Secure" : ""));
  res.set_header("Cache-Control", "no-store");
  res.set_content(SessionJson(*session), kJson);
}

void ConsoleServer::WhoIsSignedIn(const httplib::Request& req, httplib::Response& res) {
  std::optional<Session> session = sessions_.Find(CookieOf(req));
  if (!session) return Fail(res, absl::UnauthenticatedError("not signed in"));
  res.set_header("Cache-Control", "no-store");
  res.set_content(SessionJson(*session), kJson);
}

void ConsoleServer::SignOut(const httplib::Request& req, httplib::Response& res) {
  const std::string id = CookieOf(req);
  std::optional<Session> session = sessions_.Find(id);
  if (!session) return Fail(res, absl::UnauthenticatedError("not signed in"));
  if (!SessionStore::CsrfMatches(*session, req.get_header_value("X-CSRF-Token"))) {
    return Fail(res, absl::PermissionDeniedError("missing or wrong X-CSRF-Token"));
  }
  sessions_.Remove(id);
  res.set_header("Set-Cookie", absl::StrCat(kCookie, "=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"));
  res.set_content("{}", kJson);
}

void ConsoleServer::Call(const httplib::Request& req, httplib::Response& res) {
  std::optional<Session> session = sessions_.Find(CookieOf(req));
  if (!session) return Fail(res, absl::UnauthenticatedError("not signed in"));
  if (!SessionStore::CsrfMatches(*session, req.get_header_value("X-CSRF-Token"))) {
    return Fail(res, absl::PermissionDeniedError("missing or wrong X-CSRF-Token"));
  }
  const std::string method = req.matches[1];
  absl::StatusOr<std::string> answer = management_.Call(method, req.body, session->bearer);
  if (!answer.ok()) return Fail(res, answer.status());
  res.set_header("Cache-Control", "no-store");
  res.set_content(*answer, kJson);
}

// A kept version's bytes, as an attachment (a read: the cookie alone, SameSite=Strict).
void ConsoleServer::Download(const httplib::Request& req, httplib::Response& res) {
  std::optional<Session> session = sessions_.Find(CookieOf(req));
  if (!session) return Fail(res, absl::UnauthenticatedError("not signed in"));
  uint64_t seq = 0;
  if (!absl::SimpleAtoi(req.get_param_value("seq"), &seq)) return Fail(res, absl::InvalidArgumentError("seq=N"));
  const std::string path = req.get_param_value("path");
  absl::StatusOr<std::unique_ptr<VersionReader>> reader =
      management_.OpenDownload(session->bearer, req.get_param_value("namespace_id"), path, seq);
  if (!reader.ok()) return Fail(res, reader.status());
  const std::string name = path.substr(path.rfind('/') + 1);
  res.set_header("Content-Disposition", absl::StrCat("attachment; filename*=UTF-8''", PercentEncoded(name)));
  res.set_header("Cache-Control", "no-store");
  std::shared_ptr<VersionReader> shared(std::move(*reader));
  if (shared->size() == 0) {  // nothing to stream (a provider of no bytes is never called)
    std::string piece;
    while (shared->Next(&piece)) {
    }
    if (absl::Status s = shared->Finish(); !s.ok()) return Fail(res, s);
    res.set_content("", "application/octet-stream");
    return;
  }
  res.set_content_provider(shared->size(), "application/octet-stream",
                           [shared](size_t, size_t, httplib::DataSink& sink) {
                             std::string piece;
                             while (shared->Next(&piece)) {
                               if (!sink.write(piece.data(), piece.size())) return false;
                             }
                             return shared->Finish().ok();
                           });
}

}  // namespace converge::console
