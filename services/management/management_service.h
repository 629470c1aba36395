// ManagementService: the gRPC face of the Registry and the Fleet view.
//
// Who may call what: operators (the operator token) everything; devices register with an
// enrollment token an operator issued, get short-lived device tokens with their long-term
// credential (IssueDeviceToken), and with a device token may join their user's namespaces, read
// the endpoints and their own record; ConfirmWipe and GetDevice also take the credential (a
// revoked device has no token). People sign in with a password for a user token, which the calls
// the proto marks "users too" accept for the user's own namespaces and devices (people_service.cc).
#ifndef CONVERGE_SERVICES_MANAGEMENT_MANAGEMENT_SERVICE_H_
#define CONVERGE_SERVICES_MANAGEMENT_MANAGEMENT_SERVICE_H_

#include <string>
#include <vector>

#include "common/security/auth.h"
#include "common/security/device_token.h"
#include "converge/management/v1/management.grpc.pb.h"
#include "services/management/fleet.h"
#include "services/management/folder_view.h"
#include "services/management/key_directory.h"
#include "services/management/lag_history.h"
#include "services/management/registry.h"
#include "services/management/move_jobs.h"
#include "services/management/namespace_placement.h"
#include "services/management/shard_list.h"
#include "services/management/user_sign_in.h"

namespace converge::management {

struct EndpointsConfig {
  // The store shards, in shard order (one for most deployments). A namespace lives on its
  // owner's shard; GetEndpoints names the shard of the namespace asked about.
  std::vector<std::string> store_addresses;
  std::string notification_address;
};

class ManagementService final : public v1::ManagementService::Service {
 public:
  // `signer`: signs device tokens (null: IssueDeviceToken fails and device tokens are not
  // accepted here); they live `token_ttl` (at most kMaxDeviceTokenTtl).
  ManagementService(Registry* registry, DataPlane* store, AuthOptions auth, std::shared_ptr<const TokenSigner> signer,
                    absl::Duration token_ttl, EndpointsConfig endpoints);

