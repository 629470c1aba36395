// converge-engine: keeps one local folder in sync with one namespace.
//
//   converge-engine --folder=~/Sync --management=127.0.0.1:7000 --user=alice --namespace_id=docs
//   converge-engine status --folder=~/Sync [--watch] [--json]
//   converge-engine pause --folder=~/Sync      (resume: converge-engine resume --folder=~/Sync)
//   converge-engine history PATH --folder=~/Sync
//   converge-engine restore [PATH] --folder=~/Sync (--seq=N | --at=TIME)
//   converge-engine conflicts --folder=~/Sync [--all]; converge-engine resolve COPY --folder=~/Sync
//
// Exit codes: 0 stopped on request (or --once in sync), 1 error, 2 usage, 3 the device was
// revoked (after a remote wipe, its synced files were deleted).
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/synchronization/notification.h"
#include "common/channel.h"
#include "common/logging.h"
#include "common/tls.h"
#include "common/metrics_http.h"
#include "common/server_runner.h"
#include "common/random_id.h"
#include "engine/control_cli.h"
#include "engine/control_service.h"
#include "engine/device_control.h"
#include "engine/history.h"
#include "engine/enrollment.h"
#include "engine/local_filesystem.h"
#include "engine/local_index.h"
#include "engine/notification_listener.h"
#include "engine/status_file.h"
#include "engine/store_client.h"
#include "engine/sync_engine.h"
#include "engine/watcher.h"

ABSL_FLAG(std::string, folder, "", "the folder to sync (must exist)");
ABSL_FLAG(std::string, management, "", "address of converge-management");
ABSL_FLAG(std::string, token, "", "the operator's bearer token, to register the device (or $CONVERGE_TOKEN)");
ABSL_FLAG(std::string, enroll_token_file, "",
          "a file holding an enrollment token an operator issued for --user (or the token in "
          "$CONVERGE_ENROLL_TOKEN; never on the command line, where every local user sees it)");
ABSL_FLAG(std::string, user, "", "the user this device belongs to");
ABSL_FLAG(std::string, namespace_id, "", "the namespace (synced folder id) to join");
ABSL_FLAG(std::string, device_name, "", "a name for this device (default: host name)");
ABSL_FLAG(std::string, store, "", "store address (default: as management says)");
ABSL_FLAG(std::string, notify, "", "notification address (default: as management says)");
ABSL_FLAG(absl::Duration, rescan_interval, absl::Seconds(10),
          "how often the whole folder is scanned to verify (the watcher reports changes at once)");
ABSL_FLAG(bool, watch, true, "watch the folder with inotify");
ABSL_FLAG(absl::Duration, coalesce, absl::Milliseconds(3), "let a burst of local events settle this long");
ABSL_FLAG(absl::Duration, write_settle, absl::Seconds(1),
          "a file still open for writing is synced once it has been quiet this long");
ABSL_FLAG(absl::Duration, heartbeat, absl::Seconds(2),
          "heartbeat interval asked of the notification stream (3 missed: reconnect)");
ABSL_FLAG(std::string, metrics_listen, "",
          "serve Prometheus metrics over HTTP here (host:port, port 0: any free port; empty: off)");
ABSL_FLAG(std::string, metrics_port_file, "", "write the metrics port here once serving");
ABSL_FLAG(bool, once, false, "sync once and exit (status 0 if the folder is in sync)");
ABSL_FLAG(bool, watch_status, false, "status: refresh every half second until interrupted");
ABSL_FLAG(bool, json, false, "status: print the status file's JSON");
ABSL_FLAG(uint64_t, seq, 0, "restore: the version (seq, as `history` lists) to restore");
ABSL_FLAG(std::string, at, "", "restore: the time to go back to (2026-11-27T10:15:00Z, or ago: 90m, 2h, 3d)");
ABSL_FLAG(bool, all, false, "conflicts: resolved ones too");
ABSL_FLAG(uint32_t, limit, 0, "history: at most this many versions (0: all kept)");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warn or error");
ABSL_FLAG(bool, log_json, false, "log JSON lines");

