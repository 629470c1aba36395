#include "engine/sync/history.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/model/path.h"

namespace converge::engine {
namespace {

// Same reports whether two versions have the same kind, content and mode (what a restore
// would change).
bool Same(const FileVersion& a, const FileVersion& b) {
  if (a.deleted || b.deleted) return a.deleted == b.deleted;
  return a.kind == b.kind && (a.kind == FileKind::kDirectory ||
                              (a.content_sha256 == b.content_sha256 && (a.mode & 0777) == (b.mode & 0777)));
}

}  // namespace

absl::StatusOr<std::vector<HistoryVersion>> FolderHistory::Versions(const std::string& path, uint32_t limit) {
  CONVERGE_RETURN_IF_ERROR(ValidateRelativePath(path));
  return store_->ListVersions(path, limit);
}

FileVersion FolderHistory::Restored(const FileVersion& then, const std::optional<FileVersion>& now) {
  FileVersion v = then;
  v.seq = 0;
  v.origin_device.clear();
  v.base_seq = now.has_value() ? now->seq : 0;
  if (then.deleted && now.has_value()) {
    v = FileVersion{};
    v.file_id = now->file_id;
    v.path = now->path;
    v.kind = now->kind;
    v.deleted = true;
    v.base_seq = now->seq;
  }
  return v;
}

absl::StatusOr<RestoreResult> FolderHistory::RestorePath(const std::string& path, std::optional<uint64_t> seq,
                                                         absl::Time at) {
  CONVERGE_ASSIGN_OR_RETURN(std::vector<HistoryVersion> versions, Versions(path, 0));
  if (versions.empty()) return absl::NotFoundError(absl::StrCat("no kept version of '", path, "'"));
  const HistoryVersion* target = nullptr;
  for (const HistoryVersion& v : versions) {  // newest first
    if (seq.has_value() ? v.version.seq == *seq : v.committed_at_unix_ms <= absl::ToUnixMillis(at)) {
      target = &v;
      break;
    }
  }
  if (target == nullptr) {
    return absl::NotFoundError(seq.has_value() ? absl::StrCat("'", path, "' has no kept version ", *seq)
                                               : absl::StrCat("'", path, "' did not exist at ", absl::FormatTime(at)));
  }
  const FileVersion& current = versions.front().version;
  if (target->version.seq == current.seq || Same(target->version, current)) {
    return absl::FailedPreconditionError(absl::StrCat("'", path, "' is already as it was at version ",
                                                      target->version.seq));
  }
  std::vector<FileVersion> changes;
  if (!target->version.deleted) {
    // Directories deleted since come back first.
    std::vector<std::string> parents;
    for (absl::string_view p = ParentPath(path); !p.empty(); p = ParentPath(p)) parents.emplace_back(p);
    std::reverse(parents.begin(), parents.end());
    for (const std::string& parent : parents) {
      CONVERGE_ASSIGN_OR_RETURN(std::vector<HistoryVersion> pv, store_->ListVersions(parent, 1));
      if (!pv.empty() && !pv.front().version.deleted) continue;
      FileVersion dir;
      dir.file_id = new_file_id_();
      dir.path = parent;
      dir.kind = FileKind::kDirectory;
      dir.mode = 0755;
      dir.base_seq = pv.empty() ? 0 : pv.front().version.seq;
      changes.push_back(std::move(dir));
    }
  }
  changes.push_back(Restored(target->version, current));
  CONVERGE_ASSIGN_OR_RETURN(uint64_t committed, store_->Commit(changes));
  RestoreResult result;
  result.commits.push_back(committed);
  (target->version.deleted ? result.deleted : result.restored) = 1;
  return result;
}

absl::StatusOr<RestoreResult> FolderHistory::RestoreFolder(absl::Time at, size_t max_files_per_commit) {
  std::map<std::string, FileVersion> then;
  std::map<std::string, FileVersion> now;
  CONVERGE_RETURN_IF_ERROR(
      store_->ListFiles([&](const FileVersion& v) { then[v.path] = v; }, absl::ToUnixMillis(at)).status());
  CONVERGE_RETURN_IF_ERROR(store_->ListFiles([&](const FileVersion& v) { now[v.path] = v; }).status());

  std::vector<FileVersion> creations;  // parents first (path order)
  std::vector<FileVersion> deletions;  // children first
  RestoreResult result;
  for (const auto& [path, v] : then) {
    if (v.deleted) continue;
    auto n = now.find(path);
    std::optional<FileVersion> current;
    if (n != now.end()) current = n->second;
    if (current.has_value() && Same(v, *current)) continue;
    creations.push_back(Restored(v, current));
    ++result.restored;
  }
  for (auto it = now.rbegin(); it != now.rend(); ++it) {
    if (it->second.deleted) continue;
    auto t = then.find(it->first);
    if (t != then.end() && !t->second.deleted) continue;
    FileVersion gone;
    gone.deleted = true;
    deletions.push_back(Restored(gone, it->second));
    ++result.deleted;
  }
  auto commit_all = [&](const std::vector<FileVersion>& changes) -> absl::Status {
    for (size_t start = 0; start < changes.size(); start += max_files_per_commit) {
      std::vector<FileVersion> part(changes.begin() + start,
                                    changes.begin() + std::min(changes.size(), start + max_files_per_commit));
      CONVERGE_ASSIGN_OR_RETURN(uint64_t seq, store_->Commit(part));
      result.commits.push_back(seq);
    }
    return absl::OkStatus();
  };
  CONVERGE_RETURN_IF_ERROR(commit_all(creations));
  CONVERGE_RETURN_IF_ERROR(commit_all(deletions));
  return result;
}

}  // namespace converge::engine
