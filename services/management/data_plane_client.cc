#include "services/management/data_plane_client.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"

#include "common/base/status_macros.h"
#include "common/rpc/grpc_status.h"
#include "common/security/bearer_token.h"
#include "common/wire/store_wire.h"
#include "common/wire/wire.h"

namespace converge::management {

GrpcDataPlane::GrpcDataPlane(const ShardList* shards, const std::string& notify_address, std::string service_token,
                             std::shared_ptr<grpc::ChannelCredentials> credentials)
    : shards_(shards),
      credentials_(credentials != nullptr ? std::move(credentials) : grpc::InsecureChannelCredentials()),
      service_token_(std::move(service_token)) {
  if (!notify_address.empty()) {
    notify_ = notification::v1::NotificationService::NewStub(grpc::CreateChannel(notify_address, credentials_));
  }
}

absl::StatusOr<store::v1::StoreService::Stub*> GrpcDataPlane::Stub(uint32_t shard, const std::string& what) {
  std::optional<std::string> address = shards_->address(shard);
  if (!address.has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(what, " is on store shard ", shard, " but only ", shards_->size(),
                                                      " are configured (shards must never be removed)"));
  }
  absl::MutexLock lock(&mu_);
  if (stubs_.size() <= shard) stubs_.resize(shard + 1);
  if (stubs_[shard] == nullptr) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(16 << 20);  // a namespace move's pages: up to 1 MiB and a 4 MiB chunk
    stubs_[shard] = store::v1::StoreService::NewStub(grpc::CreateCustomChannel(*address, credentials_, args));
  }
  return stubs_[shard].get();
}

absl::StatusOr<store::v1::StoreService::Stub*> GrpcDataPlane::ForShard(
    const std::function<absl::StatusOr<uint32_t>()>& shard_of, const std::string& what) {
  if (shards_->size() == 1) return Stub(0, what);
  if (shard_map_ == nullptr) return absl::InternalError("several store shards but no shard map");
  CONVERGE_ASSIGN_OR_RETURN(uint32_t shard, shard_of());
  return Stub(shard, what);
}

absl::StatusOr<store::v1::StoreService::Stub*> GrpcDataPlane::ForUser(const std::string& user_id) {
  return ForShard([&] { return shard_map_->ShardOfUser(user_id); }, absl::StrCat("user '", user_id, "'"));
}

absl::StatusOr<store::v1::StoreService::Stub*> GrpcDataPlane::ForNamespace(const std::string& ns) {
  return ForShard([&] { return shard_map_->ShardOfNamespace(ns); }, absl::StrCat("namespace '", ns, "'"));
}

absl::StatusOr<uint64_t> GrpcDataPlane::SetQuota(const std::string& user_id, uint64_t quota_bytes) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  AddBearerToken(&ctx, service_token_);
  store::v1::SetQuotaRequest req;
  req.set_user_id(user_id);
  req.set_quota_bytes(quota_bytes);
  store::v1::SetQuotaResponse resp;
  CONVERGE_ASSIGN_OR_RETURN(store::v1::StoreService::Stub * stub, ForUser(user_id));
  CONVERGE_RETURN_IF_ERROR(FromGrpcStatus(stub->SetQuota(&ctx, req, &resp), "store.SetQuota"));
  return resp.used_bytes();
}

absl::Status GrpcDataPlane::RevokeDevices(const std::vector<std::string>& device_ids, absl::Time until) {
  if (notify_ == nullptr) return absl::OkStatus();
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  AddBearerToken(&ctx, service_token_);
  notification::v1::RevokeDevicesRequest req;
  for (const std::string& d : device_ids) req.add_device_ids(d);
  req.set_until_unix_ms(absl::ToUnixMillis(until));
  notification::v1::RevokeDevicesResponse resp;
  return FromGrpcStatus(notify_->RevokeDevices(&ctx, req, &resp), "notify.RevokeDevices");
}

absl::Status GrpcDataPlane::RegisterNamespace(
    const std::string& ns, const std::string& owner_user_id, const std::vector<std::string>& member_device_ids,
    bool encrypted) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  AddBearerToken(&ctx, service_token_);
  store::v1::RegisterNamespaceRequest req;
  req.set_namespace_id(ns);
  req.set_owner_user_id(owner_user_id);
  for (const std::string& id : member_device_ids) req.add_member_device_ids(id);
  req.set_encrypted(encrypted);
  store::v1::RegisterNamespaceResponse resp;
  // Where the namespace is (a move may have put it off its owner's shard); a new one: its owner's.
  auto shard_of = [&]() -> absl::StatusOr<uint32_t> {
    absl::StatusOr<uint32_t> at = shard_map_->ShardOfNamespace(ns);
    return absl::IsNotFound(at.status()) ? shard_map_->ShardOfUser(owner_user_id) : at;
  };
  CONVERGE_ASSIGN_OR_RETURN(store::v1::StoreService::Stub * stub, ForShard(shard_of, absl::StrCat("namespace '", ns, "'")));
  return FromGrpcStatus(stub->RegisterNamespace(&ctx, req, &resp), "store.RegisterNamespace");
}

