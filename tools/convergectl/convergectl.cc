// convergectl: the operator's CLI over the management API.
//
//   convergectl --management=127.0.0.1:7000 users create alice
//   convergectl users list --json
//
// Exit codes: 0 done, 1 the service refused or failed (the gRPC status is printed), 2 usage.
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "common/bearer_token.h"
#include "converge/management/v1/management.grpc.pb.h"
#include "google/protobuf/util/json_util.h"

ABSL_FLAG(std::string, management, "", "address of converge-management (or $CONVERGE_MANAGEMENT)");
ABSL_FLAG(std::string, token, "", "bearer token (or $CONVERGE_TOKEN)");
ABSL_FLAG(bool, json, false, "print JSON instead of tables");
ABSL_FLAG(std::string, user, "", "filter by user (devices list, namespaces list)");
ABSL_FLAG(std::string, owner, "", "owner user id (namespaces create)");
ABSL_FLAG(std::string, display_name, "", "display name (users create)");

namespace {

namespace v1 = converge::management::v1;

constexpr char kUsage[] = R"(convergectl: operate Converge through the management API.

usage: convergectl [flags] <command>

commands:
  users create <user-id> [--display_name=NAME]
  users list
  devices list [--user=USER]
  namespaces create <namespace-id> --owner=USER
  namespaces list [--user=USER]
  members add <namespace-id> <device-id>
  members list <namespace-id>
  endpoints

flags: --management=HOST:PORT --token=TOKEN --json (also $CONVERGE_MANAGEMENT, $CONVERGE_TOKEN)
exit codes: 0 done, 1 the service refused or failed, 2 usage)";

std::string FlagOrEnv(const std::string& flag, const char* env) {
  if (!flag.empty() || getenv(env) == nullptr) return flag;
  return getenv(env);
}

std::string Time(int64_t unix_ms) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%SZ", absl::FromUnixMillis(unix_ms), absl::UTCTimeZone());
}

// PrintTable prints rows under a header, columns padded to their widest cell.
void PrintTable(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(header.size());
  for (size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  auto print = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      absl::StrAppend(&line, row[i], std::string(i + 1 < row.size() ? width[i] - row[i].size() + 2 : 0, ' '));
    }
    std::cout << line << "\n";
  };
  print(header);
  for (const auto& row : rows) print(row);
}

int PrintJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  if (!google::protobuf::util::MessageToJsonString(m, &out, options).ok()) return 1;
  std::cout << out;
  return 0;
}

int Fail(const grpc::Status& s) {
  static const char* const kNames[] = {
      "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
      "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
      "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
      "UNAUTHENTICATED"};
  const int code = static_cast<int>(s.error_code());
  std::cerr << "convergectl: " << (code >= 0 && code <= 16 ? kNames[code] : "ERROR") << ": "
            << s.error_message() << "\n";
  return 1;
}

int Usage(const std::string& why) {
  std::cerr << "convergectl: " << why << "\n\n" << kUsage << "\n";
  return 2;
}

class Cli {
 public:
  Cli(std::unique_ptr<v1::ManagementService::Stub> stub, std::string token, bool json)
      : stub_(std::move(stub)), token_(std::move(token)), json_(json) {}

  int Run(const std::vector<std::string>& args) {
    const std::string noun = args.size() > 0 ? args[0] : "";
    const std::string verb = args.size() > 1 ? args[1] : "";
    if (noun == "users" && verb == "create" && args.size() == 3) return CreateUser(args[2]);
    if (noun == "users" && verb == "list" && args.size() == 2) return ListUsers();
    if (noun == "devices" && verb == "list" && args.size() == 2) return ListDevices();
    if (noun == "namespaces" && verb == "create" && args.size() == 3) return CreateNamespace(args[2]);
    if (noun == "namespaces" && verb == "list" && args.size() == 2) return ListNamespaces();
    if (noun == "members" && verb == "add" && args.size() == 4) return AddMember(args[2], args[3]);
    if (noun == "members" && verb == "list" && args.size() == 3) return ListMembers(args[2]);
    if (noun == "endpoints" && args.size() == 1) return Endpoints();
    return Usage(args.empty() ? "no command" : "unknown command: " + absl::StrJoin(args, " "));
  }

