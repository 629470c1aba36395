#include "engine/daemon/daemon.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/base/files.h"
#include "common/base/clock.h"
#include "common/base/logging.h"
#include "common/base/metrics.h"
#include "common/base/random_id.h"
#include "common/base/status_macros.h"
#include "common/model/model.h"
#include "common/rpc/channel.h"
#include "common/rpc/grpc_status.h"
#include "common/rpc/metrics_http.h"
#include "common/rpc/server_runner.h"
#include "converge/engine/v1/status.pb.h"
#include "engine/client/device_names.h"
#include "engine/client/grpc_key_directory_client.h"
#include "engine/client/grpc_store_client.h"
#include "engine/client/notification_listener.h"
#include "engine/control/control_cli.h"
#include "engine/control/control_service.h"
#include "engine/control/status_file.h"
#include "engine/fs/watcher.h"
#include "common/crypto/chunk_cipher.h"
#include "engine/keys/encrypting_store_client.h"
#include "engine/keys/log_guard.h"
#include "engine/keys/namespace_keys.h"
#include "engine/sync/history.h"

namespace converge::engine {
namespace {

// RaiseFileLimit lifts the soft descriptor limit to the hard one (batched applying keeps up to
// 1,024 temp files open).
void RaiseFileLimit() {
  struct rlimit lim;
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = std::min<rlim_t>(lim.rlim_max, 65536);
    setrlimit(RLIMIT_NOFILE, &lim);
  }
}

std::string OrElse(const std::string& first, const std::string& second, const std::string& third) {
  if (!first.empty()) return first;
  return second.empty() ? third : second;
}

}  // namespace

constexpr absl::Duration kKeyWatchInterval = absl::Seconds(2);

// Running: the parts of a syncing engine. Built in dependency order; the destructor stops them
// in the reverse order (the watcher after the engine's last pull, which flushes it).
class Daemon::Running {
 public:
  Running(Daemon* daemon, std::string store_address, std::string notify_address)
      : daemon_(daemon),
        store_(daemon->Channel(store_address), daemon->options_.enrollment.namespace_id,
               daemon->enrollment_.device_id),
        encrypting_(&store_, std::nullopt),
        data_(daemon->enrollment_.encrypted ? static_cast<StoreClient*>(&encrypting_) : &store_),
        engine_(daemon->fs_.get(), daemon->index_.get(), data_, Clock::Real(), daemon->enrollment_.device_id,
                daemon->EngineOptionsNow()),
        history_(data_, [] { return RandomBytes(kFileIdBytes); }),
        names_(daemon->management_.get(), daemon->options_.enrollment.namespace_id),
        key_directory_(daemon->management_.get(), daemon->options_.enrollment.namespace_id,
                       daemon->enrollment_.device_id),
        control_(
            &history_, [this](const std::string& id) { return names_.NameOf(id); },
            [this]() -> absl::StatusOr<NamespaceKeys*> {
              if (!daemon_->enrollment_.encrypted) {
                return absl::FailedPreconditionError(absl::StrCat("namespace '", daemon_->options_.enrollment.namespace_id,
                                                                  "' is not end-to-end encrypted: it has no keys"));
              }
              if (keys_ == nullptr) return keys_status_;
              return keys_.get();
            }) {
    store_.set_sealed(daemon->enrollment_.encrypted);
    OpenKeys();
    StartListener(std::move(notify_address));
    engine::v1::EngineStatusFile identity;
    identity.set_watcher(StartWatcher());
    identity.set_folder(daemon->options_.folder);
    identity.set_device_id(daemon->enrollment_.device_id);
    identity.set_namespace_id(daemon->options_.enrollment.namespace_id);
    status_writer_ = std::make_unique<StatusWriter>(&engine_, identity, absl::Milliseconds(250));
    StartControlServer();
    runner_ = std::thread([this] { engine_.Run(); });
    if (!daemon->tokens_->Get().empty()) refresher_ = std::thread([this] { daemon_->KeepTokenFresh(&stop_refresh_); });
    if (keys_ != nullptr) key_watcher_ = std::thread([this] { WatchKeys(); });
  }

