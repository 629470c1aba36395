#include "services/management/management_service.h"

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/model/conflict_name.h"
#include "common/model/path.h"
#include "common/rpc/grpc_status.h"

namespace converge::management {
namespace {

void ToProto(const User& u, v1::User* p) {
  p->set_user_id(u.user_id);
  p->set_display_name(u.display_name);
  p->set_created_at_unix_ms(u.created_at_unix_ms);
  p->set_disabled(u.disabled);
  p->set_quota_bytes(u.quota_bytes);
  p->set_shard(u.shard);
}

v1::DeviceState ToProto(DeviceState s) {
  switch (s) {
    case DeviceState::kActive: return v1::DEVICE_STATE_ACTIVE;
    case DeviceState::kRevoked: return v1::DEVICE_STATE_REVOKED;
    case DeviceState::kWipePending: return v1::DEVICE_STATE_WIPE_PENDING;
    case DeviceState::kWiped: return v1::DEVICE_STATE_WIPED;
  }
  return v1::DEVICE_STATE_UNSPECIFIED;
}

void ToProto(const Device& d, v1::Device* p) {
  p->set_device_id(d.device_id);
  p->set_user_id(d.user_id);
  p->set_name(d.name);
  p->set_created_at_unix_ms(d.created_at_unix_ms);
  p->set_state(ToProto(d.state));
}

void ToProto(const DevicePosition& d, v1::DeviceNamespaceStatus* p) {
  const DeviceCursor& c = d.cursor;
  p->set_namespace_id(d.namespace_id);
  p->set_device_id(c.device_id);
  p->set_device_name(d.device_name);
  p->set_acked_seq(c.acked_seq);
  p->set_head_seq(d.head_seq);
  p->set_lag_commits(c.lag_commits);
  p->set_lag_bytes(c.lag_bytes);
  p->set_lag_seconds(c.lag_seconds);
  p->set_evicted(c.evicted);
  p->set_pins_watermark(c.pins_watermark);
  p->set_blocked_count(c.blocked.count);
  for (const std::string& b : c.blocked.sample) p->add_blocked(b);
}

void ToProto(const ConflictRecord& c, v1::Conflict* p) {
  p->set_namespace_id(c.namespace_id);
  p->set_path(c.copy_path);
  p->set_original_path(c.original_path);
  p->set_device(c.device);
  if (std::optional<ConflictCopyName> name = ParseConflictName(c.copy_path)) p->set_detected_at(name->detected_at);
  p->set_seq(c.seq);
  p->set_resolved(c.resolved);
  p->set_resolved_at_unix_ms(c.resolved_at_unix_ms);
  p->set_resolved_by(c.resolved_by);
}

void ToProto(const DeviceReport& r, v1::Device* p) {
  ToProto(r.device, p);
  p->set_last_seen_unix_ms(r.last_seen_unix_ms);
  p->set_software_version(r.software_version);
  for (const DevicePosition& n : r.namespaces) ToProto(n, p->add_namespaces());
}

void ToProto(const Namespace& n, v1::Namespace* p) {
  p->set_namespace_id(n.namespace_id);
  p->set_owner_user_id(n.owner_user_id);
  p->set_created_at_unix_ms(n.created_at_unix_ms);
  for (const std::string& u : n.shared_with) p->add_shared_with_user_ids(u);
  p->mutable_options()->set_sync_xattrs(n.sync_xattrs);
  p->mutable_options()->set_encrypted(n.encrypted);
}

}  // namespace

#define CONVERGE_CHECK_TOKEN(ctx)                                            \
  if (absl::Status _auth = auth_.RequireOperator(*(ctx)); !_auth.ok()) \
  return ToGrpcStatus(_auth)

namespace {

AuthOptions WithVerifier(AuthOptions auth, const std::shared_ptr<const TokenSigner>& signer) {
  if (signer != nullptr) auth.verifier = signer->MakeVerifier();
  return auth;
}

}  // namespace

ManagementService::ManagementService(Registry* registry, DataPlane* store, AuthOptions auth,
                                     std::shared_ptr<const TokenSigner> signer, absl::Duration token_ttl,
                                     EndpointsConfig endpoints)
    : registry_(registry),
      fleet_(registry, store),
      keys_(registry, registry->records(), registry->clock()),
      sign_in_(registry, signer.get(), kUserTokenTtl),
      folders_(registry, store),
      auth_(WithVerifier(std::move(auth), signer)),
      signer_(std::move(signer)),
      token_ttl_(std::clamp(token_ttl, absl::Seconds(1), kMaxDeviceTokenTtl)),
      endpoints_(std::move(endpoints)) {}

absl::Status ManagementService::OperatorOrDevice(const grpc::ServerContext& ctx, const std::string& device_id,
                                                 DeviceClaims* claims) const {
  if (auth_.IsOperator(ctx)) return absl::OkStatus();
  if (!auth_.verifies_devices()) return auth_.RequireOperator(ctx);
  absl::StatusOr<DeviceClaims> device = auth_.VerifyDevice(ctx);
  if (!device.ok()) {
    // Neither: say what an operator would need if the call carried no device token.
    return BearerOf(ctx).rfind(kDeviceTokenPrefix, 0) == 0 ? device.status() : auth_.RequireOperator(ctx);
  }
  if (!device_id.empty() && device->device_id != device_id) {
    return absl::PermissionDeniedError("a device may act only for itself");
  }
  // A revoked (or wiped) device's token may not have expired yet: the registry decides. (A
  // device waiting to be wiped still reaches management, which tells it to wipe.)
  absl::StatusOr<Device> known = registry_->GetDevice(device->device_id);
  if (!known.ok()) return absl::IsNotFound(known.status()) ? absl::PermissionDeniedError("unknown device") : known.status();
  if (known->state == DeviceState::kRevoked || known->state == DeviceState::kWiped) {
    return absl::PermissionDeniedError(absl::StrCat("device '", device->device_id, "' is revoked"));
  }
  if (claims != nullptr) *claims = std::move(*device);
  return absl::OkStatus();
}

grpc::Status ManagementService::CreateUser(grpc::ServerContext* ctx,
                                           const v1::CreateUserRequest* req, v1::User* resp) {
  CONVERGE_CHECK_TOKEN(ctx);
  absl::StatusOr<User> user = registry_->CreateUser(req->user_id(), req->display_name());
  if (!user.ok()) return ToGrpcStatus(user.status());
  ToProto(*user, resp);
  return grpc::Status::OK;
}

grpc::Status ManagementService::ListUsers(grpc::ServerContext* ctx, const v1::ListUsersRequest*,
                                          v1::ListUsersResponse* resp) {
  CONVERGE_CHECK_TOKEN(ctx);
  absl::StatusOr<std::vector<User>> users = registry_->ListUsers();
  if (!users.ok()) return ToGrpcStatus(users.status());
  for (const User& u : *users) ToProto(u, resp->add_users());
  return grpc::Status::OK;
}

grpc::Status ManagementService::SetUserPassword(grpc::ServerContext* ctx, const v1::SetUserPasswordRequest* req,
                                                v1::User* resp) {
  CONVERGE_CHECK_TOKEN(ctx);
  absl::StatusOr<User> user = sign_in_.SetPassword(req->user_id(), req->password());
  if (!user.ok()) return ToGrpcStatus(user.status());
  ToProto(*user, resp);
  return grpc::Status::OK;
}

grpc::Status ManagementService::SignIn(grpc::ServerContext*, const v1::SignInRequest* req,
                                       v1::SignInResponse* resp) {
  absl::StatusOr<SignedIn> in = sign_in_.SignIn(req->user_id(), req->password());
  if (!in.ok()) return ToGrpcStatus(in.status());
  resp->set_token(in->token);
  resp->set_expires_at_unix_ms(absl::ToUnixMillis(in->expires_at));
  ToProto(in->user, resp->mutable_user());
  return grpc::Status::OK;
}

grpc::Status ManagementService::RegisterDevice(grpc::ServerContext* ctx,
                                               const v1::RegisterDeviceRequest* req,
                                               v1::RegisterDeviceResponse* resp) {
  // The user comes from the enrollment token; only an operator names it in the request.
  absl::StatusOr<RegisteredDevice> device;
  if (!req->enrollment_token().empty()) {
    device = registry_->EnrollDevice(req->enrollment_token(), req->user_id(), req->name());
  } else {
    CONVERGE_CHECK_TOKEN(ctx);
    device = registry_->RegisterDevice(req->user_id(), req->name());
  }
  if (!device.ok()) return ToGrpcStatus(device.status());
  ToProto(device->device, resp->mutable_device());
  resp->set_credential(device->credential);
  return grpc::Status::OK;
}

grpc::Status ManagementService::ListDevices(grpc::ServerContext* ctx,
                                            const v1::ListDevicesRequest* req,
                                            v1::ListDevicesResponse* resp) {
  absl::StatusOr<std::string> user = ForUser(*ctx, req->user_id());
  if (!user.ok()) return ToGrpcStatus(user.status());
  std::string store_error;
  absl::StatusOr<std::vector<DeviceReport>> devices = fleet_.Devices(*user, &store_error);
  if (!devices.ok()) return ToGrpcStatus(devices.status());
  for (const DeviceReport& d : *devices) ToProto(d, resp->add_devices());
  resp->set_store_error(store_error);
  return grpc::Status::OK;
}

grpc::Status ManagementService::CreateNamespace(grpc::ServerContext* ctx,
                                                const v1::CreateNamespaceRequest* req,
                                                v1::Namespace* resp) {
  CONVERGE_CHECK_TOKEN(ctx);
  absl::StatusOr<Namespace> ns =
      registry_->CreateNamespace(req->namespace_id(), req->owner_user_id(), req->options().sync_xattrs(),
                                 req->options().encrypted());
  if (!ns.ok()) return ToGrpcStatus(ns.status());
  ToProto(*ns, resp);
  return grpc::Status::OK;
}

grpc::Status ManagementService::ListNamespaces(grpc::ServerContext* ctx,
                                               const v1::ListNamespacesRequest* req,
                                               v1::ListNamespacesResponse* resp) {
  absl::StatusOr<std::string> user = ForUser(*ctx, req->user_id());
  if (!user.ok()) return ToGrpcStatus(user.status());
  absl::StatusOr<std::vector<Namespace>> list = registry_->ListNamespaces(*user);
  if (!list.ok()) return ToGrpcStatus(list.status());
  for (const Namespace& n : *list) ToProto(n, resp->add_namespaces());
  return grpc::Status::OK;
}

grpc::Status ManagementService::AddDeviceToNamespace(grpc::ServerContext* ctx,
                                                     const v1::AddDeviceToNamespaceRequest* req,
                                                     v1::AddDeviceToNamespaceResponse* resp) {
  if (absl::Status s = OperatorOrDevice(*ctx, req->device_id()); !s.ok()) return ToGrpcStatus(s);
  if (absl::Status s = registry_->AddDevice(req->namespace_id(), req->device_id()); !s.ok()) return ToGrpcStatus(s);
  absl::StatusOr<Namespace> ns = registry_->GetNamespace(req->namespace_id());
  if (!ns.ok()) return ToGrpcStatus(ns.status());
  resp->mutable_options()->set_sync_xattrs(ns->sync_xattrs);
  resp->mutable_options()->set_encrypted(ns->encrypted);
  return grpc::Status::OK;
}

grpc::Status ManagementService::ListMembers(grpc::ServerContext* ctx,
                                            const v1::ListMembersRequest* req,
                                            v1::ListMembersResponse* resp) {
  // An operator, or a member device (which shows its user the names of the devices whose
  // versions and conflict copies it lists).
  DeviceClaims caller;
  if (absl::Status s = OperatorOrDevice(*ctx, "", &caller); !s.ok()) return ToGrpcStatus(s);
  absl::StatusOr<std::vector<Device>> members = fleet_.Members(req->namespace_id(), caller.device_id);
  if (!members.ok()) return ToGrpcStatus(members.status());
  for (const Device& d : *members) ToProto(d, resp->add_devices());
  return grpc::Status::OK;
}

grpc::Status ManagementService::ListShards(grpc::ServerContext* ctx, const v1::ListShardsRequest*,
                                           v1::ListShardsResponse* resp) {
  CONVERGE_CHECK_TOKEN(ctx);
  const std::vector<std::string> stores = shards_ != nullptr ? shards_->all() : endpoints_.store_addresses;
  absl::StatusOr<std::vector<User>> users = registry_->ListUsers();
  if (!users.ok()) return ToGrpcStatus(users.status());
  for (size_t i = 0; i < stores.size(); ++i) {
    v1::Shard* shard = resp->add_shards();
    shard->set_index(static_cast<uint32_t>(i));
    shard->set_address(stores[i]);
    shard->set_users(std::count_if(users->begin(), users->end(), [&](const User& u) { return u.shard == i; }));
  }
  if (placement_ != nullptr) {
    for (v1::Shard& shard : *resp->mutable_shards()) shard.set_drained(placement_->drained(shard.index()));
    for (const auto& [ns, index] : placement_->placed()) {
      if (index < static_cast<uint32_t>(resp->shards_size())) resp->mutable_shards(index)->set_moved_in(resp->shards(index).moved_in() + 1);
    }
  }
  resp->set_in_etcd(shard_directory_ != nullptr);
  return grpc::Status::OK;
}

grpc::Status ManagementService::AddShard(grpc::ServerContext* ctx, const v1::AddShardRequest* req, v1::Shard* resp) {
  CONVERGE_CHECK_TOKEN(ctx);
  if (shard_directory_ == nullptr) {
    return ToGrpcStatus(absl::FailedPreconditionError(
        "the store shards are the --store list here: append the new shard there and restart management "
        "(or keep the shard map in etcd: --etcd with --registry_in_etcd)"));
  }
  if (absl::Status valid = ValidateShardAddress(req->address()); !valid.ok()) return ToGrpcStatus(valid);
  absl::StatusOr<uint32_t> index = shard_directory_->Add(req->address());
  if (!index.ok()) return ToGrpcStatus(index.status());
  resp->set_index(*index);
  resp->set_address(req->address());
  return grpc::Status::OK;
}

grpc::Status ManagementService::MoveNamespace(grpc::ServerContext* ctx, const v1::MoveNamespaceRequest* req,
                                              v1::MoveNamespaceResponse* resp) {
  CONVERGE_CHECK_TOKEN(ctx);
  if (moves_ == nullptr) {
    return ToGrpcStatus(absl::FailedPreconditionError(
        "namespaces move between shards only with the shard map in etcd (--etcd with --registry_in_etcd)"));
  }
  // A job the leading replica runs (this one or another); the caller's deadline bounds the wait.
  const absl::Duration wait = std::max(absl::ZeroDuration(), absl::FromChrono(ctx->deadline()) - absl::Now());
  absl::StatusOr<MoveReport> moved = moves_->Request(req->namespace_id(), req->to_shard(), std::min(wait, absl::Hours(6)));
  if (!moved.ok()) return ToGrpcStatus(moved.status());
  resp->set_from_shard(moved->from);
  resp->set_to_shard(moved->to);
  resp->set_head_seq(moved->head_seq);
  resp->set_rounds(moved->rounds);
  resp->set_bytes(moved->bytes);
  resp->set_copy_ms(absl::ToInt64Milliseconds(moved->copy_time));
  resp->set_write_pause_ms(absl::ToInt64Milliseconds(moved->write_pause));
  return grpc::Status::OK;
}

grpc::Status ManagementService::DrainShard(grpc::ServerContext* ctx, const v1::DrainShardRequest* req,
                                           v1::DrainShardResponse* resp) {
  CONVERGE_CHECK_TOKEN(ctx);
  if (placement_ == nullptr) {
    return ToGrpcStatus(absl::FailedPreconditionError(
        "shards are drained only with the shard map in etcd (--etcd with --registry_in_etcd)"));
  }
  const size_t shards = shards_ != nullptr ? shards_->size() : endpoints_.store_addresses.size();
  if (req->shard() >= shards) {
    return ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat("there is no store shard ", req->shard())));
  }
  if (absl::Status s = placement_->SetDrained(req->shard()); !s.ok()) return ToGrpcStatus(s);
  absl::StatusOr<uint32_t> moved = registry_->DrainUsers(req->shard());
  if (!moved.ok()) return ToGrpcStatus(moved.status());
  resp->set_users_moved(*moved);
  return grpc::Status::OK;
}

