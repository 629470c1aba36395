#include "tests/cluster.h"

#include <grpcpp/grpcpp.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/base/sha256.h"
#include "common/base/status_macros.h"
#include "common/rpc/grpc_status.h"
#include "common/rpc/metrics_http.h"
#include "common/security/tls.h"
#include "converge/management/v1/management.grpc.pb.h"
#include "converge/store/v1/store.grpc.pb.h"
#include "engine/fs/local_filesystem.h"
#include "engine/sync/chunker.h"

namespace converge::testing {
namespace {

constexpr char kToken[] = "e2e-admin-token";
constexpr char kServiceToken[] = "e2e-service-token";

// HashFile names a file's content as the store does (ContentDigest of its chunks; the chunker
// is held to its one-byte-a-step definition and to the content by engine/chunker_test).
absl::StatusOr<std::string> HashFile(const std::string& path) {
  CONVERGE_ASSIGN_OR_RETURN(std::unique_ptr<engine::ReadableFile> file, engine::OpenLocalFile(path));
  CONVERGE_ASSIGN_OR_RETURN(engine::FileContent content, engine::ChunkFile(file.get()));
  return DigestToHex(content.sha256);
}

}  // namespace

std::string DescribeDifference(const Snapshot& a, const Snapshot& b) {
  for (const auto& [path, what] : a) {
    auto it = b.find(path);
    if (it == b.end()) return absl::StrCat("'", path, "' only on the first side");
    if (it->second != what) return absl::StrCat("'", path, "' differs: ", what.substr(0, 12), " vs ", it->second.substr(0, 12));
  }
  for (const auto& [path, what] : b) {
    if (!a.count(path)) return absl::StrCat("'", path, "' only on the second side");
  }
  return "";
}

std::string Cluster::OperatorToken() { return kToken; }

std::shared_ptr<grpc::ChannelCredentials> Cluster::DeviceCredentials() const {
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> c = ChannelCredentials({tls_dir() + "/ca.crt", "", ""});
  return c.ok() ? *c : grpc::InsecureChannelCredentials();
}

std::shared_ptr<grpc::ChannelCredentials> Cluster::ServiceCredentials() const {
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> c =
      ChannelCredentials({tls_dir() + "/ca.crt", tls_dir() + "/service.crt", tls_dir() + "/service.key"});
  return c.ok() ? *c : grpc::InsecureChannelCredentials();
}

absl::StatusOr<std::string> Cluster::SignDeviceToken(const std::string& device_id, const std::string& user_id,
                                                     const std::vector<std::string>& namespaces, absl::Duration ttl) {
  DeviceClaims claims;
  claims.device_id = device_id;
  claims.user_id = user_id;
  claims.namespaces = namespaces;
  claims.issued_at = absl::Now();
  claims.expires_at = claims.issued_at + ttl;
  return signer_->Sign(claims);
}

void WriteFile(const std::string& path, const std::string& data) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

absl::StatusOr<std::unique_ptr<Cluster>> Cluster::Start(const ClusterOptions& options) {
  std::unique_ptr<Cluster> c(new Cluster(options));
  // TLS on every hop and device tokens, as in production.
  const std::string tls = options.dir + "/tls";
  std::filesystem::create_directories(options.dir);
  CommandResult certs = RunCommand({Runfile("tools/certs/make-certs"), tls}, options.dir);
  if (certs.exit_code != 0) return absl::InternalError("make-certs failed: " + certs.err);
  CONVERGE_ASSIGN_OR_RETURN(c->signer_, TokenSigner::FromPemFile(tls + "/token-signing.key"));
  const std::vector<std::string> service_tls = {"--tls_ca=" + tls + "/ca.crt", "--tls_cert=" + tls + "/service.crt",
                                                "--tls_key=" + tls + "/service.key"};
  const std::string verify_key = "--token_verify_key=" + tls + "/token-verify.pub";
  const std::string signing_key = "--token_signing_key=" + tls + "/token-signing.key";
  auto with = [](std::vector<std::string> argv, const std::vector<std::string>& more) {
    argv.insert(argv.end(), more.begin(), more.end());
    return argv;
  };
  std::filesystem::create_directories(options.dir + "/logs");
  std::filesystem::create_directories(options.dir + "/run");
  c->logs_ = options.dir + "/logs";
  const std::string run = options.dir + "/run";
  for (const char* f : {"notify.port", "store.port", "management.port", "server.port"}) {
    std::filesystem::remove(run + "/" + f);
  }

  if (options.all_in_one) {
    CONVERGE_ASSIGN_OR_RETURN(c->server_, ChildProcess::Start(with({Runfile("services/server/converge-server"),
                                                                    "--data_dir=" + options.dir + "/data",
                                                                    "--port_file=" + run + "/server.port",
                                                                    std::string("--token=") + kToken,
                                                                    std::string("--service_token=") + kServiceToken,
                                                                    verify_key, signing_key},
                                                                   service_tls),
                                                              c->logs_ + "/server.log"));
    CONVERGE_ASSIGN_OR_RETURN(c->management_port_, WaitForPortFile(run + "/server.port", absl::Seconds(20)));
    c->store_port_ = c->management_port_;
  } else {
  CONVERGE_RETURN_IF_ERROR(c->RestartNotify());
  const std::string notify = absl::StrCat("127.0.0.1:", c->notify_port_);
  // Store shards: "store" (shard 0), "store-1", "store-2", ...
  std::vector<std::string> shard_addresses;
  for (int shard = 0; shard < std::max(1, options.store_shards); ++shard) {
    c->stores_.emplace_back();
    c->store_ports_.push_back(0);
    CONVERGE_RETURN_IF_ERROR(c->StartStore(shard));
    if (options.listed_store_shards == 0 || shard < options.listed_store_shards) {
      shard_addresses.push_back(c->store_address(shard));
    }
  }
  c->store_port_ = c->store_ports_[0];
  // Management replicas: "management" (0), "management-1", ...; several share the registry kept
  // on the first store shard.
  const int replicas = std::max(1, options.management_replicas);
  for (int i = 0; i < replicas; ++i) {
    const std::string name = i == 0 ? "management" : absl::StrCat("management-", i);
    std::vector<std::string> argv = {Runfile("services/management/converge-management"),
                                     "--data_dir=" + options.dir + "/data/" + name,
                                     "--store=" + absl::StrJoin(shard_addresses, ","), "--notify=" + notify,
                                     "--port_file=" + run + "/" + name + ".port", std::string("--token=") + kToken,
                                     std::string("--service_token=") + kServiceToken, "--metrics_listen=127.0.0.1:0",
                                     "--metrics_port_file=" + run + "/" + name + ".metrics", signing_key};
    const bool in_etcd = std::find(options.management_args.begin(), options.management_args.end(),
                                   "--registry_in_etcd") != options.management_args.end();
    if (replicas > 1 && !in_etcd) argv.push_back("--registry_in_store");
    argv.insert(argv.end(), options.management_args.begin(), options.management_args.end());
    std::filesystem::remove(run + "/" + name + ".port");
    c->management_argv_.push_back(with(argv, service_tls));
    CONVERGE_ASSIGN_OR_RETURN(std::unique_ptr<ChildProcess> m,
                              ChildProcess::Start(c->management_argv_.back(), c->logs_ + "/" + name + ".log"));
    CONVERGE_ASSIGN_OR_RETURN(int port, WaitForPortFile(run + "/" + name + ".port", absl::Seconds(20)));
    if (i == 0) {
      c->management_ = std::move(m);
      c->management_port_ = port;
    } else {
      c->extra_managements_.push_back(std::move(m));
    }
    c->management_ports_.push_back(port);
  }
  }

  auto stub = management::v1::ManagementService::NewStub(
      grpc::CreateChannel(c->management_address(), c->DeviceCredentials()));
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", std::string("Bearer ") + kToken);
    management::v1::CreateUserRequest req;
    req.set_user_id(options.user);
    management::v1::User resp;
    CONVERGE_RETURN_IF_ERROR(FromGrpcStatus(stub->CreateUser(&ctx, req, &resp), "CreateUser"));
  }
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", std::string("Bearer ") + kToken);
    management::v1::CreateNamespaceRequest req;
    req.set_namespace_id(options.namespace_id);
    req.set_owner_user_id(options.user);
    management::v1::Namespace resp;
    CONVERGE_RETURN_IF_ERROR(FromGrpcStatus(stub->CreateNamespace(&ctx, req, &resp), "CreateNamespace"));
  }
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", std::string("Bearer ") + kToken);
    management::v1::CreateEnrollmentTokenRequest req;
    req.set_user_id(options.user);
    req.set_uses(1000);
    management::v1::EnrollmentToken resp;
    CONVERGE_RETURN_IF_ERROR(FromGrpcStatus(stub->CreateEnrollmentToken(&ctx, req, &resp), "CreateEnrollmentToken"));
    c->enrollment_token_ = resp.token();
  }
  return c;
}

