// ManagementJsonClient: the web console's JSON API is the management gRPC API itself. A request names one
// of the console's methods and carries the method's request message as JSON (proto field
// names); the gateway calls management over `channel` (in process) as the session's person —
// with the operator token or the user's token — so every authorization decision is the gRPC
// API's own, made by the same code. The answer is the response message as JSON, or the gRPC
// status, which HttpStatusOf maps to an HTTP code.
//
// Only the methods a console page needs pass (Allowed); the rest, and anything streaming, do not.
// Thread-safe.
#ifndef CONVERGE_SERVICES_CONSOLE_MANAGEMENT_JSON_CLIENT_H_
#define CONVERGE_SERVICES_CONSOLE_MANAGEMENT_JSON_CLIENT_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "converge/management/v1/management.grpc.pb.h"

namespace converge::console {

// VersionReader: a kept file version's bytes as management streams them (DownloadVersion).
class VersionReader {
 public:
  uint64_t size() const { return size_; }
  // Next: the next piece of the file; false at its end or on a failure (Finish says which).
  bool Next(std::string* data);
  absl::Status Finish();

 private:
  friend class ManagementJsonClient;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReader<management::v1::DownloadVersionResponse>> reader_;
  management::v1::DownloadVersionResponse first_;
  bool has_first_ = false;
  uint64_t size_ = 0;
};

class ManagementJsonClient {
 public:
  explicit ManagementJsonClient(std::shared_ptr<grpc::Channel> channel);

  // Call: InvalidArgument for JSON that is not the method's request (unknown fields too),
  // NotFound for a method the console does not offer; otherwise management's own status.
  absl::StatusOr<std::string> Call(const std::string& method, const std::string& json, const std::string& bearer) const;

  bool Allowed(const std::string& method) const { return methods_.count(method) > 0; }
  std::vector<std::string> Methods() const;

  // SignIn: a person's user token and when it expires (management's SignIn).
  absl::StatusOr<std::pair<std::string, absl::Time>> SignIn(const std::string& user_id, const std::string& password) const;
  // OpenDownload starts DownloadVersion as `bearer` and reads its first piece: a call refused
  // (not the person's namespace, no such version) fails here, before any byte is promised.
  absl::StatusOr<std::unique_ptr<VersionReader>> OpenDownload(const std::string& bearer, const std::string& ns,
                                                              const std::string& path, uint64_t seq) const;
  // CheckOperator: OK if management takes `token` as the operator token.
  absl::Status CheckOperator(const std::string& token) const;

  // ParseSignIn reads {"operator_token": T} or {"user_id": U, "password": P}.
  struct SignInBody {
    std::string operator_token, user_id, password;
  };
  static absl::StatusOr<SignInBody> ParseSignIn(const std::string& json);
  // ErrorJson: {"error": message, "code": "PERMISSION_DENIED"}; HttpStatusOf: its HTTP status.
  static std::string ErrorJson(const absl::Status& status);
  static int HttpStatusOf(const absl::Status& status);

  using Stub = management::v1::ManagementService::Stub;
  using Handler = std::function<absl::StatusOr<std::string>(Stub*, const std::string& json, const std::string& bearer)>;

 private:
  std::unique_ptr<Stub> stub_;
  std::map<std::string, Handler> methods_;
};

}  // namespace converge::console

#endif  // CONVERGE_SERVICES_CONSOLE_MANAGEMENT_JSON_CLIENT_H_
