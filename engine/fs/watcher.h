// Watcher: inotify on a whole folder tree. It reports which paths changed (the scanner finds out
// how) and whether each is still being written (modified or created and not yet closed after
// writing), so the engine can wait for the writer to finish. A queue overflow reports
// `overflow` (the engine then scans everything). New directories are watched as they appear
// (and renamed ones under their new name); the engine's state dir is not watched.
//
// Thread-safe. Owns one thread from Start until destruction.
#ifndef CONVERGE_ENGINE_FS_WATCHER_H_
#define CONVERGE_ENGINE_FS_WATCHER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace converge::engine {

struct PathEvent {
  std::string path;  // relative to the root
  bool writing = false;
};

class Watcher {
 public:
  using OnEvents = std::function<void(std::vector<PathEvent> events, bool overflow)>;

  // Start watches `root` and every directory below it. Returns Unavailable if inotify cannot be
  // set up (the engine then relies on its periodic scan).
  static absl::StatusOr<std::unique_ptr<Watcher>> Start(const std::string& root, OnEvents on_events);
  ~Watcher();

  // Flush delivers, before it returns, every event the kernel has queued so far (the engine
  // calls it before pulling, so a move made here is known even if this thread has not run yet).
  void Flush();

  size_t watched_directories() const {
    absl::MutexLock lock(&mu_);
    return by_wd_.size();
  }

 private:
  Watcher(std::string root, int root_fd, int inotify_fd, int stop_fd, OnEvents on_events)
      : root_(std::move(root)), root_fd_(root_fd), fd_(inotify_fd), stop_fd_(stop_fd), on_events_(std::move(on_events)) {}
  // AddTree watches directory `rel` ("" = root) and everything below it; `found`, if given,
  // gets every entry below it.
  void AddTree(const std::string& rel, std::vector<std::string>* found) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Run();
  // Drain reads and reports whatever is queued; returns at once if nothing is.
  void Drain() ABSL_LOCKS_EXCLUDED(mu_);

  const std::string root_;
  const int root_fd_;  // O_PATH
  const int fd_;
  const int stop_fd_;  // eventfd: written to stop the thread
  const OnEvents on_events_;
  // Held while events are read and reported (by the thread or Flush), so they stay in order.
  mutable absl::Mutex mu_;
  absl::flat_hash_map<int, std::string> by_wd_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> writing_ ABSL_GUARDED_BY(mu_);  // modified or created, not yet closed
  std::thread thread_;
};

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_FS_WATCHER_H_
