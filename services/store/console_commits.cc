// The commits people make from the web console, through management: bringing a kept version
// back, and settling a conflict by keeping one of its two files. Both are ordinary commits on
// top of the current versions (every device applies them; what they replace stays in history),
// made as origin kConsoleOrigin.
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "services/store/commit_log.h"

namespace converge::store {
namespace {

// Newest: the current version of `path` (the newest in its history).
absl::StatusOr<FileVersion> Newest(CommitLog* log, const std::string& ns, const std::string& path) {
  CONVERGE_ASSIGN_OR_RETURN(std::vector<HistoryVersion> versions, log->Versions(ns, path, 1));
  if (versions.empty()) return absl::NotFoundError(absl::StrCat("no kept version of '", path, "'"));
  return std::move(versions.front().version);
}

FileVersion Deletion(const FileVersion& now) {
  FileVersion v;
  v.file_id = now.file_id;
  v.path = now.path;
  v.kind = now.kind;
  v.deleted = true;
  v.base_seq = now.seq;
  return v;
}

absl::Status CheckPlain(CommitLog* log, const std::string& ns) {
  CONVERGE_ASSIGN_OR_RETURN(CommitLog::Sealing sealing, log->SealingOf(ns));
  if (sealing.encrypted) {
    return absl::FailedPreconditionError("an end-to-end encrypted namespace is changed on its devices only");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Commit> CommitLog::Restore(const std::string& ns, const std::string& path, uint64_t seq) {
  CONVERGE_ASSIGN_OR_RETURN(Sealing sealing, SealingOf(ns));
  if (sealing.encrypted) {
    return absl::FailedPreconditionError("an end-to-end encrypted namespace is restored on its devices");
  }
  CONVERGE_ASSIGN_OR_RETURN(FileVersion now, Newest(this, ns, path));
  if (seq == now.seq) return absl::FailedPreconditionError(absl::StrCat("version ", seq, " is the current one"));
  CONVERGE_ASSIGN_OR_RETURN(HistoryVersion then, VersionAt(ns, path, seq));
  FileVersion v = std::move(then.version);
  if (v.deleted) {
    v = FileVersion{};
    v.file_id = now.file_id;
    v.path = now.path;
    v.kind = now.kind;
    v.deleted = true;
  }
  v.seq = 0;
  v.origin_device.clear();
  v.base_seq = now.seq;
  return Append(ns, kConsoleOrigin, {std::move(v)});
}

absl::StatusOr<Commit> CommitLog::KeepConflictSide(const std::string& ns, const std::string& copy_path, bool keep_copy) {
  CONVERGE_RETURN_IF_ERROR(CheckPlain(this, ns));
  CONVERGE_ASSIGN_OR_RETURN(std::vector<ConflictRecord> open, ListConflicts(ns, false));
  const ConflictRecord* record = nullptr;
  for (const ConflictRecord& r : open) {
    if (r.copy_path == copy_path) record = &r;
  }
  if (record == nullptr) return absl::NotFoundError(absl::StrCat("no open conflict copy '", copy_path, "'"));
  CONVERGE_ASSIGN_OR_RETURN(FileVersion copy, Newest(this, ns, copy_path));
  if (copy.deleted) return absl::FailedPreconditionError(absl::StrCat("'", copy_path, "' is deleted already"));
  std::vector<FileVersion> changes;
  if (keep_copy) {
    // The copy's content goes to the original path, as a new version of that file.
    absl::StatusOr<FileVersion> original = Newest(this, ns, record->original_path);
    FileVersion kept = copy;
    kept.path = record->original_path;
    kept.seq = 0;
    kept.origin_device.clear();
    kept.base_seq = 0;
    if (original.ok()) {
      kept.file_id = original->file_id;
      kept.base_seq = original->seq;
    }
    changes.push_back(std::move(kept));
  }
  changes.push_back(Deletion(copy));  // deleting the copy closes the record
  return Append(ns, kConsoleOrigin, std::move(changes));
}

}  // namespace converge::store
