// convergectl: the operator's CLI over the management API.
//
//   convergectl --management=127.0.0.1:7000 users create alice
//   convergectl users list --json
//   convergectl top --interval=2s
//
// Exit codes: 0 done, 1 the service refused or failed (the gRPC status is printed) or a health
// check failed, 2 usage.
#include <grpcpp/grpcpp.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/base/human_format.h"
#include "common/crypto/device_keys.h"
#include "common/rpc/channel.h"
#include "common/security/bearer_token.h"
#include "converge/management/v1/management.grpc.pb.h"
#include "google/protobuf/util/json_util.h"
#include "grpc/health/v1/health.grpc.pb.h"

ABSL_FLAG(std::string, management, "", "address of converge-management (or $CONVERGE_MANAGEMENT)");
ABSL_FLAG(std::string, token, "", "bearer token (or $CONVERGE_TOKEN)");
ABSL_FLAG(bool, json, false, "print JSON instead of tables");
ABSL_FLAG(std::string, user, "", "filter by user (devices list, namespaces list)");
ABSL_FLAG(std::string, owner, "", "owner user id (namespaces create)");
ABSL_FLAG(std::string, xattrs, "", "namespaces create|set: on or off, sync \"user.\" extended attributes");
ABSL_FLAG(bool, encrypted, false,
          "namespaces create: end-to-end encrypted (devices share its keys with `converge-engine keys`)");
ABSL_FLAG(std::string, display_name, "", "display name (users create)");
ABSL_FLAG(bool, wipe, false, "devices revoke: also delete the synced files from the device");
ABSL_FLAG(absl::Duration, interval, absl::Seconds(2), "top: refresh interval");
ABSL_FLAG(int, iterations, 0, "top: stop after this many refreshes (0: until interrupted)");
ABSL_FLAG(bool, all, false, "deletes list: also approved, rejected and applied ones");
ABSL_FLAG(absl::Duration, ttl, absl::Hours(24), "users enroll: how long the enrollment token is valid");
ABSL_FLAG(std::string, password_file, "", "users password: a file holding the new password (or $CONVERGE_USER_PASSWORD)");
ABSL_FLAG(uint32_t, uses, 1, "users enroll: how many devices the token may enroll (single use by default)");

