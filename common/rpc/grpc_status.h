// Conversion between absl::Status and grpc::Status. The codes map 1:1.
#ifndef CONVERGE_COMMON_WIRE_GRPC_STATUS_H_
#define CONVERGE_COMMON_WIRE_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace converge {

// ToGrpcStatus keeps code and message.
grpc::Status ToGrpcStatus(const absl::Status& status);

// FromGrpcStatus keeps code and message; `what` prefixes the message (e.g. "store.Commit").
absl::Status FromGrpcStatus(const grpc::Status& status, const char* what = nullptr);

}  // namespace converge

#endif  // CONVERGE_COMMON_WIRE_GRPC_STATUS_H_
