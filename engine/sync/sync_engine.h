// SyncEngine: keeps one folder in step with one namespace. Each round pulls and applies what
// other devices committed, then scans the folder and commits local changes (uploading only the
// chunks the store lacks). A stale base_seq (another device got there first) means: pull, apply
// (which keeps conflicting local edits as conflict copies) and scan again.
//
// Run() loops until stopped; it wakes early when NotifyRemoteHead reports a seq past the cursor
// (or RequestPull asks, after the notification stream reconnected), and when the watcher
// reports changed paths (NotifyLocalPaths: only those are scanned; a path still being written
// waits until its writer closes it or it has been quiet for write_settle) or asks for a full
// scan (NotifyLocalChange). The full verifying scan runs every rescan_interval regardless: with
// a watcher (set_local_event_flush) it runs beside the rounds, on a thread of its own, and hands
// what it suspects changed to targeted scans (a reported edit never waits for a walk of the
// whole folder); without one, and the first time, it is a round of its own.
// Thread-safe: NotifyRemoteHead and Stop may be called from any thread; the rest from the thread
// that calls Run (or directly, in tests).
#ifndef CONVERGE_ENGINE_SYNC_SYNC_ENGINE_H_
#define CONVERGE_ENGINE_SYNC_SYNC_ENGINE_H_

#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/base/clock.h"
#include "engine/fs/filesystem.h"
#include "engine/sync/applier.h"
#include "engine/sync/chunker.h"
#include "engine/sync/local_index.h"
#include "engine/sync/scanner.h"
#include "engine/sync/store_client.h"