  grpc::Status CreateUser(grpc::ServerContext* ctx, const v1::CreateUserRequest* req,
                          v1::User* resp) override;
  grpc::Status ListUsers(grpc::ServerContext* ctx, const v1::ListUsersRequest* req,
                         v1::ListUsersResponse* resp) override;
  grpc::Status RegisterDevice(grpc::ServerContext* ctx, const v1::RegisterDeviceRequest* req,
                              v1::RegisterDeviceResponse* resp) override;
  grpc::Status ListDevices(grpc::ServerContext* ctx, const v1::ListDevicesRequest* req,
                           v1::ListDevicesResponse* resp) override;
  grpc::Status CreateNamespace(grpc::ServerContext* ctx, const v1::CreateNamespaceRequest* req,
                               v1::Namespace* resp) override;
  grpc::Status ListNamespaces(grpc::ServerContext* ctx, const v1::ListNamespacesRequest* req,
                              v1::ListNamespacesResponse* resp) override;
  grpc::Status AddDeviceToNamespace(grpc::ServerContext* ctx,
                                    const v1::AddDeviceToNamespaceRequest* req,
                                    v1::AddDeviceToNamespaceResponse* resp) override;
  grpc::Status ListMembers(grpc::ServerContext* ctx, const v1::ListMembersRequest* req,
                           v1::ListMembersResponse* resp) override;
  grpc::Status GetEndpoints(grpc::ServerContext* ctx, const v1::GetEndpointsRequest* req,
                            v1::Endpoints* resp) override;
  grpc::Status ListShards(grpc::ServerContext* ctx, const v1::ListShardsRequest* req,
                          v1::ListShardsResponse* resp) override;
  grpc::Status AddShard(grpc::ServerContext* ctx, const v1::AddShardRequest* req, v1::Shard* resp) override;
  // The store shards as they are now (they grow while it serves), and where they are added
  // (null: --store lists them, fixed). Without it, EndpointsConfig's list. Not owned.
  void set_shards(const ShardList* shards, ShardDirectory* directory) {
    shards_ = shards;
    shard_directory_ = directory;
  }
  grpc::Status MoveNamespace(grpc::ServerContext* ctx, const v1::MoveNamespaceRequest* req,
                             v1::MoveNamespaceResponse* resp) override;
  grpc::Status DrainShard(grpc::ServerContext* ctx, const v1::DrainShardRequest* req,
                          v1::DrainShardResponse* resp) override;
  // Online moves (null: MoveNamespace is FAILED_PRECONDITION) and where moved namespaces are
  // (GetEndpoints asks it before the registry). Not owned.
  void set_moves(MoveJobs* moves, NamespacePlacement* placement) {
    moves_ = moves;
    placement_ = placement;
  }
  grpc::Status DisableUser(grpc::ServerContext* ctx, const v1::DisableUserRequest* req, v1::User* resp) override;
  grpc::Status RevokeDevice(grpc::ServerContext* ctx, const v1::RevokeDeviceRequest* req, v1::Device* resp) override;
  grpc::Status GetDevice(grpc::ServerContext* ctx, const v1::GetDeviceRequest* req, v1::Device* resp) override;
  grpc::Status ConfirmWipe(grpc::ServerContext* ctx, const v1::ConfirmWipeRequest* req, v1::Device* resp) override;
  grpc::Status SetNamespaceOptions(grpc::ServerContext* ctx, const v1::SetNamespaceOptionsRequest* req,
                                   v1::Namespace* resp) override;
  grpc::Status EncryptNamespace(grpc::ServerContext* ctx, const v1::EncryptNamespaceRequest* req,
                                v1::Namespace* resp) override;
  grpc::Status ShareNamespace(grpc::ServerContext* ctx, const v1::ShareNamespaceRequest* req,
                              v1::Namespace* resp) override;
  grpc::Status GetNamespaceStatus(grpc::ServerContext* ctx, const v1::GetNamespaceStatusRequest* req,
                                  v1::NamespaceStatus* resp) override;
  grpc::Status ListConflicts(grpc::ServerContext* ctx, const v1::ListConflictsRequest* req,
                             v1::ListConflictsResponse* resp) override;
  grpc::Status ResolveConflict(grpc::ServerContext* ctx, const v1::ResolveConflictRequest* req,
                               v1::Conflict* resp) override;
  grpc::Status CompactNamespace(grpc::ServerContext* ctx, const v1::CompactNamespaceRequest* req,
                                v1::CompactNamespaceResponse* resp) override;
  grpc::Status EvictDevice(grpc::ServerContext* ctx, const v1::EvictDeviceRequest* req,
                           v1::EvictDeviceResponse* resp) override;
  grpc::Status ListPendingDeletes(grpc::ServerContext* ctx, const v1::ListPendingDeletesRequest* req,
                                  v1::ListPendingDeletesResponse* resp) override;
  grpc::Status ResolvePendingDelete(grpc::ServerContext* ctx, const v1::ResolvePendingDeleteRequest* req,
                                    v1::PendingDelete* resp) override;
  grpc::Status CreateEnrollmentToken(grpc::ServerContext* ctx, const v1::CreateEnrollmentTokenRequest* req,
                                     v1::EnrollmentToken* resp) override;
  grpc::Status IssueDeviceToken(grpc::ServerContext* ctx, const v1::IssueDeviceTokenRequest* req,
                                v1::DeviceToken* resp) override;
  grpc::Status SetUserQuota(grpc::ServerContext* ctx, const v1::SetUserQuotaRequest* req, v1::User* resp) override;