grpc::Status ManagementService::GetEndpoints(grpc::ServerContext* ctx, const v1::GetEndpointsRequest* req,
                                             v1::Endpoints* resp) {
  if (absl::Status s = OperatorOrDevice(*ctx, ""); !s.ok()) return ToGrpcStatus(s);
  const std::vector<std::string> stores = shards_ != nullptr ? shards_->all() : endpoints_.store_addresses;
  uint32_t shard = 0;
  if (!req->namespace_id().empty() && stores.size() > 1) {
    ShardMap* map = placement_ != nullptr ? static_cast<ShardMap*>(placement_) : registry_;
    absl::StatusOr<uint32_t> found = map->ShardOfNamespace(req->namespace_id());
    if (!found.ok()) return ToGrpcStatus(found.status());
    shard = *found;
  }
  if (shard < stores.size()) resp->set_store_address(stores[shard]);
  resp->set_shard(shard);
  resp->set_notification_address(endpoints_.notification_address);
  return grpc::Status::OK;
}

grpc::Status ManagementService::DisableUser(grpc::ServerContext* ctx, const v1::DisableUserRequest* req,
                                            v1::User* resp) {
  CONVERGE_CHECK_TOKEN(ctx);
  absl::StatusOr<User> user = registry_->DisableUser(req->user_id());
  if (!user.ok()) return ToGrpcStatus(user.status());
  ToProto(*user, resp);
  return grpc::Status::OK;
}

