// CommitLog: one ordered log of commits per namespace, the namespace's current file table and
// per-device cursors. The single source of truth of what a namespace contains.
//
// Append checks every change against the file table (optimistic concurrency on base_seq), checks
// that every referenced chunk is stored, then writes log entry + file table + head seq in one
// WriteBatch with sync=true: a returned seq is durable.
//
// Thread-safe: all methods may be called concurrently. Each namespace has its own commit lock:
// a namespace's appends are serialised, and nothing one namespace does waits for another's
// (only a garbage sweep pauses every commit for the moment it writes).
#ifndef CONVERGE_SERVICES_STORE_COMMIT_LOG_H_
#define CONVERGE_SERVICES_STORE_COMMIT_LOG_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/base/clock.h"
#include "common/crypto/log_chain.h"
#include "common/model/model.h"
#include "common/model/namespace_state.h"
#include "rocksdb/write_batch.h"
#include "services/store/chunk_store.h"
#include "services/store/cursor_record.h"
#include "services/store/history.h"
#include "services/store/store_db.h"

namespace converge::store {


// When a commit deletes too much of a namespace it is held (see HeldDelete).
struct MassDeletePolicy {
  uint64_t min_files = 100;  // hold only above this many deletions...
  double share = 0.5;        // ...that are also above this share of the namespace's entries
  // Deletions by the same device within this window count together (an engine that deletes in
  // several commits cannot slip under the threshold).
  absl::Duration window = absl::Seconds(60);
};

// Commits scanned at most to compute a device's lag in bytes and seconds.
inline constexpr uint32_t kMaxLagScan = 100000;

// The origin of commits the web console makes (restores): never a device id (those are
// management's "dev-..." ids), and never accepted from a device's call.
inline constexpr char kConsoleOrigin[] = "console";

class CommitLog {
 public:
  CommitLog(StoreDb* db, ChunkStore* chunks, Clock* clock, MassDeletePolicy policy = {})
      : db_(db), chunks_(chunks), clock_(clock), policy_(policy) {}

  // RegisterNamespace creates the namespace if new and sets its owner and members. Idempotent.
  // InvalidArgument for a bad id (the owner too); FailedPrecondition if it has another owner.
  // `encrypted` (end-to-end encrypted: every version must come sealed) is set at creation, or
  // later: a plain namespace registered as encrypted is converted at its head (Sealing); an
  // encrypted one registered as plain is FailedPrecondition.
  absl::Status RegisterNamespace(const std::string& ns, const std::string& owner,
                                 const std::vector<std::string>& members,
                                 bool encrypted = false);

  // OwnerOf returns the namespace's owner.
  absl::StatusOr<std::string> OwnerOf(const std::string& ns);

  // CheckAccess returns NotFound for an unknown namespace and PermissionDenied if `device` is
  // not a member. An empty device is the operator (allowed).
  absl::Status CheckAccess(const std::string& ns, const std::string& device);
  // OwnerFor is CheckAccess, then OwnerOf, under one lock.
  absl::StatusOr<std::string> OwnerFor(const std::string& ns, const std::string& device);

  // Append commits `changes` made by `device` as the namespace's next seq and returns the commit.
  // Errors, with nothing written:
  //   NotFound / PermissionDenied   as CheckAccess;
  //   InvalidArgument               a change fails ValidateChanges, or the commit names too many
  //                                 distinct directories to check (split it);
  //   AlreadyExists                 a new path (or one of its directories) differs only in case
  //                                 from a live path (CaseFold): devices on case-insensitive
  //                                 filesystems could not hold both;
  //   Aborted                       a change's base_seq is not the path's current seq (the
  //                                 message names every such path: pull, then retry);
  //   FailedPrecondition            a live file references chunks the store does not hold; a live
  //                                 path would be inside a file or symlink, or a file or symlink
  //                                 would have live entries inside it;
  //                                 or the commit deletes more than the policy allows: it is
  //                                 held (common/model/mass_delete.h says which) until approved, or
  //                                 was rejected (the device should restore the files).
  //   InvalidArgument               also: in an end-to-end encrypted namespace, no attestation
  //                                 or one that does not parse (common/crypto/log_chain.h); in
  //                                 a plain one, any attestation.
  // An encrypted namespace's store keeps its log's chained head (LogHead) as its devices compute
  // it, without checking signatures (it has no keys): Chain hands it to a device that starts
  // from the file table, which then checks it against the heads other devices announce.
  absl::StatusOr<Commit> Append(const std::string& ns, const std::string& device,
                                std::vector<FileVersion> changes, std::string attestation = "");