  // People: passwords, sign-in, browsing a namespace (people_service.cc).
  grpc::Status SetUserPassword(grpc::ServerContext* ctx, const v1::SetUserPasswordRequest* req,
                               v1::User* resp) override;
  grpc::Status SignIn(grpc::ServerContext* ctx, const v1::SignInRequest* req, v1::SignInResponse* resp) override;
  grpc::Status ListFolder(grpc::ServerContext* ctx, const v1::ListFolderRequest* req,
                          v1::ListFolderResponse* resp) override;
  grpc::Status ListFileVersions(grpc::ServerContext* ctx, const v1::ListFileVersionsRequest* req,
                                v1::ListFileVersionsResponse* resp) override;
  grpc::Status RestoreVersion(grpc::ServerContext* ctx, const v1::RestoreVersionRequest* req,
                              v1::RestoreVersionResponse* resp) override;
  grpc::Status DownloadVersion(grpc::ServerContext* ctx, const v1::DownloadVersionRequest* req,
                               grpc::ServerWriter<v1::DownloadVersionResponse>* writer) override;
  grpc::Status GetLagHistory(grpc::ServerContext* ctx, const v1::GetLagHistoryRequest* req,
                             v1::LagHistory* resp) override;
  // The lag samples GetLagHistory answers from (null: none kept). Not owned.
  void set_lag_history(LagHistory* lag) { lag_ = lag; }

  // Key records of end-to-end encrypted namespaces (key_service.cc).
  grpc::Status PublishDeviceKey(grpc::ServerContext* ctx, const v1::PublishDeviceKeyRequest* req,
                                v1::KeyGrant* resp) override;
  grpc::Status ListKeyGrants(grpc::ServerContext* ctx, const v1::ListKeyGrantsRequest* req,
                             v1::ListKeyGrantsResponse* resp) override;
  grpc::Status GrantNamespaceKey(grpc::ServerContext* ctx, const v1::GrantNamespaceKeyRequest* req,
                                 v1::KeyGrant* resp) override;
  grpc::Status GetKeyGrant(grpc::ServerContext* ctx, const v1::GetKeyGrantRequest* req, v1::KeyGrant* resp) override;
  grpc::Status SetRecoveryKey(grpc::ServerContext* ctx, const v1::SetRecoveryKeyRequest* req,
                              v1::RecoveryKey* resp) override;
  grpc::Status GetRecoveryKey(grpc::ServerContext* ctx, const v1::GetRecoveryKeyRequest* req,
                              v1::RecoveryKey* resp) override;

 private:
  // OperatorOrDevice: OK for an operator, or for a device token of `device_id` (any device when
  // empty). Returns the device's claims in *claims when it was a device.
  absl::Status OperatorOrDevice(const grpc::ServerContext& ctx, const std::string& device_id,
                                DeviceClaims* claims = nullptr) const;

  // OperatorOrUser: "" for an operator, the user of a user token otherwise (PermissionDenied for
  // a disabled user; what an operator would need when the call carries neither).
  absl::StatusOr<std::string> OperatorOrUser(const grpc::ServerContext& ctx) const;
  // OperatorOrUserOf: as OperatorOrUser, and a user must own `ns` or have it shared.
  absl::StatusOr<std::string> OperatorOrUserOf(const grpc::ServerContext& ctx, const std::string& ns) const;
  // ForUser: a user may ask only about itself (`requested` empty or its own id); an operator
  // about anyone. Returns whom the call is about.
  absl::StatusOr<std::string> ForUser(const grpc::ServerContext& ctx, const std::string& requested) const;

  // CallingDevice: the device whose token made the call (an operator has no keys to hand).
  absl::StatusOr<std::string> CallingDevice(const grpc::ServerContext& ctx) const;

  Registry* const registry_;
  Fleet fleet_;
  KeyDirectory keys_;
  mutable UserSignIn sign_in_;
  FolderView folders_;
  const Authenticator auth_;
  const std::shared_ptr<const TokenSigner> signer_;
  const absl::Duration token_ttl_;
  const EndpointsConfig endpoints_;
  const ShardList* shards_ = nullptr;
  ShardDirectory* shard_directory_ = nullptr;
  MoveJobs* moves_ = nullptr;
  NamespacePlacement* placement_ = nullptr;
  LagHistory* lag_ = nullptr;
};

}  // namespace converge::management

#endif  // CONVERGE_SERVICES_MANAGEMENT_MANAGEMENT_SERVICE_H_
