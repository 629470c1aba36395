// RpcMetricsInterceptorFactory: a gRPC server interceptor that counts every call by method and
// status code (converge_rpc_requests_total) and times unary calls
// (converge_rpc_duration_seconds), into DefaultMetrics(). Installed by StartServer.
#ifndef CONVERGE_COMMON_RPC_RPC_METRICS_H_
#define CONVERGE_COMMON_RPC_RPC_METRICS_H_

#include <grpcpp/support/server_interceptor.h>

namespace converge {

class RpcMetricsInterceptorFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override;
};

}  // namespace converge

#endif  // CONVERGE_COMMON_RPC_RPC_METRICS_H_
