#include "engine/client/grpc_key_directory_client.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>

#include "common/base/status_macros.h"
#include "common/rpc/grpc_status.h"

namespace converge::engine {
namespace {

std::unique_ptr<grpc::ClientContext> Context() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  return ctx;
}

KeyRecord FromProto(const management::v1::KeyGrant& p) {
  KeyRecord r;
  r.device_id = p.device_id();
  r.device_name = p.device_name();
  r.public_key = p.public_key();
  r.sealed_keyring = p.sealed_keyring();
  r.granted = p.granted();
  r.granted_by = p.granted_by();
  r.grant_signature = p.grant_signature();
  r.keyring_id = p.keyring_id();
  r.epoch = p.epoch();
  r.revoked = p.revoked();
  return r;
}

}  // namespace

absl::StatusOr<KeyRecord> GrpcKeyDirectoryClient::Publish(const std::string& public_key) {
  management::v1::PublishDeviceKeyRequest req;
  req.set_namespace_id(namespace_id_);
  req.set_device_id(device_id_);
  req.set_public_key(public_key);
  management::v1::KeyGrant resp;
  CONVERGE_RETURN_IF_ERROR(
      FromGrpcStatus(management_->PublishDeviceKey(Context().get(), req, &resp), "management.PublishDeviceKey"));
  return FromProto(resp);
}

absl::StatusOr<KeyListing> GrpcKeyDirectoryClient::List() {
  management::v1::ListKeyGrantsRequest req;
  req.set_namespace_id(namespace_id_);
  management::v1::ListKeyGrantsResponse resp;
  CONVERGE_RETURN_IF_ERROR(
      FromGrpcStatus(management_->ListKeyGrants(Context().get(), req, &resp), "management.ListKeyGrants"));
  KeyListing out;
  out.keyring_id = resp.keyring_id();
  for (const management::v1::KeyGrant& g : resp.grants()) out.records.push_back(FromProto(g));
  return out;
}

absl::Status GrpcKeyDirectoryClient::Grant(const KeyRecord& grant) {
  management::v1::GrantNamespaceKeyRequest req;
  req.set_namespace_id(namespace_id_);
  req.set_device_id(grant.device_id);
  req.set_public_key(grant.public_key);
  req.set_sealed_keyring(grant.sealed_keyring);
  req.set_granted_by(device_id_);
  req.set_grant_signature(grant.grant_signature);
  req.set_keyring_id(grant.keyring_id);
  req.set_epoch(grant.epoch);
  req.set_rotation(grant.rotation);
  management::v1::KeyGrant resp;
  return FromGrpcStatus(management_->GrantNamespaceKey(Context().get(), req, &resp), "management.GrantNamespaceKey");
}

absl::StatusOr<KeyRecord> GrpcKeyDirectoryClient::Own() {
  management::v1::GetKeyGrantRequest req;
  req.set_namespace_id(namespace_id_);
  req.set_device_id(device_id_);
  management::v1::KeyGrant resp;
  CONVERGE_RETURN_IF_ERROR(FromGrpcStatus(management_->GetKeyGrant(Context().get(), req, &resp), "management.GetKeyGrant"));
  return FromProto(resp);
}

absl::Status GrpcKeyDirectoryClient::SetRecovery(const std::string& wrapped_keyring, const std::string& keyring_id) {
  management::v1::SetRecoveryKeyRequest req;
  req.set_namespace_id(namespace_id_);
  req.set_wrapped_keyring(wrapped_keyring);
  req.set_keyring_id(keyring_id);
  management::v1::RecoveryKey resp;
  return FromGrpcStatus(management_->SetRecoveryKey(Context().get(), req, &resp), "management.SetRecoveryKey");
}

absl::StatusOr<std::string> GrpcKeyDirectoryClient::GetRecovery() {
  management::v1::GetRecoveryKeyRequest req;
  req.set_namespace_id(namespace_id_);
  management::v1::RecoveryKey resp;
  CONVERGE_RETURN_IF_ERROR(
      FromGrpcStatus(management_->GetRecoveryKey(Context().get(), req, &resp), "management.GetRecoveryKey"));
  return resp.wrapped_keyring();
}

}  // namespace converge::engine
