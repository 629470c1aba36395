// Watcher: inotify on a whole folder tree. It only says "something changed" (the scanner finds
// out what): every relevant event, and a queue overflow, calls on_change. New directories are
// watched as they appear; the engine's state dir is not watched.
//
// Thread-safe. Owns one thread from Start until destruction.
#ifndef CONVERGE_ENGINE_WATCHER_H_
#define CONVERGE_ENGINE_WATCHER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace converge::engine {

class Watcher {
 public:
  // Start watches `root` and every directory below it. Returns Unavailable if inotify cannot be
  // set up (the engine then relies on its periodic scan).
  static absl::StatusOr<std::unique_ptr<Watcher>> Start(const std::string& root,
                                                        std::function<void()> on_change);
  ~Watcher();

  size_t watched_directories() const { return by_wd_.size(); }

 private:
  Watcher(std::string root, int inotify_fd, int stop_fd, std::function<void()> on_change)
      : root_(std::move(root)), fd_(inotify_fd), stop_fd_(stop_fd), on_change_(std::move(on_change)) {}
  // AddTree watches directory `rel` ("" = root) and everything below it.
  void AddTree(const std::string& rel);
  void Run();

  const std::string root_;
  const int fd_;
  const int stop_fd_;  // eventfd: written to stop the thread
  const std::function<void()> on_change_;
  absl::flat_hash_map<int, std::string> by_wd_;  // touched by the watcher thread only after Start
  std::thread thread_;
};

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_WATCHER_H_
