#include "services/management/store_sink.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"

#include "common/bearer_token.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"

namespace converge::management {

StoreNamespaceSink::StoreNamespaceSink(const std::vector<std::string>& store_addresses,
                                       const std::string& notify_address, std::string service_token,
                                       std::shared_ptr<grpc::ChannelCredentials> credentials)
    : service_token_(std::move(service_token)) {
  if (credentials == nullptr) credentials = grpc::InsecureChannelCredentials();
  for (const std::string& address : store_addresses) {
    stubs_.push_back(store::v1::StoreService::NewStub(grpc::CreateChannel(address, credentials)));
  }
  if (!notify_address.empty()) {
    notify_ = notification::v1::NotificationService::NewStub(grpc::CreateChannel(notify_address, credentials));
  }
}

absl::StatusOr<store::v1::StoreService::Stub*> StoreNamespaceSink::ForShard(
    const std::function<absl::StatusOr<uint32_t>()>& shard_of, const std::string& what) {
  if (stubs_.size() == 1) return stubs_[0].get();
  if (shard_map_ == nullptr) return absl::InternalError("several store shards but no shard map");
  CONVERGE_ASSIGN_OR_RETURN(uint32_t shard, shard_of());
  if (shard >= stubs_.size()) {
    return absl::FailedPreconditionError(absl::StrCat(what, " is on store shard ", shard, " but only ", stubs_.size(),
                                                      " are configured (shards must never be removed)"));
  }
  return stubs_[shard].get();
}

absl::StatusOr<store::v1::StoreService::Stub*> StoreNamespaceSink::ForUser(const std::string& user_id) {
  return ForShard([&] { return shard_map_->ShardOfUser(user_id); }, absl::StrCat("user '", user_id, "'"));
}

absl::StatusOr<store::v1::StoreService::Stub*> StoreNamespaceSink::ForNamespace(const std::string& ns) {
  return ForShard([&] { return shard_map_->ShardOfNamespace(ns); }, absl::StrCat("namespace '", ns, "'"));
}

absl::StatusOr<uint64_t> StoreNamespaceSink::SetQuota(const std::string& user_id, uint64_t quota_bytes) {
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

absl::Status StoreNamespaceSink::RevokeDevices(const std::vector<std::string>& device_ids, absl::Time until) {
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

absl::Status StoreNamespaceSink::RegisterNamespace(
    const std::string& ns, const std::string& owner_user_id, const std::vector<std::string>& member_device_ids) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  AddBearerToken(&ctx, service_token_);
  store::v1::RegisterNamespaceRequest req;
  req.set_namespace_id(ns);
  req.set_owner_user_id(owner_user_id);
  for (const std::string& id : member_device_ids) req.add_member_device_ids(id);
  store::v1::RegisterNamespaceResponse resp;
  CONVERGE_ASSIGN_OR_RETURN(store::v1::StoreService::Stub * stub, ForUser(owner_user_id));
  return FromGrpcStatus(stub->RegisterNamespace(&ctx, req, &resp), "store.RegisterNamespace");
}

absl::StatusOr<NamespaceUsage> StoreNamespaceSink::Usage(const std::string& ns) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  AddBearerToken(&ctx, service_token_);
  store::v1::GetNamespaceStatsRequest req;
  req.set_namespace_id(ns);
  store::v1::GetNamespaceStatsResponse resp;
  CONVERGE_ASSIGN_OR_RETURN(store::v1::StoreService::Stub * stub, ForNamespace(ns));
  CONVERGE_RETURN_IF_ERROR(FromGrpcStatus(stub->GetNamespaceStats(&ctx, req, &resp), "store.GetNamespaceStats"));
  NamespaceUsage u;
  u.head_seq = resp.head_seq();
  u.live_files = resp.live_files();
  u.live_bytes = resp.live_bytes();
  u.unique_chunks = resp.unique_chunks();
  u.unique_chunk_bytes = resp.unique_chunk_bytes();
  u.conflict_paths.assign(resp.conflict_paths().begin(), resp.conflict_paths().end());
  for (const store::v1::DeviceCursor& c : resp.cursors()) {
    u.devices.push_back(DeviceUsage{c.device_id(), c.acked_seq(), c.last_seen_unix_ms(), c.software_version(),
                                    c.lag_commits(), c.lag_bytes(), c.lag_seconds(), c.evicted(),
                                    c.pins_watermark(), c.blocked_count(),
                                    std::vector<std::string>(c.blocked().begin(), c.blocked().end())});
  }
  u.open_conflicts = resp.open_conflicts();
  u.watermark = resp.watermark();
  u.compacted_through = resp.compacted_through();
  return u;
}

namespace {

PendingDelete FromProto(const store::v1::HeldDelete& h) {
  PendingDelete p;
  p.id = h.id();
  p.namespace_id = h.namespace_id();
  p.device_id = h.device_id();
  switch (h.state()) {
    case store::v1::HeldDelete::PENDING: p.state = "pending"; break;
    case store::v1::HeldDelete::APPROVED: p.state = "approved"; break;
    case store::v1::HeldDelete::REJECTED: p.state = "rejected"; break;
    case store::v1::HeldDelete::APPLIED: p.state = "applied"; break;
    case store::v1::HeldDelete::RESTORED: p.state = "restored"; break;
    default: p.state = "?";
  }
  p.created_at_unix_ms = h.created_at_unix_ms();
  p.deletes = h.deletes();
  p.live_entries = h.live_entries();
  p.sample_paths.assign(h.sample_paths().begin(), h.sample_paths().end());
  return p;
}

}  // namespace

absl::StatusOr<std::vector<PendingDelete>> StoreNamespaceSink::ListHeldDeletes(const std::string& ns) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  AddBearerToken(&ctx, service_token_);
  store::v1::ListHeldDeletesRequest req;
  req.set_namespace_id(ns);
  store::v1::ListHeldDeletesResponse resp;
  CONVERGE_ASSIGN_OR_RETURN(store::v1::StoreService::Stub * stub, ForNamespace(ns));
  CONVERGE_RETURN_IF_ERROR(FromGrpcStatus(stub->ListHeldDeletes(&ctx, req, &resp), "store.ListHeldDeletes"));
  std::vector<PendingDelete> out;
  for (const store::v1::HeldDelete& h : resp.held()) out.push_back(FromProto(h));
  return out;
}