absl::StatusOr<NamespaceStats> GrpcDataPlane::Usage(const std::string& ns) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  AddBearerToken(&ctx, service_token_);
  store::v1::GetNamespaceStatsRequest req;
  req.set_namespace_id(ns);
  store::v1::GetNamespaceStatsResponse resp;
  CONVERGE_ASSIGN_OR_RETURN(store::v1::StoreService::Stub * stub, ForNamespace(ns));
  CONVERGE_RETURN_IF_ERROR(FromGrpcStatus(stub->GetNamespaceStats(&ctx, req, &resp), "store.GetNamespaceStats"));
  return wire::NamespaceStatsFromProto(resp);
}

absl::StatusOr<uint64_t> GrpcDataPlane::FilesAt(const std::string& ns, int64_t at_unix_ms, const std::string& prefix,
                                                const std::function<bool(const FileVersion&)>& fn) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  AddBearerToken(&ctx, service_token_);
  store::v1::ListFilesAtRequest req;
  req.set_namespace_id(ns);
  req.set_at_unix_ms(at_unix_ms);
  req.set_prefix(prefix);
  CONVERGE_ASSIGN_OR_RETURN(store::v1::StoreService::Stub * stub, ForNamespace(ns));
  std::unique_ptr<grpc::ClientReader<store::v1::ListFilesResponse>> reader = stub->ListFilesAt(&ctx, req);
  store::v1::ListFilesResponse batch;
  uint64_t head = 0;
  bool stopped = false;
  while (!stopped && reader->Read(&batch)) {
    head = batch.head_seq();
    for (const common::v1::FileVersion& p : batch.files()) {
      absl::StatusOr<FileVersion> v = wire::FileVersionFromProto(p);
      if (!v.ok()) continue;  // the store validated it; a version this build cannot read is left out
      if (!fn(*v)) {
        stopped = true;
        break;
      }
    }
  }
  if (stopped) {
    ctx.TryCancel();
    reader->Finish().ok();
    return head;
  }
  CONVERGE_RETURN_IF_ERROR(FromGrpcStatus(reader->Finish(), "store.ListFilesAt"));
  return head;
}

absl::StatusOr<std::vector<HistoryVersion>> GrpcDataPlane::Versions(const std::string& ns, const std::string& path,
                                                                    uint32_t limit) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  AddBearerToken(&ctx, service_token_);
  store::v1::ListVersionsRequest req;
  req.set_namespace_id(ns);
  req.set_path(path);
  req.set_limit(limit);
  store::v1::ListVersionsResponse resp;
  CONVERGE_ASSIGN_OR_RETURN(store::v1::StoreService::Stub * stub, ForNamespace(ns));
  CONVERGE_RETURN_IF_ERROR(FromGrpcStatus(stub->ListVersions(&ctx, req, &resp), "store.ListVersions"));
  std::vector<HistoryVersion> out;
  for (const store::v1::HistoryVersion& h : resp.versions()) {
    CONVERGE_ASSIGN_OR_RETURN(HistoryVersion v, wire::HistoryVersionFromProto(h));
    out.push_back(std::move(v));
  }
  return out;
}

absl::StatusOr<uint64_t> GrpcDataPlane::Restore(const std::string& ns, const std::string& path, uint64_t seq) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  AddBearerToken(&ctx, service_token_);
  store::v1::RestoreVersionRequest req;
  req.set_namespace_id(ns);
  req.set_path(path);
  req.set_seq(seq);
  store::v1::RestoreVersionResponse resp;
  CONVERGE_ASSIGN_OR_RETURN(store::v1::StoreService::Stub * stub, ForNamespace(ns));
  CONVERGE_RETURN_IF_ERROR(FromGrpcStatus(stub->RestoreVersion(&ctx, req, &resp)));
  return resp.seq();
}

absl::StatusOr<uint64_t> GrpcDataPlane::KeepConflictSide(const std::string& ns, const std::string& copy_path,
                                                         bool keep_copy) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  AddBearerToken(&ctx, service_token_);
  store::v1::KeepConflictSideRequest req;
  req.set_namespace_id(ns);
  req.set_copy_path(copy_path);
  req.set_keep_copy(keep_copy);
  store::v1::RestoreVersionResponse resp;
  CONVERGE_ASSIGN_OR_RETURN(store::v1::StoreService::Stub * stub, ForNamespace(ns));
  CONVERGE_RETURN_IF_ERROR(FromGrpcStatus(stub->KeepConflictSide(&ctx, req, &resp)));
  return resp.seq();
}