grpc::Status ManagementService::RevokeDevice(grpc::ServerContext* ctx, const v1::RevokeDeviceRequest* req,
                                             v1::Device* resp) {
  CONVERGE_CHECK_TOKEN(ctx);
  absl::StatusOr<Device> device = registry_->RevokeDevice(req->device_id(), req->wipe());
  if (!device.ok()) return ToGrpcStatus(device.status());
  ToProto(*device, resp);
  return grpc::Status::OK;
}

grpc::Status ManagementService::GetDevice(grpc::ServerContext* ctx, const v1::GetDeviceRequest* req,
                                          v1::Device* resp) {
  // A device may ask about itself, with its token or (revoked: no token) its credential.
  if (!req->credential().empty()) {
    if (absl::Status s = registry_->VerifyCredential(req->device_id(), req->credential()); !s.ok()) {
      return ToGrpcStatus(s);
    }
  } else if (absl::Status s = OperatorOrDevice(*ctx, req->device_id()); !s.ok()) {
    return ToGrpcStatus(s);
  }
  std::string store_error;
  absl::StatusOr<DeviceReport> device = fleet_.GetDevice(req->device_id(), &store_error);
  if (!device.ok()) return ToGrpcStatus(device.status());
  ToProto(*device, resp);
  return grpc::Status::OK;
}