  ~Running() {
    stop_refresh_.Notify();
    if (refresher_.joinable()) refresher_.join();
    if (key_watcher_.joinable()) key_watcher_.join();
    control_server_.reset();
    if (listener_ != nullptr) listener_->Stop();
    engine_.Stop();
    runner_.join();
    watcher_.reset();
    status_writer_.reset();
  }

  SyncEngine* engine() { return &engine_; }

 private:
  void StartListener(std::string notify_address) {
    NotificationListener::Callbacks callbacks;
    callbacks.on_head = [this](uint64_t seq) { engine_.NotifyRemoteHead(seq); };
    callbacks.on_connected = [this] { engine_.RequestPull(); };
    if (guard_ != nullptr) {
      // Other devices' verified heads: a fork stops the guard; the next pull shows it.
      callbacks.on_announced = [this](const NotificationListener::Announced& a) {
        LogGuard::SignedHead head;
        head.device_id = a.device_id;
        head.head.seq = a.seq;
        if (a.hash.size() != head.head.hash.size()) return;
        std::memcpy(head.head.hash.data(), a.hash.data(), a.hash.size());
        head.signature = a.signature;
        if (!guard_->Announced(head).ok()) engine_.RequestPull();
      };
    }
    Daemon* daemon = daemon_;
    listener_ = std::make_unique<NotificationListener>(
        [daemon, notify_address] { return daemon->Channel(notify_address); }, daemon->enrollment_.device_id,
        daemon->options_.enrollment.namespace_id, daemon->options_.heartbeat, std::move(callbacks));
    listener_->Start();
  }

  // OpenKeys reads this device's keys for the namespace (making its key pair on first use). In an
  // end-to-end encrypted namespace nothing syncs until the keyring is here (`keys` commands).
  void OpenKeys() {
    if (!daemon_->enrollment_.encrypted) return;
    auto log = GetLogger("engine");
    absl::StatusOr<std::unique_ptr<NamespaceKeys>> keys =
        NamespaceKeys::Open(daemon_->fs_->state_dir() + "/keys", daemon_->options_.enrollment.namespace_id,
                            daemon_->enrollment_.device_id, &key_directory_);
    if (!keys.ok()) {
      keys_status_ = keys.status();
      log->warn("this device's keys: {}", keys.status().ToString());
      return;
    }
    keys_ = std::move(*keys);
    absl::StatusOr<std::unique_ptr<LogGuard>> guard =
        LogGuard::Open(daemon_->fs_->state_dir() + "/keys/log_head", daemon_->options_.enrollment.namespace_id,
                       daemon_->enrollment_.device_id, keys_->device(), &key_directory_);
    if (!guard.ok()) {
      keys_status_ = guard.status();
      keys_.reset();
      log->warn("this device's log head: {}", guard.status().ToString());
      return;
    }
    guard_ = std::move(*guard);
    encrypting_.set_refresh([this] {
      absl::StatusOr<bool> took = keys_->Refresh();
      return took.ok() && *took;
    });
    guard_->set_announce([this](const LogGuard::SignedHead& h) {
      if (listener_ == nullptr) return;
      listener_->Announce(NotificationListener::Announced{
          h.device_id, h.head.seq, std::string(reinterpret_cast<const char*>(h.head.hash.data()), h.head.hash.size()),
          h.signature});
    });
    encrypting_.SetLogGuard(guard_.get());
    if (std::optional<crypto::Keyring> ring = keys_->keyring()) UseKeyring(*std::move(ring));
    keys_->set_on_keyring([this](const crypto::Keyring& ring) {
      UseKeyring(ring);
      engine_.RequestPull();
      engine_.NotifyLocalChange();
    });
    log->info("the namespace is end-to-end encrypted; {}",
              keys_->keyring().has_value() ? "this device holds its keyring"
                                           : "waiting for its keyring (converge-engine keys request, then accept)");
  }