namespace converge::engine {

struct EngineOptions {
  // The name this device registered with (conflict copies made here carry it).
  std::string device_name;
  // The namespace syncs "user." extended attributes (a namespace option, off by default).
  bool sync_xattrs = false;
  // Paths this engine may sync beyond the rules every device shares (null: all of those).
  std::function<bool(const std::string&)> syncable;
  // The verifying full scan; with a watcher it is only the backstop.
  absl::Duration rescan_interval = absl::Seconds(10);
  // How long a burst of local change events is let settle before the scan (an editor's save is
  // several events).
  absl::Duration coalesce_delay = absl::Milliseconds(3);
  // A file still open for writing is taken once it has been quiet this long (writers that keep
  // files open, like logs).
  absl::Duration write_settle = absl::Seconds(1);
  // Deletions the watcher reports are committed once no local change has been seen for this
  // long, so a burst of deletions (rm -r) reaches the store as one commit it can judge whole.
  absl::Duration delete_settle = absl::Milliseconds(500);
  ChunkParams chunk_params;
  size_t max_files_per_commit = 1000;
  // on_denied is told when the store refuses this device (PermissionDenied: removed from the
  // namespace, revoked); returning true stops the engine.
  std::function<bool(const absl::Status&)> on_denied;
  // on_converted is told when the store says the namespace was converted to end-to-end
  // encryption (IsNamespaceConverted): this engine syncs it plain and stops; the caller starts
  // one that syncs it sealed.
  std::function<void()> on_converted;
  // on_moved is told when the store says the namespace moved to another store shard
  // (IsNamespaceMoved): this engine stops; the caller asks management where it is now and
  // starts one there (its index and cursor stay: the log moved whole).
  std::function<void()> on_moved;
  // receive_only: local changes are never uploaded; they are kept as local differences (status)
  // until RequestRevert sets them aside and writes the namespace's versions back. Remote
  // changes apply as usual (a local edit they meet is kept as a conflict copy).
  bool receive_only = false;
  // send_only: other devices' changes are not applied here (the index records them as not
  // applied: IndexEntry::not_applied; status counts them); local changes go up as usual, on top
  // of them. RequestOverride pushes this folder's state over them.
  bool send_only = false;
  // new_file_id: where new files' ids come from (default: random; a simulation makes them
  // deterministic).
  std::function<std::string()> new_file_id;
};

struct ScanStats {
  uint64_t scans = 0;
  uint64_t targeted_scans = 0;
  uint64_t last_entries = 0;
  uint64_t last_files_hashed = 0;
  uint64_t last_changes = 0;
  absl::Duration last_duration;
};

// What the engine is doing, for `converge-engine status` (and tests).
struct EngineStatus {
  enum class State { kStarting, kUpToDate, kSyncing, kPaused, kError, kRevoked, kHeld };
  State state = State::kStarting;
  std::string error;              // the last sync error, while in kError
  uint64_t cursor = 0;            // applied up to
  uint64_t remote_head = 0;       // newest seq heard of
  uint64_t pending_uploads = 0;   // changed paths waiting to be scanned and committed
  uint64_t held_deletes = 0;      // local deletions the store holds for approval (kHeld)
  std::string held_message;       // the store's words, with the hold's id
  // Local paths not synced because they differ only in case from a synced path (the store
  // refuses them: a case-insensitive device could not hold both). Renaming one syncs it.
  std::vector<std::string> case_collisions;
  // Remote versions a lasting local obstruction keeps from being applied here ("path: why");
  // they are tried again every round (Applier::Blocked).
  std::vector<std::string> blocked;
  // The subtrees this device keeps out (Selection::Rules), as adopted; selection_pending while
  // a change of them is still being carried out.
  std::vector<std::string> excluded;
  bool selection_pending = false;
  uint64_t excluded_kept = 0;  // local entries changed here left in place when they were excluded
  // A receive-only folder: how many local changes are not uploaded, the first of them as
  // "path (added|changed|deleted)", whether a revert waits, and where the last one set this
  // device's own versions aside.
  bool receive_only = false;
  uint64_t local_differences = 0;
  std::vector<std::string> differences_shown;
  bool revert_pending = false;
  std::string reverted_to;
  // A send-only folder: other devices' changes not applied here (paths, the first of them), and
  // whether an override waits.
  bool send_only = false;
  uint64_t not_applied = 0;
  std::vector<std::string> not_applied_shown;
  bool override_pending = false;
  // The transfer in progress (direction empty when none): bytes done of total, since started.
  std::string transfer;           // "upload" or "download"
  uint64_t transfer_done = 0;
  uint64_t transfer_total = 0;
  absl::Time transfer_started;
  absl::Time last_synced;         // when the engine was last up to date
  // A catch-up in progress (many commits to apply; none: InfinitePast): since when, from which
  // cursor, how many files applied since.
  absl::Time catchup_started = absl::InfinitePast();
  uint64_t catchup_from = 0;
  uint64_t catchup_files = 0;
};

const char* StateName(EngineStatus::State s);

struct UploadStats {
  uint64_t commits = 0;
  uint64_t files_committed = 0;
  uint64_t chunks_uploaded = 0;
  uint64_t bytes_uploaded = 0;
  // Bytes of chunks read from their files a second time (the scan's own copy was not at hand).
  uint64_t bytes_read_again = 0;
};

class SyncEngine {
 public:
  SyncEngine(Filesystem* fs, LocalIndex* index, StoreClient* store, Clock* clock,
             std::string device_id, EngineOptions options);

  // PullAndApply applies every commit after the cursor and acks the new cursor.
  absl::Status PullAndApply();
  // ScanAndUpload commits local changes: of the whole folder, or only of `paths` (and below).
  // Aborted if another device changed one of the paths first (call PullAndApply, then scan
  // again).
  absl::Status ScanAndUpload(const std::optional<std::vector<std::string>>& paths = std::nullopt);
  // SyncOnce: pull, scan and upload, retrying a stale commit a few times. With `paths` (what the
  // watcher reported), local moves among them are noted first (DetectLocalMoves), and files
  // this engine installed that are still exactly as installed are left out (its own echo).
  absl::Status SyncOnce(const std::optional<std::vector<std::string>>& paths = std::nullopt);