grpc::Status ManagementService::ConfirmWipe(grpc::ServerContext*, const v1::ConfirmWipeRequest* req,
                                            v1::Device* resp) {
  // Authenticated by the device's own credential, not the operator token.
  absl::StatusOr<Device> device = registry_->ConfirmWipe(req->device_id(), req->credential());
  if (!device.ok()) return ToGrpcStatus(device.status());
  ToProto(*device, resp);
  return grpc::Status::OK;
}

grpc::Status ManagementService::ShareNamespace(grpc::ServerContext* ctx, const v1::ShareNamespaceRequest* req,
                                               v1::Namespace* resp) {
  CONVERGE_CHECK_TOKEN(ctx);
  absl::StatusOr<Namespace> ns = registry_->ShareNamespace(req->namespace_id(), req->user_id());
  if (!ns.ok()) return ToGrpcStatus(ns.status());
  ToProto(*ns, resp);
  return grpc::Status::OK;
}

grpc::Status ManagementService::SetNamespaceOptions(grpc::ServerContext* ctx,
                                                    const v1::SetNamespaceOptionsRequest* req, v1::Namespace* resp) {
  CONVERGE_CHECK_TOKEN(ctx);
  absl::StatusOr<Namespace> ns = registry_->SetSyncXattrs(req->namespace_id(), req->options().sync_xattrs());
  if (!ns.ok()) return ToGrpcStatus(ns.status());
  ToProto(*ns, resp);
  return grpc::Status::OK;
}