  // UseKeyring: the engine syncs with `ring` from its next round: sealed through encrypting_,
  // chunked with the epoch's own gear table.
  void UseKeyring(crypto::Keyring ring) {
    engine_.SetChunkGear(MakeGearTable(crypto::GearTable(ring.Current())));
    encrypting_.SetKeyring(std::move(ring));
  }

  // StartWatcher starts the folder's watcher and says what watches it (for the status).
  std::string StartWatcher() {
    const std::string none = absl::StrCat("nothing: changes are found by the scan every ",
                                          absl::FormatDuration(daemon_->options_.engine.rescan_interval));
    if (!daemon_->options_.watch) return none;
    auto on_events = [this](std::vector<PathEvent> events, bool overflow) {
      if (overflow) engine_.NotifyLocalChange();
      std::vector<std::pair<std::string, bool>> paths;
      paths.reserve(events.size());
      for (auto& e : events) paths.emplace_back(std::move(e.path), e.writing);
      if (!paths.empty()) engine_.NotifyLocalPaths(paths);
    };
    auto log = GetLogger("engine");
    absl::StatusOr<std::unique_ptr<Watcher>> started =
        Watcher::Start(daemon_->options_.folder, on_events, daemon_->options_.watcher);
    if (!started.ok()) {
      log->warn("no watcher ({}): relying on the scan every {}", started.status().message(),
                absl::FormatDuration(daemon_->options_.engine.rescan_interval));
      return absl::StrCat(none, " (", started.status().message(), ")");
    }
    watcher_ = std::move(*started);
    engine_.set_local_event_flush([w = watcher_.get()] { w->Flush(); });
    const std::string watching = watcher_->Describe();
    log->info("watching with {}", watching);
    return watching;
  }

  // The local control API (history, restore, conflicts) on a socket only this user can reach.
  void StartControlServer() { control_server_ = daemon_->ServeControl(&control_); }

  // WatchKeys: every few seconds, a newer epoch granted to this device is taken, and a device
  // that held the keyring and left makes this one rotate it (NamespaceKeys::Watch), until stopped.
  void WatchKeys() {
    auto log = GetLogger("engine");
    absl::Status last;
    while (!stop_refresh_.WaitForNotificationWithTimeout(kKeyWatchInterval)) {
      absl::Status s = keys_->Watch();
      if (!s.ok() && s.ToString() != last.ToString()) log->warn("watching the namespace's keys: {}", s.ToString());
      last = s;
    }
  }

  Daemon* const daemon_;
  GrpcStoreClient store_;
  EncryptingStoreClient encrypting_;  // what the engine syncs through in an encrypted namespace
  StoreClient* const data_;           // store_ or encrypting_
  SyncEngine engine_;
  FolderHistory history_;
  DeviceNames names_;
  GrpcKeyDirectoryClient key_directory_;
  std::unique_ptr<NamespaceKeys> keys_;
  std::unique_ptr<LogGuard> guard_;  // checks the encrypted namespace's log (encrypting_ uses it)
  absl::Status keys_status_ = absl::UnavailableError("keys not open yet");
  ControlService control_;
  std::unique_ptr<NotificationListener> listener_;
  std::unique_ptr<Watcher> watcher_;
  std::unique_ptr<StatusWriter> status_writer_;
  std::unique_ptr<RunningServer> control_server_;
  std::thread runner_;
  absl::Notification stop_refresh_;
  std::thread refresher_;
  std::thread key_watcher_;
};

Daemon::Daemon(DaemonOptions options) : options_(std::move(options)) {
  options_.engine.on_denied = [this](const absl::Status& why) { return OnDenied(why); };
  options_.engine.on_converted = [this] { converted_ = true; };
  options_.engine.on_moved = [this] { moved_ = true; };
}

Daemon::~Daemon() {
  index_.reset();
  if (state_fd_ >= 0) close(state_fd_);
}

void Daemon::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
}