namespace {

namespace v1 = converge::management::v1;
using converge::HumanBytes;

constexpr char kUsage[] = R"(convergectl: operate Converge through the management API.

usage: convergectl [flags] <command>

commands:
  users create <user-id> [--display_name=NAME]
  users list
  users disable <user-id>            revokes every device of the user
  users enroll <user-id> [--ttl=24h] a token engines register devices of the user with
  users quota <user-id> <bytes>      storage quota enforced by the store (0: unlimited)
  users password <user-id> --password_file=F   the password the user signs in to the web console with
  devices list [--user=USER]         last seen, version, lag per namespace
  devices show <device-id>
  devices revoke <device-id> [--wipe]
  namespaces create <namespace-id> --owner=USER [--xattrs=on] [--encrypted]
  namespaces set <namespace-id> --xattrs=on|off
                                     sync "user." extended attributes (engines take it when they
                                     next start)
  namespaces encrypt <namespace-id>  convert to end-to-end encrypted, online (its history before
                                     stays plain); then `converge-engine keys init` on a device
  namespaces list [--user=USER]
  namespaces share <namespace-id> --user=USER
  namespaces status <namespace-id>   files, bytes, chunks, dedup, devices, conflicts, watermark
  namespaces keys <namespace-id>     an encrypted namespace's devices: holding its keyring or
                                     waiting, with their key fingerprints (never a key)
  namespaces compact <namespace-id>  fold the log below the watermark, drop old history and chunks
  namespaces evict <namespace-id> <device-id>
                                     stop an absent device pinning the watermark (it gets a
                                     snapshot when it returns)
  members add <namespace-id> <device-id>
  members list <namespace-id>
  conflicts list [<namespace-id>] [--all]   open conflict copies (resolved ones too)
  conflicts resolve <namespace-id> <copy-path>
  deletes list [<namespace-id>] [--all]    mass deletes held for approval
  deletes approve <namespace-id> <id>
  deletes reject <namespace-id> <id>       the deleting device restores the files
  health                             gRPC health of management, store and notification
  probe <host:port>                  gRPC health of one service (no token; container healthchecks)
  top [--interval=2s] [--iterations=N]
  endpoints [<namespace-id>]         the addresses engines are given (the namespace's store shard)
  shards list                        the store shards in shard order, with the users on each
  shards add <host:port>             append a store shard for good (with the shard map in etcd)
  shards move <namespace> <shard>    move a namespace to another shard online (devices keep syncing)
  shards drain <shard>               no new users there; its users and namespaces to the emptiest other shards
  help [<command>]

flags: --management=HOST:PORT --token=TOKEN --json (also $CONVERGE_MANAGEMENT, $CONVERGE_TOKEN)
exit codes: 0 done, 1 the service refused or failed (or a service is not healthy), 2 usage)";

std::string FlagOrEnv(const std::string& flag, const char* env) {
  if (!flag.empty() || getenv(env) == nullptr) return flag;
  return getenv(env);
}

// Named: a device's registered name for a table cell ("-" if unknown; spaces shown as '_' so
// the columns stay split by spaces).
std::string Named(std::string name) {
  if (name.empty()) return "-";
  std::replace(name.begin(), name.end(), ' ', '_');
  return name;
}

// Thousands: 40000 -> "40,000".
std::string Thousands(uint64_t n) {
  std::string digits = absl::StrCat(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

std::string Time(int64_t unix_ms) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%SZ", absl::FromUnixMillis(unix_ms), absl::UTCTimeZone());
}


std::string Ago(int64_t unix_ms) {
  if (unix_ms <= 0) return "never";
  const absl::Duration d = absl::Now() - absl::FromUnixMillis(unix_ms);
  if (d < absl::Seconds(1)) return "just now";
  if (d < absl::Minutes(2)) return absl::StrCat(absl::ToInt64Seconds(d), "s ago");
  if (d < absl::Hours(2)) return absl::StrCat(absl::ToInt64Minutes(d), "m ago");
  if (d < absl::Hours(48)) return absl::StrCat(absl::ToInt64Hours(d), "h ago");
  return absl::StrCat(absl::ToInt64Hours(d) / 24, "d ago");
}

std::string Seconds(double s) {
  if (s <= 0) return "0s";
  if (s < 120) return absl::StrFormat("%.1fs", s);
  return absl::StrCat(static_cast<int64_t>(s / 60), "m");
}

std::string StateName(v1::DeviceState s) {
  switch (s) {
    case v1::DEVICE_STATE_ACTIVE: return "active";
    case v1::DEVICE_STATE_REVOKED: return "revoked";
    case v1::DEVICE_STATE_WIPE_PENDING: return "wipe pending";
    case v1::DEVICE_STATE_WIPED: return "wiped";
    default: return "?";
  }
}

// Lag of a device in one namespace: "up to date" or "3 commits, 1.2 MiB, 4.0s".
std::string Lag(const v1::DeviceNamespaceStatus& n) {
  if (n.lag_commits() == 0) return "up to date";
  return absl::StrCat(n.lag_commits(), n.lag_commits() == 1 ? " commit, " : " commits, ", HumanBytes(n.lag_bytes()),
                      ", ", Seconds(n.lag_seconds()));
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

// Help prints the usage lines of one noun ("devices"), or everything.
int Help(const std::string& noun) {
  std::string out;
  for (absl::string_view line : absl::StrSplit(kUsage, '\n')) {
    if (noun.empty() || !absl::StartsWith(line, "  ") || absl::StartsWith(line, absl::StrCat("  ", noun))) {
      absl::StrAppend(&out, line, "\n");
    }
  }
  std::cout << out;
  return 0;
}

// Connect: TLS verified against --tls_ca / $CONVERGE_TLS_CA (plaintext without one).
std::shared_ptr<grpc::Channel> Connect(const std::string& address) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = converge::MakeChannelFromFlags(address);
  if (!channel.ok()) {
    std::cerr << "convergectl: " << channel.status().message() << "\n";
    exit(2);
  }
  return *channel;
}

// Probe asks one service's gRPC health (no management, no token): exit 0 if it is SERVING.
int Probe(const std::string& address) {
  auto health = grpc::health::v1::Health::NewStub(Connect(address));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
  grpc::health::v1::HealthCheckResponse resp;
  grpc::Status s = health->Check(&ctx, grpc::health::v1::HealthCheckRequest(), &resp);
  if (!s.ok()) {
    std::cerr << "convergectl: " << address << ": DOWN (" << s.error_message() << ")\n";
    return 1;
  }
  std::cout << address << ": " << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status()) << "\n";
  return resp.status() == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 1;
}

class Cli {
 public:
  Cli(std::string address, std::string token, bool json)
      : address_(std::move(address)),
        stub_(v1::ManagementService::NewStub(Connect(address_))),
        token_(std::move(token)),
        json_(json) {}

  int Run(const std::vector<std::string>& args) {
    const std::string noun = args.size() > 0 ? args[0] : "";
    const std::string verb = args.size() > 1 ? args[1] : "";
    if (noun == "users" && verb == "create" && args.size() == 3) return CreateUser(args[2]);
    if (noun == "users" && verb == "list" && args.size() == 2) return ListUsers();
    if (noun == "users" && verb == "disable" && args.size() == 3) return DisableUser(args[2]);
    if (noun == "users" && verb == "enroll" && args.size() == 3) return Enroll(args[2]);
    if (noun == "users" && verb == "quota" && args.size() == 4) return Quota(args[2], args[3]);
    if (noun == "users" && verb == "password" && args.size() == 3) return Password(args[2]);
    if (noun == "devices" && verb == "list" && args.size() == 2) return ListDevices();
    if (noun == "devices" && verb == "show" && args.size() == 3) return ShowDevice(args[2]);
    if (noun == "devices" && verb == "revoke" && args.size() == 3) return RevokeDevice(args[2]);
    if (noun == "namespaces" && verb == "create" && args.size() == 3) return CreateNamespace(args[2]);
    if (noun == "namespaces" && verb == "list" && args.size() == 2) return ListNamespaces();
    if (noun == "namespaces" && verb == "set" && args.size() == 3) return SetNamespaceOptions(args[2]);
    if (noun == "namespaces" && verb == "share" && args.size() == 3) return Share(args[2]);
    if (noun == "namespaces" && verb == "encrypt" && args.size() == 3) return Encrypt(args[2]);
    if (noun == "namespaces" && verb == "status" && args.size() == 3) return NamespaceStatus(args[2]);
    if (noun == "namespaces" && verb == "keys" && args.size() == 3) return NamespaceKeys(args[2]);
    if (noun == "members" && verb == "add" && args.size() == 4) return AddMember(args[2], args[3]);
    if (noun == "members" && verb == "list" && args.size() == 3) return ListMembers(args[2]);
    if (noun == "namespaces" && verb == "compact" && args.size() == 3) return Compact(args[2]);
    if (noun == "namespaces" && verb == "evict" && args.size() == 4) return Evict(args[2], args[3]);
    if (noun == "conflicts" && verb == "list" && args.size() <= 3) return Conflicts(args.size() == 3 ? args[2] : "");
    if (noun == "conflicts" && verb == "resolve" && args.size() == 4) return ResolveConflict(args[2], args[3]);
    if (noun == "deletes" && verb == "list" && args.size() <= 3) return Deletes(args.size() == 3 ? args[2] : "");
    if (noun == "deletes" && (verb == "approve" || verb == "reject") && args.size() == 4) {
      return ResolveDelete(args[2], args[3], verb == "approve");
    }
    if (noun == "health" && args.size() == 1) return Health();
    if (noun == "top" && args.size() == 1) return Top();
    if (noun == "endpoints" && args.size() <= 2) return Endpoints(args.size() == 2 ? args[1] : "");
    if (noun == "shards" && verb == "list" && args.size() == 2) return ListShards();
    if (noun == "shards" && verb == "add" && args.size() == 3) return AddShard(args[2]);
    if (noun == "shards" && verb == "move" && args.size() == 4) return MoveNamespace(args[2], args[3]);
    if (noun == "shards" && verb == "drain" && args.size() == 3) return DrainShard(args[2]);
    return Usage(args.empty() ? "no command" : "unknown command: " + absl::StrJoin(args, " "));
  }

