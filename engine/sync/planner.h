// Planner: decides what applying one remote version means for the local folder. Pure: it looks
// at the remote version, the index entry and the local stat (and, only when it must, the local
// content's hash through a callback) and returns an action.
#ifndef CONVERGE_ENGINE_SYNC_PLANNER_H_
#define CONVERGE_ENGINE_SYNC_PLANNER_H_

#include <functional>
#include <optional>

#include "absl/status/statusor.h"
#include "common/model/model.h"
#include "engine/sync/local_index.h"

namespace converge::engine {

enum class Action {
  kSkip,                 // the index already has this version or a newer one
  kRecord,               // the folder already matches: update the index only
  kSetMetadata,          // the content is here already: set the remote version's mode and mtime
  kWrite,                // write the remote file (new, or replacing an unchanged local one)
  kReplace,              // another type elsewhere (file, directory, symlink): remove the
                         // unchanged local entry (an empty directory), then write or make it
  kMakeDir,              // create the remote directory
  kRemove,               // delete the unchanged local entry
  kKeepLocal,            // remote deleted what was edited here (or, local_wins, holds an older
                         // version): the local file wins, it is uploaded again
  kConflictThenWrite,    // keep the local edit as a conflict copy, then write the remote file
  kConflictThenMakeDir,  // move the local file aside as a conflict copy, then create the dir
};

const char* ActionName(Action a);

// LocalHash returns the SHA-256 of the local file's content (called at most once per plan).
using LocalHash = std::function<absl::StatusOr<Digest>()>;

// Plan decides; errors come only from `local_hash`. `local_wins`: the store lost versions newer
// than this device's (it was restored from an older backup): a local file that differs from the
// remote one is the newer version (kKeepLocal: uploaded as an edit of it), not a conflict, and
// a synced entry gone from the folder was deleted since (kKeepLocal: the deletion is uploaded).
// The applier also sets it for this device's own commits (a later local edit or deletion is
// newer than them).
absl::StatusOr<Action> Plan(const FileVersion& remote, const std::optional<IndexEntry>& entry,
                            const LocalStat& local, const LocalHash& local_hash, bool local_wins = false);

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_SYNC_PLANNER_H_
