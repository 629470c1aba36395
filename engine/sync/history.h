// FolderHistory: what a user does with a folder's past, over the store's history: list the
// versions of a path, restore one path (to a version, or as of a time) or the whole folder as
// of a time, list conflict copies and mark them resolved. Restoring is a commit on top of the
// current versions (every device applies it; what it replaces stays in history). Knows no gRPC.
//
// Thread-safe if the StoreClient is.
#ifndef CONVERGE_ENGINE_SYNC_HISTORY_H_
#define CONVERGE_ENGINE_SYNC_HISTORY_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/sync/store_client.h"

namespace converge::engine {

struct RestoreResult {
  std::vector<uint64_t> commits;
  uint64_t restored = 0;  // paths given an older version back (or re-created)
  uint64_t deleted = 0;   // paths that did not exist then (kept in history)
};

class FolderHistory {
 public:
  // `new_file_id` makes ids for directories a restore re-creates.
  FolderHistory(StoreClient* store, std::function<std::string()> new_file_id)
      : store_(store), new_file_id_(std::move(new_file_id)) {}

  absl::StatusOr<std::vector<HistoryVersion>> Versions(const std::string& path, uint32_t limit);

  // RestorePath makes `path` what it was at version `seq` (or, with no seq, at time `at`):
  // NotFound if no kept version matches, FailedPrecondition if that is the current version.
  // Deleted parent directories come back with it.
  absl::StatusOr<RestoreResult> RestorePath(const std::string& path, std::optional<uint64_t> seq, absl::Time at);

  // RestoreFolder makes the whole folder what it was at `at`: older versions back, deleted
  // files back, files made since deleted. In commits of at most `max_files_per_commit`.
  absl::StatusOr<RestoreResult> RestoreFolder(absl::Time at, size_t max_files_per_commit = 1000);

  absl::StatusOr<std::vector<ConflictRecord>> Conflicts(bool include_resolved) {
    return store_->ListConflicts(include_resolved);
  }
  absl::StatusOr<ConflictRecord> Resolve(const std::string& copy_path) { return store_->ResolveConflict(copy_path); }

 private:
  // Restored returns `then` as a change on top of `now` (absent: the path is not in the table).
  static FileVersion Restored(const FileVersion& then, const std::optional<FileVersion>& now);

  StoreClient* const store_;
  const std::function<std::string()> new_file_id_;
};

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_SYNC_HISTORY_H_