  // ReadSince calls `fn` with each commit of `ns` with seq > since_seq, in order, at most
  // max_commits (0: all). Stops early when fn returns false.
  absl::Status ReadSince(const std::string& ns, uint64_t since_seq, uint32_t max_commits,
                         const std::function<bool(const Commit&)>& fn);

  // ListFiles calls `fn` with every entry of the file table of `ns` (tombstones too), in path
  // order.
  absl::Status ListFiles(const std::string& ns, const std::function<void(const FileVersion&)>& fn);

  // Ack records that `device` applied and verified everything up to `seq`, and when it was seen
  // with which software version. Cursors only move forward; InvalidArgument if seq is above the
  // head.
  absl::Status Ack(const std::string& ns, const std::string& device, uint64_t seq,
                   const std::string& software_version = "", Blocked blocked = {});

  // Touch notes that `device` called (kept in memory; Ack makes it durable).
  void Touch(const std::string& ns, const std::string& device, const std::string& software_version);

  // Held mass deletes of a namespace (all states), oldest first.
  absl::StatusOr<std::vector<HeldDelete>> ListHeld(const std::string& ns);
  // ResolveHeld approves or rejects a pending hold. NotFound for an unknown id,
  // FailedPrecondition if it is not pending.
  absl::StatusOr<HeldDelete> ResolveHeld(const std::string& ns, const std::string& id, bool approve);

  // History: the versions of a path, newest first (at most `limit`, 0: all); the state of the
  // namespace as of a time. Kept for the retention Compact is given.
  absl::StatusOr<std::vector<HistoryVersion>> Versions(const std::string& ns, const std::string& path, size_t limit);
  // VersionAt: the kept version `seq` of `path` (one read); NotFound if history has none.
  absl::StatusOr<HistoryVersion> VersionAt(const std::string& ns, const std::string& path, uint64_t seq);

  // Restore commits kept version `seq` of `path` again on top of its current version — a
  // person's restore from the web console, committed as origin kConsoleOrigin (no member device
  // makes it): the content comes back, or the path is deleted if that version was a deletion.
  // NotFound if no kept version has that seq; FailedPrecondition if it is the current version or
  // the namespace is end-to-end encrypted (only its devices can write it); otherwise what Append
  // says (ABORTED if the path changed meanwhile).
  absl::StatusOr<Commit> Restore(const std::string& ns, const std::string& path, uint64_t seq);
  // KeepConflictSide settles an open conflict in one commit (origin kConsoleOrigin): the copy
  // is deleted, and with `keep_copy` its content first becomes the original path's new version.
  // NotFound unless `copy_path` is an open conflict copy; FailedPrecondition in an end-to-end
  // encrypted namespace; otherwise what Append says.
  absl::StatusOr<Commit> KeepConflictSide(const std::string& ns, const std::string& copy_path, bool keep_copy);
  // ContentUnchanged: `v` replaces a version (its base_seq) with the same content (a change of
  // mode, mtime or attributes only). False when the history no longer has the base.
  bool ContentUnchanged(const std::string& ns, const FileVersion& v);
  absl::Status StateAt(const std::string& ns, int64_t at_unix_ms, const std::function<void(const HistoryVersion&)>& fn,
                       const std::string& path_prefix = "");

  // Conflict copies committed in the namespace (history.h ConflictRecord). ResolveConflict marks
  // one resolved (NotFound if there is no record of that copy); the copy stays until deleted.
  absl::StatusOr<std::vector<ConflictRecord>> ListConflicts(const std::string& ns, bool include_resolved);
  absl::StatusOr<ConflictRecord> ResolveConflict(const std::string& ns, const std::string& copy_path,
                                                 const std::string& by);

  // Compact folds the log at or below the watermark into the file table (dropping those log
  // entries), drops history versions superseded before now - retention, and drops tombstones
  // every member applied that are older than the retention (with their history). Synced.
  // Commits wait only while it checks the tombstones and writes, not while it reads history.
  absl::StatusOr<CompactionResult> Compact(const std::string& ns, absl::Duration retention);
  // CollectGarbage drops chunks that no file table entry, kept history version or uncompacted
  // log entry of their owner's namespaces references (ChunkStore::Sweep; chunks uploaded or
  // asked about within `grace` stay). Marks without blocking commits (a commit asks about the
  // chunks it references, which keeps them), sweeps under the commit lock.
  absl::StatusOr<ChunkStore::SweepResult> CollectGarbage(absl::Duration grace);
  // Evict stops a member's cursor from holding back compaction (NotFound if not a member). Its
  // next ack (it came back) ends the eviction.
  absl::Status Evict(const std::string& ns, const std::string& device);
  // Namespaces lists every namespace id.
  absl::StatusOr<std::vector<std::string>> Namespaces();

