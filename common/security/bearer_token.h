// Attaching a bearer credential (operator, service or device token) to an outgoing call, as
// metadata "authorization: Bearer <token>". Servers read it through common/security/auth.h.
#ifndef CONVERGE_COMMON_SECURITY_BEARER_TOKEN_H_
#define CONVERGE_COMMON_SECURITY_BEARER_TOKEN_H_

#include <grpcpp/grpcpp.h>

#include <string>

namespace converge {

// AddBearerToken attaches `token` to an outgoing call (nothing if empty).
void AddBearerToken(grpc::ClientContext* ctx, const std::string& token);

}  // namespace converge

#endif  // CONVERGE_COMMON_SECURITY_BEARER_TOKEN_H_
