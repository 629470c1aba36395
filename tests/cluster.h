// Cluster: a whole Converge deployment of real processes on loopback for end-to-end tests and
// benchmarks: converge-notify, converge-store, converge-management, a user and a namespace, and
// any number of converge-engine processes, each syncing its own folder.
#ifndef CONVERGE_TESTS_CLUSTER_H_
#define CONVERGE_TESTS_CLUSTER_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include <grpcpp/grpcpp.h>

#include "common/security/device_token.h"
#include "tests/process.h"

namespace converge::testing {

struct ClusterOptions {
  std::string dir;  // everything lives below: data/, logs/, folders/
  std::string user = "e2e";
  std::string namespace_id = "shared";
  absl::Duration rescan_interval = absl::Milliseconds(200);
  // Run the all-in-one converge-server instead of the three separate services.
  bool all_in_one = false;
  // Extra flags for converge-notify and for every engine.
  std::vector<std::string> notify_args;
  std::vector<std::string> engine_args;
  // Extra flags for the engine of one folder, by its name.
  std::map<std::string, std::vector<std::string>> engine_args_of;
  // Store shards (separate services only): management spreads users over them.
  int store_shards = 1;
  // How many of them management's --store names (0: all); the others wait to be added.
  int listed_store_shards = 0;
  // Extra flags for every converge-store.
  std::vector<std::string> store_args;
  // Management replicas (separate services only); several keep the registry on the store, unless
  // `management_args` says --registry_in_etcd.
  int management_replicas = 1;
  // Extra flags for every converge-management.
  std::vector<std::string> management_args;
  // Commands the store and the engines run under (e.g. fiu-run for fault injection).
  std::vector<std::string> store_wrapper;
  std::vector<std::string> engine_wrapper;
};

// Who an engine syncs as: user, namespace and the enrollment token it registers with.
struct EngineIdentity {
  std::string user;
  std::string namespace_id;
  std::string enroll_token;
  std::string management;  // the management replica it enrolls through (empty: the first)
};

// A device registered by the operator, a member of one namespace, with a device token: for
// tests that act as a device themselves (no engine).
struct TestDevice {
  std::string device_id;
  std::string credential;
  std::string token;
};

// WaitFor polls `cond` every 20 ms until it holds (true) or `limit` passes (its last answer).
bool WaitFor(const std::function<bool()>& cond, absl::Duration limit);

// WriteFile writes `data` to `path`, creating its directories; ReadFile returns a file's bytes
// ("" if it cannot be read).
void WriteFile(const std::string& path, const std::string& data);
std::string ReadFile(const std::string& path);

// A folder's content: relative path -> "dir" or the file's SHA-256 in hex.
using Snapshot = std::map<std::string, std::string>;

class Cluster {
 public:
  static absl::StatusOr<std::unique_ptr<Cluster>> Start(const ClusterOptions& options);
  ~Cluster();