Cluster::~Cluster() {
  for (auto& e : engines_) e->Stop(SIGTERM);
  if (server_) server_->Stop(SIGTERM);
  for (auto& m : extra_managements_) m->Stop(SIGTERM);
  if (management_) management_->Stop(SIGTERM);
  for (auto& s : stores_) s->Stop(SIGTERM);
  if (notify_) notify_->Stop(SIGTERM);
}

std::vector<std::string> Cluster::NotifyArgv(const std::string& name, int port) const {
  const std::string run = options_.dir + "/run";
  const std::string tls = tls_dir();
  std::vector<std::string> argv = {Runfile("services/notification/converge-notify"),
                                   absl::StrCat("--listen=127.0.0.1:", port),
                                   "--port_file=" + run + "/" + name + ".port",
                                   std::string("--service_token=") + kServiceToken,
                                   "--metrics_listen=127.0.0.1:0", "--metrics_port_file=" + run + "/" + name + ".metrics",
                                   "--tls_ca=" + tls + "/ca.crt", "--tls_cert=" + tls + "/service.crt",
                                   "--tls_key=" + tls + "/service.key",
                                   "--token_verify_key=" + tls + "/token-verify.pub"};
  argv.insert(argv.end(), options_.notify_args.begin(), options_.notify_args.end());
  return argv;
}