  void Run();
  void Stop();
  void NotifyRemoteHead(uint64_t seq);
  // RequestPull: pull from the cursor even if no head past it was reported (the notification
  // stream reconnected and its heads may be behind the store).
  void RequestPull();
  // NotifyLocalChange: scan the whole folder after the coalescing delay (the watcher lost
  // events).
  void NotifyLocalChange();
  // NotifyLocalPaths: these paths changed; `writing` ones may still be being written.
  void NotifyLocalPaths(const std::vector<std::pair<std::string, bool>>& paths);
  // SetChunkGear: the chunker's table (an encrypted namespace's), from the next sync round on;
  // thread-safe.
  void SetChunkGear(std::shared_ptr<const GearTable> gear);
  // SetSelection: the subtrees this device keeps out (`converge-engine select`), carried out at
  // the next round (AdoptSelection); thread-safe. The same selection again does nothing.
  void SetSelection(Selection wanted);
  // AdoptSelection carries out the selection SetSelection asked for (Run calls it): changes
  // made here below what becomes excluded are committed first; what becomes included is written
  // back from the versions the index recorded meanwhile (Applier::Materialize); then the new
  // selection is recorded in the index (a crash from then on cannot turn removed copies into
  // deletions) and the local copies still as synced are removed (Applier::Vacate).
  absl::Status AdoptSelection();
  // RequestRevert: a receive-only folder reverts its local differences at the next round
  // (Revert); thread-safe.
  void RequestRevert();
  // Revert sets a receive-only folder's local differences aside (Filesystem::SetAside: new and
  // changed entries; nothing is deleted) and writes the namespace's versions back where they
  // differ. FailedPrecondition for a folder that is not receive-only.
  absl::Status Revert();
  // RequestOverride: a send-only folder pushes its state over the changes it did not apply, at
  // the next round (Override); thread-safe.
  void RequestOverride();
  // Override makes the namespace match a send-only folder where it did not apply others'
  // changes: a file here goes up as the next version, one never here is deleted, one deleted
  // elsewhere and kept here is made again (a mass delete is held as any other).
  // FailedPrecondition for a folder that is not send-only.
  absl::Status Override();
  // SetPaused: a paused engine neither scans nor pulls until resumed.
  void SetPaused(bool paused);
  // set_local_event_flush: called before every pull to have the watcher report what it has
  // queued (Watcher::Flush). Set before Run; the callee must outlive the engine's last pull.
  // An engine with a watcher verifies beside its rounds (see above).
  void set_local_event_flush(std::function<void()> flush) { flush_local_events_ = std::move(flush); }

  EngineStatus status() const;
  // How many verifying scans ran beside the rounds, and how many paths the last one suspected.
  std::pair<uint64_t, uint64_t> verifications() const {
    absl::MutexLock lock(&mu_);
    return {verifications_, last_suspects_};
  }
  // How many times more changed paths were reported than the engine keeps one by one, and a
  // scan of the whole folder took their place.
  uint64_t dirty_overflows() const {
    absl::MutexLock lock(&mu_);
    return dirty_overflows_;
  }

  const ApplyStats& apply_stats() const { return applier_.stats(); }
  const UploadStats& upload_stats() const { return upload_stats_; }
  const ScanStats& scan_stats() const { return scan_stats_; }
  // How many times the store's file table was applied instead of its (compacted) log.
  uint64_t snapshots() const { return snapshots_; }

 private:
  Filesystem* const fs_;
  LocalIndex* const index_;
  StoreClient* const store_;
  Clock* const clock_;
  const std::string device_id_;
  const EngineOptions options_;
  Scanner scanner_;
  Applier applier_;
  UploadStats upload_stats_;
  ScanStats scan_stats_;
  uint64_t snapshots_ = 0;
  // Moves of a commit the store refused as stale, for the next pull (old path, new path).
  std::vector<std::pair<std::string, std::string>> pending_local_moves_;
  // Paths of this round the watcher reported, to look for local moves among before a pull
  // applies anything (PullAndApply).
  std::vector<std::string> moves_to_detect_;
  // Files and directories the applier installed whose watcher events are still to come: the
  // stat each was installed with, and whether that stat can stand for its content (Trusted).
  // Only these, not whole index entries: up to Applier::kMaxInstalledKept are kept, and a large
  // folder's first download keeps that many (whole entries held 82 MB there).
  struct Installed {
    FileKind kind = FileKind::kFile;  // the version's
    LocalStat local;
    bool trusted = false;
  };
  absl::flat_hash_map<std::string, Installed> own_installs_;
  // DropOwnEchoes takes out of `paths` those the applier installed that are still exactly as
  // installed (the watcher reporting this engine's own writes: nothing to scan).
  void DropOwnEchoes(std::vector<std::string>* paths);
  // AsInstalled: `path` is one the applier installed (own_installs_) and is still as it made it.
  bool AsInstalled(const std::string& path, const LocalStat& now) const;
  std::vector<std::string> acked_blocked_;  // the blocked versions the store was last told of
  std::function<void()> flush_local_events_;

