// LocalIndex: the engine's memory of what it last synced, in RocksDB under the state dir.
// For each path: the FileVersion last agreed with the store (seq, file_id, chunks, tombstones
// too) and the local stat of the file when it matched that version. Plus the namespace cursor.
//
// The index is written only after the files it describes are durable, in one synced WriteBatch
// per step (so a crash leaves the index describing an older, still-true state). Tombstones are
// kept apart from live entries, so a scan reads only what is in the folder.
//
// Thread-compatible, except that ForEachLive and ForEachLiveUnder may run on another thread
// beside the engine's (its verifying scan): the database is not closed under them.
#ifndef CONVERGE_ENGINE_SYNC_LOCAL_INDEX_H_
#define CONVERGE_ENGINE_SYNC_LOCAL_INDEX_H_

#include <rocksdb/db.h>

#include "absl/synchronization/mutex.h"

#include <functional>
#include <atomic>
#include <memory>
#include <thread>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model/model.h"
#include "engine/fs/filesystem.h"

namespace converge::engine {

struct IndexEntry {
  FileVersion version;  // what the store has for this path, as of version.seq
  LocalStat local;      // the local entry when it last matched `version` (exists=false: absent)
  int64_t recorded_at_ns = 0;  // when `local` was taken; stats too close to it are not trusted
  // A send-only folder recorded `version` without writing it: `local` is still what was here
  // before (absent if nothing was), and the folder keeps it until it changes here or is
  // pushed over the namespace's (SyncEngine::Override).
  bool not_applied = false;
};

class LocalIndex {
 public:
  ~LocalIndex() {
    if (compactor_.joinable()) compactor_.join();
  }
  // `env`: tests substitute their own (power cuts); default the real filesystem.
  static absl::StatusOr<std::unique_ptr<LocalIndex>> Open(const std::string& dir, rocksdb::Env* env = nullptr);

  // Get returns the entry of a path, live or tombstone; nullopt if the path was never synced.
  absl::StatusOr<std::optional<IndexEntry>> Get(const std::string& path);
  // ForEachLive calls fn for every entry that is not a tombstone, in path order.
  absl::Status ForEachLive(const std::function<void(const IndexEntry&)>& fn);
  // ForEachNotApplied calls fn for every entry, live or tombstone, recorded as not applied
  // (IndexEntry::not_applied), in path order: as many reads as there are such entries.
  absl::Status ForEachNotApplied(const std::function<void(const IndexEntry&)>& fn);
  // LiveCursor reads the live entries in path order one at a time, for a caller that walks
  // something else beside them (the verifying scan, the folder), as they were when it was made
  // (a snapshot: what the caller writes meanwhile is not read back). It reads a page at a time
  // and holds no lock between pages, so its caller may use the index (and write to it) while it
  // lives; it may be used on another thread than the engine's.
  class LiveCursor {
   public:
    ~LiveCursor();
    bool Valid() const { return pos_ < page_.size(); }
    const IndexEntry& entry() const { return page_[pos_]; }
    // Next moves to the next entry (an error leaves the cursor invalid).
    absl::Status Next();

   private:
    friend class LocalIndex;
    explicit LiveCursor(LocalIndex* index) : index_(index) {}
    // Fill reads the page after last_key_.
    absl::Status Fill();
    LocalIndex* const index_;
    rocksdb::DB* db_ = nullptr;  // the database the snapshot is of
    const rocksdb::Snapshot* snapshot_ = nullptr;
    std::vector<IndexEntry> page_;
    size_t pos_ = 0;
    std::string last_key_;
    bool done_ = false;
  };
  absl::StatusOr<std::unique_ptr<LiveCursor>> Live();
  // ForEachLiveUnder calls fn for every live entry below directory `dir` (not dir itself).
  absl::Status ForEachLiveUnder(const std::string& dir, const std::function<void(const IndexEntry&)>& fn);
  uint64_t cursor() const { return cursor_; }
  // ForgetSyncState drops every entry, tombstone and chunk hint and sets the cursor to 0 (the
  // settings stay): the folder re-syncs as if its files had never been synced.
  absl::Status ForgetSyncState();

  // Update writes `entries` (and the cursor, if given) in one synced batch.
  absl::Status Update(const std::vector<IndexEntry>& entries, std::optional<uint64_t> cursor);

  // RecordIntents writes, synced, the versions about to be installed (before their files are
  // touched). Update clears a path's intent. After a power cut between an install and its
  // record, the scanner finds the folder holding exactly an intended version: installed, not
  // edited here (GetIntent).
  absl::Status RecordIntents(const std::vector<FileVersion>& versions);
  absl::StatusOr<std::optional<FileVersion>> GetIntent(const std::string& path);

  // FindChunk returns a path whose synced version contained the chunk (a hint: the file may have
  // changed since; check its entry and the bytes' hash).
  absl::StatusOr<std::optional<std::string>> FindChunk(const Digest& d);

  // FindInode returns the path whose synced entry last had this local inode (a hint: check the
  // entry's stat).
  absl::StatusOr<std::optional<std::string>> FindInode(uint64_t inode);

  // Settings: small named values (device id, credential, namespace).
  absl::StatusOr<std::optional<std::string>> GetSetting(const std::string& name);
  absl::Status SetSetting(const std::string& name, const std::string& value);

 private:
  LocalIndex(std::string dir, rocksdb::Options options) : dir_(std::move(dir)), options_(std::move(options)) {}
  // Reopen opens the database and reads the cursor; Usable reopens it if a write error closed it.
  absl::Status Reopen();
  absl::Status Usable();
  // WriteSynced writes a batch durably; after an error RocksDB cannot recover from in place, the
  // database is closed and reopened at the next use.
  absl::Status WriteSynced(rocksdb::WriteBatch* batch, absl::string_view what);
  absl::Status ForEachLiveWithPrefix(const std::string& prefix, const std::function<void(const IndexEntry&)>& fn);
  const std::string dir_;
  const rocksdb::Options options_;
  // Held shared by a listing, exclusively to close or reopen the database (the pointer is
  // replaced only then; the engine's own calls read it after Usable).
  absl::Mutex db_mu_;
  std::unique_ptr<rocksdb::DB> db_;  // null after a write error, until reopened
  // Cursors holding a snapshot of db_: a close after a write error waits for the last of them.
  int open_cursors_ ABSL_GUARDED_BY(db_mu_) = 0;
  bool close_pending_ ABSL_GUARDED_BY(db_mu_) = false;
  std::atomic<uint64_t> cursor_{0};  // read by status and upload threads too
  // Whether any entry may be marked not applied (a marker key each): until one is, writes do
  // not delete markers that cannot be there.
  std::atomic<bool> any_not_applied_{false};
  // RocksDB deletion markers slow prefix scans until compaction drops them; after this many
  // deletions the index compacts itself.
  uint64_t deletions_since_compaction_ = 0;
  std::atomic<bool> compacting_{false};
  std::thread compactor_;  // joined by the destructor
};

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_SYNC_LOCAL_INDEX_H_
