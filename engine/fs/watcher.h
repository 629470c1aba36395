// Watcher: reports which paths of a folder tree changed (the scanner finds out how) and whether
// each is still being written (modified or created and not yet closed after writing), so the
// engine can wait for the writer to finish. A lost event (a queue overflow) reports `overflow`
// (the engine then scans everything). The engine's state dir is not reported.
//
// Two mechanisms, chosen by Start:
//   fanotify  one mark on the folder's whole filesystem with directory-entry events
//             (FAN_REPORT_DFID_NAME, Linux 5.9+, CAP_SYS_ADMIN): no watch per directory, so a
//             folder of any number of directories is covered; events elsewhere on that
//             filesystem are read and dropped.
//   inotify   a watch per directory, added as directories appear (and renamed ones followed);
//             past the kernel's max_user_watches the rest is left to the periodic scan.
// Describe says which one runs and what it cannot see (the engine's status shows it).
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
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace converge::engine {

struct PathEvent {
  std::string path;  // relative to the root
  bool writing = false;
};

class Watcher {
 public:
  using OnEvents = std::function<void(std::vector<PathEvent> events, bool overflow)>;
  enum class Backend { kAuto, kFanotify, kInotify };

  // Start watches `root` and everything below it with `backend` (kAuto: fanotify where this
  // process may use it, else inotify). Returns Unavailable if the mechanism cannot be set up
  // (for kAuto: neither; the engine then relies on its periodic scan).
  static absl::StatusOr<std::unique_ptr<Watcher>> Start(const std::string& root, OnEvents on_events,
                                                        Backend backend = Backend::kAuto);
  virtual ~Watcher();

  // Flush delivers, before it returns, every event the kernel has queued so far (the engine
  // calls it before pulling, so a move made here is known even if this thread has not run yet).
  void Flush();

  virtual Backend backend() const = 0;
  // Describe: which mechanism watches the folder and what it cannot see, in one line.
  virtual std::string Describe() const = 0;

 protected:
  // One read's reports: in arrival order, one entry per path (its latest state).
  struct Batch {
    std::vector<PathEvent> events;
    absl::flat_hash_map<std::string, size_t> slot;
    bool overflow = false;
  };

  Watcher(std::string root, int root_fd, int queue_fd)
      : root_(std::move(root)), root_fd_(root_fd), queue_fd_(queue_fd) {}
  // Run starts the thread (once the subclass is ready).
  void Run(OnEvents on_events);
  // Stop ends the thread; every subclass's destructor calls it before its members go.
  void Stop();
  // ReadQueue reads the queued events into `batch` with Report and NoteFile; it returns when
  // none is left.
  virtual void ReadQueue(Batch* batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) = 0;
  // NoteFile tracks whether the file at `path` is being written: `written` (created or
  // modified) starts it, `done` (closed after writing, deleted, moved) ends it.
  void NoteFile(const std::string& path, bool written, bool done) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Report(Batch* batch, const std::string& path) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string root_;
  const int root_fd_;   // O_PATH
  const int queue_fd_;  // the inotify or fanotify descriptor
  // Held while events are read and reported (by the thread or Flush), so they stay in order.
  mutable absl::Mutex mu_;

 private:
  void Loop();
  // Drain reads and reports whatever is queued; returns at once if nothing is.
  void Drain() ABSL_LOCKS_EXCLUDED(mu_);

  int stop_fd_ = -1;  // eventfd: written to stop the thread
  OnEvents on_events_;
  absl::flat_hash_set<std::string> writing_ ABSL_GUARDED_BY(mu_);  // modified or created, not yet closed
  std::thread thread_;
};

namespace watcher_internal {
// The mechanisms behind Start (fanotify_watcher.cc, watcher.cc).
absl::StatusOr<std::unique_ptr<Watcher>> StartFanotify(const std::string& root, Watcher::OnEvents on_events);
absl::StatusOr<std::unique_ptr<Watcher>> StartInotify(const std::string& root, Watcher::OnEvents on_events);
// An unnamed file (O_TMPFILE, the applier's temps) is reported under the name "#<inode>",
// which no lookup finds.
bool UnnamedFileName(absl::string_view name);
}  // namespace watcher_internal

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_FS_WATCHER_H_