  struct DirtyPath {
    bool writing = false;
    bool deletion = false;  // a deletion held back until the folder is quiet
    absl::Time first_event;
    absl::Time last_event;
  };
  // Ready reports whether a dirty path can be scanned now.
  bool Ready(const DirtyPath& d, absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (d.deletion) return now - last_local_event_ >= options_.delete_settle;
    return !d.writing || now - d.last_event >= options_.write_settle;
  }
  // ReadyAt: when a dirty path that is not ready now becomes ready.
  absl::Time ReadyAt(const DirtyPath& d) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (d.deletion) return last_local_event_ + options_.delete_settle;
    return d.writing ? d.last_event + options_.write_settle : absl::InfinitePast();
  }
  // TakeReadyPaths removes and returns the dirty paths that can be scanned now, and the time of
  // the earliest event among them.
  std::vector<std::string> TakeReadyPaths(absl::Time now, absl::Time* earliest) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // DetectLocalMoves notes the files at `paths` (and below directories among them) that are a
  // synced file renamed here and not yet committed (same inode, size and mtime; the old name is
  // gone), for the next pull to undo and make again (Applier::set_local_moves).
  absl::Status DetectLocalMoves(const std::vector<std::string>& paths);
  // ApplySnapshot applies the store's file table as one commit at its head (the store compacted
  // the log this device still needed), deleting what the table no longer has.
  absl::Status ApplySnapshot();
  // The chunks of the synced version at a path (the store has them all), and where they lay (a
  // changed chunk may go as a delta against the old one it overlaps most).
  struct PreviousChunks {
    absl::flat_hash_set<std::string> chunks;
    ChunkLayout layout;
  };
  absl::StatusOr<PreviousChunks> PreviousOf(const std::string& path);
  // A chunk to upload if the store lacks it.
  struct OutgoingChunk {
    Digest sha256{};
    uint32_t length = 0;
    std::vector<Digest> bases;   // the old chunks at its offset: an edit may go as a delta on them
    std::string bytes;           // as the scan hashed them; empty: read again at path/offset
    std::string path;
    uint64_t offset = 0;
  };
  // UploadChunks asks the store which of `chunks` it lacks and sends those (zstd when that
  // pays, an rsync delta against `bases` when much smaller). A chunk read again whose bytes no
  // longer match goes to `unreadable` (its file changed since the scan). Every other digest
  // goes to `stored`: the store has it now.
  absl::Status UploadChunks(std::vector<OutgoingChunk> chunks, absl::flat_hash_set<std::string>* stored,
                            absl::flat_hash_set<std::string>* unreadable);
  // What a scan's chunk sink collects: chunks of the files being read, uploaded in batches of
  // kScanUploadBatchBytes while the scan goes on. One batch (or one commit of what the scan
  // found so far) goes to the store on a thread of its own while the next one is read; the scan
  // waits for it before it hands over the next.
  struct BatchUpload {
    absl::Status status;
    absl::flat_hash_set<std::string> stored;
    absl::flat_hash_set<std::string> unreadable;
  };
  struct ScanUploads {
    std::vector<OutgoingChunk> pending;
    uint64_t pending_bytes = 0;
    absl::flat_hash_set<std::string> queued;  // digests in pending
    absl::flat_hash_set<std::string> stored;  // digests the store has now
    absl::flat_hash_set<std::string> unreadable;
    // The previous version of the file being read.
    std::string layout_path;
    PreviousChunks previous;
    absl::Status status;
    std::future<BatchUpload> in_flight;  // the batch being uploaded or committed, if any
  };
  // CommitWhileScanning commits what a scan found so far (Scanner::ChangeSink) once its chunks
  // are stored, on a thread of its own while the scan reads on (as a batch upload: one at a time).
  absl::Status CommitWhileScanning(std::vector<LocalChange>* changes, int64_t scanned_at_ns, ScanUploads* uploads);
  // CommitFound uploads `batch` and what else `found` needs, then commits `found`; it reads
  // `scan` (the scan does not change it meanwhile) and adds what it learns to `out`.
  absl::Status CommitFound(std::vector<LocalChange> found, std::vector<OutgoingChunk> batch, int64_t scanned_at_ns,
                           const ScanUploads& scan, BatchUpload* out);
  // CommitInBatches commits creations, edits and moves in order, max_files_per_commit at a time
  // (a move and its tombstone always together).
  absl::Status CommitInBatches(const std::vector<LocalChange>& changes, int64_t scanned_at_ns);
  void CollectScanChunk(ScanUploads* uploads, const std::string& path, const ChunkRef& ref, uint64_t offset,
                        absl::string_view bytes);
  // HandOverScanBatch waits for the batch in flight, then starts uploading the pending one.
  // FlushScanUploads uploads what is pending and waits for every batch.
  void HandOverScanBatch(ScanUploads* uploads);
  void AwaitScanBatch(ScanUploads* uploads);
  static void Absorb(ScanUploads* uploads, BatchUpload done);
  absl::Status FlushScanUploads(ScanUploads* uploads);
  // TakePending empties the pending batch and returns it.
  static std::vector<OutgoingChunk> TakePending(ScanUploads* uploads);
  // TakeInline: when what is left to upload after the scan is small (kMaxInlineChunkBytes, no
  // edited chunk over 16 KiB that a delta would shrink), it goes with the first commit instead (no FindMissing, no PutChunks: a small change
  // costs one round trip); returns false, taking nothing, otherwise.
  bool TakeInline(ScanUploads* uploads);
  // AnyCompresses: whether zstd would shrink any of `chunks` (a large one judged by samples,
  // small ones together, about 16 KiB at a time).
  static bool AnyCompresses(const std::vector<OutgoingChunk>& chunks);
  // One round of Run: what to do, once WaitForWork returns.
  struct Round {
    bool stop = false;
    bool local = false;  // scan (the ready dirty paths, or all of them)
    bool full_scan = false;
    bool verify = false;  // start a verifying scan beside the rounds
    bool pull = false;
    bool select = false;  // a new selection waits (AdoptSelection)
    bool revert = false;  // a revert waits
    bool override = false;  // an override waits
  };
  Round WaitForWork(absl::Time next_scan);
  // StartVerify starts a verifying scan on a thread of its own unless one still runs; Verify is
  // that thread: Scanner::Suspects, marked dirty for targeted scans (too many, or an error: a
  // full scan instead). The case collisions no longer on disk leave the status.
  void StartVerify();
  void Verify(const ScanFilter& filter);
  // NoteLocalDifferences is ScanAndUpload for a receive-only folder: it scans (not reading again
  // a file whose difference was noted and whose stat has not changed since) and keeps what it
  // finds as the folder's local differences, uploading nothing.
  absl::Status NoteLocalDifferences(const std::optional<std::vector<std::string>>& paths);
  void PublishDifferences();
  // Answered clears a request flag (revert_requested_, override_requested_) once carried out.
  void Answered(bool* request);
  // CountNotApplied puts the number of versions a send-only folder did not apply in the status
  // (a walk of the index).
  absl::Status CountNotApplied();
  struct Difference {
    const char* kind;  // added, changed, deleted
    LocalStat local;   // when noted
  };
  std::map<std::string, Difference> differences_;  // engine thread only
  // LoadSelection reads the selection this device adopted from the index into the scanner, the
  // applier and selection_. Until it has, nothing syncs (selection_loaded_).
  absl::Status LoadSelection();
  absl::Status selection_loaded_;  // engine thread only after construction
  bool caught_up_ = false;  // versions a send-only run of this folder did not apply are applied
  // PullDue: a head past the cursor was heard of, a pull was asked for, or the last complete
  // pull is not recent.
  bool PullDue();
  // SyncLocal scans the ready paths (or the whole folder) and commits what changed.
  absl::Status SyncLocal(bool full_scan, absl::Time* next_scan);
  // AfterRound logs and records a round's outcome; false when the device was revoked.
  bool AfterRound(const absl::Status& s, absl::Status* last, absl::Time* next_scan);
  // NoteUnscannedMoves hands the applier the local moves no scan has committed yet: among
  // moves_to_detect_ (an error there is returned), then among the paths still dirty.
  absl::Status NoteUnscannedMoves();
  // ApplyPulled applies one pulled commit and records it in the metrics.
  absl::Status ApplyPulled(const Commit& c);
  // AckApplied retries blocked versions and acks the cursor (and what stays blocked) if either
  // changed since `before`.
  void AckApplied(uint64_t before);
  // StartCatchUp shows a catch-up in the status when many commits wait; EndCatchUp ends it.
  void StartCatchUp();
  void EndCatchUp();
  // AckProgress counts a pulled commit's files and, every kProgressAckEvery, acks the cursor
  // while the pull goes on.
  void AckProgress(size_t files);
  // EncodeUpload fills `out` with a chunk's bytes: raw for the call's zstd stream, or an rsync
  // delta against `signature`'s base when that is under 90% of the chunk's compressed size.
  static void EncodeUpload(const Digest& d, const std::vector<Digest>& bases, std::string bytes,
                           const Signature* signature, ChunkUpload* out);
  // RecordScan counts a scan in the scan statistics and metrics.
  void RecordScan(const ScanResult& scan, bool targeted, absl::Duration took);
  // UploadLeftovers uploads the chunks of `changes` the scan did not upload as it read them.
  // Chunks known to `scan` or `out` are not asked about; what it learns goes to `out`.
  absl::Status UploadLeftovers(const std::vector<LocalChange>& changes, const ScanUploads& scan, BatchUpload* out);
  // DeferDeletionsWhileBusy leaves the deletions for later (and returns true) while local
  // events keep coming (rm -r in progress).
  bool DeferDeletionsWhileBusy(std::vector<LocalChange>* deletions);
  // CommitDeletions commits deletions in batches; a mass delete the store holds stops there
  // (*held), one it rejected is restored.
  struct HeldDeletions {
    uint64_t count = 0;
    std::string message;
  };
  absl::Status CommitDeletions(const std::vector<LocalChange>& deletions, int64_t scanned_at_ns, HeldDeletions* held);

