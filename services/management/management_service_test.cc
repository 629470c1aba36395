// Management over a real loopback socket, with a real store behind it.
#include <grpcpp/grpcpp.h>

#include <cstdlib>
#include <filesystem>

#include "common/rpc/server_runner.h"
#include "gtest/gtest.h"
#include "services/management/management_server.h"
#include "services/store/store_server.h"

namespace converge::management {
namespace {

class ManagementServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string dir = std::string(getenv("TEST_TMPDIR")) + "/" +
                            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir);
    store::StoreOptions store_options;
    store_options.data_dir = dir + "/store";
    store_options.auth.service_token = "svc";
    auto store = store::StoreServer::Create(store_options);
    ASSERT_TRUE(store.ok());
    store_ = std::move(*store);
    auto store_server = StartServer(ServerOptions{}, {store_->service()});
    ASSERT_TRUE(store_server.ok());
    store_server_ = std::move(*store_server);

    ManagementOptions options;
    options.data_dir = dir + "/management";
    options.token = "admin";
    options.service_token = "svc";
    options.endpoints = {{store_server_->address()}, "127.0.0.1:1"};
    auto management = ManagementServer::Create(options);
    ASSERT_TRUE(management.ok()) << management.status();
    management_ = std::move(*management);
    auto server = StartServer(ServerOptions{}, {management_->service()});
    ASSERT_TRUE(server.ok());
    server_ = std::move(*server);
    stub_ = v1::ManagementService::NewStub(
        grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
  }

  std::unique_ptr<grpc::ClientContext> Ctx(const std::string& token = "admin") {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->AddMetadata("authorization", "Bearer " + token);
    return ctx;
  }

  std::unique_ptr<store::StoreServer> store_;
  std::unique_ptr<RunningServer> store_server_;
  std::unique_ptr<ManagementServer> management_;
  std::unique_ptr<RunningServer> server_;
  std::unique_ptr<v1::ManagementService::Stub> stub_;
};

TEST_F(ManagementServiceTest, OnboardingFlowReachesTheStore) {
  v1::CreateUserRequest user;
  user.set_user_id("alice");
  v1::User created;
  ASSERT_TRUE(stub_->CreateUser(Ctx().get(), user, &created).ok());

  v1::RegisterDeviceRequest dev;
  dev.set_user_id("alice");
  dev.set_name("laptop");
  v1::RegisterDeviceResponse registered;
  ASSERT_TRUE(stub_->RegisterDevice(Ctx().get(), dev, &registered).ok());
  EXPECT_FALSE(registered.credential().empty());

  v1::CreateNamespaceRequest ns;
  ns.set_namespace_id("docs");
  ns.set_owner_user_id("alice");
  v1::Namespace ns_resp;
  ASSERT_TRUE(stub_->CreateNamespace(Ctx().get(), ns, &ns_resp).ok());

  v1::AddDeviceToNamespaceRequest add;
  add.set_namespace_id("docs");
  add.set_device_id(registered.device().device_id());
  v1::AddDeviceToNamespaceResponse add_resp;
  grpc::Status s = stub_->AddDeviceToNamespace(Ctx().get(), add, &add_resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  // The store now knows the namespace and lets the device in.
  EXPECT_TRUE(store_->log()->CheckAccess("docs", registered.device().device_id()).ok());
  EXPECT_EQ(store_->log()->CheckAccess("docs", "dev-other").code(),
            absl::StatusCode::kPermissionDenied);

  v1::ListMembersRequest members;
  members.set_namespace_id("docs");
  v1::ListMembersResponse members_resp;
  ASSERT_TRUE(stub_->ListMembers(Ctx().get(), members, &members_resp).ok());
  ASSERT_EQ(members_resp.devices_size(), 1);
  EXPECT_EQ(members_resp.devices(0).name(), "laptop");

  v1::Endpoints endpoints;
  ASSERT_TRUE(stub_->GetEndpoints(Ctx().get(), v1::GetEndpointsRequest(), &endpoints).ok());
  EXPECT_EQ(endpoints.store_address(), store_server_->address());
}

TEST_F(ManagementServiceTest, WrongTokenAndBadInput) {
  v1::ListUsersResponse users;
  EXPECT_EQ(stub_->ListUsers(Ctx("wrong").get(), v1::ListUsersRequest(), &users).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  v1::CreateUserRequest user;
  user.set_user_id("../root");
  v1::User created;
  EXPECT_EQ(stub_->CreateUser(Ctx().get(), user, &created).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::CreateNamespaceRequest ns;
  ns.set_namespace_id("docs");
  ns.set_owner_user_id("ghost");
  v1::Namespace ns_resp;
  EXPECT_EQ(stub_->CreateNamespace(Ctx().get(), ns, &ns_resp).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace converge::management
