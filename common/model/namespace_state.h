// What the store keeps of a namespace besides its files, as every component sees it: device
// cursors and lag, statistics, compaction results, held mass deletes, conflict records and kept
// versions. The store produces them; management, the engine and operators' tools read them.
// Converted to and from the store API in one place (common/wire/store_wire.h).
#ifndef CONVERGE_COMMON_MODEL_NAMESPACE_STATE_H_
#define CONVERGE_COMMON_MODEL_NAMESPACE_STATE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/model/model.h"

namespace converge {

// Remote versions a device reported it could not apply (a local obstruction), as of its last
// ack: how many, and the first few ("path: why").
struct Blocked {
  uint64_t count = 0;
  std::vector<std::string> sample;
};

// What the store knows of one member device of a namespace.
struct DeviceCursor {
  std::string device_id;
  uint64_t acked_seq = 0;
  int64_t last_seen_unix_ms = 0;  // last call from the device (0: never)
  std::string software_version;   // as the device's last call said
  // How far behind the head the device's acked cursor is: commits, bytes of file content in
  // them, and the age of the oldest commit it has not acked (0 when up to date).
  uint64_t lag_commits = 0;
  uint64_t lag_bytes = 0;
  double lag_seconds = 0;
  // An operator evicted it: it no longer holds back compaction; if it comes back it gets a
  // snapshot of the file table and the log after it.
  bool evicted = false;
  bool pins_watermark = false;  // its cursor is the watermark, below the head
  Blocked blocked;              // as its last ack since the store started said (memory only)
};

struct NamespaceStats {
  uint64_t head_seq = 0;
  uint64_t live_files = 0;
  uint64_t live_bytes = 0;
  // Distinct chunks the live files reference, and their bytes: live_bytes / unique_chunk_bytes
  // is the namespace's dedup ratio.
  uint64_t unique_chunks = 0;
  uint64_t unique_chunk_bytes = 0;
  std::vector<DeviceCursor> devices;        // every member, and any device with a cursor
  std::vector<std::string> conflict_paths;  // live conflict copies ("name (conflict dev time).ext")
  uint64_t open_conflicts = 0;              // conflict records not yet resolved
  // The lowest acked cursor of the members not evicted: the log at or below it is folded into
  // the file table by compaction. Pulls from below compacted_through get a snapshot instead.
  uint64_t watermark = 0;
  uint64_t compacted_through = 0;
  bool encrypted = false;     // end-to-end encrypted
  uint64_t converted_at = 0;  // encrypted by conversion at this seq: plain up to it (0: never)
};

// What compacting a namespace, and collecting the garbage after it, did.
struct CompactionResult {
  uint64_t watermark = 0;
  uint64_t compacted_through = 0;
  uint64_t log_entries_dropped = 0;
  uint64_t versions_dropped = 0;       // history versions older than the retention
  uint64_t tombstones_dropped = 0;     // deleted paths every device applied, past the retention
  std::vector<std::string> pinned_by;  // members whose cursor is the watermark (below the head)
  uint64_t chunks_dropped = 0;         // by the garbage collection that followed
  uint64_t bytes_dropped = 0;
};

// A commit held for approval because it deletes too much of a namespace. Its id is derived
// from the device and the exact deletions, so the engine's retries of the same commit find the
// same hold.
struct HeldDelete {
  // kRejected becomes kRestored once the device was told to restore: the same deletions made
  // again later are a new request.
  enum class State { kPending = 0, kApproved = 1, kRejected = 2, kApplied = 3, kRestored = 4 };
  std::string id;
  std::string namespace_id;
  std::string device;
  State state = State::kPending;
  int64_t created_at_unix_ms = 0;
  int64_t resolved_at_unix_ms = 0;
  uint64_t deletes = 0;              // every deletion of the burst (one hold for all of them)
  uint64_t live_entries = 0;         // in the namespace when it was held
  std::vector<std::string> sample;   // the first few deleted paths
  uint64_t settled = 0;              // of `deletes`, committed (approved) or restored (rejected)
  // The folders the burst empties, largest first: the topmost deleted folder of each deleted
  // file ("ob/"), or the folder of a file deleted alone ("docs/"; "" for the top level).
  std::vector<std::pair<std::string, uint64_t>> top_folders;  // folder -> files deleted in it
};

// StateName: "pending", "approved", "rejected", "applied" or "restored".
inline const char* StateName(HeldDelete::State s) {
  static const char* const kNames[] = {"pending", "approved", "rejected", "applied", "restored"};
  return kNames[static_cast<int>(s)];
}

// A conflict copy: the losing edit of `original_path`, kept as `copy_path` by `device`. The
// store records it when the copy is committed (seq > 0); one found only by its name has seq 0.
// Open until a user or operator marks it resolved, or the copy is deleted.
struct ConflictRecord {
  std::string namespace_id;
  std::string copy_path;
  std::string original_path;
  std::string device;
  uint64_t seq = 0;  // the commit that made the copy
  int64_t created_at_unix_ms = 0;
  bool resolved = false;
  int64_t resolved_at_unix_ms = 0;
  std::string resolved_by;  // "deleted by <device>", "<device>" or "operator"
};

// One kept version of a path (the store's history).
struct HistoryVersion {
  FileVersion version;
  int64_t committed_at_unix_ms = 0;
};

}  // namespace converge

#endif  // CONVERGE_COMMON_MODEL_NAMESPACE_STATE_H_
