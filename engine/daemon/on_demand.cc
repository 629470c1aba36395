// The daemon's on-demand mode (--on_demand): the parts of Daemon that mount a folder through
// engine/ondemand instead of syncing it.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <thread>
#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/files.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/wire/wire.h"
#include "converge/engine/v1/status.pb.h"
#include "converge/store/v1/store.pb.h"
#include "engine/client/grpc_store_client.h"
#include "engine/client/notification_listener.h"
#include "engine/control/status_file.h"
#include "engine/daemon/daemon.h"
#include "engine/ondemand/fuse_mount.h"
#include "engine/ondemand/on_demand_folder.h"

namespace converge::engine {
namespace {

// FileListingStore keeps the listing in the state directory as the store's ListFilesResponse,
// each version validated again when read back (the file is as untrusted as the wire).
class FileListingStore : public ListingStore {
 public:
  explicit FileListingStore(std::string path) : path_(std::move(path)) {}

  absl::Status Save(const Listing& listing) override {
    store::v1::ListFilesResponse out;
    out.set_head_seq(listing.seq);
    for (const FileVersion& v : listing.versions) wire::FileVersionToProto(v, out.add_files());
    std::string bytes;
    if (!out.SerializeToString(&bytes)) return absl::InternalError("cannot encode the listing");
    return WriteFileAtomically(path_, bytes);
  }

  absl::StatusOr<Listing> Load() override {
    std::ifstream in(path_, std::ios::binary);
    if (!in) return absl::NotFoundError(absl::StrCat("no listing saved at ", path_));
    store::v1::ListFilesResponse saved;
    if (!saved.ParseFromIstream(&in)) return absl::DataLossError(absl::StrCat(path_, " does not parse"));
    Listing listing;
    listing.seq = saved.head_seq();
    for (const common::v1::FileVersion& p : saved.files()) {
      CONVERGE_ASSIGN_OR_RETURN(FileVersion v, wire::FileVersionFromProto(p));
      listing.versions.push_back(std::move(v));
    }
    return listing;
  }

 private:
  const std::string path_;
};

}  // namespace

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

int Daemon::RunOnDemand() {
  auto log = GetLogger("engine");
  engine::v1::EngineStatusFile identity;
  identity.set_folder(options_.folder);
  identity.set_namespace_id(options_.enrollment.namespace_id);
  if (absl::StatusOr<std::optional<std::string>> id = index_->GetSetting("device_id"); id.ok() && id->has_value()) {
    identity.set_device_id(**id);  // known before enrolling if it enrolled before
  }
  OnDemandStatusFile status(std::move(identity), state_path_);
  FileListingStore listings(state_path_ + "/listing.pb");
  OnDemandOptions o;
  o.folder = options_.folder;
  o.state_path = state_path_;
  o.state_fd = state_fd_;
  o.cache_budget_bytes = options_.cache_budget_bytes;
  o.follow_interval = options_.engine.rescan_interval;
  o.listings = &listings;
  OnDemandFolder folder(nullptr, o, [&](const OnDemandStatus& s) {
    if (absl::Status written = status.Write(s); !written.ok()) log->warn("status file: {}", written.ToString());
  });
  if (absl::Status started = folder.Start(); !started.ok()) {
    log->error("{}", started.ToString());
    return kExitError;
  }
  if (absl::Status enrolled = Enroll(); !enrolled.ok()) {
    folder.Stop();
    if (absl::IsCancelled(enrolled)) return kExitOk;
    log->error("enrollment failed: {}", enrolled.ToString());
    return AfterRefusedEnrollment(enrolled);
  }
  if (enrollment_.encrypted) {
    folder.Stop();
    log->error("namespace '{}' is end-to-end encrypted: on-demand folders of encrypted namespaces are not built yet; "
               "sync it as a folder",
               options_.enrollment.namespace_id);
    return kExitError;
  }
  status.set_device_id(enrollment_.device_id);
  log->info("device {} shows namespace '{}' on demand at {} (store {}, notify {})", enrollment_.device_id,
            options_.enrollment.namespace_id, options_.folder, StoreAddress(), NotifyAddress());
  GrpcStoreClient client(Channel(StoreAddress()), options_.enrollment.namespace_id, enrollment_.device_id);
  folder.Connect(&client);
  NotificationListener::Callbacks callbacks;
  callbacks.on_head = [&folder](uint64_t seq) { folder.NotifyRemoteHead(seq); };
  const std::string notify = NotifyAddress();
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
  folder.Stop();  // before the client it uses goes
  return kExitOk;
}

}  // namespace converge::engine