absl::Status Cluster::RestartNotify() {
  const std::string run = options_.dir + "/run";
  std::filesystem::remove(run + "/notify.port");
  // The first start picks a free port; a restart takes the same one (engines know it).
  CONVERGE_ASSIGN_OR_RETURN(notify_, ChildProcess::Start(NotifyArgv("notify", notify_port_), logs_ + "/notify.log"));
  CONVERGE_ASSIGN_OR_RETURN(notify_port_, WaitForPortFile(run + "/notify.port", absl::Seconds(20)));
  return absl::OkStatus();
}

absl::StatusOr<int> Cluster::AddNotifyReplica(const std::string& name) {
  const std::string run = options_.dir + "/run";
  std::filesystem::remove(run + "/" + name + ".port");
  CONVERGE_ASSIGN_OR_RETURN(notify_replicas_[name], ChildProcess::Start(NotifyArgv(name, 0), logs_ + "/" + name + ".log"));
  return WaitForPortFile(run + "/" + name + ".port", absl::Seconds(20));
}

void Cluster::KillNotifyReplica(const std::string& name) {
  auto it = notify_replicas_.find(name);
  if (it == notify_replicas_.end()) return;
  it->second->Stop(SIGKILL);
  notify_replicas_.erase(it);
}

std::string Cluster::StoreDataDir(int shard) const {
  return options_.dir + "/data/" + (shard == 0 ? std::string("store") : absl::StrCat("store-", shard));
}

