#include "engine/fs/watcher.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/base/logging.h"
#include "engine/fs/local_filesystem.h"

namespace converge::engine {
namespace {

constexpr uint32_t kMask = IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_FROM |
                           IN_MOVED_TO | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR |
                           IN_DONT_FOLLOW | IN_EXCL_UNLINK;

std::shared_ptr<spdlog::logger> Log() {
  static auto log = GetLogger("watcher");
  return log;
}

constexpr absl::Duration kBurstGap = absl::Milliseconds(2);
constexpr absl::Duration kGather = absl::Milliseconds(1);

class InotifyWatcher : public Watcher {
 public:
  InotifyWatcher(std::string root, int root_fd, int inotify_fd) : Watcher(std::move(root), root_fd, inotify_fd) {}
  ~InotifyWatcher() override { Stop(); }

  // Start watches the whole tree, then reads events on the thread.
  absl::Status Begin(OnEvents on_events) {
    {
      absl::MutexLock lock(&mu_);
      AddTree("", nullptr);
      if (by_wd_.empty()) return absl::UnavailableError("cannot watch " + root_);
    }
    Run(std::move(on_events));
    return absl::OkStatus();
  }

  Backend backend() const override { return Backend::kInotify; }

  std::string Describe() const override {
    absl::MutexLock lock(&mu_);
    std::string line = absl::StrCat("inotify, ", by_wd_.size(), " directories watched");
    if (unwatched_ > 0) {
      absl::StrAppend(&line, "; ", unwatched_,
                      " not watched (the kernel's max_user_watches): changes there wait for the periodic scan");
    }
    return line;
  }

 private:
  // AddTree watches directory `rel` ("" = root) and everything below it; `found`, if given,
  // gets every entry below it.
  void AddTree(const std::string& rel, std::vector<std::string>* found) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReadQueue(Batch* batch) override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::flat_hash_map<int, std::string> by_wd_ ABSL_GUARDED_BY(mu_);
  uint64_t unwatched_ ABSL_GUARDED_BY(mu_) = 0;  // directories the watch limit left out
};

void InotifyWatcher::AddTree(const std::string& rel, std::vector<std::string>* found) {
  std::vector<std::string> todo = {rel};
  while (!todo.empty()) {
    const std::string dir = todo.back();
    todo.pop_back();
    const std::string abs = dir.empty() ? root_ : absl::StrCat(root_, "/", dir);
    const int wd = inotify_add_watch(queue_fd_, abs.c_str(), kMask);
    if (wd < 0) {
      if (errno == ENOSPC && unwatched_++ == 0) {
        Log()->warn("inotify watch limit reached at {}: the periodic scan covers the rest", abs);
      }
      continue;
    }
    by_wd_[wd] = dir;
    DIR* d = opendir(abs.c_str());
    if (d == nullptr) continue;
    while (struct dirent* e = readdir(d)) {
      const std::string name = e->d_name;
      if (name == "." || name == ".." || (dir.empty() && name == kStateDirName)) continue;
      std::string path = dir.empty() ? name : absl::StrCat(dir, "/", name);
      if (found != nullptr) found->push_back(path);
      if (e->d_type == DT_DIR) todo.push_back(std::move(path));
    }
    closedir(d);
  }
}

void InotifyWatcher::ReadQueue(Batch* batch) {
  alignas(struct inotify_event) char buf[64 * 1024];
  absl::flat_hash_map<std::string, bool> unnamed;  // "#<inode>" path -> nothing there by that name
  while (true) {
    const ssize_t n = read(queue_fd_, buf, sizeof(buf));
    if (n <= 0) break;
    for (char* p = buf; p < buf + n;) {
      auto* ev = reinterpret_cast<struct inotify_event*>(p);
      p += sizeof(struct inotify_event) + ev->len;
      if (ev->mask & IN_Q_OVERFLOW) {
        Log()->warn("inotify queue overflowed: rescanning");
        batch->overflow = true;
        continue;
      }
      auto dir = by_wd_.find(ev->wd);
      if (ev->mask & IN_IGNORED) {
        if (dir != by_wd_.end()) by_wd_.erase(dir);
        continue;
      }
      if (dir == by_wd_.end()) continue;
      const std::string name = ev->len > 0 ? ev->name : "";
      if (dir->second.empty() && name == kStateDirName) continue;  // the engine's own files
      if (name.empty()) {
        // The watched directory itself was deleted or moved: its parent's watch reports the
        // name; a moved-away root is the scanner's business (RootIntact).
        if (!dir->second.empty()) Report(batch, dir->second);
        continue;
      }
      const std::string path = dir->second.empty() ? name : absl::StrCat(dir->second, "/", name);
      // Writes to an unnamed temp file (it arrives by a rename of its own); a real file of such
      // a name is there to stat.
      if (!(ev->mask & (IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE)) && watcher_internal::UnnamedFileName(name)) {
        auto [it, first] = unnamed.try_emplace(path, false);
        struct stat st;
        if (first) it->second = fstatat(root_fd_, path.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 && errno == ENOENT;
        if (it->second) continue;
      }
      const bool is_dir = (ev->mask & IN_ISDIR) != 0;
      if (is_dir && (ev->mask & IN_MOVED_TO)) {
        AddTree(path, nullptr);  // a moved directory keeps its watches: this renames them
      } else if (is_dir && (ev->mask & IN_CREATE)) {
        // What was made in a new directory before its watch was added has no event of its own:
        // reported with it (then the engine may take the directory as its own install).
        std::vector<std::string> found;
        AddTree(path, &found);
        for (const std::string& f : found) Report(batch, f);
      }
      if (!is_dir) {
        NoteFile(path, (ev->mask & (IN_MODIFY | IN_CREATE)) != 0,
                 (ev->mask & (IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO)) != 0);
      }
      Report(batch, path);
    }
  }
}

}  // namespace

namespace watcher_internal {

bool UnnamedFileName(absl::string_view name) {
  return name.size() > 1 && name[0] == '#' && name.find_first_not_of("0123456789", 1) == absl::string_view::npos;
}

absl::StatusOr<std::unique_ptr<Watcher>> StartInotify(const std::string& root, Watcher::OnEvents on_events) {
  const int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("inotify_init1: ", strerror(errno)));
  const int root_fd = open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) {
    close(fd);
    return absl::UnavailableError(absl::StrCat("open ", root, ": ", strerror(errno)));
  }
  auto w = std::make_unique<InotifyWatcher>(root, root_fd, fd);
  if (absl::Status begun = w->Begin(std::move(on_events)); !begun.ok()) return begun;
  return std::unique_ptr<Watcher>(std::move(w));
}

}  // namespace watcher_internal

