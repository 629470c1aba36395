// GrpcDataPlane as a MoveTransport: namespace moves over the stores' gRPC API.
#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/rpc/grpc_status.h"
#include "common/security/bearer_token.h"
#include "services/management/data_plane_client.h"

namespace converge::management {
namespace {

// A copy streams for as long as it needs; a gate is one write.
constexpr absl::Duration kGateDeadline = absl::Seconds(10);
constexpr absl::Duration kCopyDeadline = absl::Hours(6);

store::v1::NamespaceGate ToProto(MoveGate gate) {
  switch (gate) {
    case MoveGate::kOpen: return store::v1::NAMESPACE_GATE_OPEN;
    case MoveGate::kLeaving: return store::v1::NAMESPACE_GATE_LEAVING;
    case MoveGate::kFrozen: return store::v1::NAMESPACE_GATE_FROZEN;
    case MoveGate::kMoved: return store::v1::NAMESPACE_GATE_MOVED;
    case MoveGate::kArriving: return store::v1::NAMESPACE_GATE_ARRIVING;
  }
  return store::v1::NAMESPACE_GATE_OPEN;
}

}  // namespace

absl::StatusOr<uint64_t> GrpcDataPlane::SetGate(uint32_t shard, const std::string& ns, MoveGate gate,
                                                bool drop_records) {
  CONVERGE_ASSIGN_OR_RETURN(store::v1::StoreService::Stub * stub, Stub(shard, absl::StrCat("namespace '", ns, "'")));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + kGateDeadline));
  AddBearerToken(&ctx, service_token_);
  store::v1::SetNamespaceGateRequest req;
  req.set_namespace_id(ns);
  req.set_gate(ToProto(gate));
  req.set_drop_records(drop_records);
  store::v1::SetNamespaceGateResponse resp;
  CONVERGE_RETURN_IF_ERROR(FromGrpcStatus(stub->SetNamespaceGate(&ctx, req, &resp),
                                          absl::StrCat("store shard ", shard, ".SetNamespaceGate").c_str()));
  return resp.head_seq();
}

absl::StatusOr<uint64_t> GrpcDataPlane::Copy(uint32_t from, uint32_t to, const std::string& ns, uint64_t after_seq,
                                             uint64_t* bytes) {
  CONVERGE_ASSIGN_OR_RETURN(store::v1::StoreService::Stub * source, Stub(from, absl::StrCat("namespace '", ns, "'")));
  CONVERGE_ASSIGN_OR_RETURN(store::v1::StoreService::Stub * target, Stub(to, absl::StrCat("namespace '", ns, "'")));
  const auto deadline = absl::ToChronoTime(absl::Now() + kCopyDeadline);
  grpc::ClientContext export_ctx, import_ctx;
  export_ctx.set_deadline(deadline);
  import_ctx.set_deadline(deadline);
  AddBearerToken(&export_ctx, service_token_);
  AddBearerToken(&import_ctx, service_token_);
  store::v1::ExportNamespaceRequest req;
  req.set_namespace_id(ns);
  req.set_after_seq(after_seq);
  std::unique_ptr<grpc::ClientReader<store::v1::NamespaceRecords>> reader = source->ExportNamespace(&export_ctx, req);
  store::v1::ImportNamespaceResponse imported;
  std::unique_ptr<grpc::ClientWriter<store::v1::NamespaceRecords>> writer = target->ImportNamespace(&import_ctx, &imported);
  store::v1::NamespaceRecords page;
  uint64_t head = 0;
  bool headed = false;
  while (reader->Read(&page)) {
    if (page.records_size() == 0 && page.chunks_size() == 0) {
      head = page.head_seq();  // the last message
      headed = true;
      continue;
    }
    *bytes += page.ByteSizeLong();
    if (!writer->Write(page)) {  // the target refused: its status says why
      export_ctx.TryCancel();
      (void)reader->Finish();
      return FromGrpcStatus(writer->Finish(), absl::StrCat("store shard ", to, ".ImportNamespace").c_str());
    }
  }
  const grpc::Status exported = reader->Finish();
  if (!exported.ok()) {
    import_ctx.TryCancel();
    (void)writer->Finish();
    return FromGrpcStatus(exported, absl::StrCat("store shard ", from, ".ExportNamespace").c_str());
  }
  writer->WritesDone();
  CONVERGE_RETURN_IF_ERROR(FromGrpcStatus(writer->Finish(), absl::StrCat("store shard ", to, ".ImportNamespace").c_str()));
  if (!headed) return absl::InternalError(absl::StrCat("store shard ", from, " ended its export without its head"));
  return head;
}

}  // namespace converge::management
