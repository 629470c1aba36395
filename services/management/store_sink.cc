#include "services/management/store_sink.h"

#include <grpcpp/grpcpp.h>

#include "common/bearer_token.h"
#include "common/grpc_status.h"

namespace converge::management {

StoreNamespaceSink::StoreNamespaceSink(const std::string& store_address, std::string service_token)
    : stub_(store::v1::StoreService::NewStub(
          grpc::CreateChannel(store_address, grpc::InsecureChannelCredentials()))),
      service_token_(std::move(service_token)) {}

absl::Status StoreNamespaceSink::RegisterNamespace(
    const std::string& ns, const std::vector<std::string>& member_device_ids) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  AddBearerToken(&ctx, service_token_);
  store::v1::RegisterNamespaceRequest req;
  req.set_namespace_id(ns);
  for (const std::string& id : member_device_ids) req.add_member_device_ids(id);
  store::v1::RegisterNamespaceResponse resp;
  return FromGrpcStatus(stub_->RegisterNamespace(&ctx, req, &resp), "store.RegisterNamespace");
}

}  // namespace converge::management