  // AddEngine creates folder `name` (if needed) and starts an engine on it; returns its index.
  absl::StatusOr<int> AddEngine(const std::string& name);
  // AddEngine for another user or namespace (made with Convergectl).
  absl::StatusOr<int> AddEngine(const std::string& name, const EngineIdentity& id);
  // PauseEngine / ResumeEngine freeze and thaw an engine (SIGSTOP / SIGCONT).
  void PauseEngine(int engine);
  void ResumeEngine(int engine);
  // StopEngine stops an engine (SIGTERM, or SIGKILL when `kill`); StartEngine starts it again
  // on the same folder.
  void StopEngine(int engine, bool kill = false);
  absl::Status StartEngine(int engine);
  // Notification service control (separate services only): stop (SIGKILL), start again on the
  // same port, freeze and thaw (SIGSTOP / SIGCONT).
  void KillNotify();
  // Store control (separate services only): stop (SIGTERM) and start again on the same port and
  // data directory.
  void StopStore(int shard = 0);
  // KillStore: kill -9.
  void KillStore(int shard = 0);
  int store_pid(int shard = 0) const;
  int notify_pid() const;
  // StoreExit waits up to `timeout` for the store to exit by itself and returns its exit code.
  absl::StatusOr<int> StoreExit(int shard, absl::Duration timeout);
  int engine_pid(int engine) const;
  absl::Status StartStore(int shard = 0);
  std::string StoreDataDir(int shard = 0) const;
  absl::Status RestartNotify();
  // AddNotifyReplica starts one more converge-notify named `name` (the first one's flags, a port
  // of its own, returned); ServiceMetrics(name) scrapes it. KillNotifyReplica kills it (SIGKILL).
  absl::StatusOr<int> AddNotifyReplica(const std::string& name);
  void KillNotifyReplica(const std::string& name);
  void PauseNotify();
  void ResumeNotify();
  // EngineMetrics scrapes an engine's Prometheus endpoint; ServiceMetrics a service's
  // ("notify", "store", "management"; separate services only).
  absl::StatusOr<std::string> EngineMetrics(int engine);
  absl::StatusOr<std::string> ServiceMetrics(const std::string& service);
  // EngineExit waits for an engine to exit by itself and returns its exit code.
  absl::StatusOr<int> EngineExit(int engine, absl::Duration timeout);
  // Convergectl runs convergectl against this cluster (management address and token set).
  CommandResult Convergectl(const std::vector<std::string>& args);
  // DeviceIdOf: the id of the device registered as `device_name` (from convergectl's device
  // list), or "" if there is none.
  std::string DeviceIdOf(const std::string& device_name);
  // EngineCommand runs converge-engine with args (status, pause, resume ...).
  CommandResult EngineCommand(const std::vector<std::string>& args);
  const std::string& name(int engine) const { return names_[engine]; }
  // MetricValue returns the value of one series (`name{labels}` as printed) in a scrape, or -1.
  static double MetricValue(const std::string& scrape, const std::string& series);
  const std::string& folder(int engine) const { return folders_[engine]; }
  int engine_count() const { return static_cast<int>(folders_.size()); }
  std::string management_address() const { return "127.0.0.1:" + std::to_string(management_port_); }
  std::string management_address(int replica) const {
    return "127.0.0.1:" + std::to_string(management_ports_.at(replica));
  }
  void KillManagement(int replica);
  // StartManagement starts a killed replica again on its port and data directory (with
  // `extra_args` after its own flags, e.g. to turn a new feature on).
  absl::Status StartManagement(int replica, const std::vector<std::string>& extra_args = {});
  std::string notify_address() const { return "127.0.0.1:" + std::to_string(all_in_one() ? management_port_ : notify_port_); }
  bool all_in_one() const { return options_.all_in_one; }
  // TLS material (tools/certs/make-certs): ca.crt, service.crt/.key, token keys.
  std::string tls_dir() const { return options_.dir + "/tls"; }
  // Channel credentials a device uses (TLS against the cluster's CA).
  std::shared_ptr<grpc::ChannelCredentials> DeviceCredentials() const;
  // Channel credentials a service uses (its certificate presented: mutual TLS).
  std::shared_ptr<grpc::ChannelCredentials> ServiceCredentials() const;
  // SignDeviceToken mints a device token with the cluster's signing key (what management would
  // issue), for tests that act as a device.
  absl::StatusOr<std::string> SignDeviceToken(const std::string& device_id, const std::string& user_id,
                                              const std::vector<std::string>& namespaces,
                                              absl::Duration ttl = absl::Minutes(10));
  // EnrollmentToken: the token engines of the cluster's user register with (it enrolls up to
  // 1,000 devices).
  const std::string& enrollment_token() const { return enrollment_token_; }
  // MakeDevice registers a device of `user` (creating the user and namespace `ns` it owns when
  // `create`), adds it to `ns` and issues it a device token.
  // `name` names the device; `replica` is the management replica asked.
  absl::StatusOr<TestDevice> MakeDevice(const std::string& user, const std::string& ns, bool create,
                                        const std::string& name = "test-device", int replica = 0);
  // TokenFile writes `token` into a file of its own (mode 0600) and returns its path: what an
  // engine's --enroll_token_file reads (a token is never on a command line).
  std::string TokenFile(const std::string& token) const;
  // OperatorToken: the operator credential.
  static std::string OperatorToken();
  std::string store_address() const { return "127.0.0.1:" + std::to_string(store_port_); }
  // The address of store shard `shard` (separate services only).
  std::string store_address(int shard) const { return "127.0.0.1:" + std::to_string(store_ports_.at(shard)); }
  const std::string& logs_dir() const { return logs_; }
  // EngineLog returns what engine `engine` has logged so far.
  std::string EngineLog(int engine) const;

  // SnapshotFolder reads a folder (without the engine's state dir).
  static absl::StatusOr<Snapshot> SnapshotFolder(const std::string& folder);
  // SnapshotStore reads the namespace's live file table from the store.
  absl::StatusOr<Snapshot> SnapshotStore();

  // WaitConverged waits until every folder and the store hold the same content, twice in a row.
  // On timeout, returns DeadlineExceeded describing the first difference.
  absl::Status WaitConverged(absl::Duration timeout);

 private:
  std::string EngineLogPath(const std::string& name) const;
  explicit Cluster(ClusterOptions options) : options_(std::move(options)) {}
  absl::StatusOr<std::unique_ptr<ChildProcess>> SpawnEngine(const std::string& name, const EngineIdentity& id);

  ClusterOptions options_;
  std::string logs_;
  int store_port_ = 0;
  std::vector<int> store_ports_;
  std::vector<std::unique_ptr<ChildProcess>> stores_;
  std::vector<EngineIdentity> identities_;
  std::vector<int> management_ports_;
  std::vector<std::unique_ptr<ChildProcess>> extra_managements_;
  std::vector<std::vector<std::string>> management_argv_;  // per replica, without --listen
  int management_port_ = 0;
  int notify_port_ = 0;
  std::unique_ptr<ChildProcess> notify_, management_, server_;
  std::map<std::string, std::unique_ptr<ChildProcess>> notify_replicas_;
  std::vector<std::string> NotifyArgv(const std::string& name, int port) const;
  std::vector<std::unique_ptr<ChildProcess>> engines_;
  std::vector<std::string> folders_;
  std::vector<std::string> names_;
  std::string enrollment_token_;
  std::unique_ptr<TokenSigner> signer_;
};

// DescribeDifference names the first path where two snapshots differ ("" if equal).
std::string DescribeDifference(const Snapshot& a, const Snapshot& b);

}  // namespace converge::testing

#endif  // CONVERGE_TESTS_CLUSTER_H_