absl::Status Cluster::StartStore(int shard) {
  const std::string run = options_.dir + "/run";
  const std::string name = shard == 0 ? "store" : absl::StrCat("store-", shard);
  std::filesystem::remove(run + "/" + name + ".port");
  const std::string tls = tls_dir();
  // The first start picks a free port; a restart takes the same one (engines know it).
  std::vector<std::string> argv = {Runfile("services/store/converge-store"),
                                   absl::StrCat("--listen=127.0.0.1:", store_ports_[shard]),
                                   "--data_dir=" + StoreDataDir(shard),
                                   absl::StrCat("--notify=127.0.0.1:", notify_port_),
                                   "--port_file=" + run + "/" + name + ".port",
                                   std::string("--service_token=") + kServiceToken,
                                   "--metrics_listen=127.0.0.1:0",
                                   "--metrics_port_file=" + run + "/" + name + ".metrics",
                                   "--token_verify_key=" + tls + "/token-verify.pub",
                                   "--tls_ca=" + tls + "/ca.crt", "--tls_cert=" + tls + "/service.crt",
                                   "--tls_key=" + tls + "/service.key"};
  argv.insert(argv.end(), options_.store_args.begin(), options_.store_args.end());
  argv.insert(argv.begin(), options_.store_wrapper.begin(), options_.store_wrapper.end());
  CONVERGE_ASSIGN_OR_RETURN(stores_[shard], ChildProcess::Start(argv, logs_ + "/" + name + ".log"));
  CONVERGE_ASSIGN_OR_RETURN(store_ports_[shard], WaitForPortFile(run + "/" + name + ".port", absl::Seconds(20)));
  return absl::OkStatus();
}

void Cluster::StopStore(int shard) { stores_[shard]->Stop(SIGTERM); }
void Cluster::KillStore(int shard) { stores_[shard]->Stop(SIGKILL); }
int Cluster::store_pid(int shard) const { return stores_.at(shard)->pid(); }
int Cluster::notify_pid() const { return notify_->pid(); }
absl::StatusOr<int> Cluster::StoreExit(int shard, absl::Duration timeout) { return stores_.at(shard)->WaitExit(timeout); }
int Cluster::engine_pid(int engine) const { return engines_.at(engine)->pid(); }

void Cluster::KillNotify() { notify_->Stop(SIGKILL); }
void Cluster::KillManagement(int replica) {
  (replica == 0 ? management_ : extra_managements_.at(replica - 1))->Stop(SIGKILL);
}

absl::Status Cluster::StartManagement(int replica, const std::vector<std::string>& extra_args) {
  const std::string name = replica == 0 ? "management" : absl::StrCat("management-", replica);
  const std::string port_file = options_.dir + "/run/" + name + ".port";
  std::filesystem::remove(port_file);
  // The same port as before: engines know it.
  std::vector<std::string> argv = management_argv_.at(replica);
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  argv.push_back(absl::StrCat("--listen=127.0.0.1:", management_ports_.at(replica)));
  CONVERGE_ASSIGN_OR_RETURN(std::unique_ptr<ChildProcess> m, ChildProcess::Start(argv, logs_ + "/" + name + ".log"));
  (replica == 0 ? management_ : extra_managements_.at(replica - 1)) = std::move(m);
  return WaitForPortFile(port_file, absl::Seconds(20)).status();
}
absl::StatusOr<TestDevice> Cluster::MakeDevice(const std::string& user, const std::string& ns, bool create,
                                               const std::string& name, int replica) {
  auto management = management::v1::ManagementService::NewStub(
      grpc::CreateChannel(replica == 0 ? management_address() : management_address(replica), DeviceCredentials()));
  auto call = [](const std::string& bearer) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!bearer.empty()) ctx->AddMetadata("authorization", "Bearer " + bearer);
    return ctx;
  };
  if (create) {
    management::v1::CreateUserRequest u;
    u.set_user_id(user);
    management::v1::User user_resp;
    management->CreateUser(call(kToken).get(), u, &user_resp).ok();  // it may exist
    management::v1::CreateNamespaceRequest n;
    n.set_namespace_id(ns);
    n.set_owner_user_id(user);
    management::v1::Namespace ns_resp;
    management->CreateNamespace(call(kToken).get(), n, &ns_resp).ok();  // so may this
  }
  management::v1::RegisterDeviceRequest r;
  r.set_user_id(user);
  r.set_name(name);
  management::v1::RegisterDeviceResponse reg;
  CONVERGE_RETURN_IF_ERROR(FromGrpcStatus(management->RegisterDevice(call(kToken).get(), r, &reg), "RegisterDevice"));
  management::v1::AddDeviceToNamespaceRequest a;
  a.set_namespace_id(ns);
  a.set_device_id(reg.device().device_id());
  management::v1::AddDeviceToNamespaceResponse added;
  CONVERGE_RETURN_IF_ERROR(
      FromGrpcStatus(management->AddDeviceToNamespace(call(kToken).get(), a, &added), "AddDeviceToNamespace"));
  management::v1::IssueDeviceTokenRequest t;
  t.set_device_id(reg.device().device_id());
  t.set_credential(reg.credential());
  management::v1::DeviceToken token;
  CONVERGE_RETURN_IF_ERROR(FromGrpcStatus(management->IssueDeviceToken(call("").get(), t, &token), "IssueDeviceToken"));
  return TestDevice{reg.device().device_id(), reg.credential(), token.token()};
}

