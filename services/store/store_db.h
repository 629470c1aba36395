// StoreDb: the store's RocksDB instance and its key layout. ChunkStore and CommitLog share it.
//
// Keys (one column family; namespace and device ids never contain '\0'):
//   'c' sha256[32]                  -> chunk bytes
//   'n' ns                          -> namespace record (head seq, members)
//   'l' ns '\0' seq(8, big-endian)  -> Commit (model.h encoding)
//   'f' ns '\0' path                -> current FileVersion of path (tombstones included)
//   'a' ns '\0' device              -> cursor record (acked seq, last seen, version)
//   'h' ns '\0' id                  -> held mass delete (commit_log.h HeldDelete)
//   'H' ns '\0' id '\0' path        -> a path the hold covers ("d" directory, "f" other)
//   'C' ns                          -> compaction record
//   'v', 'x'                        -> history and conflict records (history.h)
#ifndef CONVERGE_SERVICES_STORE_STORE_DB_H_
#define CONVERGE_SERVICES_STORE_STORE_DB_H_

#include <rocksdb/db.h>

#include <rocksdb/write_batch.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/base/rocksdb_status.h"
#include "common/base/sha256.h"

namespace converge::store {

// Thread-safe (RocksDB is).
class StoreDb {
 public:
  // Open creates the database under `dir` if needed. Returns Unavailable on I/O errors.
  static absl::StatusOr<std::unique_ptr<StoreDb>> Open(const std::string& dir, rocksdb::Env* env = nullptr);

  rocksdb::DB* db() { return db_.get(); }

  // Checked returns the status of a write. After a failed write RocksDB refuses all writes until
  // it recovers: from a full disk it does by itself once there is room; after other I/O errors
  // (a failed fsync) Checked asks it to (DB::Resume). If it cannot
  // (a failed WAL sync is fatal to it), the process exits (code 75) for its supervisor to start
  // it again: as PostgreSQL does after a failed fsync, the store recovers from what was durable
  // rather than trust a retried fsync. Nothing acknowledged is lost: the failed write was not.
  rocksdb::Status Checked(const rocksdb::Status& s);

  // Chunk bytes are written once: WriteUnlogged skips the write-ahead log (the bytes reach disk
  // when their memtable is flushed, into a blob file) instead of writing them to the WAL and
  // again to a blob file. Unlogged writes are lost by a crash until flushed, so every synced
  // write (WriteSynced, PutSynced: commits, the namespace and quota records, sweeps) first makes
  // the unlogged writes before it durable (MakeUnloggedDurable: one memtable flush, none when
  // there were no unlogged writes since the last). A commit can therefore never be durable while
  // a chunk it references is not. All return Checked statuses.
  rocksdb::Status WriteUnlogged(rocksdb::WriteBatch* batch);
  rocksdb::Status MakeUnloggedDurable();
  rocksdb::Status WriteSynced(rocksdb::WriteBatch* batch);
  rocksdb::Status PutSynced(const rocksdb::Slice& key, const rocksdb::Slice& value);
  uint64_t unlogged_writes() const { return unlogged_writes_.load(); }

  // set_on_unrecoverable replaces the exit (tests that cut the power, and throw the database
  // away themselves).
  void set_on_unrecoverable(std::function<void()> fn) { on_unrecoverable_ = std::move(fn); }

  // ExportMetrics reports the database's size and write stalls to DefaultMetrics() (at every
  // scrape). Call once; the StoreDb must outlive the process's metrics endpoint.
  void ExportMetrics();

  static std::string ChunkKey(const Digest& d);
  static std::string NamespaceKey(absl::string_view ns);
  static std::string LogKey(absl::string_view ns, uint64_t seq);
  static std::string LogPrefix(absl::string_view ns);
  static std::string FileKey(absl::string_view ns, absl::string_view path);
  static std::string FilePrefix(absl::string_view ns);
  static std::string CursorKey(absl::string_view ns, absl::string_view device);
  static std::string CursorPrefix(absl::string_view ns);
  static std::string HeldKey(absl::string_view ns, absl::string_view id);
  static std::string HeldPrefix(absl::string_view ns);
  static std::string HeldPathPrefix(absl::string_view ns, absl::string_view id);
  static std::string HeldPathKey(absl::string_view ns, absl::string_view id, absl::string_view path);
  // Chunk ownership: which owner (user) has stored a chunk, with its raw size.
  static std::string OwnedKey(absl::string_view owner, const Digest& d);
  // Per owner: quota and bytes used (fixed64 big-endian).
  static std::string QuotaKey(absl::string_view owner);
  static std::string UsageKey(absl::string_view owner);
  // Case-collision index: a namespace's live paths by CaseFold (value: the path).
  static std::string CaseKey(absl::string_view ns, absl::string_view folded);
  // The owner of a namespace.
  static std::string NamespaceOwnerKey(absl::string_view ns);
  // How far a namespace was compacted (fixed64 compacted_through, fixed64 dropped_through).
  static std::string CompactionKey(absl::string_view ns);

 private:
  explicit StoreDb(std::unique_ptr<rocksdb::DB> db) : db_(std::move(db)) {}
  std::unique_ptr<rocksdb::DB> db_;
  std::function<void()> on_unrecoverable_;
  std::atomic<uint64_t> unlogged_writes_{0};  // counted once in the memtable
  absl::Mutex flush_mu_;
  uint64_t durable_unlogged_ ABSL_GUARDED_BY(flush_mu_) = 0;
};

// RocksStatus is FromRocksStatus (common/base/rocksdb_status.h), under the store's own name.
inline absl::Status RocksStatus(const rocksdb::Status& s, absl::string_view what) {
  return FromRocksStatus(s, what);
}
using ::converge::View;

}  // namespace converge::store

#endif  // CONVERGE_SERVICES_STORE_STORE_DB_H_
