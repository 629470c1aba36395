// StoreDb: the store's RocksDB instance and its key layout. ChunkStore and CommitLog share it.
//
// Keys (one column family; namespace and device ids never contain '\0'):
//   'c' sha256[32]                  -> chunk bytes, or their place in a pack (chunk_store.h)
//   'P' pack id(8, big-endian)      -> live bytes in that pack (fixed64 big-endian)
//   'n' ns                          -> namespace record (head seq, members)
//   'l' ns '\0' seq(8, big-endian)  -> Commit (model.h encoding)
//   'f' ns '\0' path                -> current FileVersion of path (tombstones included)
//   'a' ns '\0' device              -> cursor record (acked seq, last seen, version)
//   'h' ns '\0' id                  -> held mass delete (commit_log.h HeldDelete)
//   'H' ns '\0' id '\0' path        -> a path the hold covers ("d" directory, "f" other)
//   'C' ns                          -> compaction record
//   'v', 'x'                        -> history and conflict records (history.h)
//   'M' ns                          -> the namespace's gate while it moves (CommitLog::Gate)
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
#include "services/store/pack_files.h"

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

  // WriteSynced and PutSynced write through the WAL and sync it; both return Checked statuses.
  // Large chunks' bytes are durable in their packs before their index entries are written
  // (PackFiles::Append), so a synced commit never references bytes a power cut can take back.
  rocksdb::Status WriteSynced(rocksdb::WriteBatch* batch);
  rocksdb::Status PutSynced(const rocksdb::Slice& key, const rocksdb::Slice& value);

  // The pack files of large chunks (<dir>/packs).
  PackFiles* packs() { return packs_.get(); }

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
  // A pack's live bytes.
  static std::string PackKey(uint64_t id);
  // A namespace's gate while it moves between shards (CommitLog::Gate, one byte).
  static std::string GateKey(absl::string_view ns);

 private:
  StoreDb(std::unique_ptr<rocksdb::DB> db, std::unique_ptr<PackFiles> packs)
      : db_(std::move(db)), packs_(std::move(packs)) {}
  // DropUnindexedPacks deletes packs no index entry counts (written, then a crash came before
  // their chunks were indexed).
  absl::Status DropUnindexedPacks();

  std::unique_ptr<rocksdb::DB> db_;
  std::unique_ptr<PackFiles> packs_;
  std::function<void()> on_unrecoverable_;
};

// RocksStatus is FromRocksStatus (common/base/rocksdb_status.h), under the store's own name.
inline absl::Status RocksStatus(const rocksdb::Status& s, absl::string_view what) {
  return FromRocksStatus(s, what);
}
using ::converge::View;

// PrefixIterator walks the keys that start with `prefix`, with an upper bound at the prefix's
// end: a Seek into a prefix that holds no live key stops there instead of stepping over every
// deleted key that follows it (after thousands of deletions an unbounded Seek walks them all,
// in each commit that looks the prefix up).
class PrefixIterator {
 public:
  PrefixIterator(rocksdb::DB* db, std::string prefix);
  PrefixIterator(const PrefixIterator&) = delete;
  PrefixIterator& operator=(const PrefixIterator&) = delete;

  // Valid is false once the keys with the prefix are done.
  bool Valid() const { return it_->Valid() && it_->key().starts_with(prefix_); }
  void Next() { it_->Next(); }
  rocksdb::Slice key() const { return it_->key(); }
  rocksdb::Slice value() const { return it_->value(); }
  rocksdb::Status status() const { return it_->status(); }

 private:
  const std::string prefix_;
  std::string bound_;
  rocksdb::Slice bound_slice_;
  std::unique_ptr<rocksdb::Iterator> it_;
};

}  // namespace converge::store

#endif  // CONVERGE_SERVICES_STORE_STORE_DB_H_
