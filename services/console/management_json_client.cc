#include "services/console/management_json_client.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/rpc/grpc_status.h"
#include "common/security/bearer_token.h"

namespace converge::console {
namespace {

namespace v1 = management::v1;
using Stub = ManagementJsonClient::Stub;

constexpr auto kCallDeadline = std::chrono::seconds(30);

template <typename Req, typename Resp>
using Rpc = grpc::Status (Stub::*)(grpc::ClientContext*, const Req&, Resp*);

// Unary makes the handler of one unary method: JSON in, the call as `bearer`, JSON out.
template <typename Req, typename Resp>
ManagementJsonClient::Handler Unary(Rpc<Req, Resp> rpc) {
  return [rpc](Stub* stub, const std::string& json, const std::string& bearer) -> absl::StatusOr<std::string> {
    Req req;
    google::protobuf::util::JsonParseOptions parse;
    parse.ignore_unknown_fields = false;
    if (auto parsed = google::protobuf::util::JsonStringToMessage(json.empty() ? "{}" : json, &req, parse);
        !parsed.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("not a ", Req::descriptor()->name(), ": ", parsed.ToString()));
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + kCallDeadline);
    AddBearerToken(&ctx, bearer);
    Resp resp;
    grpc::Status s = (stub->*rpc)(&ctx, req, &resp);
    if (!s.ok()) return FromGrpcStatus(s);
    google::protobuf::util::JsonPrintOptions print;
    print.always_print_primitive_fields = true;
    print.preserve_proto_field_names = true;
    std::string out;
    if (auto printed = google::protobuf::util::MessageToJsonString(resp, &out, print); !printed.ok()) {
      return absl::InternalError(absl::StrCat("cannot write the answer as JSON: ", printed.ToString()));
    }
    return out;
  };
}

#define CONVERGE_CONSOLE_METHOD(name, Req, Resp) {#name, Unary<v1::Req, v1::Resp>(&Stub::name)}

}  // namespace

ManagementJsonClient::ManagementJsonClient(std::shared_ptr<grpc::Channel> channel)
    : stub_(v1::ManagementService::NewStub(std::move(channel))),
      methods_({
          // Anyone signed in (the gRPC API decides what a user may see).
          CONVERGE_CONSOLE_METHOD(ListNamespaces, ListNamespacesRequest, ListNamespacesResponse),
          CONVERGE_CONSOLE_METHOD(ListDevices, ListDevicesRequest, ListDevicesResponse),
          CONVERGE_CONSOLE_METHOD(GetNamespaceStatus, GetNamespaceStatusRequest, NamespaceStatus),
          CONVERGE_CONSOLE_METHOD(ListConflicts, ListConflictsRequest, ListConflictsResponse),
          CONVERGE_CONSOLE_METHOD(ResolveConflict, ResolveConflictRequest, Conflict),
          CONVERGE_CONSOLE_METHOD(ListFolder, ListFolderRequest, ListFolderResponse),
          CONVERGE_CONSOLE_METHOD(ListFileVersions, ListFileVersionsRequest, ListFileVersionsResponse),
          CONVERGE_CONSOLE_METHOD(RestoreVersion, RestoreVersionRequest, RestoreVersionResponse),
          // Operators.
          CONVERGE_CONSOLE_METHOD(ListUsers, ListUsersRequest, ListUsersResponse),
          CONVERGE_CONSOLE_METHOD(CreateUser, CreateUserRequest, User),
          CONVERGE_CONSOLE_METHOD(SetUserPassword, SetUserPasswordRequest, User),
          CONVERGE_CONSOLE_METHOD(RevokeDevice, RevokeDeviceRequest, Device),
          CONVERGE_CONSOLE_METHOD(ListPendingDeletes, ListPendingDeletesRequest, ListPendingDeletesResponse),
          CONVERGE_CONSOLE_METHOD(ResolvePendingDelete, ResolvePendingDeleteRequest, PendingDelete),
          CONVERGE_CONSOLE_METHOD(CreateEnrollmentToken, CreateEnrollmentTokenRequest, EnrollmentToken),
          CONVERGE_CONSOLE_METHOD(ListShards, ListShardsRequest, ListShardsResponse),
          CONVERGE_CONSOLE_METHOD(GetLagHistory, GetLagHistoryRequest, LagHistory),
          CONVERGE_CONSOLE_METHOD(ListKeyGrants, ListKeyGrantsRequest, ListKeyGrantsResponse),
      }) {}