std::string Cluster::TokenFile(const std::string& token) const {
  const std::string path = options_.dir + "/run/enroll-" + DigestToHex(HashOf(token)).substr(0, 16);
  // Engines share a token: the file is written once, whole, and renamed into place, so an engine
  // starting meanwhile never reads it truncated.
  if (access(path.c_str(), F_OK) == 0) return path;
  const std::string temp = path + ".tmp";
  const int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd >= 0) {
    (void)!write(fd, token.data(), token.size());
    close(fd);
    rename(temp.c_str(), path.c_str());
  }
  return path;
}

void Cluster::PauseNotify() { kill(notify_->pid(), SIGSTOP); }
void Cluster::ResumeNotify() { kill(notify_->pid(), SIGCONT); }

absl::StatusOr<std::unique_ptr<ChildProcess>> Cluster::SpawnEngine(const std::string& name, const EngineIdentity& id) {
  const std::string folder = options_.dir + "/folders/" + name;
  const std::string metrics_port_file = options_.dir + "/run/engine-" + name + ".metrics";
  std::error_code ignored;  // a mount an engine killed on demand left behind: the engine detaches it
  std::filesystem::create_directories(folder, ignored);
  std::filesystem::remove(metrics_port_file);
  std::vector<std::string> argv = {Runfile("engine/converge-engine"), "--folder=" + folder,
                                   "--management=" + (id.management.empty() ? management_address() : id.management),
                                   "--enroll_token_file=" + TokenFile(id.enroll_token),
                                   "--tls_ca=" + tls_dir() + "/ca.crt",
                                   "--user=" + id.user, "--namespace_id=" + id.namespace_id,
                                   "--device_name=" + name,
                                   "--rescan_interval=" + absl::FormatDuration(options_.rescan_interval),
                                   "--metrics_listen=127.0.0.1:0", "--metrics_port_file=" + metrics_port_file};
  argv.insert(argv.end(), options_.engine_args.begin(), options_.engine_args.end());
  if (auto own = options_.engine_args_of.find(name); own != options_.engine_args_of.end()) {
    argv.insert(argv.end(), own->second.begin(), own->second.end());
  }
  argv.insert(argv.begin(), options_.engine_wrapper.begin(), options_.engine_wrapper.end());
  return ChildProcess::Start(argv, EngineLogPath(name));
}

std::string Cluster::EngineLogPath(const std::string& name) const { return logs_ + "/engine-" + name + ".log"; }

std::string Cluster::EngineLog(int engine) const { return ReadFile(EngineLogPath(names_.at(engine))); }

