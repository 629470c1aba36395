#include "common/security/auth.h"

#include <openssl/crypto.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/security/tls.h"

namespace converge {
namespace {

bool SameSecret(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

std::string BearerOf(const grpc::ServerContextBase& ctx) {
  const auto& metadata = ctx.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return "";
  absl::string_view v(it->second.data(), it->second.size());
  if (!absl::ConsumePrefix(&v, "Bearer ")) return "";
  return std::string(v);
}

absl::Status Authenticator::RequireService(const grpc::ServerContextBase& ctx) const {
  if (CallIsTls(ctx)) {
    if (PeerIsService(ctx)) return absl::OkStatus();
    return absl::UnauthenticatedError("only Converge services (with the service certificate) may call this");
  }
  if (options_.service_token.empty() || SameSecret(BearerOf(ctx), options_.service_token)) {
    return absl::OkStatus();
  }
  return absl::UnauthenticatedError("only Converge services may call this: missing or wrong service token");
}

bool Authenticator::IsOperator(const grpc::ServerContextBase& ctx) const {
  return !options_.operator_token.empty() && SameSecret(BearerOf(ctx), options_.operator_token);
}

absl::Status Authenticator::RequireOperator(const grpc::ServerContextBase& ctx) const {
  if (options_.operator_token.empty() || IsOperator(ctx)) return absl::OkStatus();
  return absl::UnauthenticatedError("operator credential required: missing or wrong bearer token");
}

absl::StatusOr<DeviceClaims> Authenticator::VerifyDevice(const grpc::ServerContextBase& ctx) const {
  if (options_.verifier == nullptr) return absl::FailedPreconditionError("this server verifies no device tokens");
  const std::string bearer = BearerOf(ctx);
  if (bearer.empty()) return absl::UnauthenticatedError("no device token: call with 'authorization: Bearer cvt1...'");
  absl::StatusOr<DeviceClaims> claims = options_.verifier->Verify(bearer, absl::Now());
  if (!claims.ok()) return claims.status();
  if (IsRevoked(claims->device_id)) {
    return absl::PermissionDeniedError(absl::StrCat("device ", claims->device_id, " was revoked"));
  }
  return claims;
}

absl::StatusOr<std::string> Authenticator::VerifyUser(const grpc::ServerContextBase& ctx) const {
  if (options_.verifier == nullptr) return absl::FailedPreconditionError("this server verifies no user tokens");
  absl::StatusOr<UserClaims> claims = options_.verifier->VerifyUser(BearerOf(ctx), absl::Now());
  if (!claims.ok()) return claims.status();
  return claims->user_id;
}

absl::StatusOr<std::string> Authenticator::DeviceOf(const grpc::ServerContextBase& ctx,
                                                    const std::string& request_device_id) const {
  if (options_.verifier == nullptr) {
    if (request_device_id.empty()) return absl::InvalidArgumentError("device_id is required");
    return request_device_id;
  }
  absl::StatusOr<DeviceClaims> claims = VerifyDevice(ctx);
  if (!claims.ok()) return claims.status();
  if (!request_device_id.empty() && request_device_id != claims->device_id) {
    return absl::PermissionDeniedError(absl::StrCat("the device token is for another device than '",
                                                    request_device_id.substr(0, 64), "'"));
  }
  return claims->device_id;
}

void Authenticator::Revoke(const std::string& device_id, absl::Time until) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  for (auto it = revoked_.begin(); it != revoked_.end();) {
    if (it->second <= now) {
      revoked_.erase(it++);
    } else {
      ++it;
    }
  }
  absl::Time& t = revoked_[device_id];
  t = std::max(t, until);
}

bool Authenticator::IsRevoked(const std::string& device_id) const {
  absl::MutexLock lock(&mu_);
  auto it = revoked_.find(device_id);
  return it != revoked_.end() && it->second > absl::Now();
}

}  // namespace converge