 private:
  std::unique_ptr<grpc::ClientContext> Ctx(std::chrono::seconds deadline = std::chrono::seconds(10)) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + deadline);
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

  // A device's cursor in a namespace as a sample of `top`, to tell how fast it catches up.
  struct CursorSample {
    uint64_t acked = 0;
    absl::Time at;
  };
  using CursorSamples = std::map<std::pair<std::string, std::string>, CursorSample>;

  // Progress: how fast a device that is behind catches up since the last sample, and when it
  // is done at that rate ("-": up to date; "measuring": no sample before; "stalled").
  static std::string Progress(const v1::DeviceNamespaceStatus& n, const CursorSample* before, absl::Time now) {
    if (n.lag_commits() == 0) return "-";
    if (before == nullptr || now <= before->at) return "measuring";
    const double secs = absl::ToDoubleSeconds(now - before->at);
    const double rate = n.acked_seq() > before->acked ? static_cast<double>(n.acked_seq() - before->acked) / secs : 0;
    if (rate == 0) return "stalled";
    return absl::StrFormat("%.1f commits/s, ETA %s", rate, Seconds(static_cast<double>(n.lag_commits()) / rate));
  }

  // PrintFleetDevices: one row per device and namespace, with the store's view; given samples
  // of an earlier look (top), with each one's progress, and they are replaced by this look's.
  void PrintFleetDevices(const google::protobuf::RepeatedPtrField<v1::Device>& devices,
                         CursorSamples* samples = nullptr) {
    const absl::Time now = absl::Now();
    CursorSamples next;
    std::vector<std::vector<std::string>> rows;
    for (const v1::Device& d : devices) {
      const std::vector<std::string> head = {d.device_id(), d.user_id(), d.name(), StateName(d.state()),
                                             Ago(d.last_seen_unix_ms()),
                                             d.software_version().empty() ? "-" : d.software_version()};
      if (d.namespaces().empty()) {
        std::vector<std::string> row = head;
        row.insert(row.end(), {"-", "-", "-"});
        rows.push_back(row);
      }
      for (const v1::DeviceNamespaceStatus& n : d.namespaces()) {
        std::vector<std::string> row = head;
        row.insert(row.end(), {n.namespace_id(), absl::StrCat(n.acked_seq(), "/", n.head_seq()), Lag(n)});
        if (samples != nullptr) {
          const auto key = std::make_pair(d.device_id(), n.namespace_id());
          auto it = samples->find(key);
          row.push_back(Progress(n, it == samples->end() ? nullptr : &it->second, now));
          next[key] = CursorSample{n.acked_seq(), now};
        }
        rows.push_back(row);
      }
    }
    std::vector<std::string> header = {"DEVICE", "USER", "NAME", "STATE", "LAST SEEN", "VERSION", "NAMESPACE", "CURSOR", "LAG"};
    if (samples != nullptr) {
      header.push_back("PROGRESS");
      for (auto& row : rows) row.resize(header.size(), "-");
      *samples = std::move(next);
    }
    PrintTable(header, rows);
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
      rows.push_back({u.user_id(), u.display_name(), Time(u.created_at_unix_ms()), u.disabled() ? "disabled" : "active",
                      absl::StrCat(u.shard())});
    }
    PrintTable({"USER", "NAME", "CREATED", "STATE", "SHARD"}, rows);
    return 0;
  }

  int ListDevices() {
    v1::ListDevicesRequest req;
    req.set_user_id(absl::GetFlag(FLAGS_user));
    v1::ListDevicesResponse resp;
    grpc::Status s = stub_->ListDevices(Ctx().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (json_) return PrintJson(resp);
    PrintFleetDevices(resp.devices());
    if (!resp.store_error().empty()) std::cerr << "convergectl: the store's view is missing: " << resp.store_error() << "\n";
    return 0;
  }

  int ShowDevice(const std::string& id) {
    v1::GetDeviceRequest req;
    req.set_device_id(id);
    v1::Device resp;
    grpc::Status s = stub_->GetDevice(Ctx().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (json_) return PrintJson(resp);
    google::protobuf::RepeatedPtrField<v1::Device> one;
    *one.Add() = resp;
    PrintFleetDevices(one);
    return 0;
  }

  int RevokeDevice(const std::string& id) {
    v1::RevokeDeviceRequest req;
    req.set_device_id(id);
    req.set_wipe(absl::GetFlag(FLAGS_wipe));
    v1::Device resp;
    grpc::Status s = stub_->RevokeDevice(Ctx().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (json_) return PrintJson(resp);
    std::cout << "device " << resp.device_id() << " (" << resp.name() << ") is " << StateName(resp.state())
              << (resp.state() == v1::DEVICE_STATE_WIPE_PENDING ? ": its engine deletes the synced files when it next calls"
                                                                  : "")
              << "\n";
    return 0;
  }

  int Enroll(const std::string& id) {
    v1::CreateEnrollmentTokenRequest req;
    req.set_user_id(id);
    req.set_ttl_seconds(static_cast<uint32_t>(absl::ToInt64Seconds(absl::GetFlag(FLAGS_ttl))));
    req.set_uses(absl::GetFlag(FLAGS_uses));
    v1::EnrollmentToken resp;
    grpc::Status s = stub_->CreateEnrollmentToken(Ctx().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (json_) return PrintJson(resp);
    std::cout << resp.token() << "\n";
    std::cerr << "enrollment token for " << resp.user_id() << " (" << resp.uses() << " device(s)), valid until "
              << absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", absl::FromUnixMillis(resp.expires_at_unix_ms()),
                                  absl::UTCTimeZone())
              << " (give it to converge-engine in CONVERGE_ENROLL_TOKEN or --enroll_token_file, never on a command line)\n";
    return 0;
  }

  int Quota(const std::string& id, const std::string& bytes) {
    uint64_t quota = 0;
    if (!absl::SimpleAtoi(bytes, &quota)) return Usage("users quota needs a byte count");
    v1::SetUserQuotaRequest req;
    req.set_user_id(id);
    req.set_quota_bytes(quota);
    v1::User resp;
    grpc::Status s = stub_->SetUserQuota(Ctx().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (json_) return PrintJson(resp);
    std::cout << "user " << resp.user_id() << " quota: "
              << (resp.quota_bytes() == 0 ? std::string("unlimited") : HumanBytes(resp.quota_bytes())) << "\n";
    return 0;
  }

  int Password(const std::string& id) {
    std::string password;
    if (const std::string file = absl::GetFlag(FLAGS_password_file); !file.empty()) {
      std::ifstream in(file);
      std::stringstream read;
      read << in.rdbuf();
      if (!in) return Usage(absl::StrCat("cannot read ", file));
      password = std::string(absl::StripTrailingAsciiWhitespace(read.str()));
    } else if (const char* env = std::getenv("CONVERGE_USER_PASSWORD"); env != nullptr) {
      password = env;
    } else {
      return Usage("users password needs --password_file or $CONVERGE_USER_PASSWORD (never a command-line argument)");
    }
    v1::SetUserPasswordRequest req;
    req.set_user_id(id);
    req.set_password(password);
    v1::User resp;
    grpc::Status s = stub_->SetUserPassword(Ctx().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (json_) return PrintJson(resp);
    std::cout << "user " << resp.user_id() << " can sign in to the web console with that password\n";
    return 0;
  }

  int DisableUser(const std::string& id) {
    v1::DisableUserRequest req;
    req.set_user_id(id);
    v1::User resp;
    grpc::Status s = stub_->DisableUser(Ctx().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (json_) return PrintJson(resp);
    std::cout << "user " << resp.user_id() << " is disabled; its devices are revoked\n";
    return 0;
  }

  int Share(const std::string& ns) {
    if (absl::GetFlag(FLAGS_user).empty()) return Usage("namespaces share needs --user");
    v1::ShareNamespaceRequest req;
    req.set_namespace_id(ns);
    req.set_user_id(absl::GetFlag(FLAGS_user));
    v1::Namespace resp;
    grpc::Status s = stub_->ShareNamespace(Ctx().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (json_) return PrintJson(resp);
    std::cout << "namespace " << resp.namespace_id() << " (owner " << resp.owner_user_id() << ") is shared with "
              << absl::StrJoin(resp.shared_with_user_ids(), ", ") << "\n";
    return 0;
  }

  int NamespaceStatus(const std::string& ns) {
    v1::GetNamespaceStatusRequest req;
    req.set_namespace_id(ns);
    v1::NamespaceStatus resp;
    grpc::Status s = stub_->GetNamespaceStatus(Ctx().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (json_) return PrintJson(resp);
    PrintNamespaceStatus(resp);
    return 0;
  }

  void PrintNamespaceStatus(const v1::NamespaceStatus& r) {
    const v1::Namespace& n = r.namespace_();
    std::cout << "namespace " << n.namespace_id() << " (owner " << n.owner_user_id()
              << (n.shared_with_user_ids().empty() ? "" : ", shared with " + absl::StrJoin(n.shared_with_user_ids(), ", "))
              << "), head seq " << r.head_seq() << "\n"
              << "  " << r.files() << " files, " << HumanBytes(r.bytes()) << " in " << r.unique_chunks() << " chunks of "
              << HumanBytes(r.unique_chunk_bytes()) << " (dedup " << absl::StrFormat("%.2f", r.dedup_ratio()) << "x), "
              << r.conflicts() << (r.conflicts() == 1 ? " open conflict" : " open conflicts") << "\n"
              << "  watermark " << r.watermark() << ", log compacted through seq " << r.compacted_through() << "\n";
    if (r.converted_at() > 0) {
      std::cout << "  end-to-end encrypted since seq " << r.converted_at()
                << " (converted: its log, file table and history up to that seq are plain, as they were)\n";
    } else if (n.options().encrypted()) {
      std::cout << "  end-to-end encrypted since its creation\n";
    }
    std::vector<std::vector<std::string>> rows;
    std::vector<std::string> blocked;
    for (const v1::DeviceNamespaceStatus& d : r.devices()) {
      std::string note = d.evicted() ? "evicted" : d.pins_watermark() ? "pins the watermark" : "";
      rows.push_back({d.device_id(), d.device_name(), absl::StrCat(d.acked_seq(), "/", d.head_seq()), Lag(d), note,
                      d.blocked_count() == 0 ? "-" : absl::StrCat(d.blocked_count())});
      for (const std::string& b : d.blocked()) blocked.push_back(absl::StrCat(d.device_name(), ": ", b));
    }
    PrintTable({"DEVICE", "NAME", "CURSOR", "LAG", "COMPACTION", "BLOCKED"}, rows);
    // Remote versions a device could not apply (a local file or symlink in the way, a name its
    // filesystem refuses): it applied the rest and tries these again every round.
    for (const std::string& b : blocked) std::cout << "  blocked on " << b << "\n";
  }

  int Compact(const std::string& ns) {
    v1::CompactNamespaceRequest req;
    req.set_namespace_id(ns);
    v1::CompactNamespaceResponse resp;
    auto ctx = Ctx();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
    grpc::Status s = stub_->CompactNamespace(ctx.get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (json_) return PrintJson(resp);
    std::cout << "compacted " << ns << " through seq " << resp.compacted_through() << " (watermark "
              << resp.watermark() << "): " << resp.log_entries_dropped() << " log entries folded, "
              << resp.versions_dropped() << " old versions and " << resp.tombstones_dropped()
              << " deletions past the retention dropped, " << resp.chunks_dropped() << " chunks ("
              << HumanBytes(resp.bytes_dropped()) << ") freed\n";
    if (resp.pinned_by_size() > 0) {
      std::cout << "the watermark is held by: " << absl::StrJoin(resp.pinned_by(), ", ")
                << " (convergectl namespaces evict " << ns << " <device-id>)\n";
    }
    return 0;
  }

  int Evict(const std::string& ns, const std::string& device) {
    v1::EvictDeviceRequest req;
    req.set_namespace_id(ns);
    req.set_device_id(device);
    v1::EvictDeviceResponse resp;
    grpc::Status s = stub_->EvictDevice(Ctx().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (json_) return PrintJson(resp);
    std::cout << "evicted " << device << " from the watermark of " << ns
              << ": if it comes back, it gets a snapshot of the folder\n";
    return 0;
  }

  int ResolveConflict(const std::string& ns, const std::string& path) {
    v1::ResolveConflictRequest req;
    req.set_namespace_id(ns);
    req.set_path(path);
    v1::Conflict resp;
    grpc::Status s = stub_->ResolveConflict(Ctx().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (json_) return PrintJson(resp);
    std::cout << "resolved " << resp.path() << " in " << ns << " (the copy stays until someone deletes it)\n";
    return 0;
  }

  int Conflicts(const std::string& ns) {
    v1::ListConflictsRequest req;
    req.set_namespace_id(ns);
    req.set_include_resolved(absl::GetFlag(FLAGS_all));
    v1::ListConflictsResponse resp;
    grpc::Status s = stub_->ListConflicts(Ctx().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (json_) return PrintJson(resp);
    std::vector<std::vector<std::string>> rows;
    for (const v1::Conflict& c : resp.conflicts()) {
      rows.push_back({c.namespace_id(), c.original_path(), c.path(), c.device(), Named(c.device_name()), c.detected_at(),
                      c.resolved() ? absl::StrCat("resolved (", c.resolved_by(), ")") : "open"});
    }
    PrintTable({"NAMESPACE", "PATH", "CONFLICT COPY", "DEVICE", "NAME", "DETECTED", "STATE"}, rows);
    return 0;
  }

  int Deletes(const std::string& ns) {
    v1::ListPendingDeletesRequest req;
    req.set_namespace_id(ns);
    req.set_include_resolved(absl::GetFlag(FLAGS_all));
    v1::ListPendingDeletesResponse resp;
    grpc::Status s = stub_->ListPendingDeletes(Ctx().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (json_) return PrintJson(resp);
    std::vector<std::vector<std::string>> rows;
    for (const v1::PendingDelete& d : resp.deletes()) {
      // What the burst empties, by folder ("ob/ 40,000 files"); the first paths if none is known.
      std::vector<std::string> folders;
      for (const v1::FolderCount& f : d.top_folders()) {
        folders.push_back(absl::StrCat(f.path().empty() ? "(top level)" : f.path(), " ", Thousands(f.files()),
                                       f.files() == 1 ? " file" : " files"));
      }
      std::string what = absl::StrJoin(folders.empty() ? std::vector<std::string>(d.sample_paths().begin(),
                                                                                   d.sample_paths().end())
                                                       : folders,
                                       ", ");
      if (folders.empty() && d.deletes() > static_cast<uint64_t>(d.sample_paths_size())) absl::StrAppend(&what, ", ...");
      rows.push_back({d.namespace_id(), d.id(), d.device_id(), Named(d.device_name()), d.state(),
                      absl::StrCat(Thousands(d.deletes()), " of ", Thousands(d.live_entries())),
                      Time(d.created_at_unix_ms()), what});
    }
    PrintTable({"NAMESPACE", "ID", "DEVICE", "NAME", "STATE", "DELETES", "HELD SINCE", "FOLDERS"}, rows);
    return 0;
  }

  int ResolveDelete(const std::string& ns, const std::string& id, bool approve) {
    v1::ResolvePendingDeleteRequest req;
    req.set_namespace_id(ns);
    req.set_id(id);
    req.set_approve(approve);
    v1::PendingDelete resp;
    grpc::Status s = stub_->ResolvePendingDelete(Ctx().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (json_) return PrintJson(resp);
    std::cout << "mass delete " << resp.id() << " in " << resp.namespace_id() << " (" << resp.deletes()
              << " deletions by " << resp.device_id() << ") is " << resp.state()
              << (approve ? ": the device's next sync applies it" : ": the device restores the files") << "\n";
    return 0;
  }

  // Health checks management, then the store and notification addresses it hands to engines
  // (an empty one: the all-in-one server at the management address).
  int Health() {
    v1::Endpoints endpoints;
    grpc::Status s = stub_->GetEndpoints(Ctx().get(), v1::GetEndpointsRequest(), &endpoints);
    std::vector<std::pair<std::string, std::string>> services = {{"management", address_}};
    if (s.ok()) {
      services.push_back({"store", endpoints.store_address().empty() ? address_ : endpoints.store_address()});
      services.push_back({"notification", endpoints.notification_address().empty()
                                              ? address_
                                              : endpoints.notification_address()});
    }
    std::vector<std::vector<std::string>> rows;
    bool all_ok = s.ok();
    std::string json_out = "{\n";
    for (size_t i = 0; i < services.size(); ++i) {
      const auto& [name, address] = services[i];
      auto health = grpc::health::v1::Health::NewStub(Connect(address));
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
      grpc::health::v1::HealthCheckResponse resp;
      const absl::Time start = absl::Now();
      grpc::Status hs = health->Check(&ctx, grpc::health::v1::HealthCheckRequest(), &resp);
      const std::string took = absl::StrFormat("%.1f ms", absl::ToDoubleMilliseconds(absl::Now() - start));
      std::string status = hs.ok() ? grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status())
                                   : absl::StrCat("DOWN (", hs.error_message(), ")");
      if (name == "management" && !s.ok()) status = absl::StrCat("REFUSED (", s.error_message(), ")");
      all_ok = all_ok && hs.ok() && resp.status() == grpc::health::v1::HealthCheckResponse::SERVING;
      rows.push_back({name, address, status, took});
      absl::StrAppend(&json_out, "  \"", name, "\": {\"address\": \"", address, "\", \"status\": \"",
                      hs.ok() ? grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status()) : "DOWN",
                      "\"}", i + 1 < services.size() ? "," : "", "\n");
    }
    if (json_) {
      std::cout << json_out << "}\n";
    } else {
      PrintTable({"SERVICE", "ADDRESS", "STATUS", "LATENCY"}, rows);
    }
    if (!s.ok()) Fail(s);
    return all_ok ? 0 : 1;
  }

  // Top refreshes a fleet summary: namespaces with their usage, devices with lag.
  int Top() {
    const int iterations = absl::GetFlag(FLAGS_iterations);
    const bool tty = isatty(STDOUT_FILENO) != 0;
    CursorSamples samples;
    for (int i = 0; iterations == 0 || i < iterations; ++i) {
      if (i > 0) absl::SleepFor(absl::GetFlag(FLAGS_interval));
      v1::ListNamespacesResponse namespaces;
      grpc::Status s = stub_->ListNamespaces(Ctx().get(), v1::ListNamespacesRequest(), &namespaces);
      if (!s.ok()) return Fail(s);
      v1::ListDevicesResponse devices;
      s = stub_->ListDevices(Ctx().get(), v1::ListDevicesRequest(), &devices);
      if (!s.ok()) return Fail(s);
      if (tty) std::cout << "\033[H\033[2J";
      std::cout << "converge fleet at " << Time(absl::ToUnixMillis(absl::Now())) << " (management " << address_
                << ")\n\n";
      std::vector<std::vector<std::string>> rows;
      for (const v1::Namespace& n : namespaces.namespaces()) {
        v1::GetNamespaceStatusRequest req;
        req.set_namespace_id(n.namespace_id());
        v1::NamespaceStatus st;
        grpc::Status ss = stub_->GetNamespaceStatus(Ctx().get(), req, &st);
        if (!ss.ok()) {
          rows.push_back({n.namespace_id(), n.owner_user_id(), "?", "?", "?", "?", "?", ss.error_message()});
          continue;
        }
        uint64_t behind = 0;
        for (const v1::DeviceNamespaceStatus& d : st.devices()) behind += d.lag_commits() > 0 ? 1 : 0;
        rows.push_back({n.namespace_id(), n.owner_user_id(), absl::StrCat(st.head_seq()), absl::StrCat(st.files()),
                        HumanBytes(st.bytes()), absl::StrFormat("%.2fx", st.dedup_ratio()),
                        absl::StrCat(st.devices_size() - behind, "/", st.devices_size(), " up to date"),
                        absl::StrCat(st.conflicts())});
      }
      PrintTable({"NAMESPACE", "OWNER", "HEAD", "FILES", "BYTES", "DEDUP", "DEVICES", "CONFLICTS"}, rows);
      std::cout << "\n";
      PrintFleetDevices(devices.devices(), &samples);
      if (!devices.store_error().empty()) std::cout << "\nstore: " << devices.store_error() << "\n";
      std::cout.flush();
    }
    return 0;
  }

  int CreateNamespace(const std::string& id) {
    if (absl::GetFlag(FLAGS_owner).empty()) return Usage("namespaces create needs --owner");
    v1::CreateNamespaceRequest req;
    req.set_namespace_id(id);
    req.set_owner_user_id(absl::GetFlag(FLAGS_owner));
    const std::string xattrs = absl::GetFlag(FLAGS_xattrs);
    if (!xattrs.empty() && xattrs != "on" && xattrs != "off") return Usage("--xattrs is on or off");
    req.mutable_options()->set_sync_xattrs(xattrs == "on");
    req.mutable_options()->set_encrypted(absl::GetFlag(FLAGS_encrypted));
    v1::Namespace resp;
    grpc::Status s = stub_->CreateNamespace(Ctx().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (json_) return PrintJson(resp);
    std::cout << "created " << (resp.options().encrypted() ? "end-to-end encrypted " : "") << "namespace "
              << resp.namespace_id() << " owned by " << resp.owner_user_id() << "\n";
    return 0;
  }

  int SetNamespaceOptions(const std::string& id) {
    const std::string xattrs = absl::GetFlag(FLAGS_xattrs);
    if (xattrs != "on" && xattrs != "off") return Usage("namespaces set needs --xattrs=on or --xattrs=off");
    v1::SetNamespaceOptionsRequest req;
    req.set_namespace_id(id);
    req.mutable_options()->set_sync_xattrs(xattrs == "on");
    v1::Namespace resp;
    grpc::Status s = stub_->SetNamespaceOptions(Ctx().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (json_) return PrintJson(resp);
    std::cout << "namespace " << resp.namespace_id() << ": extended attributes "
              << (resp.options().sync_xattrs() ? "synced" : "not synced") << " (engines take it when they next start)\n";
    return 0;
  }

  int Encrypt(const std::string& id) {
    v1::EncryptNamespaceRequest req;
    req.set_namespace_id(id);
    v1::Namespace resp;
    grpc::Status s = stub_->EncryptNamespace(Ctx().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (json_) return PrintJson(resp);
    std::cout << "namespace " << resp.namespace_id()
              << " is end-to-end encrypted from now on (what was synced before stays plain in its history); "
                 "its engines restart and wait for its keyring: run `converge-engine keys init` on one device, "
                 "then `keys request` / `keys approve` for the others\n";
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
      std::vector<std::string> options;
      if (n.options().sync_xattrs()) options.push_back("xattrs");
      if (n.options().encrypted()) options.push_back("encrypted");
      rows.push_back({n.namespace_id(), n.owner_user_id(), Time(n.created_at_unix_ms()),
                      n.shared_with_user_ids().empty() ? "-" : absl::StrJoin(n.shared_with_user_ids(), ","),
                      options.empty() ? "-" : absl::StrJoin(options, ",")});
    }
    PrintTable({"NAMESPACE", "OWNER", "CREATED", "SHARED WITH", "OPTIONS"}, rows);
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

  int NamespaceKeys(const std::string& ns) {
    v1::ListKeyGrantsRequest req;
    req.set_namespace_id(ns);
    v1::ListKeyGrantsResponse resp;
    grpc::Status s = stub_->ListKeyGrants(Ctx().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (json_) return PrintJson(resp);
    std::cout << "keyring " << (resp.keyring_id().empty() ? "none yet" : absl::BytesToHexString(resp.keyring_id()))
              << "\n";
    std::vector<std::vector<std::string>> rows;
    for (const v1::KeyGrant& g : resp.grants()) {
      absl::StatusOr<converge::crypto::DevicePublicKey> key = converge::crypto::DevicePublicKey::FromBytes(g.public_key());
      rows.push_back({g.device_id(), g.device_name(),
                      absl::StrCat(g.granted() ? absl::StrCat("holds epoch ", g.epoch(), " (from ", g.granted_by(), ")")
                                               : "waiting",
                                   g.revoked() ? ", revoked" : ""),
                      key.ok() ? key->Fingerprint() : "(malformed)"});
    }
    PrintTable({"DEVICE", "NAME", "KEYRING", "FINGERPRINT"}, rows);
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

  int Endpoints(const std::string& ns) {
    v1::GetEndpointsRequest req;
    req.set_namespace_id(ns);
    v1::Endpoints resp;
    grpc::Status s = stub_->GetEndpoints(Ctx().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (json_) return PrintJson(resp);
    PrintTable({"SERVICE", "ADDRESS"},
               {{absl::StrCat("store (shard ", resp.shard(), ")"), resp.store_address()},
                {"notification", resp.notification_address()}});
    return 0;
  }

  int ListShards() {
    v1::ListShardsResponse resp;
    grpc::Status s = stub_->ListShards(Ctx().get(), v1::ListShardsRequest(), &resp);
    if (!s.ok()) return Fail(s);
    if (json_) return PrintJson(resp);
    std::vector<std::vector<std::string>> rows;
    for (const v1::Shard& shard : resp.shards()) {
      rows.push_back({absl::StrCat(shard.index()), shard.address(), absl::StrCat(shard.users()),
                      absl::StrCat(shard.moved_in()), shard.drained() ? "drained" : ""});
    }
    PrintTable({"SHARD", "ADDRESS", "USERS", "MOVED IN", ""}, rows);
    std::cout << (resp.in_etcd() ? "(etcd's shard map: every management replica follows it)"
                                 : "(the --store list of this management replica)")
              << "\n";
    return 0;
  }

  int AddShard(const std::string& address) {
    v1::AddShardRequest req;
    req.set_address(address);
    v1::Shard resp;
    grpc::Status s = stub_->AddShard(Ctx().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (json_) return PrintJson(resp);
    std::cout << "store shard " << resp.index() << " is " << resp.address() << "\n";
    return 0;
  }

  // A move copies the whole namespace: it may take long (hours for terabytes).
  static constexpr std::chrono::seconds kMoveDeadline{6 * 3600};

  int MoveNamespace(const std::string& ns, const std::string& shard) {
    v1::MoveNamespaceRequest req;
    req.set_namespace_id(ns);
    uint32_t to = 0;
    if (!absl::SimpleAtoi(shard, &to)) return Usage(absl::StrCat("not a shard index: '", shard, "'"));
    req.set_to_shard(to);
    v1::MoveNamespaceResponse resp;
    grpc::Status s = stub_->MoveNamespace(Ctx(kMoveDeadline).get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (json_) return PrintJson(resp);
    std::cout << "moved " << ns << " from shard " << resp.from_shard() << " to " << resp.to_shard() << " at seq "
              << resp.head_seq() << ": " << resp.bytes() << " bytes in " << resp.rounds() << " copies ("
              << resp.copy_ms() << " ms), writes paused " << resp.write_pause_ms() << " ms\n";
    return 0;
  }

  // DrainShard moves every namespace on `shard` to the other shards, each to the one holding the
  // fewest namespaces then.
  int DrainShard(const std::string& shard) {
    uint32_t from = 0;
    if (!absl::SimpleAtoi(shard, &from)) return Usage(absl::StrCat("not a shard index: '", shard, "'"));
    // No new users there, and its users' new namespaces go elsewhere; then its namespaces move.
    v1::DrainShardRequest drain;
    drain.set_shard(from);
    v1::DrainShardResponse drained;
    grpc::Status s = stub_->DrainShard(Ctx().get(), drain, &drained);
    if (!s.ok()) return Fail(s);
    v1::ListShardsResponse shards;
    s = stub_->ListShards(Ctx().get(), v1::ListShardsRequest(), &shards);
    if (!s.ok()) return Fail(s);
    if (from >= static_cast<uint32_t>(shards.shards_size()) || shards.shards_size() < 2) {
      return Usage(absl::StrCat("shard ", from, " cannot be drained: ", shards.shards_size(), " shards"));
    }
    v1::ListNamespacesResponse namespaces;
    s = stub_->ListNamespaces(Ctx().get(), v1::ListNamespacesRequest(), &namespaces);
    if (!s.ok()) return Fail(s);
    std::vector<uint64_t> load(shards.shards_size(), 0);
    std::vector<std::string> leaving;
    for (const v1::Namespace& n : namespaces.namespaces()) {
      v1::GetEndpointsRequest req;
      req.set_namespace_id(n.namespace_id());
      v1::Endpoints at;
      s = stub_->GetEndpoints(Ctx().get(), req, &at);
      if (!s.ok()) return Fail(s);
      if (at.shard() < load.size()) ++load[at.shard()];
      if (at.shard() == from) leaving.push_back(n.namespace_id());
    }
    for (const v1::Shard& shard : shards.shards()) {
      if (shard.drained() && shard.index() < load.size()) load[shard.index()] = UINT64_MAX;
    }
    load[from] = UINT64_MAX;
    for (const std::string& ns : leaving) {
      const uint32_t to = static_cast<uint32_t>(std::min_element(load.begin(), load.end()) - load.begin());
      if (int rc = MoveNamespace(ns, absl::StrCat(to)); rc != 0) return rc;
      ++load[to];
    }
    std::cout << "shard " << from << " drained: " << drained.users_moved() << " users placed elsewhere, "
              << leaving.size() << " namespaces moved\n";
    return 0;
  }

  const std::string address_;
  std::unique_ptr<v1::ManagementService::Stub> stub_;
  const std::string token_;
  const bool json_;
};

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  // Help before flag parsing: `convergectl help devices`, `convergectl devices --help`.
  std::vector<std::string> raw(argv + 1, argv + argc);
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == "--help" || raw[i] == "-h" || (i == 0 && raw[i] == "help")) {
      std::string noun;
      for (const std::string& a : raw) {
        if (a != "help" && a != "--help" && a != "-h" && !absl::StartsWith(a, "-")) {
          noun = a;
          break;
        }
      }
      return Help(noun);
    }
  }
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  std::vector<std::string> args(positional.begin() + 1, positional.end());
  if (!args.empty() && args[0] == "probe") {
    if (args.size() != 2) return Usage("probe needs one address (host:port)");
    return Probe(args[1]);
  }
  const std::string address = FlagOrEnv(absl::GetFlag(FLAGS_management), "CONVERGE_MANAGEMENT");
  if (address.empty()) return Usage("--management (or $CONVERGE_MANAGEMENT) is required");
  Cli cli(address, FlagOrEnv(absl::GetFlag(FLAGS_token), "CONVERGE_TOKEN"), absl::GetFlag(FLAGS_json));
  return cli.Run(args);
}
