// converge-engine: keeps one local folder in sync with one namespace.
//
//   converge-engine --folder=~/Sync --management=127.0.0.1:7000 --user=alice --namespace_id=docs
//   converge-engine status --folder=~/Sync [--watch] [--json]
//   converge-engine pause --folder=~/Sync      (resume: converge-engine resume --folder=~/Sync)
//   converge-engine history PATH --folder=~/Sync
//   converge-engine restore [PATH] --folder=~/Sync (--seq=N | --at=TIME)
//   converge-engine conflicts --folder=~/Sync [--all]; converge-engine resolve COPY --folder=~/Sync
//   converge-engine keys status|init|request|approve DEVICE|accept|recover --folder=~/Sync
//
// Exit codes: 0 stopped on request (or --once in sync), 1 error, 2 usage, 3 the device was
// revoked (after a remote wipe, its synced files were deleted).
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/logging.h"
#include "common/base/memory_trim.h"
#include "common/rpc/server_runner.h"
#include "common/security/tls.h"
#include "engine/control/local_commands.h"
#include "engine/daemon/daemon.h"

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
ABSL_FLAG(bool, watch, true, "watch the folder for changes (see --watcher)");
ABSL_FLAG(std::string, watcher, "auto",
          "how to watch the folder: fanotify (one mark on its filesystem, no watch per directory; "
          "needs CAP_SYS_ADMIN and Linux 5.9), inotify (a watch per directory), or auto (fanotify "
          "where the engine may, else inotify)");
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
ABSL_FLAG(std::string, fingerprint, "",
          "keys approve: the waiting device's key fingerprint as that device shows it; keys accept: the "
          "approving device's");
ABSL_FLAG(std::string, passphrase_file, "",
          "keys init / recover: a file holding the namespace's recovery passphrase (or "
          "$CONVERGE_RECOVERY_PASSPHRASE)");
ABSL_FLAG(std::string, folder_type, "send-receive",
          "send-receive; receive-only: local changes are never uploaded (status lists them; "
          "`converge-engine revert` sets them aside and brings the namespace's versions back); or "
          "send-only: other devices' changes are not applied here (status counts them; "
          "`converge-engine override` pushes this folder's state over them)");
ABSL_FLAG(bool, on_demand, false,
          "mount the namespace over --folder (FUSE, as root; the folder starts empty): every file shown, "
          "its bytes fetched when read (read-only in this version)");
ABSL_FLAG(std::string, cache_budget, "1G", "on demand: the disk the fetched chunks may take (bytes, or 512M, 4G)");
ABSL_FLAG(std::string, exclude, "", "select: keep this subtree of the folder out of this device");
ABSL_FLAG(std::string, include, "", "select: bring this subtree back to this device");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warn or error");
ABSL_FLAG(bool, log_json, false, "log JSON lines");

namespace {

using converge::engine::DaemonOptions;
using converge::engine::Watcher;

std::string HostName() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "device";
  return buf;
}

std::string Env(const char* name) {
  const char* value = getenv(name);
  return value == nullptr ? "" : value;
}

// Enrollment: the operator token (flag or $CONVERGE_TOKEN), or an enrollment token from a file
// or $CONVERGE_ENROLL_TOKEN.
absl::StatusOr<converge::engine::EnrollmentRequest> EnrollmentFromFlags() {
  converge::engine::EnrollmentRequest request;
  request.user_id = absl::GetFlag(FLAGS_user);
  request.namespace_id = absl::GetFlag(FLAGS_namespace_id);
  request.device_name = absl::GetFlag(FLAGS_device_name);
  if (request.device_name.empty()) request.device_name = HostName();
  request.token = absl::GetFlag(FLAGS_token);
  if (request.token.empty()) request.token = Env("CONVERGE_TOKEN");
  if (const std::string file = absl::GetFlag(FLAGS_enroll_token_file); !file.empty()) {
    std::ifstream in(file);
    if (!(in >> request.enrollment_token)) {
      return absl::InvalidArgumentError("cannot read an enrollment token from " + file);
    }
  } else {
    request.enrollment_token = Env("CONVERGE_ENROLL_TOKEN");
  }
  return request;
}

// ParseBytes reads "4096", "512K", "512M" or "4G" (powers of 1024).
absl::StatusOr<uint64_t> ParseBytes(const std::string& text) {
  uint64_t unit = 1;
  std::string digits = text;
  if (!digits.empty() && std::string("KMG").find(std::toupper(digits.back())) != std::string::npos) {
    unit = uint64_t{1} << (10 * (1 + std::string("KMG").find(std::toupper(digits.back()))));
    digits.pop_back();
  }
  uint64_t n = 0;
  if (!absl::SimpleAtoi(digits, &n) || n == 0 || n > (uint64_t{1} << 50) / unit) {
    return absl::InvalidArgumentError(absl::StrCat("--cache_budget=", text, ": a size such as 4096, 512M or 4G"));
  }
  return n * unit;
}

