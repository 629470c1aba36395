// StoreService's handlers of online namespace moves (namespace_transfer.h).
#include "common/base/status_macros.h"
#include "common/rpc/grpc_status.h"
#include "services/store/store_service.h"

namespace converge::store {
namespace {

constexpr int kMaxRecordsPerPage = 200000;

grpc::Status NoTransfer() { return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no namespace moves here"); }

void PageToProto(TransferPage&& page, v1::NamespaceRecords* out) {
  for (TransferRecord& r : page.records) {
    v1::NamespaceRecord* p = out->add_records();
    p->set_op(r.op == TransferRecord::Op::kPut      ? v1::NamespaceRecord::PUT
              : r.op == TransferRecord::Op::kDelete ? v1::NamespaceRecord::DELETE
                                                    : v1::NamespaceRecord::CLEAR_PREFIX);
    p->set_key(std::move(r.key));
    p->set_value(std::move(r.value));
  }
  for (ChunkData& c : page.chunks) {
    v1::ChunkBytes* p = out->add_chunks();
    p->set_sha256(DigestToBytes(c.sha256));
    p->set_encoding(c.encoding == ChunkEncoding::kZstd ? v1::CHUNK_ENCODING_ZSTD : v1::CHUNK_ENCODING_RAW);
    p->set_data(std::move(c.data));
  }
}

absl::StatusOr<TransferPage> PageFromProto(v1::NamespaceRecords* in) {
  if (in->records_size() > kMaxRecordsPerPage) return absl::InvalidArgumentError("too many records in one page");
  TransferPage page;
  for (v1::NamespaceRecord& r : *in->mutable_records()) {
    TransferRecord out;
    switch (r.op()) {
      case v1::NamespaceRecord::PUT: out.op = TransferRecord::Op::kPut; break;
      case v1::NamespaceRecord::DELETE: out.op = TransferRecord::Op::kDelete; break;
      case v1::NamespaceRecord::CLEAR_PREFIX: out.op = TransferRecord::Op::kClearPrefix; break;
      default: return absl::InvalidArgumentError("unknown record op");
    }
    out.key = std::move(*r.mutable_key());
    out.value = std::move(*r.mutable_value());
    page.records.push_back(std::move(out));
  }
  for (v1::ChunkBytes& c : *in->mutable_chunks()) {
    ChunkData chunk;
    CONVERGE_ASSIGN_OR_RETURN(chunk.sha256, DigestFromBytes(c.sha256()));
    if (c.encoding() != v1::CHUNK_ENCODING_RAW && c.encoding() != v1::CHUNK_ENCODING_ZSTD) {
      return absl::InvalidArgumentError("a moved chunk is raw or zstd");
    }
    chunk.encoding = c.encoding() == v1::CHUNK_ENCODING_ZSTD ? ChunkEncoding::kZstd : ChunkEncoding::kRaw;
    chunk.data = std::move(*c.mutable_data());
    page.chunks.push_back(std::move(chunk));
  }
  return page;
}

}  // namespace

grpc::Status StoreService::SetNamespaceGate(grpc::ServerContext* ctx, const v1::SetNamespaceGateRequest* req,
                                            v1::SetNamespaceGateResponse* resp) {
  if (absl::Status s = auth_.RequireService(*ctx); !s.ok()) return ToGrpcStatus(s);
  if (namespace_transfer_ == nullptr) return NoTransfer();
  const std::string& ns = req->namespace_id();
  CommitLog::Gate gate;
  switch (req->gate()) {
    case v1::NAMESPACE_GATE_OPEN: gate = CommitLog::Gate::kOpen; break;
    case v1::NAMESPACE_GATE_FROZEN: gate = CommitLog::Gate::kFrozen; break;
    case v1::NAMESPACE_GATE_MOVED: gate = CommitLog::Gate::kMoved; break;
    case v1::NAMESPACE_GATE_ARRIVING: gate = CommitLog::Gate::kArriving; break;
    case v1::NAMESPACE_GATE_LEAVING: gate = CommitLog::Gate::kLeaving; break;
    default: return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "unknown namespace gate");
  }
  if (gate == CommitLog::Gate::kArriving && log_->GateOf(ns) == CommitLog::Gate::kOpen &&
      log_->HeadSeq(ns).ok()) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("namespace '", ns, "' is already served by this store shard"));
  }
  absl::StatusOr<uint64_t> head = log_->SetGate(ns, gate);
  if (!head.ok()) return ToGrpcStatus(head.status());
  if (req->drop_records()) {
    if (gate != CommitLog::Gate::kMoved && gate != CommitLog::Gate::kArriving) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "records are dropped only when moved or arriving");
    }
    if (absl::Status s = namespace_transfer_->Drop(ns); !s.ok()) return ToGrpcStatus(s);
  }
  // Opened after an import: serve what was copied in.
  if (gate == CommitLog::Gate::kOpen || req->drop_records()) {
    if (absl::Status s = log_->Reload(ns); !s.ok()) return ToGrpcStatus(s);
  }
  resp->set_head_seq(*head);
  return grpc::Status::OK;
}

grpc::Status StoreService::ExportNamespace(grpc::ServerContext* ctx, const v1::ExportNamespaceRequest* req,
                                           grpc::ServerWriter<v1::NamespaceRecords>* writer) {
  if (absl::Status s = auth_.RequireService(*ctx); !s.ok()) return ToGrpcStatus(s);
  if (namespace_transfer_ == nullptr) return NoTransfer();
  const std::string& ns = req->namespace_id();
  absl::StatusOr<uint64_t> head = namespace_transfer_->Export(ns, req->after_seq(), [&](TransferPage&& page) {
    if (ctx->IsCancelled()) return absl::CancelledError("export cancelled");
    v1::NamespaceRecords out;
    out.set_namespace_id(ns);
    PageToProto(std::move(page), &out);
    if (!writer->Write(out)) return absl::CancelledError("the importer went away");
    return absl::OkStatus();
  });
  if (!head.ok()) return ToGrpcStatus(head.status());
  v1::NamespaceRecords last;  // the head, after every page
  last.set_namespace_id(ns);
  last.set_head_seq(*head);
  if (!writer->Write(last)) return grpc::Status(grpc::StatusCode::CANCELLED, "the importer went away");
  return grpc::Status::OK;
}

grpc::Status StoreService::ImportNamespace(grpc::ServerContext* ctx, grpc::ServerReader<v1::NamespaceRecords>* reader,
                                           v1::ImportNamespaceResponse* resp) {
  if (absl::Status s = auth_.RequireService(*ctx); !s.ok()) return ToGrpcStatus(s);
  if (namespace_transfer_ == nullptr) return NoTransfer();
  v1::NamespaceRecords in;
  std::string ns;
  while (reader->Read(&in)) {
    if (ns.empty()) ns = in.namespace_id();
    if (in.namespace_id() != ns) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "one ImportNamespace stream imports one namespace");
    }
    absl::StatusOr<TransferPage> page = PageFromProto(&in);
    if (!page.ok()) return ToGrpcStatus(page.status());
    if (absl::Status s = namespace_transfer_->Import(ns, *page); !s.ok()) return ToGrpcStatus(s);
  }
  if (ns.empty()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "nothing imported");
  if (absl::Status s = log_->Reload(ns); !s.ok()) return ToGrpcStatus(s);
  absl::StatusOr<uint64_t> head = log_->HeadSeq(ns);
  resp->set_head_seq(head.ok() ? *head : 0);
  return grpc::Status::OK;
}

}  // namespace converge::store
