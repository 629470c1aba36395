// FuseMount: serves an OnDemandView to the kernel through libfuse3, at the folder's own path, so
// every program sees the namespace's files there. The engine's state directory, which the mount
// hides, shows through read-only at .converge (the CLI reads status.json there).
//
// Programs' changes to the namespace's files (writes, new files and directories, symlinks,
// deletions, moves, modes, mtimes) go to LocalEdits, which keeps them until the store has them;
// hard links are refused (EPERM). Without LocalEdits the mount is read-only (EROFS). A read of
// a file whose chunks are not cached and cannot be fetched fails with EIO (the view's status
// names the file).
//
//   absl::StatusOr<std::unique_ptr<FuseMount>> m = FuseMount::Mount(&view, &edits, folder, state_fd);
//   ...
//   m->reset();  // unmounts, waits for the requests being served
//
// A mount left by a process killed with its mount busy ("transport endpoint is not connected")
// is detached before mounting again.
#ifndef CONVERGE_ENGINE_ONDEMAND_FUSE_MOUNT_H_
#define CONVERGE_ENGINE_ONDEMAND_FUSE_MOUNT_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "engine/ondemand/local_edits.h"
#include "engine/ondemand/on_demand_view.h"

struct fuse;

namespace converge::engine {

class FuseMount {
 public:
  // DetachStale detaches a mount a killed engine left at `mountpoint` (its stat fails with
  // ENOTCONN); OK when there is none.
  static absl::Status DetachStale(const std::string& mountpoint);
  // Mount serves `view` at `mountpoint` (an existing directory) until destruction. `state_fd`
  // (a directory, kept open by the caller) is shown at .converge; -1: not shown.
  // `edits` (null: read-only) takes the writes.
  static absl::StatusOr<std::unique_ptr<FuseMount>> Mount(OnDemandView* view, LocalEdits* edits,
                                                           const std::string& mountpoint, int state_fd);
  ~FuseMount();
  FuseMount(const FuseMount&) = delete;
  FuseMount& operator=(const FuseMount&) = delete;

  struct Context;

 private:
  FuseMount() = default;
  std::unique_ptr<Context> context_;
  struct fuse* fuse_ = nullptr;
  std::thread loop_;
};

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_ONDEMAND_FUSE_MOUNT_H_
