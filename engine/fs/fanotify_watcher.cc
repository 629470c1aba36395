// The fanotify mechanism of Watcher (watcher.h): one mark on the folder's filesystem, events
// naming the directory (by file handle) and the entry.
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/fanotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/base/logging.h"
#include "engine/fs/local_filesystem.h"
#include "engine/fs/watcher.h"

namespace converge::engine {
namespace {

constexpr uint64_t kFanMask = FAN_CREATE | FAN_DELETE | FAN_MOVED_FROM | FAN_MOVED_TO | FAN_MODIFY |
                              FAN_CLOSE_WRITE | FAN_ATTRIB | FAN_DELETE_SELF | FAN_MOVE_SELF | FAN_ONDIR;
// Directories whose paths are remembered at most (then forgotten together and looked up again).
constexpr size_t kMaxCachedDirs = 1 << 17;

std::shared_ptr<spdlog::logger> Log() {
  static auto log = GetLogger("watcher");
  return log;
}

class FanotifyWatcher : public Watcher {
 public:
  FanotifyWatcher(std::string root, int root_fd, int fan_fd, int mount_fd, std::string real_root)
      : Watcher(std::move(root), root_fd, fan_fd), mount_fd_(mount_fd), real_root_(std::move(real_root)) {}
  ~FanotifyWatcher() override {
    Stop();
    close(mount_fd_);
  }

  void Begin(OnEvents on_events) { Run(std::move(on_events)); }

  Backend backend() const override { return Backend::kFanotify; }

  std::string Describe() const override {
    return "fanotify on the folder's whole filesystem (no watch per directory); cannot see changes "
           "inside other filesystems mounted below the folder, or made by other machines to a network "
           "filesystem: those wait for the periodic scan";
  }

