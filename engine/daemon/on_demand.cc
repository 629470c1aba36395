// The daemon's on-demand mode (--on_demand): the parts of Daemon that mount a folder through
// engine/ondemand instead of syncing it.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "converge/engine/v1/status.pb.h"
#include "engine/client/grpc_store_client.h"
#include "engine/client/notification_listener.h"
#include "engine/control/status_file.h"
#include "engine/daemon/daemon.h"
#include "engine/ondemand/fuse_mount.h"
#include "engine/ondemand/on_demand_folder.h"

namespace converge::engine {

absl::Status Daemon::OpenOnDemandState() {
  const std::string& folder = options_.folder;
  CONVERGE_RETURN_IF_ERROR(FuseMount::DetachStale(folder));
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(folder, ec)) {
    if (entry.path().filename() == kStateDirName) continue;
    return absl::FailedPreconditionError(absl::StrCat(
        "--on_demand mounts the namespace over ", folder, ", which holds ", entry.path().filename().string(),
        ": an on-demand folder starts empty (move its files into the namespace through a synced folder first)"));
  }
  if (ec) return absl::InvalidArgumentError(absl::StrCat("cannot read the folder ", folder, ": ", ec.message()));
  const std::string state = absl::StrCat(folder, "/", kStateDirName);
  std::filesystem::create_directories(state, ec);
  state_fd_ = open(state.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (state_fd_ < 0) return absl::InternalError(absl::StrCat("cannot open ", state, ": ", std::strerror(errno)));
  state_path_ = absl::StrCat("/proc/self/fd/", state_fd_);
  return absl::OkStatus();
}

absl::Status Daemon::RunOnDemand(const std::string& store, const std::string& notify) {
  auto log = GetLogger("engine");
  if (enrollment_.encrypted) {
    return absl::UnimplementedError(absl::StrCat("namespace '", options_.enrollment.namespace_id,
                                                 "' is end-to-end encrypted: on-demand folders of encrypted "
                                                 "namespaces are not built yet; sync it as a folder"));
  }
  GrpcStoreClient client(Channel(store), options_.enrollment.namespace_id, enrollment_.device_id);
  engine::v1::EngineStatusFile identity;
  identity.set_folder(options_.folder);
  identity.set_device_id(enrollment_.device_id);
  identity.set_namespace_id(options_.enrollment.namespace_id);
  OnDemandOptions o;
  o.folder = options_.folder;
  o.state_path = state_path_;
  o.state_fd = state_fd_;
  o.cache_budget_bytes = options_.cache_budget_bytes;
  o.relist_interval = options_.engine.rescan_interval;
  OnDemandFolder folder(&client, o, [&](const OnDemandStatus& s) {
    if (absl::Status written = WriteOnDemandStatus(identity, s, state_path_); !written.ok()) {
      log->warn("status file: {}", written.ToString());
    }
  });
  CONVERGE_RETURN_IF_ERROR(folder.Start());
  NotificationListener::Callbacks callbacks;
  callbacks.on_head = [&folder](uint64_t seq) { folder.NotifyRemoteHead(seq); };
  NotificationListener listener([this, notify] { return Channel(notify); }, enrollment_.device_id,
                                options_.enrollment.namespace_id, options_.heartbeat, std::move(callbacks));
  listener.Start();
  absl::Notification stop_refresh;
  std::thread refresher;
  if (!tokens_->Get().empty()) refresher = std::thread([this, &stop_refresh] { KeepTokenFresh(&stop_refresh); });
  stop_.WaitForNotification();
  log->info("stopping: unmounting {}", options_.folder);
  stop_refresh.Notify();
  if (refresher.joinable()) refresher.join();
  listener.Stop();
  folder.Stop();
  return absl::OkStatus();
}

}  // namespace converge::engine