absl::StatusOr<DaemonOptions> OptionsFromFlags() {
  DaemonOptions o;
  o.folder = absl::GetFlag(FLAGS_folder);
  o.management_address = absl::GetFlag(FLAGS_management);
  o.store_address = absl::GetFlag(FLAGS_store);
  o.notify_address = absl::GetFlag(FLAGS_notify);
  absl::StatusOr<converge::engine::EnrollmentRequest> enrollment = EnrollmentFromFlags();
  if (!enrollment.ok()) return enrollment.status();
  o.enrollment = *enrollment;
  if (o.folder.empty() || o.management_address.empty() || o.enrollment.user_id.empty() ||
      o.enrollment.namespace_id.empty()) {
    return absl::InvalidArgumentError("--folder, --management, --user and --namespace_id are required");
  }
  o.engine.rescan_interval = absl::GetFlag(FLAGS_rescan_interval);
  o.engine.coalesce_delay = absl::GetFlag(FLAGS_coalesce);
  o.engine.write_settle = absl::GetFlag(FLAGS_write_settle);
  const std::string folder_type = absl::GetFlag(FLAGS_folder_type);
  if (folder_type != "send-receive" && folder_type != "receive-only" && folder_type != "send-only") {
    return absl::InvalidArgumentError(
        absl::StrCat("--folder_type=", folder_type, ": send-receive, receive-only or send-only"));
  }
  o.engine.receive_only = folder_type == "receive-only";
  o.engine.send_only = folder_type == "send-only";
  o.on_demand = absl::GetFlag(FLAGS_on_demand);
  absl::StatusOr<uint64_t> budget = ParseBytes(absl::GetFlag(FLAGS_cache_budget));
  if (!budget.ok()) return budget.status();
  o.cache_budget_bytes = *budget;
  o.heartbeat = absl::GetFlag(FLAGS_heartbeat);
  o.watch = absl::GetFlag(FLAGS_watch);
  const std::string watcher = absl::GetFlag(FLAGS_watcher);
  if (watcher == "fanotify") {
    o.watcher = Watcher::Backend::kFanotify;
  } else if (watcher == "inotify") {
    o.watcher = Watcher::Backend::kInotify;
  } else if (watcher != "auto") {
    return absl::InvalidArgumentError(absl::StrCat("--watcher is auto, fanotify or inotify, not '", watcher, "'"));
  }
  o.once = absl::GetFlag(FLAGS_once);
  o.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  o.metrics_port_file = absl::GetFlag(FLAGS_metrics_port_file);
  const converge::TlsFiles tls = converge::TlsFromFlags();
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials = converge::ChannelCredentials(tls);
  if (!credentials.ok()) return credentials.status();
  o.credentials = *credentials;
  if (!tls.enabled()) {
    converge::GetLogger("engine")->warn("no --tls_ca: talking PLAINTEXT to the services (tests on one machine only)");
  }
  return o;
}

int RunCommand(const std::vector<char*>& positional) {
  converge::engine::LocalCommand command;
  command.name = positional[1];
  command.control.folder = absl::GetFlag(FLAGS_folder);
  command.control.args.assign(positional.begin() + 2, positional.end());
  command.control.seq = absl::GetFlag(FLAGS_seq);
  command.control.at = absl::GetFlag(FLAGS_at);
  command.control.all = absl::GetFlag(FLAGS_all);
  command.control.limit = absl::GetFlag(FLAGS_limit);
  command.control.fingerprint = absl::GetFlag(FLAGS_fingerprint);
  command.control.passphrase_file = absl::GetFlag(FLAGS_passphrase_file);
  command.watch = absl::GetFlag(FLAGS_watch_status);
  command.json = absl::GetFlag(FLAGS_json);
  command.exclude = absl::GetFlag(FLAGS_exclude);
  command.include = absl::GetFlag(FLAGS_include);
  return converge::engine::RunLocalCommand(command);
}

}  // namespace

int main(int argc, char** argv) {
  converge::ConfigureAllocator();
  converge::BlockTerminationSignals();
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  converge::InitLogging(absl::GetFlag(FLAGS_log_level), absl::GetFlag(FLAGS_log_json));
  if (positional.size() > 1) return RunCommand(positional);
  absl::StatusOr<DaemonOptions> options = OptionsFromFlags();
  if (!options.ok()) {
    converge::GetLogger("engine")->error("{}", options.status().message());
    return 2;
  }
  converge::engine::Daemon daemon(*std::move(options));
  converge::MemoryTrimmer trim(absl::Seconds(10), converge::kHeapTrimThreshold);  // an idle engine stays small
  std::thread([&daemon] {
    const int sig = converge::WaitForTerminationSignal();
    converge::GetLogger("engine")->info("signal {}", sig);
    daemon.Stop();
  }).detach();
  return daemon.Run();
}
