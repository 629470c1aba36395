#include "engine/client/enrollment.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/base/status_macros.h"
#include "common/rpc/grpc_status.h"
#include "common/security/bearer_token.h"

namespace converge::engine {
namespace {

void Prepare(grpc::ClientContext* ctx, const std::string& token) {
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  AddBearerToken(ctx, token);
}

// BindSetting stores `value` under `name`, or checks it equals what is stored.
absl::Status BindSetting(LocalIndex* index, const std::string& name, const std::string& value) {
  CONVERGE_ASSIGN_OR_RETURN(std::optional<std::string> bound, index->GetSetting(name));
  if (!bound.has_value()) return index->SetSetting(name, value);
  if (*bound != value) {
    return absl::FailedPreconditionError(absl::StrCat("this folder is bound to ", name, " '", *bound,
                                                      "', not '", value, "'"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<absl::Time> RefreshDeviceToken(management::v1::ManagementService::StubInterface* management,
                                              const std::string& device_id, const std::string& credential,
                                              TokenSource* tokens) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  management::v1::IssueDeviceTokenRequest req;
  req.set_device_id(device_id);
  req.set_credential(credential);
  management::v1::DeviceToken resp;
  CONVERGE_RETURN_IF_ERROR(FromGrpcStatus(management->IssueDeviceToken(&ctx, req, &resp), "management.IssueDeviceToken"));
  tokens->Set(resp.token());
  return absl::FromUnixMillis(resp.expires_at_unix_ms());
}

absl::StatusOr<Enrollment> Enroll(management::v1::ManagementService::StubInterface* management,
                                  LocalIndex* index, const EnrollmentRequest& request, TokenSource* tokens) {
  CONVERGE_RETURN_IF_ERROR(BindSetting(index, "namespace", request.namespace_id));
  CONVERGE_RETURN_IF_ERROR(BindSetting(index, "user", request.user_id));
  Enrollment out;
  CONVERGE_ASSIGN_OR_RETURN(std::optional<std::string> device_id, index->GetSetting("device_id"));
  CONVERGE_ASSIGN_OR_RETURN(std::optional<std::string> credential, index->GetSetting("credential"));
  if (device_id.has_value() && credential.has_value()) {
    out.device_id = *device_id;
    out.credential = *credential;
  } else {
    grpc::ClientContext ctx;
    Prepare(&ctx, request.enrollment_token.empty() ? request.token : "");
    management::v1::RegisterDeviceRequest req;
    req.set_user_id(request.user_id);
    req.set_name(request.device_name);
    req.set_enrollment_token(request.enrollment_token);
    management::v1::RegisterDeviceResponse resp;
    CONVERGE_RETURN_IF_ERROR(FromGrpcStatus(management->RegisterDevice(&ctx, req, &resp),
                                            "management.RegisterDevice"));
    out.device_id = resp.device().device_id();
    out.credential = resp.credential();
    // Credential first: a device id without it would be useless.
    CONVERGE_RETURN_IF_ERROR(index->SetSetting("credential", out.credential));
    CONVERGE_RETURN_IF_ERROR(index->SetSetting("device_id", out.device_id));
    CONVERGE_RETURN_IF_ERROR(index->SetSetting("device_name", resp.device().name()));
  }
  // The name the device registered with (a device enrolled before names were kept: the one
  // asked for now).
  CONVERGE_ASSIGN_OR_RETURN(std::optional<std::string> name, index->GetSetting("device_name"));
  out.device_name = name.has_value() ? *name : request.device_name;

  // A device token (when management signs them) authenticates the rest.
  absl::StatusOr<absl::Time> token = RefreshDeviceToken(management, out.device_id, out.credential, tokens);
  if (!token.ok() && !absl::IsFailedPrecondition(token.status())) return token.status();
  const std::string bearer = token.ok() ? "" : request.token;

  grpc::ClientContext join_ctx;
  Prepare(&join_ctx, bearer);
  management::v1::AddDeviceToNamespaceRequest join;
  join.set_namespace_id(request.namespace_id);
  join.set_device_id(out.device_id);
  management::v1::AddDeviceToNamespaceResponse joined;
  CONVERGE_RETURN_IF_ERROR(FromGrpcStatus(management->AddDeviceToNamespace(&join_ctx, join, &joined),
                                          "management.AddDeviceToNamespace"));
  out.sync_xattrs = joined.options().sync_xattrs();
  out.encrypted = joined.options().encrypted();

  // The token names the namespaces it grants: get one that includes the one just joined.
  if (token.ok()) CONVERGE_RETURN_IF_ERROR(RefreshDeviceToken(management, out.device_id, out.credential, tokens).status());

  grpc::ClientContext ep_ctx;
  Prepare(&ep_ctx, bearer);
  management::v1::Endpoints endpoints;
  management::v1::GetEndpointsRequest ep_req;
  ep_req.set_namespace_id(request.namespace_id);  // its store shard
  CONVERGE_RETURN_IF_ERROR(FromGrpcStatus(
      management->GetEndpoints(&ep_ctx, ep_req, &endpoints),
      "management.GetEndpoints"));
  out.store_address = endpoints.store_address();
  out.notification_address = endpoints.notification_address();
  return out;
}

}  // namespace converge::engine