absl::StatusOr<std::string> Cluster::EngineMetrics(int engine) {
  CONVERGE_ASSIGN_OR_RETURN(
      int port, WaitForPortFile(options_.dir + "/run/engine-" + names_[engine] + ".metrics", absl::Seconds(20)));
  return HttpGet(absl::StrCat("127.0.0.1:", port), "/metrics");
}

absl::StatusOr<std::string> Cluster::ServiceMetrics(const std::string& service) {
  CONVERGE_ASSIGN_OR_RETURN(int port,
                            WaitForPortFile(options_.dir + "/run/" + service + ".metrics", absl::Seconds(20)));
  return HttpGet(absl::StrCat("127.0.0.1:", port), "/metrics");
}

absl::StatusOr<int> Cluster::EngineExit(int engine, absl::Duration timeout) {
  return engines_[engine]->WaitExit(timeout);
}

CommandResult Cluster::Convergectl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {Runfile("tools/convergectl/convergectl"), "--management=" + management_address(),
                                   std::string("--token=") + kToken, "--tls_ca=" + tls_dir() + "/ca.crt"};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, options_.dir + "/run");
}

bool WaitFor(const std::function<bool()>& cond, absl::Duration limit) {
  const absl::Time deadline = absl::Now() + limit;
  while (absl::Now() < deadline) {
    if (cond()) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return cond();
}

std::string Cluster::DeviceIdOf(const std::string& device_name) {
  CommandResult r = Convergectl({"devices", "list"});
  for (absl::string_view line : absl::StrSplit(r.out, '\n')) {
    std::vector<std::string> cols = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (cols.size() > 2 && cols[2] == device_name) return cols[0];
  }
  return "";
}

CommandResult Cluster::EngineCommand(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {Runfile("engine/converge-engine")};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, options_.dir + "/run");
}

double Cluster::MetricValue(const std::string& scrape, const std::string& series) {
  const std::string prefix = series + " ";
  for (absl::string_view line : absl::StrSplit(scrape, '\n')) {
    if (absl::StartsWith(line, prefix)) {
      double v = -1;
      if (absl::SimpleAtod(line.substr(prefix.size()), &v)) return v;
    }
  }
  return -1;
}

absl::StatusOr<int> Cluster::AddEngine(const std::string& name) {
  return AddEngine(name, {options_.user, options_.namespace_id, enrollment_token_});
}

absl::StatusOr<int> Cluster::AddEngine(const std::string& name, const EngineIdentity& id) {
  CONVERGE_ASSIGN_OR_RETURN(std::unique_ptr<ChildProcess> engine, SpawnEngine(name, id));
  identities_.push_back(id);
  engines_.push_back(std::move(engine));
  folders_.push_back(options_.dir + "/folders/" + name);
  names_.push_back(name);
  return static_cast<int>(folders_.size()) - 1;
}

void Cluster::PauseEngine(int engine) { kill(engines_[engine]->pid(), SIGSTOP); }
void Cluster::ResumeEngine(int engine) { kill(engines_[engine]->pid(), SIGCONT); }
void Cluster::StopEngine(int engine, bool kill) { engines_[engine]->Stop(kill ? SIGKILL : SIGTERM); }

absl::Status Cluster::StartEngine(int engine) {
  CONVERGE_ASSIGN_OR_RETURN(engines_[engine], SpawnEngine(names_[engine], identities_[engine]));
  return absl::OkStatus();
}

absl::StatusOr<Snapshot> Cluster::SnapshotFolder(const std::string& folder) {
  Snapshot snap;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(folder, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    const std::string rel = it->path().string().substr(folder.size() + 1);
    if (rel == ".converge") {
      it.disable_recursion_pending();
      continue;
    }
    if (it->is_symlink()) {  // synced as a link: compared by target, never followed
      snap[rel] = "link:" + std::filesystem::read_symlink(it->path(), ec).string();
    } else if (it->is_directory()) {
      snap[rel] = "dir";
    } else {
      absl::StatusOr<std::string> h = HashFile(it->path().string());
      if (!h.ok()) return h.status();  // changing under us: the caller retries
      snap[rel] = *h;
    }
  }
  if (ec) return absl::UnavailableError(absl::StrCat("walk ", folder, ": ", ec.message()));
  return snap;
}

