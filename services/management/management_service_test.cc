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
    if (WithSigningKey()) {
      options.token_signing_key = dir + "/signing.key";
      ASSERT_EQ(system(("openssl genpkey -algorithm ed25519 -out " + options.token_signing_key + " 2>/dev/null").c_str()), 0);
    }
    auto management = ManagementServer::Create(options);
    ASSERT_TRUE(management.ok()) << management.status();
    management_ = std::move(*management);
    auto server = StartServer(ServerOptions{}, {management_->service()});
    ASSERT_TRUE(server.ok());
    server_ = std::move(*server);
    stub_ = v1::ManagementService::NewStub(
        grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
  }

  virtual bool WithSigningKey() const { return false; }

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

class PeopleTest : public ManagementServiceTest {
 protected:
  bool WithSigningKey() const override { return true; }

  void MakeUserWithNamespace(const std::string& user, const std::string& ns) {
    v1::CreateUserRequest u;
    u.set_user_id(user);
    v1::User created;
    ASSERT_TRUE(stub_->CreateUser(Ctx().get(), u, &created).ok());
    v1::CreateNamespaceRequest n;
    n.set_namespace_id(ns);
    n.set_owner_user_id(user);
    v1::Namespace made;
    ASSERT_TRUE(stub_->CreateNamespace(Ctx().get(), n, &made).ok());
  }

  grpc::Status SignIn(const std::string& user, const std::string& password, std::string* token) {
    v1::SignInRequest req;
    req.set_user_id(user);
    req.set_password(password);
    v1::SignInResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = stub_->SignIn(&ctx, req, &resp);
    if (token != nullptr) *token = resp.token();
    return s;
  }
};

TEST_F(PeopleTest, AUserSignsInWithAPasswordAndSeesOnlyItsOwnNamespaces) {
  MakeUserWithNamespace("alice", "docs");
  MakeUserWithNamespace("bob", "bobs");
  v1::SetUserPasswordRequest set;
  set.set_user_id("alice");
  set.set_password("alice's long password");
  v1::User user;
  ASSERT_TRUE(stub_->SetUserPassword(Ctx().get(), set, &user).ok());
  // Only an operator sets passwords; a short one is refused.
  EXPECT_EQ(stub_->SetUserPassword(Ctx("nope").get(), set, &user).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  set.set_password("short");
  EXPECT_EQ(stub_->SetUserPassword(Ctx().get(), set, &user).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  std::string token;
  EXPECT_EQ(SignIn("alice", "wrong password!", nullptr).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(SignIn("nobody", "alice's long password", nullptr).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(SignIn("bob", "any password at all", nullptr).error_code(), grpc::StatusCode::UNAUTHENTICATED);  // none set
  ASSERT_TRUE(SignIn("alice", "alice's long password", &token).ok());
  ASSERT_EQ(token.rfind("cvu1.", 0), 0u);

  // Her namespaces, whatever she asks for.
  v1::ListNamespacesRequest list;
  v1::ListNamespacesResponse namespaces;
  ASSERT_TRUE(stub_->ListNamespaces(Ctx(token).get(), list, &namespaces).ok());
  ASSERT_EQ(namespaces.namespaces_size(), 1);
  EXPECT_EQ(namespaces.namespaces(0).namespace_id(), "docs");
  list.set_user_id("bob");
  EXPECT_EQ(stub_->ListNamespaces(Ctx(token).get(), list, &namespaces).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  v1::GetNamespaceStatusRequest status;
  status.set_namespace_id("bobs");
  v1::NamespaceStatus st;
  EXPECT_EQ(stub_->GetNamespaceStatus(Ctx(token).get(), status, &st).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  status.set_namespace_id("no-such");
  EXPECT_EQ(stub_->GetNamespaceStatus(Ctx(token).get(), status, &st).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  status.set_namespace_id("docs");
  EXPECT_TRUE(stub_->GetNamespaceStatus(Ctx(token).get(), status, &st).ok());
  v1::ListFolderRequest folder;
  folder.set_namespace_id("bobs");
  v1::ListFolderResponse entries;
  EXPECT_EQ(stub_->ListFolder(Ctx(token).get(), folder, &entries).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  folder.set_namespace_id("docs");
  EXPECT_TRUE(stub_->ListFolder(Ctx(token).get(), folder, &entries).ok());
  folder.set_folder("../etc");
  EXPECT_EQ(stub_->ListFolder(Ctx(token).get(), folder, &entries).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::ListConflictsRequest conflicts;  // every namespace: an operator's question
  v1::ListConflictsResponse none;
  EXPECT_EQ(stub_->ListConflicts(Ctx(token).get(), conflicts, &none).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // Operators' calls stay operators'.
  v1::ListUsersResponse users;
  EXPECT_EQ(stub_->ListUsers(Ctx(token).get(), v1::ListUsersRequest(), &users).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  v1::RestoreVersionRequest restore;
  restore.set_namespace_id("bobs");
  restore.set_path("a.txt");
  restore.set_seq(1);
  v1::RestoreVersionResponse restored;
  EXPECT_EQ(stub_->RestoreVersion(Ctx(token).get(), restore, &restored).error_code(), grpc::StatusCode::PERMISSION_DENIED);

  // A user token is no device token, and a tampered one is nothing.
  v1::GetEndpointsRequest endpoints;
  endpoints.set_namespace_id("docs");
  v1::Endpoints got;
  EXPECT_NE(stub_->GetEndpoints(Ctx(token).get(), endpoints, &got).error_code(), grpc::StatusCode::OK);
  std::string tampered = token;
  tampered[10] = tampered[10] == 'A' ? 'B' : 'A';
  EXPECT_EQ(stub_->ListNamespaces(Ctx(tampered).get(), v1::ListNamespacesRequest(), &namespaces).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);

  // A disabled user's token stops working at once.
  v1::DisableUserRequest disable;
  disable.set_user_id("alice");
  ASSERT_TRUE(stub_->DisableUser(Ctx().get(), disable, &user).ok());
  EXPECT_EQ(stub_->ListNamespaces(Ctx(token).get(), v1::ListNamespacesRequest(), &namespaces).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(SignIn("alice", "alice's long password", nullptr).error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(PeopleTest, FiveWrongPasswordsLockTheUserOutForAMinute) {
  MakeUserWithNamespace("carol", "carols");
  v1::SetUserPasswordRequest set;
  set.set_user_id("carol");
  set.set_password("carol's long password");
  v1::User user;
  ASSERT_TRUE(stub_->SetUserPassword(Ctx().get(), set, &user).ok());
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(SignIn("carol", "guess number " + std::to_string(i), nullptr).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  // Even the right password waits out the lockout.
  EXPECT_EQ(SignIn("carol", "carol's long password", nullptr).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  // An operator setting a new password lifts it.
  ASSERT_TRUE(stub_->SetUserPassword(Ctx().get(), set, &user).ok());
  EXPECT_TRUE(SignIn("carol", "carol's long password", nullptr).ok());
}

}  // namespace
}  // namespace converge::management
