// NamespaceTransfer: a namespace's records and chunks out of one store shard and into another,
// for online moves (management's leader runs them: services/management/namespace_mover.h).
//
// A move copies everything (Export with after_seq 0) while devices go on syncing, then what the
// commits since changed (Export after the head the copy saw; repeated while that is large),
// freezes the namespace (CommitLog::Gate) for the last, small copy, and switches the shard map.
// What one commit changes is known from the commit: its paths' file table entries, case index
// keys and history. The rest of a namespace's records that change without a commit are small
// (cursors, held deletes, conflict records, the namespace and compaction records) and are
// copied whole every time. Compaction, which drops records, waits while the namespace leaves.
//
// Import takes pages from a peer shard (service-authenticated) and still checks every key: it
// must be one of the namespace's own, and every chunk must match its digest.
//
// Thread-safe; one export and one import of a namespace at a time is the caller's rule.
#ifndef CONVERGE_SERVICES_STORE_NAMESPACE_TRANSFER_H_
#define CONVERGE_SERVICES_STORE_NAMESPACE_TRANSFER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "services/store/chunk_store.h"
#include "services/store/commit_log.h"
#include "services/store/store_db.h"

namespace converge::store {

struct TransferRecord {
  enum class Op { kPut, kDelete, kClearPrefix };
  Op op = Op::kPut;
  std::string key;
  std::string value;
};

struct TransferPage {
  std::vector<TransferRecord> records;
  std::vector<ChunkData> chunks;
  size_t bytes = 0;  // of keys, values and chunk data
};

class NamespaceTransfer {
 public:
  // Pages are cut at about this many bytes (a chunk is never split: at most 4 MiB more).
  static constexpr size_t kPageBytes = 1 << 20;

  NamespaceTransfer(StoreDb* db, ChunkStore* chunks, CommitLog* log) : db_(db), chunks_(chunks), log_(log) {}

  // Export calls `emit` with the pages of `ns` at one snapshot: every record (after_seq 0), or
  // what commits after `after_seq` changed and the small records. Returns the head seq at the
  // snapshot. NotFound for a namespace not here; OutOfRange if after_seq is above the head or
  // its commits were compacted away (copy everything again).
  absl::StatusOr<uint64_t> Export(const std::string& ns, uint64_t after_seq,
                                  const std::function<absl::Status(TransferPage&&)>& emit);

  // Import applies one page to `ns`, which must be arriving (CommitLog::Gate::kArriving;
  // FailedPrecondition otherwise). InvalidArgument (and nothing of the page written) for a key
  // that is not the namespace's, or a chunk that does not match its digest or comes before the
  // namespace's owner record. Synced.
  absl::Status Import(const std::string& ns, const TransferPage& page);

  // Drop deletes every record of `ns` (not its gate); its chunks go with the next sweep.
  absl::Status Drop(const std::string& ns);

 private:
  class Pager;
  absl::Status ExportAll(const std::string& ns, const rocksdb::Snapshot* snap, Pager* out);
  absl::Status ExportSince(const std::string& ns, uint64_t after_seq, uint64_t head, const rocksdb::Snapshot* snap,
                           Pager* out);
  // The small records: put (or deleted) whole.
  absl::Status ExportSmall(const std::string& ns, const rocksdb::Snapshot* snap, Pager* out);
  absl::Status ExportPrefix(const std::string& prefix, const rocksdb::Snapshot* snap, Pager* out,
                            const std::function<absl::Status(absl::string_view key, absl::string_view value)>& seen);
  absl::Status ExportChunks(const std::string& owner, Pager* out);

  StoreDb* const db_;
  ChunkStore* const chunks_;
  CommitLog* const log_;
};

// The key prefixes and exact keys that are a namespace's (store_db.h, history.h), for checks.
std::vector<std::string> NamespacePrefixes(const std::string& ns);
std::vector<std::string> NamespaceExactKeys(const std::string& ns);

}  // namespace converge::store

#endif  // CONVERGE_SERVICES_STORE_NAMESPACE_TRANSFER_H_