std::unique_ptr<RunningServer> Daemon::ServeControl(ControlService* control) {
  auto log = GetLogger("engine");
  absl::StatusOr<std::string> socket = PrepareControlSocket(options_.folder);
  if (!socket.ok()) {
    log->warn("no control socket: {}", socket.status().message());
    return nullptr;
  }
  ServerOptions options;
  options.listen = "unix:" + *socket;
  options.max_threads = 4;
  absl::StatusOr<std::unique_ptr<RunningServer>> started = StartServer(options, {control});
  if (!started.ok()) {
    log->warn("no control socket ({}): history, restore and conflicts commands will not reach this engine",
              started.status().message());
    return nullptr;
  }
  std::error_code ec;
  std::filesystem::permissions(*socket, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write, ec);
  return *std::move(started);
}

void Daemon::KeepTokenFresh(absl::Notification* stop) {
  auto log = GetLogger("engine");
  absl::Time expires = absl::Now() + absl::Minutes(1);
  for (;;) {
    const absl::Duration left = expires - absl::Now();
    if (stop->WaitForNotificationWithTimeout(std::max(left * 2 / 3, absl::Seconds(1)))) return;
    absl::StatusOr<absl::Time> renewed =
        RefreshDeviceToken(management_.get(), enrollment_.device_id, enrollment_.credential, tokens_.get());
    if (renewed.ok()) {
      expires = *renewed;
    } else {
      log->warn("cannot renew the device token: {}", renewed.status().ToString());
      expires = absl::Now() + absl::Seconds(3);  // retry soon
    }
  }
}

std::shared_ptr<grpc::Channel> Daemon::Channel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(16 << 20);
  args.SetMaxSendMessageSize(16 << 20);
  // Reconnect soon after a service comes back: gRPC's default backoff grows to two minutes, far
  // beyond the engine's own retry cadence (at most 5 s).
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a new channel means a new connection
  return MakeChannel(address, options_.credentials, args, tokens_);
}

absl::Status Daemon::Open() {
  if (options_.on_demand) CONVERGE_RETURN_IF_ERROR(OpenOnDemandState());
  absl::StatusOr<std::unique_ptr<LocalFilesystem>> fs = LocalFilesystem::Open(options_.folder);
  if (!fs.ok()) return fs.status();
  fs_ = std::move(*fs);
  if (state_path_.empty()) state_path_ = fs_->state_dir();
  absl::StatusOr<std::unique_ptr<LocalIndex>> index = LocalIndex::Open(state_path_ + "/index.rocksdb");
  if (!index.ok()) return index.status();
  index_ = std::move(*index);
  management_ = management::v1::ManagementService::NewStub(Channel(options_.management_address));
  return absl::OkStatus();
}

absl::Status Daemon::Enroll() {
  auto log = GetLogger("engine");
  for (absl::Duration wait = absl::Milliseconds(200);; wait = std::min(wait * 2, absl::Seconds(5))) {
    absl::StatusOr<Enrollment> enrolled =
        engine::Enroll(management_.get(), index_.get(), options_.enrollment, tokens_.get());
    if (enrolled.ok()) {
      enrollment_ = std::move(*enrolled);
      return absl::OkStatus();
    }
    if (!absl::IsUnavailable(enrolled.status())) return enrolled.status();
    log->warn("management not reachable ({}); retrying in {}", enrolled.status().message(),
              absl::FormatDuration(wait));
    if (stop_.WaitForNotificationWithTimeout(wait)) return absl::CancelledError("stopped while enrolling");
  }
}

EngineOptions Daemon::EngineOptionsNow() const {
  EngineOptions o = options_.engine;
  o.device_name = enrollment_.device_name;
  o.sync_xattrs = enrollment_.sync_xattrs;
  if (enrollment_.encrypted) o.syncable = FitsEncryptedStore;
  return o;
}

int Daemon::AfterRefusedEnrollment(const absl::Status& refused) {
  if (!absl::IsFailedPrecondition(refused) && !absl::IsPermissionDenied(refused)) return kExitError;
  absl::StatusOr<std::optional<std::string>> device_id = index_->GetSetting("device_id");
  absl::StatusOr<std::optional<std::string>> credential = index_->GetSetting("credential");
  if (!device_id.ok() || !device_id->has_value() || !credential.ok() || !credential->has_value()) return kExitError;
  absl::StatusOr<DeviceFate> fate = AskFate(management_.get(), **device_id, **credential);
  if (!fate.ok() || *fate == DeviceFate::kActive) return kExitError;
  enrollment_.device_id = **device_id;
  return Revoked(*fate);
}

