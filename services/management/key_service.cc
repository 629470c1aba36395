// ManagementService's handlers of end-to-end encrypted namespaces' key records, over KeyDirectory.
#include "absl/strings/str_cat.h"
#include "common/rpc/grpc_status.h"
#include "services/management/management_service.h"

namespace converge::management {
namespace {

void ToProto(const KeyGrant& g, v1::KeyGrant* p) {
  p->set_namespace_id(g.namespace_id);
  p->set_device_id(g.device_id);
  p->set_public_key(g.public_key);
  p->set_sealed_keyring(g.sealed_keyring);
  p->set_granted(g.granted);
  p->set_granted_by(g.granted_by);
  p->set_grant_signature(g.grant_signature);
  p->set_keyring_id(g.keyring_id);
  p->set_epoch(g.epoch);
  p->set_requested_at_unix_ms(g.requested_at_unix_ms);
  p->set_granted_at_unix_ms(g.granted_at_unix_ms);
  p->set_revoked(g.revoked);
}

void ToProto(const RecoveryRecord& r, v1::RecoveryKey* p) {
  p->set_namespace_id(r.namespace_id);
  p->set_wrapped_keyring(r.wrapped_keyring);
  p->set_keyring_id(r.keyring_id);
  p->set_set_by(r.set_by);
  p->set_set_at_unix_ms(r.set_at_unix_ms);
}

}  // namespace

absl::StatusOr<std::string> ManagementService::CallingDevice(const grpc::ServerContext& ctx) const {
  DeviceClaims claims;
  if (absl::Status s = OperatorOrDevice(ctx, "", &claims); !s.ok()) return s;
  if (claims.device_id.empty()) {
    return absl::PermissionDeniedError("only a device handles namespace keys: an operator holds none");
  }
  return claims.device_id;
}

grpc::Status ManagementService::PublishDeviceKey(grpc::ServerContext* ctx, const v1::PublishDeviceKeyRequest* req,
                                                 v1::KeyGrant* resp) {
  absl::StatusOr<std::string> device = CallingDevice(*ctx);
  if (!device.ok()) return ToGrpcStatus(device.status());
  if (!req->device_id().empty() && req->device_id() != *device) {
    return ToGrpcStatus(absl::PermissionDeniedError("a device publishes only its own key"));
  }
  absl::StatusOr<KeyGrant> g = keys_.Publish(req->namespace_id(), *device, req->public_key());
  if (!g.ok()) return ToGrpcStatus(g.status());
  ToProto(*g, resp);
  return grpc::Status::OK;
}

grpc::Status ManagementService::ListKeyGrants(grpc::ServerContext* ctx, const v1::ListKeyGrantsRequest* req,
                                              v1::ListKeyGrantsResponse* resp) {
  // An operator, or a member device (which shows its user the waiting devices and their names).
  DeviceClaims claims;
  if (absl::Status s = OperatorOrDevice(*ctx, "", &claims); !s.ok()) return ToGrpcStatus(s);
  absl::StatusOr<std::vector<Device>> members = registry_->ListMembers(req->namespace_id());
  if (!members.ok()) return ToGrpcStatus(members.status());
  if (!claims.device_id.empty() &&
      std::none_of(members->begin(), members->end(), [&](const Device& d) { return d.device_id == claims.device_id; })) {
    return ToGrpcStatus(absl::PermissionDeniedError(absl::StrCat("not a member of '", req->namespace_id(), "'")));
  }
  absl::StatusOr<KeyGrantList> list = keys_.List(req->namespace_id());
  if (!list.ok()) return ToGrpcStatus(list.status());
  resp->set_keyring_id(list->keyring_id);
  for (const KeyGrant& g : list->grants) {
    v1::KeyGrant* p = resp->add_grants();
    ToProto(g, p);
    for (const Device& d : *members) {
      if (d.device_id == g.device_id) p->set_device_name(d.name);
    }
  }
  return grpc::Status::OK;
}

grpc::Status ManagementService::GrantNamespaceKey(grpc::ServerContext* ctx, const v1::GrantNamespaceKeyRequest* req,
                                                  v1::KeyGrant* resp) {
  absl::StatusOr<std::string> device = CallingDevice(*ctx);
  if (!device.ok()) return ToGrpcStatus(device.status());
  if (!req->granted_by().empty() && req->granted_by() != *device) {
    return ToGrpcStatus(absl::PermissionDeniedError("a grant names the calling device as its granter"));
  }
  KeyGrant g;
  g.namespace_id = req->namespace_id();
  g.device_id = req->device_id();
  g.public_key = req->public_key();
  g.sealed_keyring = req->sealed_keyring();
  g.granted_by = *device;
  g.grant_signature = req->grant_signature();
  g.keyring_id = req->keyring_id();
  g.epoch = req->epoch();
  absl::StatusOr<KeyGrant> granted = keys_.Grant(std::move(g), req->rotation());
  if (!granted.ok()) return ToGrpcStatus(granted.status());
  ToProto(*granted, resp);
  resp->clear_sealed_keyring();
  return grpc::Status::OK;
}

grpc::Status ManagementService::GetKeyGrant(grpc::ServerContext* ctx, const v1::GetKeyGrantRequest* req,
                                            v1::KeyGrant* resp) {
  absl::StatusOr<std::string> device = CallingDevice(*ctx);
  if (!device.ok()) return ToGrpcStatus(device.status());
  if (!req->device_id().empty() && req->device_id() != *device) {
    return ToGrpcStatus(absl::PermissionDeniedError("a device reads only its own sealed keyring"));
  }
  absl::StatusOr<KeyGrant> g = keys_.Get(req->namespace_id(), *device);
  if (!g.ok()) return ToGrpcStatus(g.status());
  ToProto(*g, resp);
  return grpc::Status::OK;
}

grpc::Status ManagementService::SetRecoveryKey(grpc::ServerContext* ctx, const v1::SetRecoveryKeyRequest* req,
                                               v1::RecoveryKey* resp) {
  absl::StatusOr<std::string> device = CallingDevice(*ctx);
  if (!device.ok()) return ToGrpcStatus(device.status());
  RecoveryRecord r;
  r.namespace_id = req->namespace_id();
  r.wrapped_keyring = req->wrapped_keyring();
  r.keyring_id = req->keyring_id();
  r.set_by = *device;
  absl::StatusOr<RecoveryRecord> set = keys_.SetRecovery(std::move(r));
  if (!set.ok()) return ToGrpcStatus(set.status());
  ToProto(*set, resp);
  resp->clear_wrapped_keyring();
  return grpc::Status::OK;
}

grpc::Status ManagementService::GetRecoveryKey(grpc::ServerContext* ctx, const v1::GetRecoveryKeyRequest* req,
                                               v1::RecoveryKey* resp) {
  absl::StatusOr<std::string> device = CallingDevice(*ctx);
  if (!device.ok()) return ToGrpcStatus(device.status());
  absl::StatusOr<RecoveryRecord> r = keys_.GetRecovery(req->namespace_id(), *device);
  if (!r.ok()) return ToGrpcStatus(r.status());
  ToProto(*r, resp);
  return grpc::Status::OK;
}

}  // namespace converge::management