absl::StatusOr<Snapshot> Cluster::SnapshotStore() {
  // Read as a member device of the namespace, with a token minted by the cluster's key.
  std::string device, store;
  {
    auto management = management::v1::ManagementService::NewStub(
        grpc::CreateChannel(management_address(), DeviceCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    ctx.AddMetadata("authorization", std::string("Bearer ") + kToken);
    management::v1::ListMembersRequest req;
    req.set_namespace_id(options_.namespace_id);
    management::v1::ListMembersResponse resp;
    CONVERGE_RETURN_IF_ERROR(FromGrpcStatus(management->ListMembers(&ctx, req, &resp), "ListMembers"));
    for (const auto& d : resp.devices()) {
      if (d.state() == management::v1::DEVICE_STATE_ACTIVE) device = d.device_id();
    }
    if (device.empty()) return absl::UnavailableError("no member device yet");
    // The shard the namespace is on (a move may have taken it off its owner's).
    grpc::ClientContext ep_ctx;
    ep_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    ep_ctx.AddMetadata("authorization", std::string("Bearer ") + kToken);
    management::v1::GetEndpointsRequest ep_req;
    ep_req.set_namespace_id(options_.namespace_id);
    management::v1::Endpoints endpoints;
    CONVERGE_RETURN_IF_ERROR(FromGrpcStatus(management->GetEndpoints(&ep_ctx, ep_req, &endpoints), "GetEndpoints"));
    store = endpoints.store_address();
  }
  CONVERGE_ASSIGN_OR_RETURN(std::string token, SignDeviceToken(device, options_.user, {options_.namespace_id}));
  auto stub = store::v1::StoreService::NewStub(
      grpc::CreateChannel(store.empty() || all_in_one() ? store_address() : store, DeviceCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  ctx.AddMetadata("authorization", "Bearer " + token);
  store::v1::ListFilesRequest req;
  req.set_namespace_id(options_.namespace_id);
  auto reader = stub->ListFiles(&ctx, req);
  store::v1::ListFilesResponse resp;
  Snapshot snap;
  while (reader->Read(&resp)) {
    for (const common::v1::FileVersion& f : resp.files()) {
      if (f.deleted()) continue;
      if (f.kind() == common::v1::FILE_KIND_DIRECTORY) {
        snap[f.path()] = "dir";
      } else if (f.kind() == common::v1::FILE_KIND_SYMLINK) {
        snap[f.path()] = "link:" + f.symlink_target();
      } else {
        CONVERGE_ASSIGN_OR_RETURN(Digest d, DigestFromBytes(f.content_sha256()));
        snap[f.path()] = DigestToHex(d);
      }
    }
  }
  CONVERGE_RETURN_IF_ERROR(FromGrpcStatus(reader->Finish(), "ListFiles"));
  return snap;
}

absl::Status Cluster::WaitConverged(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::string last_difference = "not checked";
  Snapshot previous;
  bool have_previous = false;
  while (absl::Now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    absl::StatusOr<Snapshot> store = SnapshotStore();
    if (!store.ok()) {
      last_difference = store.status().ToString();
      continue;
    }
    std::string difference;
    for (int i = 0; i < engine_count() && difference.empty(); ++i) {
      absl::StatusOr<Snapshot> local = SnapshotFolder(folders_[i]);
      if (!local.ok()) {
        difference = local.status().ToString();
        break;
      }
      std::string d = DescribeDifference(*local, *store);
      if (!d.empty()) difference = absl::StrCat("folder ", i, " vs store: ", d);
    }
    if (difference.empty()) {
      if (have_previous && previous == *store) return absl::OkStatus();
      previous = *store;
      have_previous = true;
    } else {
      have_previous = false;
      last_difference = difference;
    }
  }
  return absl::DeadlineExceededError(absl::StrCat("folders did not converge: ", last_difference));
}

}  // namespace converge::testing