absl::StatusOr<PendingDelete> StoreNamespaceSink::ResolveHeldDelete(const std::string& ns, const std::string& id,
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
  return FromProto(resp);
}

namespace {

ConflictRecord FromProto(const std::string& ns, const store::v1::Conflict& c) {
  return ConflictRecord{ns, c.copy_path(), c.original_path(), c.device_id(), c.seq(), c.created_at_unix_ms(),
                        c.resolved(), c.resolved_at_unix_ms(), c.resolved_by()};
}

}  // namespace

absl::StatusOr<std::vector<ConflictRecord>> StoreNamespaceSink::ListConflicts(const std::string& ns,
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
  for (const store::v1::Conflict& c : resp.conflicts()) out.push_back(FromProto(ns, c));
  return out;
}

absl::StatusOr<ConflictRecord> StoreNamespaceSink::ResolveConflict(const std::string& ns, const std::string& copy_path) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  AddBearerToken(&ctx, service_token_);
  store::v1::ResolveConflictRequest req;
  req.set_namespace_id(ns);
  req.set_copy_path(copy_path);
  store::v1::Conflict resp;
  CONVERGE_ASSIGN_OR_RETURN(store::v1::StoreService::Stub * stub, ForNamespace(ns));
  CONVERGE_RETURN_IF_ERROR(FromGrpcStatus(stub->ResolveConflict(&ctx, req, &resp), "store.ResolveConflict"));
  return FromProto(ns, resp);
}

absl::StatusOr<CompactionSummary> StoreNamespaceSink::Compact(const std::string& ns) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
  AddBearerToken(&ctx, service_token_);
  store::v1::CompactRequest req;
  req.set_namespace_id(ns);
  store::v1::CompactResponse resp;
  CONVERGE_ASSIGN_OR_RETURN(store::v1::StoreService::Stub * stub, ForNamespace(ns));
  CONVERGE_RETURN_IF_ERROR(FromGrpcStatus(stub->Compact(&ctx, req, &resp), "store.Compact"));
  CompactionSummary out;
  out.watermark = resp.watermark();
  out.compacted_through = resp.compacted_through();
  out.log_entries_dropped = resp.log_entries_dropped();
  out.versions_dropped = resp.versions_dropped();
  out.tombstones_dropped = resp.tombstones_dropped();
  out.pinned_by.assign(resp.pinned_by().begin(), resp.pinned_by().end());
  out.chunks_dropped = resp.chunks_dropped();
  out.bytes_dropped = resp.bytes_dropped();
  return out;
}

absl::Status StoreNamespaceSink::Evict(const std::string& ns, const std::string& device_id) {
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