absl::StatusOr<std::string> ManagementJsonClient::Call(const std::string& method, const std::string& json,
                                              const std::string& bearer) const {
  auto it = methods_.find(method);
  if (it == methods_.end()) return absl::NotFoundError(absl::StrCat("the console offers no method '", method, "'"));
  return it->second(stub_.get(), json, bearer);
}

std::vector<std::string> ManagementJsonClient::Methods() const {
  std::vector<std::string> out;
  for (const auto& [name, handler] : methods_) out.push_back(name);
  return out;
}

absl::StatusOr<std::pair<std::string, absl::Time>> ManagementJsonClient::SignIn(const std::string& user_id,
                                                                              const std::string& password) const {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + kCallDeadline);
  v1::SignInRequest req;
  req.set_user_id(user_id);
  req.set_password(password);
  v1::SignInResponse resp;
  if (grpc::Status s = stub_->SignIn(&ctx, req, &resp); !s.ok()) return FromGrpcStatus(s);
  return std::make_pair(resp.token(), absl::FromUnixMillis(resp.expires_at_unix_ms()));
}

bool VersionReader::Next(std::string* data) {
  if (has_first_) {
    has_first_ = false;
    *data = std::move(*first_.mutable_data());
    return true;
  }
  management::v1::DownloadVersionResponse piece;
  if (!reader_->Read(&piece)) return false;
  *data = std::move(*piece.mutable_data());
  return true;
}

absl::Status VersionReader::Finish() { return FromGrpcStatus(reader_->Finish()); }

absl::StatusOr<std::unique_ptr<VersionReader>> ManagementJsonClient::OpenDownload(const std::string& bearer,
                                                                                 const std::string& ns,
                                                                                 const std::string& path,
                                                                                 uint64_t seq) const {
  auto out = std::make_unique<VersionReader>();
  out->ctx_.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(30));
  AddBearerToken(&out->ctx_, bearer);
  v1::DownloadVersionRequest req;
  req.set_namespace_id(ns);
  req.set_path(path);
  req.set_seq(seq);
  out->reader_ = stub_->DownloadVersion(&out->ctx_, req);
  if (!out->reader_->Read(&out->first_)) {
    absl::Status s = FromGrpcStatus(out->reader_->Finish());
    return s.ok() ? absl::NotFoundError("no such version") : s;
  }
  out->has_first_ = true;
  out->size_ = out->first_.size();
  return out;
}

absl::Status ManagementJsonClient::CheckOperator(const std::string& token) const {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + kCallDeadline);
  AddBearerToken(&ctx, token);
  v1::ListShardsResponse resp;
  return FromGrpcStatus(stub_->ListShards(&ctx, v1::ListShardsRequest(), &resp));
}

absl::StatusOr<ManagementJsonClient::SignInBody> ManagementJsonClient::ParseSignIn(const std::string& json) {
  google::protobuf::Struct body;
  if (!google::protobuf::util::JsonStringToMessage(json, &body).ok()) {
    return absl::InvalidArgumentError(R"(sign in with {"operator_token": ...} or {"user_id": ..., "password": ...})");
  }
  auto field = [&](const char* name) -> std::string {
    auto it = body.fields().find(name);
    return it == body.fields().end() || it->second.kind_case() != google::protobuf::Value::kStringValue
               ? std::string()
               : it->second.string_value();
  };
  return SignInBody{field("operator_token"), field("user_id"), field("password")};
}

std::string ManagementJsonClient::ErrorJson(const absl::Status& status) {
  google::protobuf::Struct out;
  (*out.mutable_fields())["error"].set_string_value(std::string(status.message()));
  (*out.mutable_fields())["code"].set_string_value(absl::StatusCodeToString(status.code()));
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(out, &json).ok()) return R"({"error": "?"})";
  return json;
}

int ManagementJsonClient::HttpStatusOf(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk: return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange: return 400;
    case absl::StatusCode::kUnauthenticated: return 401;
    case absl::StatusCode::kPermissionDenied: return 403;
    case absl::StatusCode::kNotFound: return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kFailedPrecondition: return 409;
    case absl::StatusCode::kResourceExhausted: return 429;
    case absl::StatusCode::kUnimplemented: return 501;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded: return 503;
    default: return 500;
  }
}

}  // namespace converge::console
