#include "engine/watcher.h"

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
#include "common/logging.h"
#include "engine/local_filesystem.h"

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

absl::StatusOr<std::unique_ptr<Watcher>> Watcher::Start(const std::string& root,
                                                        std::function<void()> on_change) {
  int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("inotify_init1: ", strerror(errno)));
  int stop = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop < 0) {
    close(fd);
    return absl::UnavailableError(absl::StrCat("eventfd: ", strerror(errno)));
  }
  std::unique_ptr<Watcher> w(new Watcher(root, fd, stop, std::move(on_change)));
  w->AddTree("");
  if (w->by_wd_.empty()) return absl::UnavailableError("cannot watch " + root);
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
  alignas(struct inotify_event) char buf[64 * 1024];
  struct pollfd fds[2] = {{fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
  while (true) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      Log()->error("poll: {}", strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    bool changed = false;
    while (true) {
      const ssize_t n = read(fd_, buf, sizeof(buf));
      if (n <= 0) break;
      for (char* p = buf; p < buf + n;) {
        auto* ev = reinterpret_cast<struct inotify_event*>(p);
        p += sizeof(struct inotify_event) + ev->len;
        if (ev->mask & IN_Q_OVERFLOW) {
          Log()->warn("inotify queue overflowed: rescanning");
          changed = true;
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
        if ((ev->mask & IN_ISDIR) && (ev->mask & (IN_CREATE | IN_MOVED_TO)) && !name.empty()) {
          AddTree(dir->second.empty() ? name : absl::StrCat(dir->second, "/", name));
        }
        changed = true;
      }
    }
    if (changed) on_change_();
  }
}

}  // namespace converge::engine