bool Daemon::OnDenied(const absl::Status& why) {
  absl::StatusOr<DeviceFate> fate = AskFate(management_.get(), enrollment_.device_id, enrollment_.credential);
  if (!fate.ok() || *fate == DeviceFate::kActive) return false;
  GetLogger("engine")->warn("the store refused this device ({}) and management says it is revoked",
                            why.message());
  fate_ = static_cast<int>(*fate);
  Stop();
  return true;
}

int Daemon::SyncOnce(SyncEngine* engine) {
  absl::Status s = engine->SyncOnce();
  auto log = GetLogger("engine");
  if (!s.ok()) log->error("sync: {}", s.ToString());
  const ScanStats& scan = engine->scan_stats();
  log->info("sync once: scanned {} entries in {}, {} files hashed, {} changes committed, cursor {}",
            scan.last_entries, absl::FormatDuration(scan.last_duration), scan.last_files_hashed,
            engine->upload_stats().files_committed, index_->cursor());
  return s.ok() ? kExitOk : kExitError;
}

std::string Daemon::StoreAddress() const {
  return OrElse(options_.store_address, enrollment_.store_address, options_.management_address);
}

absl::StatusOr<std::string> Daemon::StoreOfNamespace() {
  if (!options_.store_address.empty()) return options_.store_address;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  management::v1::GetEndpointsRequest req;
  req.set_namespace_id(options_.enrollment.namespace_id);
  management::v1::Endpoints endpoints;
  CONVERGE_RETURN_IF_ERROR(FromGrpcStatus(management_->GetEndpoints(&ctx, req, &endpoints), "management.GetEndpoints"));
  if (endpoints.store_address().empty()) return absl::UnavailableError("management named no store");
  return endpoints.store_address();
}

std::string Daemon::NotifyAddress() const {
  return OrElse(options_.notify_address, enrollment_.notification_address, options_.management_address);
}

int Daemon::Run() {
  auto log = GetLogger("engine");
  RaiseFileLimit();
  if (absl::Status opened = Open(); !opened.ok()) {
    log->error("{}", opened.ToString());
    return kExitError;
  }
  if (options_.on_demand) return RunOnDemand();  // mounted before enrolling: offline too
  if (absl::Status enrolled = Enroll(); !enrolled.ok()) {
    if (absl::IsCancelled(enrolled)) return kExitOk;
    log->error("enrollment failed: {}", enrolled.ToString());
    return AfterRefusedEnrollment(enrolled);
  }
  const std::string store = StoreAddress();
  const std::string notify = NotifyAddress();
  log->info("device {} syncing {} as namespace '{}' from cursor {} (store {}, notify {})", enrollment_.device_id,
            options_.folder, options_.enrollment.namespace_id, index_->cursor(), store, notify);
  if (options_.once) {
    GrpcStoreClient client(Channel(store), options_.enrollment.namespace_id, enrollment_.device_id);
    SyncEngine engine(fs_.get(), index_.get(), &client, Clock::Real(), enrollment_.device_id, EngineOptionsNow());
    return SyncOnce(&engine);
  }
  std::unique_ptr<MetricsHttpServer> metrics;
  if (!options_.metrics_listen.empty()) {
    absl::StatusOr<std::unique_ptr<MetricsHttpServer>> started =
        MetricsHttpServer::Start(options_.metrics_listen, &DefaultMetrics());
    if (!started.ok()) {
      log->error("cannot serve metrics: {}", started.status().ToString());
      return kExitError;
    }
    metrics = std::move(*started);
    if (!options_.metrics_port_file.empty()) {
      absl::Status written = WriteFileAtomically(options_.metrics_port_file, absl::StrCat(metrics->port(), "\n"));
      if (!written.ok()) log->warn("{}", written.ToString());
    }
    log->info("metrics on port {}", metrics->port());
  }
  if (absl::Status ran = RunUntilStopped(store, notify); !ran.ok()) {
    log->error("{}", ran.ToString());
    return kExitError;
  }
  const auto fate = static_cast<DeviceFate>(fate_.load());
  return fate == DeviceFate::kActive ? kExitOk : Revoked(fate);
}

