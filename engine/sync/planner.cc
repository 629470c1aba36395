#include "engine/sync/planner.h"

#include "common/base/status_macros.h"
#include "engine/sync/scanner.h"

namespace converge::engine {

const char* ActionName(Action a) {
  switch (a) {
    case Action::kSkip: return "skip";
    case Action::kRecord: return "record";
    case Action::kSetMetadata: return "set-metadata";
    case Action::kReplace: return "replace";
    case Action::kWrite: return "write";
    case Action::kMakeDir: return "mkdir";
    case Action::kRemove: return "remove";
    case Action::kKeepLocal: return "keep-local";
    case Action::kConflictThenWrite: return "conflict+write";
    case Action::kConflictThenMakeDir: return "conflict+mkdir";
  }
  return "?";
}

absl::StatusOr<Action> Plan(const FileVersion& remote, const std::optional<IndexEntry>& entry,
                            const LocalStat& local, const LocalHash& local_hash, bool local_wins) {
  if (entry.has_value() && entry->version.seq >= remote.seq) return Action::kSkip;

  std::optional<Digest> hash;
  auto local_digest = [&]() -> absl::StatusOr<Digest> {
    if (!hash.has_value()) {
      CONVERGE_ASSIGN_OR_RETURN(Digest d, local_hash());
      hash = d;
    }
    return *hash;
  };
  // Is the local entry still what was last synced at this path?
  auto unchanged = [&]() -> absl::StatusOr<bool> {
    const bool live = entry.has_value() && !entry->version.deleted;
    if (!live) return !local.exists;
    if (!local.exists || local.kind != entry->version.kind) return false;
    if (local.kind == FileKind::kDirectory) return true;
    if (entry->local.Same(local) && Trusted(*entry)) return true;
    CONVERGE_ASSIGN_OR_RETURN(Digest d, local_digest());
    return d == entry->version.content_sha256;
  };

  if (remote.deleted) {
    if (!local.exists) return Action::kRecord;
    CONVERGE_ASSIGN_OR_RETURN(bool same, unchanged());
    return same ? Action::kRemove : Action::kKeepLocal;
  }
  // local_wins (this device's own commit, or a re-sync after the store lost newer versions): an
  // entry the index has and the folder no longer has was deleted here after that version.
  const bool deleted_here = !local.exists && local_wins && entry.has_value() && !entry->version.deleted;
  if (deleted_here) return Action::kKeepLocal;
  if (remote.kind == FileKind::kDirectory) {
    if (!local.exists) return Action::kMakeDir;
    if (local.kind == FileKind::kDirectory) return Action::kRecord;
    // A file or symlink here: replaced by a directory elsewhere, or changed here too.
    CONVERGE_ASSIGN_OR_RETURN(bool same, unchanged());
    if (same) return Action::kReplace;
    return local_wins ? Action::kKeepLocal : Action::kConflictThenMakeDir;
  }
  if (!local.exists) return Action::kWrite;  // new here, or deleted here: an edit beats a delete
  CONVERGE_ASSIGN_OR_RETURN(bool same, unchanged());
  if (local.kind == FileKind::kDirectory || local.kind != remote.kind) {
    // A type change made elsewhere replaces what was synced here; one made here too conflicts.
    if (same) return Action::kReplace;
    if (local.kind == FileKind::kDirectory) return local_wins ? Action::kKeepLocal : Action::kConflictThenWrite;
  } else if (same) {
    const bool content_kept = remote.kind == FileKind::kFile && entry->version.kind == FileKind::kFile &&
                              entry->version.content_sha256 == remote.content_sha256;
    return content_kept ? Action::kSetMetadata : Action::kWrite;
  }
  CONVERGE_ASSIGN_OR_RETURN(Digest d, local_digest());
  if (d == remote.content_sha256 && local.kind == remote.kind) {
    // The content is here already. A local mode or mtime newer than this device's own version
    // stays (it is uploaded); otherwise the remote version's are taken.
    const bool meta_differs = remote.kind == FileKind::kFile &&
                              ((local.mode & 0777) != (remote.mode & 0777) || local.mtime_ns != remote.mtime_ns);
    // The local extended attributes are not read here: a version with some sets them (its own
    // older version's never replace what is here).
    if (!meta_differs) return !remote.xattrs.empty() && !local_wins ? Action::kSetMetadata : Action::kRecord;
    return local_wins ? Action::kKeepLocal : Action::kSetMetadata;
  }
  return local_wins ? Action::kKeepLocal : Action::kConflictThenWrite;
}

}  // namespace converge::engine