namespace {

using converge::engine::Enrollment;

// Every channel: TLS verified against --tls_ca (plaintext without one), carrying the device token.
std::shared_ptr<grpc::ChannelCredentials> g_credentials;
std::shared_ptr<converge::TokenSource> g_tokens = std::make_shared<converge::TokenSource>();

std::shared_ptr<grpc::Channel> Channel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(16 << 20);
  args.SetMaxSendMessageSize(16 << 20);
  // Reconnect soon after a service comes back: gRPC's default backoff grows to two minutes, far
  // beyond the engine's own retry cadence (at most 5 s).
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a new channel means a new connection
  return converge::MakeChannel(address, g_credentials, args, g_tokens);
}

// KeepTokenFresh renews the device token at a third of its life left until `stop`.
void KeepTokenFresh(converge::management::v1::ManagementService::StubInterface* management,
                    const std::string& device_id, const std::string& credential, absl::Time expires,
                    absl::Notification* stop) {
  auto log = converge::GetLogger("engine");
  for (;;) {
    const absl::Duration left = expires - absl::Now();
    if (stop->WaitForNotificationWithTimeout(std::max(left * 2 / 3, absl::Seconds(1)))) return;
    absl::StatusOr<absl::Time> renewed = converge::engine::RefreshDeviceToken(management, device_id, credential,
                                                                             g_tokens.get());
    if (renewed.ok()) {
      expires = *renewed;
    } else {
      log->warn("cannot renew the device token: {}", renewed.status().ToString());
      expires = absl::Now() + absl::Seconds(3);  // retry soon
    }
  }
}

std::string HostName() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "device";
  return buf;
}

}  // namespace

// Revoked ends an engine whose device was revoked. For a remote wipe it deletes the files it
// synced, tells management (with the device credential), then deletes its own state. Returns
// the exit code.
int Revoked(converge::engine::DeviceFate fate, converge::engine::LocalFilesystem* fs,
            std::unique_ptr<converge::engine::LocalIndex> index,
            converge::management::v1::ManagementService::StubInterface* management, const std::string& device_id) {
  auto log = converge::GetLogger("engine");
  if (fate != converge::engine::DeviceFate::kWipe) {
    log->error("device {} was revoked by an operator: not syncing (files left as they are)", device_id);
    return 3;
  }
  log->warn("device {} was revoked with a remote wipe: deleting the synced files", device_id);
  absl::StatusOr<converge::engine::WipeResult> wiped = converge::engine::WipeSyncedFiles(fs, index.get());
  if (!wiped.ok()) {
    log->error("wipe failed: {}", wiped.status().ToString());
    return 1;
  }
  absl::StatusOr<std::optional<std::string>> credential = index->GetSetting("credential");
  index.reset();
  absl::Status confirmed = credential.ok() && credential->has_value()
                               ? converge::engine::ConfirmWipe(management, device_id, **credential)
                               : absl::InternalError("no credential");
  if (!confirmed.ok()) log->error("could not confirm the wipe to management: {}", confirmed.ToString());
  std::error_code ec;
  std::filesystem::remove_all(fs->state_dir(), ec);
  log->warn("wiped: {} files and {} directories deleted, {} directories kept (they hold files never synced)",
            wiped->files_removed, wiped->dirs_removed, wiped->left);
  return 3;
}

// Status prints what the engine running on `folder` is doing.
int Status(const std::string& folder) {
  while (true) {
    absl::StatusOr<converge::engine::v1::EngineStatusFile> s = converge::engine::ReadStatus(folder);
    if (!s.ok()) {
      std::cerr << "converge-engine: " << s.status().message() << "\n";
      return 1;
    }
    if (absl::GetFlag(FLAGS_json)) {
      std::ifstream in(converge::engine::StatusPath(folder));
      std::cout << in.rdbuf();
    } else {
      if (absl::GetFlag(FLAGS_watch_status) && isatty(STDOUT_FILENO)) std::cout << "\033[H\033[2J";
      std::cout << converge::engine::FormatStatus(*s, converge::engine::EngineRunning(*s, absl::Now()),
                                                  converge::engine::ConflictCopiesIn(folder), absl::Now());
    }
    std::cout.flush();
    if (!absl::GetFlag(FLAGS_watch_status)) return 0;
    absl::SleepFor(absl::Milliseconds(500));
  }
}

