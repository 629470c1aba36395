// Who is calling: the one place a server decides that, for every RPC.
//
//   - a Converge service: over TLS, a client certificate the CA verified with CN converge-service
//     (mutual TLS); over plaintext (tests of one process), the shared service token;
//   - an operator: "authorization: Bearer <operator token>";
//   - a person: "authorization: Bearer cvu1...." — a user token management signed at sign-in
//     (the web console); it names only the user;
//   - a device: "authorization: Bearer cvt1...." — a device token management signed, verified
//     here without a round trip. The device and user of a call come from the token; a request's
//     own device_id, if set, must name the same device.
//
// Thread-safe.
#ifndef CONVERGE_COMMON_SECURITY_AUTH_H_
#define CONVERGE_COMMON_SECURITY_AUTH_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/security/device_token.h"

namespace converge {

struct AuthOptions {
  // Empty: operator calls are not guarded (tests of one process only).
  std::string operator_token;
  // Accepted from plaintext callers as a service credential; empty: plaintext service calls are
  // not guarded. Over TLS only the service certificate counts.
  std::string service_token;
  // Null: device tokens are not required and a request's device_id is trusted (tests only).
  std::shared_ptr<const TokenVerifier> verifier;
};

class Authenticator {
 public:
  explicit Authenticator(AuthOptions options) : options_(std::move(options)) {}

  bool verifies_devices() const { return options_.verifier != nullptr; }

  // RequireService: Unauthenticated unless the caller is a Converge service.
  absl::Status RequireService(const grpc::ServerContextBase& ctx) const;
  // RequireOperator: Unauthenticated unless the caller holds the operator token.
  absl::Status RequireOperator(const grpc::ServerContextBase& ctx) const;
  // IsOperator: whether the call carries the operator token (false when operators are unguarded).
  bool IsOperator(const grpc::ServerContextBase& ctx) const;

  // VerifyDevice returns the claims of the call's device token: Unauthenticated if there is none
  // or it does not verify (or has expired), PermissionDenied if the device was revoked.
  // FailedPrecondition when this server verifies no device tokens.
  absl::StatusOr<DeviceClaims> VerifyDevice(const grpc::ServerContextBase& ctx) const;

  // VerifyUser returns the user of the call's user token (the web console's people):
  // Unauthenticated if there is none or it does not verify; FailedPrecondition when this server
  // verifies no tokens.
  absl::StatusOr<std::string> VerifyUser(const grpc::ServerContextBase& ctx) const;

  // DeviceOf returns the device a call acts for: the token's device (PermissionDenied if
  // `request_device_id` is set and names another one), or, when this server verifies no tokens,
  // `request_device_id` itself (InvalidArgument if empty).
  absl::StatusOr<std::string> DeviceOf(const grpc::ServerContextBase& ctx, const std::string& request_device_id) const;

  // Revoke refuses `device_id`'s tokens until `until` (tokens issued before then expire by it).
  void Revoke(const std::string& device_id, absl::Time until);
  bool IsRevoked(const std::string& device_id) const;

 private:
  const AuthOptions options_;
  mutable absl::Mutex mu_;
  mutable absl::flat_hash_map<std::string, absl::Time> revoked_ ABSL_GUARDED_BY(mu_);
};

// BearerOf returns the bearer credential of a call ("" if none).
std::string BearerOf(const grpc::ServerContextBase& ctx);

}  // namespace converge

#endif  // CONVERGE_COMMON_SECURITY_AUTH_H_
