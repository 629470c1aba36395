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

// An unnamed file (O_TMPFILE, the applier's temps) is reported under the name "#<inode>",
// which no lookup finds.
bool UnnamedFileName(const std::string& name) {
  return name.size() > 1 && name[0] == '#' && name.find_first_not_of("0123456789", 1) == std::string::npos;
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
  const int root_fd = open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) {
    close(fd);
    close(stop);
    return absl::UnavailableError(absl::StrCat("open ", root, ": ", strerror(errno)));
  }
  std::unique_ptr<Watcher> w(new Watcher(root, root_fd, fd, stop, std::move(on_events)));
  {
    absl::MutexLock lock(&w->mu_);
    w->AddTree("", nullptr);
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
  close(root_fd_);
}

void Watcher::AddTree(const std::string& rel, std::vector<std::string>* found) {
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
      std::string path = dir.empty() ? name : absl::StrCat(dir, "/", name);
      if (found != nullptr) found->push_back(path);
      if (e->d_type == DT_DIR) todo.push_back(std::move(path));
    }
    closedir(d);
  }
}

void Watcher::Run() {
  struct pollfd fds[2] = {{fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
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

void Watcher::Drain() {
  alignas(struct inotify_event) char buf[64 * 1024];
  absl::MutexLock lock(&mu_);
  bool overflow = false;
  // In arrival order, one entry per path (its latest state).
  std::vector<PathEvent> events;
  absl::flat_hash_map<std::string, size_t> slot;
  absl::flat_hash_map<std::string, bool> unnamed;  // "#<inode>" path -> nothing there by that name
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
      // Writes to an unnamed temp file (it arrives by a rename of its own); a real file of such
      // a name is there to stat.
      if (!(ev->mask & (IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE)) && UnnamedFileName(name)) {
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
        for (const std::string& f : found) report(f);
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