grpc::Status ManagementService::EncryptNamespace(grpc::ServerContext* ctx, const v1::EncryptNamespaceRequest* req,
                                                 v1::Namespace* resp) {
  CONVERGE_CHECK_TOKEN(ctx);
  absl::StatusOr<Namespace> ns = registry_->EncryptNamespace(req->namespace_id());
  if (!ns.ok()) return ToGrpcStatus(ns.status());
  ToProto(*ns, resp);
  return grpc::Status::OK;
}

grpc::Status ManagementService::GetNamespaceStatus(grpc::ServerContext* ctx,
                                                   const v1::GetNamespaceStatusRequest* req,
                                                   v1::NamespaceStatus* resp) {
  if (absl::StatusOr<std::string> who = OperatorOrUserOf(*ctx, req->namespace_id()); !who.ok()) {
    return ToGrpcStatus(who.status());
  }
  absl::StatusOr<NamespaceReport> r = fleet_.NamespaceStatus(req->namespace_id());
  if (!r.ok()) return ToGrpcStatus(r.status());
  ToProto(r->ns, resp->mutable_namespace_());
  resp->set_head_seq(r->usage.head_seq);
  resp->set_files(r->usage.live_files);
  resp->set_bytes(r->usage.live_bytes);
  resp->set_unique_chunks(r->usage.unique_chunks);
  resp->set_unique_chunk_bytes(r->usage.unique_chunk_bytes);
  resp->set_dedup_ratio(r->usage.unique_chunk_bytes == 0
                            ? 1.0
                            : static_cast<double>(r->usage.live_bytes) / static_cast<double>(r->usage.unique_chunk_bytes));
  for (const DevicePosition& d : r->devices) ToProto(d, resp->add_devices());
  resp->set_conflicts(static_cast<uint32_t>(r->usage.open_conflicts));
  resp->set_watermark(r->usage.watermark);
  resp->set_compacted_through(r->usage.compacted_through);
  resp->set_converted_at(r->usage.converted_at);
  return grpc::Status::OK;
}