absl::StatusOr<std::unique_ptr<Watcher>> Watcher::Start(const std::string& root, OnEvents on_events,
                                                        Backend backend) {
  if (backend == Backend::kInotify) return watcher_internal::StartInotify(root, std::move(on_events));
  absl::StatusOr<std::unique_ptr<Watcher>> fan = watcher_internal::StartFanotify(root, on_events);
  if (fan.ok() || backend == Backend::kFanotify) return fan;
  Log()->info("fanotify cannot watch {} ({}): using inotify", root, fan.status().message());
  return watcher_internal::StartInotify(root, std::move(on_events));
}

Watcher::~Watcher() {
  // Subclasses stopped the thread; the descriptors are the base's to close.
  close(queue_fd_);
  close(root_fd_);
  if (stop_fd_ >= 0) close(stop_fd_);
}

void Watcher::Run(OnEvents on_events) {
  on_events_ = std::move(on_events);
  stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd_ < 0) {
    Log()->error("eventfd: {}: the watcher only reports on Flush", strerror(errno));
    return;
  }
  thread_ = std::thread([this] { Loop(); });
}

void Watcher::Stop() {
  if (!thread_.joinable()) return;
  const uint64_t one = 1;
  if (write(stop_fd_, &one, sizeof(one)) < 0) Log()->warn("stop watcher: {}", strerror(errno));
  thread_.join();
}

void Watcher::Loop() {
  struct pollfd fds[2] = {{queue_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
  absl::Time last_drain = absl::InfinitePast();
  while (true) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      Log()->error("poll: {}", strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    // In a burst (woken again right after the last read), events gather for a moment first:
    // thousands of files written one after another cost a read per millisecond, not per file.
    // The first event after a quiet spell is read at once.
    if (absl::Now() - last_drain < kBurstGap) {
      struct pollfd stop = {stop_fd_, POLLIN, 0};
      if (poll(&stop, 1, static_cast<int>(absl::ToInt64Milliseconds(kGather))) > 0) return;
    }
    Drain();
    last_drain = absl::Now();
  }
}

void Watcher::Flush() { Drain(); }

void Watcher::NoteFile(const std::string& path, bool written, bool done) {
  if (written) writing_.insert(path);
  if (done) writing_.erase(path);
}

void Watcher::Report(Batch* batch, const std::string& path) {
  auto [it, inserted] = batch->slot.emplace(path, batch->events.size());
  if (inserted) batch->events.push_back(PathEvent{path, false});
  batch->events[it->second].writing = writing_.contains(path);
}

void Watcher::Drain() {
  absl::MutexLock lock(&mu_);
  Batch batch;
  ReadQueue(&batch);
  if (batch.overflow) writing_.clear();
  // Reported under the lock: a Flush and the thread never deliver out of order.
  if ((batch.overflow || !batch.events.empty()) && on_events_) on_events_(std::move(batch.events), batch.overflow);
}

}  // namespace converge::engine