 private:
  void ReadQueue(Batch* batch) override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Handle(Batch* batch, uint64_t mask, struct file_handle* dir, const char* name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // DirPath: the directory's path relative to the root ("" for the root), or nullopt if it is
  // outside the folder or gone.
  std::optional<std::string> DirPath(struct file_handle* dir) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int mount_fd_;  // for open_by_handle_at
  const std::string real_root_;
  // Directory handle -> its path below the root; nullopt: outside. Forgotten whenever a
  // directory of the folder moves or goes (its path, and those below it, may have changed).
  absl::flat_hash_map<std::string, std::optional<std::string>> dirs_ ABSL_GUARDED_BY(mu_);
};

void FanotifyWatcher::ReadQueue(Batch* batch) {
  alignas(struct fanotify_event_metadata) char buf[64 * 1024];
  while (true) {
    ssize_t len = read(queue_fd_, buf, sizeof(buf));
    if (len <= 0) break;
    for (auto* meta = reinterpret_cast<struct fanotify_event_metadata*>(buf); FAN_EVENT_OK(meta, len);
         meta = FAN_EVENT_NEXT(meta, len)) {
      if (meta->fd >= 0) close(meta->fd);  // none with handles reported; closed if one comes
      if (meta->vers != FANOTIFY_METADATA_VERSION) continue;
      if (meta->mask & FAN_Q_OVERFLOW) {
        Log()->warn("fanotify queue overflowed: rescanning");
        batch->overflow = true;
        continue;
      }
      const char* info = reinterpret_cast<const char*>(meta) + meta->metadata_len;
      const char* end = reinterpret_cast<const char*>(meta) + meta->event_len;
      while (info + sizeof(struct fanotify_event_info_fid) <= end) {
        auto* fid = reinterpret_cast<const struct fanotify_event_info_fid*>(info);
        if (fid->hdr.len == 0 || info + fid->hdr.len > end) break;
        const uint8_t type = fid->hdr.info_type;
        if (type == FAN_EVENT_INFO_TYPE_DFID_NAME || type == FAN_EVENT_INFO_TYPE_DFID) {
          auto* handle = reinterpret_cast<struct file_handle*>(const_cast<unsigned char*>(fid->handle));
          const char* name = type == FAN_EVENT_INFO_TYPE_DFID_NAME
                                 ? reinterpret_cast<const char*>(handle->f_handle) + handle->handle_bytes
                                 : nullptr;
          Handle(batch, meta->mask, handle, name);
          break;
        }
        info += fid->hdr.len;
      }
    }
  }
}

void FanotifyWatcher::Handle(Batch* batch, uint64_t mask, struct file_handle* dir, const char* name) {
  const bool is_dir = (mask & FAN_ONDIR) != 0;
  std::optional<std::string> parent = DirPath(dir);
  if (!parent.has_value()) return;  // elsewhere on the filesystem (or gone)
  // A directory of the folder moved or went: the paths remembered below it may be stale. (One
  // elsewhere changes no path in the folder: the rest of the filesystem's churn costs a lookup.)
  if (is_dir && (mask & (FAN_MOVED_FROM | FAN_MOVED_TO | FAN_DELETE | FAN_MOVE_SELF | FAN_DELETE_SELF))) {
    dirs_.clear();
  }
  const bool itself = name == nullptr || name[0] == '\0' || absl::string_view(name) == ".";
  if (itself) {
    // The directory itself (its attributes): reported, as inotify's watch on it would be.
    if (!parent->empty()) Report(batch, *parent);
    return;
  }
  const std::string path = parent->empty() ? std::string(name) : absl::StrCat(*parent, "/", name);
  if (absl::string_view(path).substr(0, path.find('/')) == kStateDirName) return;  // the engine's own files
  if (!is_dir) {
    // Writes to an unnamed temp file ("#<inode>", the applier's): it arrives by a rename.
    if (!(mask & (FAN_CREATE | FAN_MOVED_TO | FAN_MOVED_FROM | FAN_DELETE)) &&
        watcher_internal::UnnamedFileName(name) && faccessat(root_fd_, path.c_str(), F_OK, AT_SYMLINK_NOFOLLOW) != 0) {
      return;
    }
    NoteFile(path, (mask & (FAN_MODIFY | FAN_CREATE)) != 0,
             (mask & (FAN_CLOSE_WRITE | FAN_DELETE | FAN_MOVED_FROM | FAN_MOVED_TO)) != 0);
  }
  Report(batch, path);
}

std::optional<std::string> FanotifyWatcher::DirPath(struct file_handle* dir) {
  std::string key(reinterpret_cast<const char*>(&dir->handle_type), sizeof(dir->handle_type));
  key.append(reinterpret_cast<const char*>(dir->f_handle), dir->handle_bytes);
  if (auto it = dirs_.find(key); it != dirs_.end()) return it->second;
  const int fd = open_by_handle_at(mount_fd_, dir, O_PATH | O_CLOEXEC);
  if (fd < 0) return std::nullopt;  // gone (its parent's event names it)
  char target[PATH_MAX];
  const std::string self = absl::StrCat("/proc/self/fd/", fd);
  const ssize_t n = readlink(self.c_str(), target, sizeof(target));
  close(fd);
  if (n <= 0 || static_cast<size_t>(n) >= sizeof(target)) return std::nullopt;
  const absl::string_view abs(target, static_cast<size_t>(n));
  if (abs.size() > 10 && abs.substr(abs.size() - 10) == " (deleted)") return std::nullopt;
  std::optional<std::string> rel;
  if (abs == real_root_) {
    rel = "";
  } else if (abs.size() > real_root_.size() && abs.substr(0, real_root_.size()) == real_root_ &&
             abs[real_root_.size()] == '/') {
    rel = std::string(abs.substr(real_root_.size() + 1));
  }
  if (dirs_.size() >= kMaxCachedDirs) dirs_.clear();
  dirs_.emplace(std::move(key), rel);
  return rel;
}

}  // namespace

namespace watcher_internal {

absl::StatusOr<std::unique_ptr<Watcher>> StartFanotify(const std::string& root, Watcher::OnEvents on_events) {
  // Unlimited queue: events of the whole filesystem pass through it, and an overflow would cost
  // a full scan of the folder.
  const int fan = fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK | FAN_REPORT_DFID_NAME | FAN_UNLIMITED_QUEUE,
                                O_RDONLY | O_LARGEFILE | O_CLOEXEC);
  if (fan < 0) {
    return absl::UnavailableError(absl::StrCat("fanotify_init: ", strerror(errno),
                                               errno == EPERM ? " (needs CAP_SYS_ADMIN)" : "",
                                               errno == EINVAL ? " (directory-entry events need Linux 5.9)" : ""));
  }
  if (fanotify_mark(fan, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, kFanMask, AT_FDCWD, root.c_str()) != 0) {
    const int err = errno;
    close(fan);
    return absl::UnavailableError(absl::StrCat("fanotify_mark ", root, ": ", strerror(err)));
  }
  char real[PATH_MAX];
  if (realpath(root.c_str(), real) == nullptr) {
    close(fan);
    return absl::UnavailableError(absl::StrCat("realpath ", root, ": ", strerror(errno)));
  }
  const int mount_fd = open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  const int root_fd = open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (mount_fd < 0 || root_fd < 0) {
    const int err = errno;
    close(fan);
    if (mount_fd >= 0) close(mount_fd);
    if (root_fd >= 0) close(root_fd);
    return absl::UnavailableError(absl::StrCat("open ", root, ": ", strerror(err)));
  }
  auto w = std::make_unique<FanotifyWatcher>(root, root_fd, fan, mount_fd, real);
  w->Begin(std::move(on_events));
  return std::unique_ptr<Watcher>(std::move(w));
}

}  // namespace watcher_internal
}  // namespace converge::engine