 private:
  std::unique_ptr<grpc::ClientContext> Ctx() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    converge::AddBearerToken(ctx.get(), token_);
    return ctx;
  }

  void PrintDevices(const google::protobuf::RepeatedPtrField<v1::Device>& devices) {
    std::vector<std::vector<std::string>> rows;
    for (const v1::Device& d : devices) {
      rows.push_back({d.device_id(), d.user_id(), d.name(), Time(d.created_at_unix_ms())});
    }
    PrintTable({"DEVICE", "USER", "NAME", "REGISTERED"}, rows);
  }

  int CreateUser(const std::string& id) {
    v1::CreateUserRequest req;
    req.set_user_id(id);
    req.set_display_name(absl::GetFlag(FLAGS_display_name));
    v1::User resp;
    grpc::Status s = stub_->CreateUser(Ctx().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (json_) return PrintJson(resp);
    std::cout << "created user " << resp.user_id() << "\n";
    return 0;
  }

  int ListUsers() {
    v1::ListUsersResponse resp;
    grpc::Status s = stub_->ListUsers(Ctx().get(), v1::ListUsersRequest(), &resp);
    if (!s.ok()) return Fail(s);
    if (json_) return PrintJson(resp);
    std::vector<std::vector<std::string>> rows;
    for (const v1::User& u : resp.users()) {
      rows.push_back({u.user_id(), u.display_name(), Time(u.created_at_unix_ms())});
    }
    PrintTable({"USER", "NAME", "CREATED"}, rows);
    return 0;
  }

  int ListDevices() {
    v1::ListDevicesRequest req;
    req.set_user_id(absl::GetFlag(FLAGS_user));
    v1::ListDevicesResponse resp;
    grpc::Status s = stub_->ListDevices(Ctx().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (json_) return PrintJson(resp);
    PrintDevices(resp.devices());
    return 0;
  }

  int CreateNamespace(const std::string& id) {
    if (absl::GetFlag(FLAGS_owner).empty()) return Usage("namespaces create needs --owner");
    v1::CreateNamespaceRequest req;
    req.set_namespace_id(id);
    req.set_owner_user_id(absl::GetFlag(FLAGS_owner));
    v1::Namespace resp;
    grpc::Status s = stub_->CreateNamespace(Ctx().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (json_) return PrintJson(resp);
    std::cout << "created namespace " << resp.namespace_id() << " owned by " << resp.owner_user_id() << "\n";
    return 0;
  }

  int ListNamespaces() {
    v1::ListNamespacesRequest req;
    req.set_user_id(absl::GetFlag(FLAGS_user));
    v1::ListNamespacesResponse resp;
    grpc::Status s = stub_->ListNamespaces(Ctx().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (json_) return PrintJson(resp);
    std::vector<std::vector<std::string>> rows;
    for (const v1::Namespace& n : resp.namespaces()) {
      rows.push_back({n.namespace_id(), n.owner_user_id(), Time(n.created_at_unix_ms())});
    }
    PrintTable({"NAMESPACE", "OWNER", "CREATED"}, rows);
    return 0;
  }

  int AddMember(const std::string& ns, const std::string& device) {
    v1::AddDeviceToNamespaceRequest req;
    req.set_namespace_id(ns);
    req.set_device_id(device);
    v1::AddDeviceToNamespaceResponse resp;
    grpc::Status s = stub_->AddDeviceToNamespace(Ctx().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (json_) return PrintJson(resp);
    std::cout << "device " << device << " is a member of " << ns << "\n";
    return 0;
  }

  int ListMembers(const std::string& ns) {
    v1::ListMembersRequest req;
    req.set_namespace_id(ns);
    v1::ListMembersResponse resp;
    grpc::Status s = stub_->ListMembers(Ctx().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (json_) return PrintJson(resp);
    PrintDevices(resp.devices());
    return 0;
  }

  int Endpoints() {
    v1::Endpoints resp;
    grpc::Status s = stub_->GetEndpoints(Ctx().get(), v1::GetEndpointsRequest(), &resp);
    if (!s.ok()) return Fail(s);
    if (json_) return PrintJson(resp);
    PrintTable({"SERVICE", "ADDRESS"},
               {{"store", resp.store_address()}, {"notification", resp.notification_address()}});
    return 0;
  }

  std::unique_ptr<v1::ManagementService::Stub> stub_;
  const std::string token_;
  const bool json_;
};

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  std::vector<std::string> args(positional.begin() + 1, positional.end());
  const std::string address = FlagOrEnv(absl::GetFlag(FLAGS_management), "CONVERGE_MANAGEMENT");
  if (address.empty()) return Usage("--management (or $CONVERGE_MANAGEMENT) is required");
  Cli cli(v1::ManagementService::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials())),
          FlagOrEnv(absl::GetFlag(FLAGS_token), "CONVERGE_TOKEN"), absl::GetFlag(FLAGS_json));
  return cli.Run(args);
}
