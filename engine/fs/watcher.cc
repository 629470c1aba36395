#include "engine/fs/watcher.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
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

}  // namespace

absl::StatusOr<std::unique_ptr<Watcher>> Watcher::Start(const std::string& root, OnEvents on_events) {
  int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("inotify_init1: ", strerror(errno)));
  int stop = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop < 0) {
    close(fd);
    return absl::UnavailableError(absl::StrCat("eventfd: ", strerror(errno)));
  }
  std::unique_ptr<Watcher> w(new Watcher(root, fd, stop, std::move(on_events)));
  {
    absl::MutexLock lock(&w->mu_);
    w->AddTree("");
    if (w->by_wd_.empty()) return absl::UnavailableError("cannot watch " + root);
  }
  Watcher* raw = w.get();
  w->thread_ = std::thread([raw] { raw->Run(); });
  return w;
}

Watcher::~Watcher() {
  const uint64_t one = 1;
  if (write(stop_fd_, &one, sizeof(one)) < 0) Log()->warn("stop watcher: {}", strerror(errno));
  if (thread_.joinable()) thread_.join();
  close(fd_);
  close(stop_fd_);
}

void Watcher::AddTree(const std::string& rel) {
  std::vector<std::string> todo = {rel};
  while (!todo.empty()) {
    const std::string dir = todo.back();
    todo.pop_back();
    const std::string abs = dir.empty() ? root_ : absl::StrCat(root_, "/", dir);
    const int wd = inotify_add_watch(fd_, abs.c_str(), kMask);
    if (wd < 0) {
      if (errno == ENOSPC) Log()->warn("inotify watch limit reached at {}: the periodic scan covers the rest", abs);
      continue;
    }
    by_wd_[wd] = dir;
    DIR* d = opendir(abs.c_str());
    if (d == nullptr) continue;
    while (struct dirent* e = readdir(d)) {
      const std::string name = e->d_name;
      if (name == "." || name == ".." || (dir.empty() && name == kStateDirName)) continue;
      if (e->d_type == DT_DIR) todo.push_back(dir.empty() ? name : absl::StrCat(dir, "/", name));
    }
    closedir(d);
  }
}

void Watcher::Run() {
  struct pollfd fds[2] = {{fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
  while (true) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      Log()->error("poll: {}", strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    Drain();
  }
}

void Watcher::Flush() { Drain(); }

void Watcher::Drain() {
  alignas(struct inotify_event) char buf[64 * 1024];
  absl::MutexLock lock(&mu_);
  bool overflow = false;
  // In arrival order, one entry per path (its latest state).
  std::vector<PathEvent> events;
  absl::flat_hash_map<std::string, size_t> slot;
  auto report = [&](const std::string& path) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto [it, inserted] = slot.emplace(path, events.size());
    if (inserted) events.push_back(PathEvent{path, false});
    events[it->second].writing = writing_.contains(path);
  };
  while (true) {
    const ssize_t n = read(fd_, buf, sizeof(buf));
    if (n <= 0) break;
    for (char* p = buf; p < buf + n;) {
      auto* ev = reinterpret_cast<struct inotify_event*>(p);
      p += sizeof(struct inotify_event) + ev->len;
      if (ev->mask & IN_Q_OVERFLOW) {
        Log()->warn("inotify queue overflowed: rescanning");
        overflow = true;
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
        if (!dir->second.empty()) report(dir->second);
        continue;
      }
      const std::string path = dir->second.empty() ? name : absl::StrCat(dir->second, "/", name);
      const bool is_dir = (ev->mask & IN_ISDIR) != 0;
      if (is_dir && (ev->mask & (IN_CREATE | IN_MOVED_TO))) {
        AddTree(path);  // a moved directory keeps its watches: this renames them
      }
      if (!is_dir) {
        if (ev->mask & (IN_MODIFY | IN_CREATE)) writing_.insert(path);
        if (ev->mask & (IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO)) writing_.erase(path);
      }
      report(path);
    }
  }
  if (overflow) writing_.clear();
  // Reported under the lock: a Flush and the thread never deliver out of order.
  if (overflow || !events.empty()) on_events_(std::move(events), overflow);
}

}  // namespace converge::engine