// Pause leaves (or removes) the flag file the running engine obeys within half a second.
int Pause(const std::string& folder, bool pause) {
  const std::string flag = converge::engine::PauseFlagPath(folder);
  std::error_code ec;
  if (!std::filesystem::is_directory(std::filesystem::path(flag).parent_path(), ec)) {
    std::cerr << "converge-engine: " << folder << " is not a Converge folder\n";
    return 1;
  }
  if (pause) {
    std::ofstream(flag) << "paused\n";
  } else {
    std::filesystem::remove(flag, ec);
  }
  std::cout << (pause ? "paused " : "resumed ") << folder << "\n";
  return 0;
}

// RaiseFileLimit lifts the soft descriptor limit to the hard one (batched applying keeps up to
// 1,024 temp files open).
void RaiseFileLimit() {
  struct rlimit lim;
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = std::min<rlim_t>(lim.rlim_max, 65536);
    setrlimit(RLIMIT_NOFILE, &lim);
  }
}

int main(int argc, char** argv) {
  converge::BlockTerminationSignals();
  RaiseFileLimit();
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  converge::InitLogging(absl::GetFlag(FLAGS_log_level), absl::GetFlag(FLAGS_log_json));
  auto log = converge::GetLogger("engine");

  const std::string folder = absl::GetFlag(FLAGS_folder);
  if (positional.size() > 1) {
    const std::string command = positional[1];
    const bool control = converge::engine::IsControlCommand(command);
    if ((positional.size() > 2 && !control) ||
        (command != "status" && command != "pause" && command != "resume" && !control)) {
      std::cerr << "converge-engine: unknown command; try status, pause, resume, history, restore, conflicts or "
                   "resolve (--help for flags)\n";
      return 2;
    }
    if (folder.empty()) {
      std::cerr << "converge-engine: " << command << " needs --folder\n";
      return 2;
    }
    if (control) {
      converge::engine::ControlArgs args;
      args.folder = folder;
      args.args.assign(positional.begin() + 2, positional.end());
      args.seq = absl::GetFlag(FLAGS_seq);
      args.at = absl::GetFlag(FLAGS_at);
      args.all = absl::GetFlag(FLAGS_all);
      args.limit = absl::GetFlag(FLAGS_limit);
      return converge::engine::RunControlCommand(command, args);
    }
    if (command == "status") return Status(folder);
    return Pause(folder, command == "pause");
  }
  converge::engine::EnrollmentRequest request;
  request.user_id = absl::GetFlag(FLAGS_user);
  request.namespace_id = absl::GetFlag(FLAGS_namespace_id);
  request.device_name = absl::GetFlag(FLAGS_device_name);
  if (request.device_name.empty()) request.device_name = HostName();
  request.token = absl::GetFlag(FLAGS_token);
  if (request.token.empty() && getenv("CONVERGE_TOKEN") != nullptr) request.token = getenv("CONVERGE_TOKEN");
  if (const std::string file = absl::GetFlag(FLAGS_enroll_token_file); !file.empty()) {
    std::ifstream in(file);
    if (!(in >> request.enrollment_token)) {
      std::fprintf(stderr, "cannot read an enrollment token from %s\n", file.c_str());
      return 2;
    }
  } else if (getenv("CONVERGE_ENROLL_TOKEN") != nullptr) {
    request.enrollment_token = getenv("CONVERGE_ENROLL_TOKEN");
  }
  {
    const converge::TlsFiles tls = converge::TlsFromFlags();
    absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds = converge::ChannelCredentials(tls);
    if (!creds.ok()) {
      log->error("{}", creds.status().ToString());
      return 2;
    }
    g_credentials = *creds;
    if (!tls.enabled()) log->warn("no --tls_ca: talking PLAINTEXT to the services (tests on one machine only)");
  }
  const std::string management_address = absl::GetFlag(FLAGS_management);
  if (folder.empty() || management_address.empty() || request.user_id.empty() ||
      request.namespace_id.empty()) {
    log->error("--folder, --management, --user and --namespace_id are required");
    return 2;
  }

  auto fs = converge::engine::LocalFilesystem::Open(folder);
  if (!fs.ok()) {
    log->error("{}", fs.status().ToString());
    return 1;
  }
  auto index = converge::engine::LocalIndex::Open((*fs)->state_dir() + "/index.rocksdb");
  if (!index.ok()) {
    log->error("{}", index.status().ToString());
    return 1;
  }

  // Management may still be starting: retry enrollment for a while.
  auto management = converge::management::v1::ManagementService::NewStub(Channel(management_address));
  absl::StatusOr<Enrollment> enrollment;
  for (absl::Duration wait = absl::Milliseconds(200);; wait = std::min(wait * 2, absl::Seconds(5))) {
    enrollment = converge::engine::Enroll(management.get(), index->get(), request, g_tokens.get());
    if (enrollment.ok() || !absl::IsUnavailable(enrollment.status())) break;
    log->warn("management not reachable ({}); retrying in {}", enrollment.status().message(),
              absl::FormatDuration(wait));
    absl::SleepFor(wait);
  }
  if (!enrollment.ok()) {
    log->error("enrollment failed: {}", enrollment.status().ToString());
    // A device revoked while it was off: wipe if asked to.
    absl::StatusOr<std::optional<std::string>> device_id = (*index)->GetSetting("device_id");
    absl::StatusOr<std::optional<std::string>> credential = (*index)->GetSetting("credential");
    if (device_id.ok() && device_id->has_value() && credential.ok() && credential->has_value() &&
        (absl::IsFailedPrecondition(enrollment.status()) || absl::IsPermissionDenied(enrollment.status()))) {
      absl::StatusOr<converge::engine::DeviceFate> fate =
          converge::engine::AskFate(management.get(), **device_id, **credential);
      if (fate.ok() && *fate != converge::engine::DeviceFate::kActive) {
        return Revoked(*fate, fs->get(), std::move(*index), management.get(), **device_id);
      }
    }
    return 1;
  }
  // Flags override what management says; an empty answer means "the management address" (the
  // all-in-one converge-server serves everything on one port).
  std::string store_address = absl::GetFlag(FLAGS_store);
  if (store_address.empty()) store_address = enrollment->store_address;
  if (store_address.empty()) store_address = management_address;
  std::string notify_address = absl::GetFlag(FLAGS_notify);
  if (notify_address.empty()) notify_address = enrollment->notification_address;
  if (notify_address.empty()) notify_address = management_address;
  log->info("device {} syncing {} as namespace '{}' from cursor {} (store {}, notify {})",
            enrollment->device_id, folder, request.namespace_id, (*index)->cursor(), store_address,
            notify_address);

  converge::engine::GrpcStoreClient store(Channel(store_address), request.namespace_id,
                                          enrollment->device_id);
  converge::engine::EngineOptions options;
  options.rescan_interval = absl::GetFlag(FLAGS_rescan_interval);
  options.coalesce_delay = absl::GetFlag(FLAGS_coalesce);
  options.write_settle = absl::GetFlag(FLAGS_write_settle);
  // Refused by the store: ask management whether this device was revoked; if so, stop (the
  // main thread waits for a signal: send ourselves one).
  std::atomic<int> fate{static_cast<int>(converge::engine::DeviceFate::kActive)};
  options.on_denied = [&](const absl::Status& why) {
    absl::StatusOr<converge::engine::DeviceFate> f =
        converge::engine::AskFate(management.get(), enrollment->device_id, enrollment->credential);
    if (!f.ok() || *f == converge::engine::DeviceFate::kActive) return false;
    log->warn("the store refused this device ({}) and management says it is revoked", why.message());
    fate = static_cast<int>(*f);
    kill(getpid(), SIGTERM);
    return true;
  };
  converge::engine::SyncEngine engine(fs->get(), index->get(), &store, converge::Clock::Real(),
                                      enrollment->device_id, options);
  if (absl::GetFlag(FLAGS_once)) {
    absl::Status s = engine.SyncOnce();
    if (!s.ok()) log->error("sync: {}", s.ToString());
    const converge::engine::ScanStats& scan = engine.scan_stats();
    log->info("sync once: scanned {} entries in {}, {} files hashed, {} changes committed, cursor {}",
              scan.last_entries, absl::FormatDuration(scan.last_duration), scan.last_files_hashed,
              engine.upload_stats().files_committed, (*index)->cursor());
    return s.ok() ? 0 : 1;
  }

  std::unique_ptr<converge::MetricsHttpServer> metrics;
  if (const std::string listen = absl::GetFlag(FLAGS_metrics_listen); !listen.empty()) {
    auto started = converge::MetricsHttpServer::Start(listen, &converge::DefaultMetrics());
    if (!started.ok()) {
      log->error("cannot serve metrics: {}", started.status().ToString());
      return 1;
    }
    metrics = std::move(*started);
    if (const std::string port_file = absl::GetFlag(FLAGS_metrics_port_file); !port_file.empty()) {
      absl::Status written = converge::WriteFileAtomically(port_file, absl::StrCat(metrics->port(), "\n"));
      if (!written.ok()) log->warn("{}", written.ToString());
    }
    log->info("metrics on port {}", metrics->port());
  }

  std::unique_ptr<converge::engine::NotificationListener> listener;
  if (!notify_address.empty()) {
    converge::engine::NotificationListener::Callbacks callbacks;
    callbacks.on_head = [&engine](uint64_t seq) { engine.NotifyRemoteHead(seq); };
    callbacks.on_connected = [&engine] { engine.RequestPull(); };
    listener = std::make_unique<converge::engine::NotificationListener>(
        [notify_address] { return Channel(notify_address); }, enrollment->device_id, request.namespace_id, absl::GetFlag(FLAGS_heartbeat),
        std::move(callbacks));
    listener->Start();
  }
  std::unique_ptr<converge::engine::Watcher> watcher;
  if (absl::GetFlag(FLAGS_watch)) {
    auto on_events = [&engine](std::vector<converge::engine::PathEvent> events, bool overflow) {
      if (overflow) engine.NotifyLocalChange();
      std::vector<std::pair<std::string, bool>> paths;
      paths.reserve(events.size());
      for (auto& e : events) paths.emplace_back(std::move(e.path), e.writing);
      if (!paths.empty()) engine.NotifyLocalPaths(paths);
    };
    auto started = converge::engine::Watcher::Start(folder, on_events);
    if (started.ok()) {
      watcher = std::move(*started);
      engine.set_local_event_flush([w = watcher.get()] { w->Flush(); });
      log->info("watching {} directories", watcher->watched_directories());
    } else {
      log->warn("no watcher ({}): relying on the scan every {}", started.status().message(),
                absl::FormatDuration(options.rescan_interval));
    }
  }
  converge::engine::v1::EngineStatusFile identity;
  identity.set_folder(folder);
  identity.set_device_id(enrollment->device_id);
  identity.set_namespace_id(request.namespace_id);
  auto status_writer = std::make_unique<converge::engine::StatusWriter>(&engine, identity, absl::Milliseconds(250));
  // The local control API (history, restore, conflicts) on a socket only this user can reach.
  converge::engine::FolderHistory history(&store, [] { return converge::RandomBytes(converge::kFileIdBytes); });
  converge::engine::ControlService control(&history);
  std::unique_ptr<converge::RunningServer> control_server;
  if (absl::StatusOr<std::string> socket = converge::engine::PrepareControlSocket(folder); socket.ok()) {
    converge::ServerOptions control_options;
    control_options.listen = "unix:" + *socket;
    control_options.max_threads = 4;
    auto started = converge::StartServer(control_options, {&control});
    if (started.ok()) {
      control_server = std::move(*started);
      std::error_code ec;
      std::filesystem::permissions(*socket, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
                                   ec);
    } else {
      log->warn("no control socket ({}): history, restore and conflicts commands will not reach this engine",
                started.status().message());
    }
  } else {
    log->warn("no control socket: {}", socket.status().message());
  }
  std::thread runner([&engine] { engine.Run(); });
  absl::Notification stop_refresh;
  std::thread refresher;
  if (!g_tokens->Get().empty()) {
    refresher = std::thread([&] {
      KeepTokenFresh(management.get(), enrollment->device_id, enrollment->credential, absl::Now() + absl::Minutes(1),
                     &stop_refresh);
    });
  }
  int sig = converge::WaitForTerminationSignal();
  log->info("signal {}: stopping", sig);
  stop_refresh.Notify();
  if (refresher.joinable()) refresher.join();
  control_server.reset();
  if (listener != nullptr) listener->Stop();
  engine.Stop();
  runner.join();
  watcher.reset();  // after the engine's last pull (which flushes it)
  status_writer.reset();
  metrics.reset();
  const auto final_fate = static_cast<converge::engine::DeviceFate>(fate.load());
  if (final_fate != converge::engine::DeviceFate::kActive) {
    return Revoked(final_fate, fs->get(), std::move(*index), management.get(), enrollment->device_id);
  }
  return 0;
}