grpc::Status ManagementService::ListConflicts(grpc::ServerContext* ctx, const v1::ListConflictsRequest* req,
                                              v1::ListConflictsResponse* resp) {
  absl::StatusOr<std::string> who = OperatorOrUser(*ctx);
  if (!who.ok()) return ToGrpcStatus(who.status());
  if (!who->empty()) {  // a user: one namespace of its own
    if (req->namespace_id().empty()) return ToGrpcStatus(absl::InvalidArgumentError("name the namespace"));
    if (who = OperatorOrUserOf(*ctx, req->namespace_id()); !who.ok()) return ToGrpcStatus(who.status());
  }
  absl::StatusOr<std::vector<ConflictRecord>> list = fleet_.Conflicts(req->namespace_id(), req->include_resolved());
  if (!list.ok()) return ToGrpcStatus(list.status());
  for (const ConflictRecord& c : *list) {
    v1::Conflict* p = resp->add_conflicts();
    ToProto(c, p);
    p->set_device_name(fleet_.DeviceName(c.device));
  }
  return grpc::Status::OK;
}

grpc::Status ManagementService::ResolveConflict(grpc::ServerContext* ctx, const v1::ResolveConflictRequest* req,
                                                v1::Conflict* resp) {
  if (absl::StatusOr<std::string> who = OperatorOrUserOf(*ctx, req->namespace_id()); !who.ok()) {
    return ToGrpcStatus(who.status());
  }
  if (absl::Status s = ValidateRelativePath(req->path()); !s.ok()) return ToGrpcStatus(s);
  if (req->keep() != v1::ResolveConflictRequest::KEEP_UNSPECIFIED) {
    absl::StatusOr<uint64_t> seq = folders_.KeepConflictSide(req->namespace_id(), req->path(),
                                                              req->keep() == v1::ResolveConflictRequest::KEEP_COPY);
    if (!seq.ok()) return ToGrpcStatus(seq.status());
    resp->set_namespace_id(req->namespace_id());
    resp->set_path(req->path());
    resp->set_resolved(true);
    resp->set_resolved_by("console");
    return grpc::Status::OK;
  }
  absl::StatusOr<ConflictRecord> c = fleet_.ResolveConflict(req->namespace_id(), req->path());
  if (!c.ok()) return ToGrpcStatus(c.status());
  ToProto(*c, resp);
  return grpc::Status::OK;
}