absl::Status GrpcDataPlane::ReadVersion(const std::string& ns, const std::string& path, uint64_t seq,
                                        const std::function<bool(uint64_t size, const std::string& bytes)>& fn) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(30));
  AddBearerToken(&ctx, service_token_);
  store::v1::ReadVersionRequest req;
  req.set_namespace_id(ns);
  req.set_path(path);
  req.set_seq(seq);
  CONVERGE_ASSIGN_OR_RETURN(store::v1::StoreService::Stub * stub, ForNamespace(ns));
  std::unique_ptr<grpc::ClientReader<store::v1::ReadVersionResponse>> reader = stub->ReadVersion(&ctx, req);
  store::v1::ReadVersionResponse piece;
  uint64_t size = 0;
  bool first = true;
  while (reader->Read(&piece)) {
    if (first) size = piece.size();
    if (!fn(first ? size : 0, piece.data())) {
      ctx.TryCancel();
      reader->Finish().ok();
      return absl::CancelledError("the reader went away");
    }
    first = false;
  }
  return FromGrpcStatus(reader->Finish(), "store.ReadVersion");
}

absl::StatusOr<std::vector<HeldDelete>> GrpcDataPlane::ListHeldDeletes(const std::string& ns) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  AddBearerToken(&ctx, service_token_);
  store::v1::ListHeldDeletesRequest req;
  req.set_namespace_id(ns);
  store::v1::ListHeldDeletesResponse resp;
  CONVERGE_ASSIGN_OR_RETURN(store::v1::StoreService::Stub * stub, ForNamespace(ns));
  CONVERGE_RETURN_IF_ERROR(FromGrpcStatus(stub->ListHeldDeletes(&ctx, req, &resp), "store.ListHeldDeletes"));
  std::vector<HeldDelete> out;
  for (const store::v1::HeldDelete& h : resp.held()) {
    CONVERGE_ASSIGN_OR_RETURN(HeldDelete held, wire::HeldDeleteFromProto(h));
    out.push_back(std::move(held));
  }
  return out;
}

absl::StatusOr<HeldDelete> GrpcDataPlane::ResolveHeldDelete(const std::string& ns, const std::string& id,
                                                                    bool approve) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  AddBearerToken(&ctx, service_token_);
  store::v1::ResolveHeldDeleteRequest req;
  req.set_namespace_id(ns);
  req.set_id(id);
  req.set_approve(approve);
  store::v1::HeldDelete resp;
  CONVERGE_ASSIGN_OR_RETURN(store::v1::StoreService::Stub * stub, ForNamespace(ns));
  CONVERGE_RETURN_IF_ERROR(FromGrpcStatus(stub->ResolveHeldDelete(&ctx, req, &resp), "store.ResolveHeldDelete"));
  return wire::HeldDeleteFromProto(resp);
}

absl::StatusOr<std::vector<ConflictRecord>> GrpcDataPlane::ListConflicts(const std::string& ns,
                                                                            bool include_resolved) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  AddBearerToken(&ctx, service_token_);
  store::v1::ListConflictsRequest req;
  req.set_namespace_id(ns);
  req.set_include_resolved(include_resolved);
  store::v1::ListConflictsResponse resp;
  CONVERGE_ASSIGN_OR_RETURN(store::v1::StoreService::Stub * stub, ForNamespace(ns));
  CONVERGE_RETURN_IF_ERROR(FromGrpcStatus(stub->ListConflicts(&ctx, req, &resp), "store.ListConflicts"));
  std::vector<ConflictRecord> out;
  for (const store::v1::Conflict& c : resp.conflicts()) out.push_back(wire::ConflictFromProto(ns, c));
  return out;
}

absl::StatusOr<ConflictRecord> GrpcDataPlane::ResolveConflict(const std::string& ns, const std::string& copy_path) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  AddBearerToken(&ctx, service_token_);
  store::v1::ResolveConflictRequest req;
  req.set_namespace_id(ns);
  req.set_copy_path(copy_path);
  store::v1::Conflict resp;
  CONVERGE_ASSIGN_OR_RETURN(store::v1::StoreService::Stub * stub, ForNamespace(ns));
  CONVERGE_RETURN_IF_ERROR(FromGrpcStatus(stub->ResolveConflict(&ctx, req, &resp), "store.ResolveConflict"));
  return wire::ConflictFromProto(ns, resp);
}

absl::StatusOr<CompactionResult> GrpcDataPlane::Compact(const std::string& ns) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
  AddBearerToken(&ctx, service_token_);
  store::v1::CompactRequest req;
  req.set_namespace_id(ns);
  store::v1::CompactResponse resp;
  CONVERGE_ASSIGN_OR_RETURN(store::v1::StoreService::Stub * stub, ForNamespace(ns));
  CONVERGE_RETURN_IF_ERROR(FromGrpcStatus(stub->Compact(&ctx, req, &resp), "store.Compact"));
  return wire::CompactionFromProto(resp);
}

absl::Status GrpcDataPlane::Evict(const std::string& ns, const std::string& device_id) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  AddBearerToken(&ctx, service_token_);
  store::v1::EvictDeviceRequest req;
  req.set_namespace_id(ns);
  req.set_evict_device_id(device_id);
  store::v1::EvictDeviceResponse resp;
  CONVERGE_ASSIGN_OR_RETURN(store::v1::StoreService::Stub * stub, ForNamespace(ns));
  return FromGrpcStatus(stub->EvictDevice(&ctx, req, &resp), "store.EvictDevice");
}

}  // namespace converge::management
