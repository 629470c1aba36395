#include "services/management/registry_kv_client.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/base/random_id.h"
#include "common/base/status_macros.h"
#include "common/rpc/grpc_status.h"
#include "common/security/bearer_token.h"

namespace converge::management {
namespace {

constexpr absl::Duration kLease = absl::Seconds(30);
constexpr absl::Duration kWaitForLock = absl::Seconds(15);

}  // namespace

RegistryKvClient::RegistryKvClient(const std::string& store_address, std::string service_token,
                                 std::shared_ptr<grpc::ChannelCredentials> credentials)
    : service_token_(std::move(service_token)), holder_(absl::StrCat("management-", RandomHex(8))) {
  if (credentials == nullptr) credentials = grpc::InsecureChannelCredentials();
  stub_ = store::v1::StoreService::NewStub(grpc::CreateChannel(store_address, credentials));
}

std::unique_ptr<grpc::ClientContext> RegistryKvClient::Ctx() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  AddBearerToken(ctx.get(), service_token_);
  return ctx;
}

absl::StatusOr<std::string> RegistryKvClient::Get(const std::string& key) {
  store::v1::RegistryReadRequest req;
  req.set_key(key);
  store::v1::RegistryReadResponse resp;
  CONVERGE_RETURN_IF_ERROR(FromGrpcStatus(stub_->RegistryRead(Ctx().get(), req, &resp), "store.RegistryRead"));
  if (resp.records_size() != 1) return absl::DataLossError("registry read returned no record");
  return resp.records(0).value();
}

absl::Status RegistryKvClient::Put(const std::string& key, const std::string& value) {
  store::v1::RegistryWriteRequest req;
  req.set_holder(holder_);
  store::v1::RegistryRecord* r = req.add_put();
  r->set_key(key);
  r->set_value(value);
  store::v1::RegistryWriteResponse resp;
  return FromGrpcStatus(stub_->RegistryWrite(Ctx().get(), req, &resp), "store.RegistryWrite");
}

absl::Status RegistryKvClient::Delete(const std::string& key) {
  store::v1::RegistryWriteRequest req;
  req.set_holder(holder_);
  req.add_delete_(key);
  store::v1::RegistryWriteResponse resp;
  return FromGrpcStatus(stub_->RegistryWrite(Ctx().get(), req, &resp), "store.RegistryWrite");
}

absl::Status RegistryKvClient::Scan(const std::string& prefix, const ScanFn& fn) {
  store::v1::RegistryReadRequest req;
  req.set_prefix(prefix);
  store::v1::RegistryReadResponse resp;
  CONVERGE_RETURN_IF_ERROR(FromGrpcStatus(stub_->RegistryRead(Ctx().get(), req, &resp), "store.RegistryRead"));
  for (const store::v1::RegistryRecord& r : resp.records()) {
    if (r.key().compare(0, prefix.size(), prefix) != 0) return absl::DataLossError("registry scan out of prefix");
    CONVERGE_RETURN_IF_ERROR(fn(absl::string_view(r.key()).substr(prefix.size()), r.value()));
  }
  return absl::OkStatus();
}

absl::StatusOr<RegistryKv::Lease> RegistryKvClient::Lock() {
  const absl::Time give_up = absl::Now() + kWaitForLock;
  absl::Duration wait = absl::Milliseconds(5);
  while (true) {
    store::v1::RegistryLockRequest req;
    req.set_holder(holder_);
    req.set_lease_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(kLease)));
    store::v1::RegistryLockResponse resp;
    CONVERGE_RETURN_IF_ERROR(FromGrpcStatus(stub_->RegistryLock(Ctx().get(), req, &resp), "store.RegistryLock"));
    if (resp.acquired()) break;
    if (absl::Now() > give_up) {
      return absl::UnavailableError("another management replica holds the registry lock; retry");
    }
    absl::SleepFor(wait);
    wait = std::min(wait * 2, absl::Milliseconds(200));
  }
  return Lease([this] {
    store::v1::RegistryLockRequest req;
    req.set_holder(holder_);
    req.set_release(true);
    store::v1::RegistryLockResponse resp;
    stub_->RegistryLock(Ctx().get(), req, &resp).ok();  // if lost, the lease runs out by itself
  });
}

}  // namespace converge::management