grpc::Status ManagementService::CompactNamespace(grpc::ServerContext* ctx, const v1::CompactNamespaceRequest* req,
                                                 v1::CompactNamespaceResponse* resp) {
  CONVERGE_CHECK_TOKEN(ctx);
  absl::StatusOr<CompactionResult> r = fleet_.Compact(req->namespace_id());
  if (!r.ok()) return ToGrpcStatus(r.status());
  resp->set_watermark(r->watermark);
  resp->set_compacted_through(r->compacted_through);
  resp->set_log_entries_dropped(r->log_entries_dropped);
  resp->set_versions_dropped(r->versions_dropped);
  resp->set_tombstones_dropped(r->tombstones_dropped);
  for (const std::string& d : r->pinned_by) resp->add_pinned_by(d);
  resp->set_chunks_dropped(r->chunks_dropped);
  resp->set_bytes_dropped(r->bytes_dropped);
  return grpc::Status::OK;
}

grpc::Status ManagementService::EvictDevice(grpc::ServerContext* ctx, const v1::EvictDeviceRequest* req,
                                            v1::EvictDeviceResponse*) {
  CONVERGE_CHECK_TOKEN(ctx);
  return ToGrpcStatus(fleet_.Evict(req->namespace_id(), req->device_id()));
}

namespace {

void ToProto(const HeldDelete& d, v1::PendingDelete* p) {
  p->set_id(d.id);
  p->set_namespace_id(d.namespace_id);
  p->set_device_id(d.device);
  p->set_state(StateName(d.state));
  p->set_created_at_unix_ms(d.created_at_unix_ms);
  p->set_deletes(d.deletes);
  p->set_live_entries(d.live_entries);
  for (const std::string& s : d.sample) p->add_sample_paths(s);
  for (const auto& [folder, files] : d.top_folders) {
    v1::FolderCount* f = p->add_top_folders();
    f->set_path(folder);
    f->set_files(files);
  }
}

}  // namespace

