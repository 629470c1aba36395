// The shared bearer token that guards operator and service-to-service calls until device
// credentials and TLS arrive. Sent as metadata "authorization: Bearer <token>".
#ifndef CONVERGE_COMMON_BEARER_TOKEN_H_
#define CONVERGE_COMMON_BEARER_TOKEN_H_

#include <grpcpp/grpcpp.h>

#include <string>

#include "absl/status/status.h"

namespace converge {

// CheckBearerToken returns Unauthenticated unless the call carries `expected` (compared in
// constant time). An empty `expected` means the guard is off and everything passes.
absl::Status CheckBearerToken(const grpc::ServerContextBase& ctx, const std::string& expected);

// AddBearerToken attaches `token` to an outgoing call (nothing if empty).
void AddBearerToken(grpc::ClientContext* ctx, const std::string& token);

}  // namespace converge

#endif  // CONVERGE_COMMON_BEARER_TOKEN_H_