absl::Status Daemon::MatchIndexToSealing() {
  constexpr char kSyncedAs[] = "synced_as";
  const std::string now = enrollment_.encrypted ? "sealed" : "plain";
  CONVERGE_ASSIGN_OR_RETURN(std::optional<std::string> before, index_->GetSetting(kSyncedAs));
  if (enrollment_.encrypted && before.value_or("") != "sealed" && index_->cursor() > 0) {
    GetLogger("engine")->warn(
        "namespace '{}' is end-to-end encrypted now: this folder forgets how it synced plain (cursor {}); its files "
        "stay and are matched against what is synced sealed once this device holds the keyring",
        options_.enrollment.namespace_id, index_->cursor());
    CONVERGE_RETURN_IF_ERROR(index_->ForgetSyncState());
  }
  return index_->SetSetting(kSyncedAs, now);
}

absl::Status Daemon::RunUntilStopped(std::string store, std::string notify) {
  auto log = GetLogger("engine");
  for (;;) {
    CONVERGE_RETURN_IF_ERROR(MatchIndexToSealing());
    {
      Running running(this, store, notify);
      while (!stop_.WaitForNotificationWithTimeout(absl::Milliseconds(50)) && !converted_ && !moved_) {
      }
      log->info(converted_ ? "the namespace was converted to end-to-end encryption: restarting the engine"
                : moved_   ? "the namespace moved to another store shard: asking management where, and restarting"
                           : "stopping");
    }
    if (stop_.HasBeenNotified()) return absl::OkStatus();
    const bool moved = moved_.exchange(false);
    converted_ = false;
    absl::Status enrolled = Enroll();
    if (absl::IsCancelled(enrolled)) return absl::OkStatus();
    CONVERGE_RETURN_IF_ERROR(enrolled);
    if (moved) {
      store = StoreAddress();
      notify = NotifyAddress();
      log->info("namespace '{}' is served by store {} now", options_.enrollment.namespace_id, store);
      continue;
    }
    if (!enrollment_.encrypted) {
      log->warn("the store says the namespace is encrypted, management does not yet: trying again shortly");
      if (stop_.WaitForNotificationWithTimeout(absl::Seconds(2))) return absl::OkStatus();
    }
  }
}

int Daemon::Revoked(DeviceFate fate) {
  auto log = GetLogger("engine");
  const std::string& device_id = enrollment_.device_id;
  if (fate != DeviceFate::kWipe) {
    log->error("device {} was revoked by an operator: not syncing (files left as they are)", device_id);
    return kExitRevoked;
  }
  log->warn("device {} was revoked with a remote wipe: deleting the synced files", device_id);
  absl::StatusOr<WipeResult> wiped = WipeSyncedFiles(fs_.get(), index_.get());
  if (!wiped.ok()) {
    log->error("wipe failed: {}", wiped.status().ToString());
    return kExitError;
  }
  absl::StatusOr<std::optional<std::string>> credential = index_->GetSetting("credential");
  index_.reset();
  absl::Status confirmed = credential.ok() && credential->has_value()
                               ? ConfirmWipe(management_.get(), device_id, **credential)
                               : absl::InternalError("no credential");
  if (!confirmed.ok()) log->error("could not confirm the wipe to management: {}", confirmed.ToString());
  std::error_code ec;
  std::filesystem::remove_all(fs_->state_dir(), ec);
  log->warn("wiped: {} files and {} directories deleted, {} directories kept (they hold files never synced)",
            wiped->files_removed, wiped->dirs_removed, wiped->left);
  return kExitRevoked;
}

}  // namespace converge::engine