grpc::Status ManagementService::ListPendingDeletes(grpc::ServerContext* ctx, const v1::ListPendingDeletesRequest* req,
                                                   v1::ListPendingDeletesResponse* resp) {
  CONVERGE_CHECK_TOKEN(ctx);
  absl::StatusOr<std::vector<HeldDelete>> list = fleet_.PendingDeletes(req->namespace_id(), req->include_resolved());
  if (!list.ok()) return ToGrpcStatus(list.status());
  for (const HeldDelete& d : *list) {
    v1::PendingDelete* p = resp->add_deletes();
    ToProto(d, p);
    p->set_device_name(fleet_.DeviceName(d.device));
  }
  return grpc::Status::OK;
}

grpc::Status ManagementService::ResolvePendingDelete(grpc::ServerContext* ctx,
                                                     const v1::ResolvePendingDeleteRequest* req,
                                                     v1::PendingDelete* resp) {
  CONVERGE_CHECK_TOKEN(ctx);
  absl::StatusOr<HeldDelete> d = fleet_.ResolvePendingDelete(req->namespace_id(), req->id(), req->approve());
  if (!d.ok()) return ToGrpcStatus(d.status());
  ToProto(*d, resp);
  return grpc::Status::OK;
}

grpc::Status ManagementService::CreateEnrollmentToken(grpc::ServerContext* ctx,
                                                      const v1::CreateEnrollmentTokenRequest* req,
                                                      v1::EnrollmentToken* resp) {
  CONVERGE_CHECK_TOKEN(ctx);
  const absl::Duration ttl = req->ttl_seconds() == 0 ? absl::Hours(24) : absl::Seconds(req->ttl_seconds());
  absl::StatusOr<EnrollmentGrant> grant = registry_->CreateEnrollmentToken(req->user_id(), ttl, std::max(1u, req->uses()));
  if (!grant.ok()) return ToGrpcStatus(grant.status());
  resp->set_token(grant->token);
  resp->set_user_id(grant->user_id);
  resp->set_expires_at_unix_ms(grant->expires_at_unix_ms);
  resp->set_uses(grant->uses);
  return grpc::Status::OK;
}

grpc::Status ManagementService::IssueDeviceToken(grpc::ServerContext*, const v1::IssueDeviceTokenRequest* req,
                                                 v1::DeviceToken* resp) {
  if (signer_ == nullptr) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "management has no --token_signing_key");
  }
  // Authenticated by the device's long-term credential; revoked devices get none.
  if (absl::Status s = registry_->CheckDeviceCredential(req->device_id(), req->credential()); !s.ok()) {
    return ToGrpcStatus(s);
  }
  absl::StatusOr<Device> device = registry_->GetDevice(req->device_id());
  if (!device.ok()) return ToGrpcStatus(device.status());
  absl::StatusOr<std::vector<std::string>> namespaces = registry_->NamespacesOf(req->device_id());
  if (!namespaces.ok()) return ToGrpcStatus(namespaces.status());
  DeviceClaims claims;
  claims.device_id = device->device_id;
  claims.user_id = device->user_id;
  claims.namespaces = std::move(*namespaces);
  claims.issued_at = absl::Now();
  claims.expires_at = claims.issued_at + token_ttl_;
  absl::StatusOr<std::string> token = signer_->Sign(claims);
  if (!token.ok()) return ToGrpcStatus(token.status());
  resp->set_token(*token);
  resp->set_expires_at_unix_ms(absl::ToUnixMillis(claims.expires_at));
  for (const std::string& ns : claims.namespaces) resp->add_namespace_ids(ns);
  return grpc::Status::OK;
}

grpc::Status ManagementService::SetUserQuota(grpc::ServerContext* ctx, const v1::SetUserQuotaRequest* req,
                                             v1::User* resp) {
  CONVERGE_CHECK_TOKEN(ctx);
  absl::StatusOr<User> user = registry_->SetQuota(req->user_id(), req->quota_bytes());
  if (!user.ok()) return ToGrpcStatus(user.status());
  ToProto(*user, resp);
  return grpc::Status::OK;
}

}  // namespace converge::management
