// Daemon: one engine process. It opens the folder and its index, enrolls the device through
// management, then runs the sync engine with its watcher, notification listener, status file,
// control socket and metrics until Stop, or until management says the device was revoked (a
// remote wipe then deletes what it synced).
//
//   Daemon daemon(options);
//   std::thread([&] { WaitForTerminationSignal(); daemon.Stop(); }).detach();
//   return daemon.Run();
//
// Run is called once; Stop may be called from any thread, before or during Run.
#ifndef CONVERGE_ENGINE_DAEMON_DAEMON_H_
#define CONVERGE_ENGINE_DAEMON_DAEMON_H_

#include <atomic>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/rpc/server_runner.h"
#include "common/security/bearer_token.h"
#include "converge/management/v1/management.grpc.pb.h"
#include "engine/client/device_control.h"
#include "engine/client/enrollment.h"
#include "engine/control/control_service.h"
#include "engine/fs/local_filesystem.h"
#include "engine/fs/watcher.h"
#include "engine/sync/local_index.h"
#include "engine/sync/sync_engine.h"

namespace converge::engine {

struct DaemonOptions {
  std::string folder;
  std::string management_address;
  // Empty: as management says at enrollment, or else the management address (converge-server
  // serves every API on one port).
  std::string store_address;
  std::string notify_address;
  EnrollmentRequest enrollment;
  EngineOptions engine;
  absl::Duration heartbeat = absl::Seconds(2);  // asked of the notification stream
  bool watch = true;                             // a watcher; without it, the periodic scan only
  Watcher::Backend watcher = Watcher::Backend::kAuto;
  bool once = false;                             // sync once and return
  std::string metrics_listen;                    // host:port; empty: no /metrics
  std::string metrics_port_file;
  // On demand (--on_demand): the folder is a FUSE mount of the namespace, files fetched when
  // read and cached within `cache_budget_bytes` (engine/ondemand).
  bool on_demand = false;
  uint64_t cache_budget_bytes = uint64_t{1} << 30;
  // Every channel's credentials (TLS verified against the CA, or plaintext in tests).
  std::shared_ptr<grpc::ChannelCredentials> credentials;
};

// Exit codes of Run.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitRevoked = 3;

class Daemon {
 public:
  explicit Daemon(DaemonOptions options);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Run returns kExitOk once stopped (or, with `once`, in sync), kExitError on an error and
  // kExitRevoked when the device was revoked.
  int Run();
  void Stop();

 private:
  class Running;  // what runs while syncing, stopped in order by its destructor

  std::shared_ptr<grpc::Channel> Channel(const std::string& address);
  absl::Status Open();
  // Enroll retries while management is unavailable (it may still be starting).
  absl::Status Enroll();
  // MatchIndexToSealing: a folder synced plain whose namespace is now encrypted forgets its
  // plain sync state (its files stay, and are matched against what is synced sealed).
  absl::Status MatchIndexToSealing();
  // RunUntilStopped runs the engine's parts until Stop, starting them again (enrolled anew)
  // after a conversion to end-to-end encryption.
  absl::Status RunUntilStopped(std::string store, std::string notify);
  // EngineOptionsNow: the engine's options with what enrollment learned (the device's name).
  EngineOptions EngineOptionsNow() const;
  // AfterRefusedEnrollment: a device revoked while it was off is wiped if so asked.
  int AfterRefusedEnrollment(const absl::Status& refused);
  int SyncOnce(SyncEngine* engine);
  // ServeControl serves `control` (history, restore, conflicts, keys) on the folder's control
  // socket, only this user can reach; null (logged) if it cannot.
  std::unique_ptr<RunningServer> ServeControl(ControlService* control);
  // KeepTokenFresh renews the device token at a third of its life left, until `stop`.
  void KeepTokenFresh(absl::Notification* stop);
  // OpenOnDemandState readies an on-demand folder: a mount a killed engine left is detached, the
  // folder must hold nothing but the state directory, which is then reached through a
  // descriptor (state_path_), since the mount hides its path.
  absl::Status OpenOnDemandState();
  // RunOnDemand mounts the folder on demand (the listing saved last time, readable offline),
  // enrolls, then follows the namespace until Stop; returns the exit code.
  int RunOnDemand();
  // Where the store and the notification service are: the flags, or as enrollment said.
  std::string StoreAddress() const;
  // StoreOfNamespace asks management where the namespace's store is now (after a move); --store
  // when given.
  absl::StatusOr<std::string> StoreOfNamespace();
  std::string NotifyAddress() const;
  // OnDenied: the store refused this device; true (and Stop) if management says it is revoked.
  bool OnDenied(const absl::Status& why);
  // Revoked ends a revoked device: for a remote wipe, deletes the synced files, tells
  // management, and deletes the engine's own state.
  int Revoked(DeviceFate fate);

  DaemonOptions options_;  // engine.on_denied is the daemon's
  const std::shared_ptr<TokenSource> tokens_ = std::make_shared<TokenSource>();
  std::unique_ptr<LocalFilesystem> fs_;
  // The state directory as the engine reaches it: fs_->state_dir(), or for an on-demand folder
  // /proc/self/fd/<state_fd_>.
  std::string state_path_;
  int state_fd_ = -1;
  std::unique_ptr<LocalIndex> index_;
  std::unique_ptr<management::v1::ManagementService::Stub> management_;
  Enrollment enrollment_;
  std::atomic<int> fate_{static_cast<int>(DeviceFate::kActive)};
  absl::Notification stop_;
  // The namespace was converted to end-to-end encryption while this engine synced it plain: the
  // running parts stop and start again as an encrypted namespace's.
  std::atomic<bool> converted_{false};
  std::atomic<bool> moved_{false};  // to another store shard: enroll again for the endpoints
};

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_DAEMON_DAEMON_H_
