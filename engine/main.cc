// converge-engine: keeps one local folder in sync with one namespace.
//
//   converge-engine --folder=~/Sync --management=127.0.0.1:7000 --user=alice --namespace=docs
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "common/metrics_http.h"
#include "common/server_runner.h"
#include "engine/enrollment.h"
#include "engine/local_filesystem.h"
#include "engine/local_index.h"
#include "engine/notification_listener.h"
#include "engine/store_client.h"
#include "engine/sync_engine.h"
#include "engine/watcher.h"

ABSL_FLAG(std::string, folder, "", "the folder to sync (must exist)");
ABSL_FLAG(std::string, management, "", "address of converge-management");
ABSL_FLAG(std::string, token, "", "management bearer token (or $CONVERGE_TOKEN)");
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
ABSL_FLAG(std::string, log_level, "info", "debug, info, warn or error");
ABSL_FLAG(bool, log_json, false, "log JSON lines");

namespace {

using converge::engine::Enrollment;

std::shared_ptr<grpc::Channel> Channel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(16 << 20);
  args.SetMaxSendMessageSize(16 << 20);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

std::string HostName() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "device";
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  converge::BlockTerminationSignals();
  absl::ParseCommandLine(argc, argv);
  converge::InitLogging(absl::GetFlag(FLAGS_log_level), absl::GetFlag(FLAGS_log_json));
  auto log = converge::GetLogger("engine");

  const std::string folder = absl::GetFlag(FLAGS_folder);
  converge::engine::EnrollmentRequest request;
  request.user_id = absl::GetFlag(FLAGS_user);
  request.namespace_id = absl::GetFlag(FLAGS_namespace_id);
  request.device_name = absl::GetFlag(FLAGS_device_name);
  if (request.device_name.empty()) request.device_name = HostName();
  request.token = absl::GetFlag(FLAGS_token);
  if (request.token.empty() && getenv("CONVERGE_TOKEN") != nullptr) request.token = getenv("CONVERGE_TOKEN");
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
    enrollment = converge::engine::Enroll(management.get(), index->get(), request);
    if (enrollment.ok() || !absl::IsUnavailable(enrollment.status())) break;
    log->warn("management not reachable ({}); retrying in {}", enrollment.status().message(),
              absl::FormatDuration(wait));
    absl::SleepFor(wait);
  }
  if (!enrollment.ok()) {
    log->error("enrollment failed: {}", enrollment.status().ToString());
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
        Channel(notify_address), enrollment->device_id, request.namespace_id, absl::GetFlag(FLAGS_heartbeat),
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
      log->info("watching {} directories", watcher->watched_directories());
    } else {
      log->warn("no watcher ({}): relying on the scan every {}", started.status().message(),
                absl::FormatDuration(options.rescan_interval));
    }
  }
  std::thread runner([&engine] { engine.Run(); });
  int sig = converge::WaitForTerminationSignal();
  log->info("signal {}: stopping", sig);
  watcher.reset();
  if (listener != nullptr) listener->Stop();
  engine.Stop();
  runner.join();
  return 0;
}
