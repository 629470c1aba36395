#include "services/management/folder_view.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/model/path.h"

namespace converge::management {

absl::Status FolderView::CheckBrowsable(const std::string& ns) {
  CONVERGE_ASSIGN_OR_RETURN(Namespace n, registry_->GetNamespace(ns));
  if (n.encrypted) {
    return absl::FailedPreconditionError(absl::StrCat(
        "namespace '", ns, "' is end-to-end encrypted: the servers hold no names to show (browse it on a device)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<FolderListing> FolderView::Folder(const std::string& ns, const std::string& folder,
                                                 std::optional<absl::Time> at, bool include_deleted, size_t limit) {
  if (!folder.empty()) CONVERGE_RETURN_IF_ERROR(ValidateRelativePath(folder));
  CONVERGE_RETURN_IF_ERROR(CheckBrowsable(ns));
  if (limit == 0 || limit > kMaxFolderEntries) limit = kMaxFolderEntries;
  const std::string prefix = folder.empty() ? "" : absl::StrCat(folder, "/");
  const int64_t at_ms = absl::ToUnixMillis(at.value_or(registry_->clock()->Now() + absl::Hours(24)));
  FolderListing out;
  std::map<std::string, FolderEntry> kept;  // the first `limit` names
  auto keep = [&](FolderEntry e) {
    auto it = kept.find(e.name);
    if (it != kept.end()) {
      if (e.seq != 0) it->second = std::move(e);  // the folder's own version over one inferred
      return;
    }
    if (kept.size() >= limit) {
      out.truncated = true;
      if (e.name > kept.rbegin()->first) return;
      kept.erase(std::prev(kept.end()));
    }
    kept.emplace(e.name, std::move(e));
  };
  CONVERGE_ASSIGN_OR_RETURN(out.head_seq, store_->FilesAt(ns, at_ms, prefix, [&](const FileVersion& v) {
    if (v.path.size() <= prefix.size() || v.path.compare(0, prefix.size(), prefix) != 0) return true;
    if (v.deleted && !include_deleted) return true;
    const std::string rest = v.path.substr(prefix.size());
    const size_t slash = rest.find('/');
    FolderEntry e;
    if (slash == std::string::npos) {
      e = FolderEntry{rest, v.kind, v.size, v.mtime_ns, v.seq, v.deleted, v.origin_device};
    } else {
      e.name = rest.substr(0, slash);  // something inside a folder: the folder is there
      e.kind = FileKind::kDirectory;
    }
    keep(std::move(e));
    return true;
  }));
  for (auto& [name, e] : kept) out.entries.push_back(std::move(e));
  return out;
}

absl::StatusOr<std::vector<HistoryVersion>> FolderView::Versions(const std::string& ns, const std::string& path,
                                                                 uint32_t limit) {
  CONVERGE_RETURN_IF_ERROR(ValidateRelativePath(path));
  CONVERGE_RETURN_IF_ERROR(CheckBrowsable(ns));
  if (limit == 0 || limit > kMaxVersionsShown) limit = kMaxVersionsShown;
  return store_->Versions(ns, path, limit);
}

absl::StatusOr<uint64_t> FolderView::Restore(const std::string& ns, const std::string& path, uint64_t seq) {
  CONVERGE_RETURN_IF_ERROR(ValidateRelativePath(path));
  CONVERGE_RETURN_IF_ERROR(CheckBrowsable(ns));
  if (seq == 0) return absl::InvalidArgumentError("name the version (its seq) to restore");
  return store_->Restore(ns, path, seq);
}

absl::StatusOr<uint64_t> FolderView::KeepConflictSide(const std::string& ns, const std::string& copy_path,
                                                      bool keep_copy) {
  CONVERGE_RETURN_IF_ERROR(ValidateRelativePath(copy_path));
  CONVERGE_RETURN_IF_ERROR(CheckBrowsable(ns));
  return store_->KeepConflictSide(ns, copy_path, keep_copy);
}

absl::Status FolderView::Read(const std::string& ns, const std::string& path, uint64_t seq,
                              const std::function<bool(uint64_t size, const std::string& bytes)>& fn) {
  CONVERGE_RETURN_IF_ERROR(ValidateRelativePath(path));
  CONVERGE_RETURN_IF_ERROR(CheckBrowsable(ns));
  return store_->ReadVersion(ns, path, seq, fn);
}

}  // namespace converge::management