  absl::StatusOr<uint64_t> HeadSeq(const std::string& ns);
  // Chain: the head seq and, in an encrypted namespace, the chained head hash there (zero
  // otherwise), read together.
  absl::StatusOr<crypto::LogHead> Chain(const std::string& ns);
  absl::StatusOr<NamespaceStats> Stats(const std::string& ns);
  // Sealing: whether the namespace is end-to-end encrypted, and the seq it was converted at
  // (0: encrypted since its creation, or plain). The log and table up to that seq are plain.
  struct Sealing {
    bool encrypted = false;
    uint64_t converted_at = 0;
  };
  absl::StatusOr<Sealing> SealingOf(const std::string& ns);

  // Gates of online moves between shards (namespace_gate.cc; the moves: namespace_transfer.h).
  // kLeaving: being copied out, served as usual but not compacted; kFrozen: the switch, commits
  // and other writes refused retryably; kMoved: it lives on another shard now, every call refused
  // (FailedPrecondition carrying the moved mark, common/rpc/grpc_status.h); kArriving: being
  // copied in, refused retryably until opened.
  enum class Gate { kOpen = 0, kFrozen = 1, kMoved = 2, kArriving = 3, kLeaving = 4 };
  // SetGate makes the gate durable. Freezing waits for a commit in flight, so no write lands
  // after it returns. Returns the head seq then (0 for a namespace not here).
  absl::StatusOr<uint64_t> SetGate(const std::string& ns, Gate gate);
  Gate GateOf(const std::string& ns);
  // CheckGate: OK when a device may use the namespace now (`writing`: a commit, an ack, a
  // resolution); Unavailable while it is frozen (writing) or arriving; moved as above.
  absl::Status CheckGate(const std::string& ns, bool writing);
  // Reload reads the namespace's records again (an import wrote them).
  absl::Status Reload(const std::string& ns);

 private:
  struct NamespaceState {
    uint64_t head_seq = 0;
    uint64_t live_entries = 0;  // live files and directories in the file table
    std::string owner;          // whose chunks its files reference
    bool encrypted = false;     // end-to-end encrypted: versions come sealed
    Digest chain{};             // encrypted: the log's chained head hash at head_seq
    uint64_t converted_at = 0;  // converted to encrypted at this seq (0: never)
    uint64_t compacted_through = 0;  // log entries at or below it are gone
    uint64_t dropped_through = 0;    // tombstones at or below it may be gone from the file table
    absl::flat_hash_set<std::string> members;
    // Recent deletions per device (time, count), for the mass delete window.
    absl::flat_hash_map<std::string, std::vector<std::pair<absl::Time, uint64_t>>> recent_deletes;
  };

  // The *Locked methods below run under the namespace's commit lock.
  // UpdateCursorLocked reads the cursor record of (ns, device) (a fresh one if none), lets
  // `change` edit it and writes it back (synced when `sync`).
  absl::Status UpdateCursorLocked(const std::string& ns, const std::string& device, bool sync,
                                  const std::function<void(CursorRecord*)>& change);
  // One namespace: its state under its own commit lock, and who may use it under a lock of its
  // own that is never held across I/O (a call's authorization never waits for a commit).
  struct Namespace {
    absl::Mutex mu;        // the commit lock
    NamespaceState state;  // guarded by mu
    absl::Mutex access_mu;
    std::string owner ABSL_GUARDED_BY(access_mu);
    absl::flat_hash_set<std::string> members ABSL_GUARDED_BY(access_mu);
  };
  // Find returns a namespace's entry, reading its record on first use. NotFound if there is none.
  absl::StatusOr<Namespace*> Find(const std::string& ns) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<NamespaceState> ReadNamespace(const std::string& ns);
  static std::string EncodeNamespace(const NamespaceState& state);
  // CheckCaseCollisionsLocked returns AlreadyExists if a new live path of `changes` (or one of
  // its directories) has the fold of another live path that this commit does not delete, or of
  // another path of the commit; otherwise adds the index updates to `batch`.
  absl::Status CheckCaseCollisionsLocked(const std::string& ns, const std::vector<FileVersion>& changes,
                                         rocksdb::WriteBatch* batch);
  // CheckTreeLocked returns FailedPrecondition if after `changes` a live path would be inside a
  // live file or symlink, or a file or symlink would have live entries inside it.
  absl::Status CheckTreeLocked(const std::string& ns, const std::vector<FileVersion>& changes);
  // ScanFileTable reads the file table without any lock (a snapshot of RocksDB).
  absl::Status ScanFileTable(const std::string& ns, const std::function<void(const FileVersion&)>& fn);

