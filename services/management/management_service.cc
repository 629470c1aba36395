#include "services/management/management_service.h"

#include "common/bearer_token.h"
#include "common/grpc_status.h"

namespace converge::management {
namespace {

void ToProto(const User& u, v1::User* p) {
  p->set_user_id(u.user_id);
  p->set_display_name(u.display_name);
  p->set_created_at_unix_ms(u.created_at_unix_ms);
}

void ToProto(const Device& d, v1::Device* p) {
  p->set_device_id(d.device_id);
  p->set_user_id(d.user_id);
  p->set_name(d.name);
  p->set_created_at_unix_ms(d.created_at_unix_ms);
}

void ToProto(const Namespace& n, v1::Namespace* p) {
  p->set_namespace_id(n.namespace_id);
  p->set_owner_user_id(n.owner_user_id);
  p->set_created_at_unix_ms(n.created_at_unix_ms);
}

}  // namespace

#define CONVERGE_CHECK_TOKEN(ctx)                                     \
  if (absl::Status _auth = CheckBearerToken(*(ctx), token_); !_auth.ok()) \
  return ToGrpcStatus(_auth)

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

grpc::Status ManagementService::RegisterDevice(grpc::ServerContext* ctx,
                                               const v1::RegisterDeviceRequest* req,
                                               v1::RegisterDeviceResponse* resp) {
  CONVERGE_CHECK_TOKEN(ctx);
  absl::StatusOr<RegisteredDevice> device = registry_->RegisterDevice(req->user_id(), req->name());
  if (!device.ok()) return ToGrpcStatus(device.status());
  ToProto(device->device, resp->mutable_device());
  resp->set_credential(device->credential);
  return grpc::Status::OK;
}

grpc::Status ManagementService::ListDevices(grpc::ServerContext* ctx,
                                            const v1::ListDevicesRequest* req,
                                            v1::ListDevicesResponse* resp) {
  CONVERGE_CHECK_TOKEN(ctx);
  absl::StatusOr<std::vector<Device>> devices = registry_->ListDevices(req->user_id());
  if (!devices.ok()) return ToGrpcStatus(devices.status());
  for (const Device& d : *devices) ToProto(d, resp->add_devices());
  return grpc::Status::OK;
}

grpc::Status ManagementService::CreateNamespace(grpc::ServerContext* ctx,
                                                const v1::CreateNamespaceRequest* req,
                                                v1::Namespace* resp) {
  CONVERGE_CHECK_TOKEN(ctx);
  absl::StatusOr<Namespace> ns = registry_->CreateNamespace(req->namespace_id(), req->owner_user_id());
  if (!ns.ok()) return ToGrpcStatus(ns.status());
  ToProto(*ns, resp);
  return grpc::Status::OK;
}

grpc::Status ManagementService::ListNamespaces(grpc::ServerContext* ctx,
                                               const v1::ListNamespacesRequest* req,
                                               v1::ListNamespacesResponse* resp) {
  CONVERGE_CHECK_TOKEN(ctx);
  absl::StatusOr<std::vector<Namespace>> list = registry_->ListNamespaces(req->user_id());
  if (!list.ok()) return ToGrpcStatus(list.status());
  for (const Namespace& n : *list) ToProto(n, resp->add_namespaces());
  return grpc::Status::OK;
}

grpc::Status ManagementService::AddDeviceToNamespace(grpc::ServerContext* ctx,
                                                     const v1::AddDeviceToNamespaceRequest* req,
                                                     v1::AddDeviceToNamespaceResponse*) {
  CONVERGE_CHECK_TOKEN(ctx);
  return ToGrpcStatus(registry_->AddDevice(req->namespace_id(), req->device_id()));
}

grpc::Status ManagementService::ListMembers(grpc::ServerContext* ctx,
                                            const v1::ListMembersRequest* req,
                                            v1::ListMembersResponse* resp) {
  CONVERGE_CHECK_TOKEN(ctx);
  absl::StatusOr<std::vector<Device>> members = registry_->ListMembers(req->namespace_id());
  if (!members.ok()) return ToGrpcStatus(members.status());
  for (const Device& d : *members) ToProto(d, resp->add_devices());
  return grpc::Status::OK;
}

grpc::Status ManagementService::GetEndpoints(grpc::ServerContext* ctx, const v1::GetEndpointsRequest*,
                                             v1::Endpoints* resp) {
  CONVERGE_CHECK_TOKEN(ctx);
  resp->set_store_address(endpoints_.store_address);
  resp->set_notification_address(endpoints_.notification_address);
  return grpc::Status::OK;
}

}  // namespace converge::management