  // CommitBatch commits one batch of scanned changes and records them in the index.
  // A batch the store refuses for a case collision is committed again without the colliding
  // names, which stay local (EngineStatus::case_collisions).
  absl::Status CommitBatch(const std::vector<LocalChange>& batch, int64_t scanned_at_ns);
  absl::Status CommitBatchOnce(const std::vector<LocalChange>& batch, int64_t scanned_at_ns);
  // WithoutCaseCollisions returns the changes of `batch` whose names (and directories) do not
  // differ only in case from a live synced path or an earlier name of the batch.
  absl::StatusOr<std::vector<LocalChange>> WithoutCaseCollisions(const std::vector<LocalChange>& batch);

  // Status updates from the sync thread.
  void SetState(EngineStatus::State state, const std::string& error = "");
  void StartTransfer(const char* direction, uint64_t total);
  void AddTransferred(uint64_t bytes);
  void EndTransfer();

  mutable absl::Mutex status_mu_;
  EngineStatus status_ ABSL_GUARDED_BY(status_mu_);
  absl::flat_hash_set<std::string> case_warned_ ABSL_GUARDED_BY(status_mu_);  // logged once

  mutable absl::Mutex mu_;
  bool paused_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<Selection> wanted_selection_ ABSL_GUARDED_BY(mu_);
  bool revert_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool override_requested_ ABSL_GUARDED_BY(mu_) = false;
  Selection selection_ ABSL_GUARDED_BY(mu_);  // as adopted (written by the engine thread only)
  std::optional<std::shared_ptr<const GearTable>> new_gear_ ABSL_GUARDED_BY(mu_);  // for the next round
  uint64_t remote_head_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_pull_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();  // of the last complete pull
  // Chunks the next commit carries (TakeInline); engine thread only.
  std::vector<InlineChunk> inline_chunks_;
  bool pull_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool full_scan_requested_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<std::string, DirtyPath> dirty_ ABSL_GUARDED_BY(mu_);
  absl::Time last_local_event_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t verifications_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t last_suspects_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dirty_overflows_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time progress_acked_;  // the last ack sent while a pull was still applying
  // The verifying scan beside the rounds, if one was started (Run waits for it before it
  // returns); engine thread only, as are the two below.
  std::future<void> verifying_;
  bool full_scan_done_ = false;  // a full scan succeeded (the first is always a round)
  bool held_ = false;            // local deletions held by the store (full scans ask again)
};

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_SYNC_SYNC_ENGINE_H_