  // CheckMassDelete returns OK if the commit may go ahead (writing the hold's new state into
  // `batch` when an approved hold is used), or the held/rejected error.
  absl::Status CheckMassDeleteLocked(const std::string& ns, const std::string& device, NamespaceState* state,
                                     const std::vector<FileVersion>& changes, uint64_t live_deletes,
                                     rocksdb::WriteBatch* batch, bool* approved);
  // The device's holds not yet settled (pending, approved or rejected with paths left).
  absl::StatusOr<std::vector<HeldDelete>> OpenHoldsLocked(const std::string& ns, const std::string& device);
  // CoveredByHold counts the deleted paths (path, is a directory) that hold `id` covers.
  absl::StatusOr<uint64_t> CoveredByHold(const std::string& ns, const std::string& id,
                                         const std::vector<std::pair<std::string, bool>>& deleted);
  // HoldLocked adds the deletions to the hold (a new one when `fresh`) and returns the held error.
  absl::Status HoldLocked(const std::string& ns, HeldDelete* held,
                          const std::vector<std::pair<std::string, bool>>& deleted, bool fresh);
  // TopFolders: the folders a hold empties, largest first (HeldDelete::top_folders).
  absl::StatusOr<std::vector<std::pair<std::string, uint64_t>>> TopFolders(const std::string& ns,
                                                                           const std::string& id);

  StoreDb* const db_;
  ChunkStore* const chunks_;
  Clock* const clock_;
  const MassDeletePolicy policy_;
  struct Activity {
    int64_t last_seen_unix_ms = 0;
    std::string software_version;
    Blocked blocked;
  };

  // Append's checks, under the namespace's commit lock. CheckBasesLocked: Aborted naming the
  // paths whose base_seq is not their current version; else what the commit changes.
  struct Bases {
    uint64_t live_deletes = 0;  // live entries it deletes (a move is not a delete)
    int64_t live_delta = 0;     // live entries after, less before
    absl::flat_hash_set<std::string> live_before;  // its paths that were live
  };
  absl::StatusOr<Bases> CheckBasesLocked(const std::string& ns, const NamespaceState& state,
                                         const std::vector<FileVersion>& changes);
  // FailedPrecondition unless every chunk a live file references is stored for the owner.
  absl::Status CheckChunksStoredLocked(const NamespaceState& state, const std::vector<FileVersion>& changes);
  // FailedPrecondition for a directory deleted without everything in it.
  absl::Status CheckDirectoryDeletesLocked(const std::string& ns, const std::vector<FileVersion>& changes);
  // Stats' steps: every member's cursor (and the watermark into *stats), then their lag.
  absl::StatusOr<std::vector<DeviceCursor>> Cursors(const std::string& ns, const std::vector<std::string>& members,
                                                    NamespaceStats* stats);
  absl::Status AddLag(const std::string& ns, std::vector<DeviceCursor>* devices, const NamespaceStats& stats);
  // Compaction's steps (compaction.cc). A deleted path compaction may drop with its last
  // history version, if it is still deleted at `seq` under the commit lock.
  struct DeadPath {
    std::string history_key;
    std::string path;
    uint64_t seq;
  };
  absl::Status FindWatermark(const std::string& ns, const absl::flat_hash_set<std::string>& members, uint64_t head,
                             CompactionResult* result);
  absl::Status DropLog(const std::string& ns, uint64_t after, uint64_t through, rocksdb::WriteBatch* batch,
                       CompactionResult* result);
  absl::StatusOr<std::vector<DeadPath>> PruneHistory(const std::string& ns, int64_t cutoff_ms,
                                                     rocksdb::WriteBatch* batch, CompactionResult* result);
  // Compactions run one at a time, and hold the namespace's commit lock only to check and write
  // what they decided.
  absl::Mutex compaction_mu_;
  absl::Mutex register_mu_;  // one RegisterNamespace at a time (service calls, rare)
  absl::Mutex sweep_mu_;     // commits hold it shared, a garbage sweep exclusively
  absl::Mutex mu_;           // the map below only: held to look up or add an entry
  absl::flat_hash_map<std::string, std::unique_ptr<Namespace>> ns_ ABSL_GUARDED_BY(mu_);
  absl::Mutex gate_mu_;  // held for lookups (and the gates' one first read), never across a write
  bool gates_loaded_ ABSL_GUARDED_BY(gate_mu_) = false;
  absl::flat_hash_map<std::string, Gate> gates_ ABSL_GUARDED_BY(gate_mu_);  // namespaces not open
  absl::Status LoadGatesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(gate_mu_);
  absl::Mutex activity_mu_;
  // ns '\0' device -> last call
  absl::flat_hash_map<std::string, Activity> activity_ ABSL_GUARDED_BY(activity_mu_);
};

}  // namespace converge::store

#endif  // CONVERGE_SERVICES_STORE_COMMIT_LOG_H_
