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

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/base/files.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/wire/wire.h"
#include "converge/engine/v1/local.pb.h"
#include "converge/engine/v1/status.pb.h"
#include "converge/store/v1/store.pb.h"
#include "common/base/random_id.h"
#include "engine/client/device_names.h"
#include "engine/client/grpc_store_client.h"
#include "engine/client/notification_listener.h"
#include "engine/control/status_file.h"
#include "engine/daemon/daemon.h"
#include "engine/ondemand/fuse_mount.h"
#include "engine/ondemand/local_edits.h"
#include "engine/ondemand/on_demand_folder.h"
#include "engine/sync/history.h"

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

// FileChangeJournal keeps each pending local change as <id>.rec (a LocalChange) in the state
// directory's local/, written beside and renamed into place: a crash of the engine leaves the
// old record or the new one. Sync fsyncs the records written since the last Sync and the
// directory. A record is validated again when read back.
class FileChangeJournal : public ChangeJournal {
 public:
  explicit FileChangeJournal(std::string dir) : dir_(std::move(dir)) {}
  ~FileChangeJournal() override {
    if (dir_fd_ >= 0) close(dir_fd_);
  }

  absl::Status Put(const PendingChange& change) override {
    engine::v1::LocalChange out;
    wire::FileVersionToProto(change.version, out.mutable_version());
    out.set_has_data(change.has_data);
    std::string bytes;
    if (!out.SerializeToString(&bytes)) return absl::InternalError("cannot encode a local change");
    CONVERGE_RETURN_IF_ERROR(OpenDir());
    const std::string name = absl::StrCat(change.id, ".rec"), temp = absl::StrCat(change.id, ".rec.tmp");
    const int fd = openat(dir_fd_, temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return Errno("create", temp);
    const bool written = write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
    const int err = errno;
    close(fd);
    if (!written) return absl::ResourceExhaustedError(absl::StrCat("writing ", temp, ": ", std::strerror(err)));
    if (renameat(dir_fd_, temp.c_str(), dir_fd_, name.c_str()) != 0) return Errno("rename", temp);
    absl::MutexLock lock(&mu_);
    unsynced_.insert(change.id);
    return absl::OkStatus();
  }

  absl::Status Drop(uint64_t id) override {
    CONVERGE_RETURN_IF_ERROR(OpenDir());
    const std::string name = absl::StrCat(id, ".rec");
    if (unlinkat(dir_fd_, name.c_str(), 0) != 0 && errno != ENOENT) return Errno("unlink", name);
    absl::MutexLock lock(&mu_);
    unsynced_.erase(id);
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<PendingChange>> LoadAll() override {
    CONVERGE_RETURN_IF_ERROR(OpenDir());
    std::vector<PendingChange> out;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
      const std::string name = entry.path().filename().string();
      uint64_t id = 0;
      if (absl::EndsWith(name, ".rec.tmp")) {
        unlinkat(dir_fd_, name.c_str(), 0);  // a write the crash cut short: the record before it stands
        continue;
      }
      if (!absl::EndsWith(name, ".rec") || !absl::SimpleAtoi(name.substr(0, name.size() - 4), &id)) continue;
      std::ifstream in(entry.path(), std::ios::binary);
      engine::v1::LocalChange saved;
      if (!saved.ParseFromIstream(&in)) return absl::DataLossError(absl::StrCat(entry.path().string(), " does not parse"));
      absl::StatusOr<FileVersion> v = wire::FileVersionFromProto(saved.version());
      if (!v.ok()) return absl::DataLossError(absl::StrCat(entry.path().string(), ": ", v.status().message()));
      out.push_back(PendingChange{id, *std::move(v), saved.has_data()});
    }
    if (ec) return absl::InternalError(absl::StrCat("reading ", dir_, ": ", ec.message()));
    return out;
  }

  absl::Status Sync() override {
    CONVERGE_RETURN_IF_ERROR(OpenDir());
    absl::flat_hash_set<uint64_t> ids;
    {
      absl::MutexLock lock(&mu_);
      ids.swap(unsynced_);
    }
    for (uint64_t id : ids) {
      const int fd = openat(dir_fd_, absl::StrCat(id, ".rec").c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;  // dropped since
      fsync(fd);
      close(fd);
    }
    return fsync(dir_fd_) == 0 ? absl::OkStatus() : Errno("fsync", dir_);
  }

 private:
  absl::Status OpenDir() {
    absl::MutexLock lock(&mu_);
    if (dir_fd_ >= 0) return absl::OkStatus();
    if (mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST) return Errno("mkdir", dir_);
    dir_fd_ = open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return dir_fd_ >= 0 ? absl::OkStatus() : Errno("open", dir_);
  }
  static absl::Status Errno(const char* what, const std::string& name) {
    return absl::InternalError(absl::StrCat(what, " ", name, ": ", std::strerror(errno)));
  }

  const std::string dir_;
  absl::Mutex mu_;
  int dir_fd_ = -1;
  absl::flat_hash_set<uint64_t> unsynced_ ABSL_GUARDED_BY(mu_);
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
  FileChangeJournal journal(state_path_ + "/local");
  OnDemandOptions o;
  o.folder = options_.folder;
  o.state_path = state_path_;
  o.state_fd = state_fd_;
  o.cache_budget_bytes = options_.cache_budget_bytes;
  o.follow_interval = options_.engine.rescan_interval;
  o.listings = &listings;
  o.journal = &journal;
  o.device_id = identity.device_id();
  o.device_name = options_.enrollment.device_name;
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
  // The namespace moved to another store shard: the mount stays, its calls go there from now on.
  client.set_redirect([this, log]() -> absl::StatusOr<std::shared_ptr<grpc::Channel>> {
    CONVERGE_ASSIGN_OR_RETURN(std::string store, StoreOfNamespace());
    log->info("namespace '{}' moved: its store is {} now", options_.enrollment.namespace_id, store);
    return Channel(store);
  });
  folder.Connect(&client, enrollment_.device_id);
  // history, restore, conflicts and resolve work on the store's history, as for a synced folder.
  FolderHistory history(&client, [] { return RandomBytes(kFileIdBytes); });
  DeviceNames names(management_.get(), options_.enrollment.namespace_id);
  ControlService control(&history, [&names](const std::string& id) { return names.NameOf(id); });
  std::unique_ptr<RunningServer> control_server = ServeControl(&control);
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
  control_server.reset();
  folder.Stop();  // before the client it uses goes
  return kExitOk;
}

}  // namespace converge::engine
