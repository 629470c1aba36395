// FolderView: a namespace's tree as people browse it (the web console): the entries directly in
// one folder, as of now or as of a time, one path's kept versions and restoring one of them — read from the store's
// file table and history (DataPlane::FilesAt, Versions). Logic only; knows no gRPC.
//
// Memory is bounded by the page, not the namespace: the store reads only the folder's part of
// its history and streams it past, and only the first `limit` names of the folder (sorted) are
// kept. A folder's listing still reads every kept version below it (its whole subtree). An end-to-end encrypted namespace cannot be
// browsed here: the store holds no names (FailedPrecondition).
//
// Thread-safe (the registry and the data_plane are).
#ifndef CONVERGE_SERVICES_MANAGEMENT_FOLDER_VIEW_H_
#define CONVERGE_SERVICES_MANAGEMENT_FOLDER_VIEW_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/management/registry.h"

namespace converge::management {

struct FolderEntry {
  std::string name;  // one path component
  FileKind kind = FileKind::kFile;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  uint64_t seq = 0;  // the version shown (0: a folder known only from what is inside it)
  bool deleted = false;
  std::string origin_device;
};

struct FolderListing {
  uint64_t head_seq = 0;
  std::vector<FolderEntry> entries;  // sorted by name
  bool truncated = false;            // more entries than the limit
};

inline constexpr size_t kMaxFolderEntries = 5000;
inline constexpr uint32_t kMaxVersionsShown = 200;

class FolderView {
 public:
  FolderView(Registry* registry, DataPlane* store) : registry_(registry), store_(store) {}

  // Folder lists `folder` ("" for the top; a validated relative path otherwise) of `ns` as of
  // `at` (now if absent); deleted entries too if `include_deleted`. At most `limit` entries
  // (kMaxFolderEntries if 0 or more).
  absl::StatusOr<FolderListing> Folder(const std::string& ns, const std::string& folder, std::optional<absl::Time> at,
                                       bool include_deleted, size_t limit);
  // Versions of `path`, newest first (at most `limit`, kMaxVersionsShown if 0 or more).
  absl::StatusOr<std::vector<HistoryVersion>> Versions(const std::string& ns, const std::string& path, uint32_t limit);
  // Restore brings kept version `seq` of `path` back as a new commit every device applies (what
  // it replaces stays in history). Returns the commit's seq.
  absl::StatusOr<uint64_t> Restore(const std::string& ns, const std::string& path, uint64_t seq);
  // KeepConflictSide settles conflict copy `copy_path`: kept as the file (`keep_copy`) or dropped.
  absl::StatusOr<uint64_t> KeepConflictSide(const std::string& ns, const std::string& copy_path, bool keep_copy);
  // Read streams kept file version `seq` of `path` to `fn` (DataPlane::ReadVersion).
  absl::Status Read(const std::string& ns, const std::string& path, uint64_t seq,
                    const std::function<bool(uint64_t size, const std::string& bytes)>& fn);

 private:
  absl::Status CheckBrowsable(const std::string& ns);

  Registry* const registry_;
  DataPlane* const store_;
};

}  // namespace converge::management

#endif  // CONVERGE_SERVICES_MANAGEMENT_FOLDER_VIEW_H_
