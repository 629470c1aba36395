// History: every version of every path a namespace has had (tombstones too), kept for the
// namespace's history retention, and the conflict copies the store has seen made, open or
// resolved. Both are written in the same WriteBatch as the commit they come from.
//
// Keys (StoreDb's column family):
//   'v' ns '\0' path '\0' seq(8, big-endian) -> committed_at_ms(8) + FileVersion (model.h)
//   'x' ns '\0' copy path                    -> ConflictRecord
//
// Not thread-safe on its own: CommitLog calls it under its lock.
#ifndef CONVERGE_SERVICES_STORE_HISTORY_H_
#define CONVERGE_SERVICES_STORE_HISTORY_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/model/model.h"
#include "common/model/namespace_state.h"
#include "rocksdb/write_batch.h"
#include "services/store/store_db.h"

namespace converge::store {

std::string HistoryPrefix(absl::string_view ns);
std::string HistoryPathPrefix(absl::string_view ns, absl::string_view path);
std::string HistoryKey(absl::string_view ns, absl::string_view path, uint64_t seq);
std::string EncodeHistory(const FileVersion& v, int64_t committed_at_unix_ms);
absl::StatusOr<HistoryVersion> DecodeHistory(absl::string_view bytes);

std::string ConflictPrefix(absl::string_view ns);
std::string ConflictKey(absl::string_view ns, absl::string_view copy_path);
std::string EncodeConflict(const ConflictRecord& r);
absl::StatusOr<ConflictRecord> DecodeConflict(absl::string_view ns, absl::string_view copy_path,
                                              absl::string_view bytes);

// RecordHistory adds every version of `commit` to the history, and opens or resolves conflict
// records for the conflict copies it creates or deletes (`was_live`: paths live before it).
absl::Status RecordHistory(StoreDb* db, const Commit& commit, const std::function<bool(const std::string&)>& was_live,
                           rocksdb::WriteBatch* batch);

// Versions returns the versions of `path`, newest first, at most `limit` (0: all).
absl::StatusOr<std::vector<HistoryVersion>> Versions(StoreDb* db, absl::string_view ns, absl::string_view path,
                                                     size_t limit);

// StateAt calls fn with, for each path the history knows, its version as of `at_unix_ms` (the
// newest committed at or before it; tombstones included), in path order; only paths starting
// with `path_prefix` when given (a seek: the rest of the history is not read).
absl::Status StateAt(StoreDb* db, absl::string_view ns, int64_t at_unix_ms,
                     const std::function<void(const HistoryVersion&)>& fn, absl::string_view path_prefix = "");

// Conflicts returns the namespace's conflict records (open only, unless `include_resolved`).
absl::StatusOr<std::vector<ConflictRecord>> Conflicts(StoreDb* db, absl::string_view ns, bool include_resolved);

}  // namespace converge::store

#endif  // CONVERGE_SERVICES_STORE_HISTORY_H_
