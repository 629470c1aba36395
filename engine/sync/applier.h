// Applier: applies remote commits to the folder, atomically and durably, without losing local
// edits. Files are assembled in a temp file (reusing chunks of the local copy where they still
// match, fetching the rest), verified against the whole-file hash, made durable and renamed into
// place; the index is updated only after that, in one synced batch per commit together with the
// cursor. Small files go in batches: their chunks come in one fetch, their temp files are made
// durable by one syncfs before any is renamed, and each directory is fsynced once after the
// renames.
//
// Thread-compatible.
#ifndef CONVERGE_ENGINE_SYNC_APPLIER_H_
#define CONVERGE_ENGINE_SYNC_APPLIER_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "common/base/clock.h"
#include "common/model/model.h"
#include "engine/fs/filesystem.h"
#include "engine/sync/chunker.h"
#include "engine/sync/local_index.h"
#include "engine/sync/planner.h"
#include "engine/sync/selection.h"

namespace converge::engine {

class WriteBehind;

// A chunk to fetch, and optionally a chunk the device has that resembles it (the store may then
// send only the difference).
struct ChunkWant {
  Digest sha256;
  // Chunks the device has whose bytes, one after another, resemble the wanted one (0 to
  // kMaxDeltaBases): the store may send a delta against them.
  std::vector<Digest> bases;
};

// ChunkSource fetches chunk bytes by digest (from the store).
class ChunkSource {
 public:
  using Sink = std::function<absl::Status(const Digest&, std::string)>;
  // BaseReader returns the raw bytes of a base chunk the device has (checked against its hash).
  using BaseReader = std::function<absl::StatusOr<std::string>(const Digest&)>;

  virtual ~ChunkSource() = default;
  // Fetch calls `sink` once per wanted chunk, in order, with raw bytes already checked against
  // its digest. `read_base` is asked for a base when the store answered with a delta.
  virtual absl::Status Fetch(const std::vector<ChunkWant>& wants, const BaseReader& read_base, const Sink& sink) = 0;

  absl::Status Fetch(const std::vector<Digest>& digests, const Sink& sink) {
    std::vector<ChunkWant> wants;
    wants.reserve(digests.size());
    for (const Digest& d : digests) wants.push_back(ChunkWant{d, {}});
    return Fetch(wants, nullptr, sink);
  }
};

struct ApplyStats {
  uint64_t files_written = 0;
  uint64_t dirs_made = 0;
  uint64_t removed = 0;
  uint64_t metadata_set = 0;  // mode and mtime changes applied without moving content
  uint64_t conflicts = 0;
  uint64_t bytes_fetched = 0;
  uint64_t bytes_reused = 0;
  uint64_t bytes_resumed = 0;  // found verified in an interrupted download's partial file
  uint64_t moved = 0;          // files renamed in place (a move elsewhere: nothing fetched)
};

// Files up to this size are written in batches.
inline constexpr uint64_t kBatchedFileBytes = 1 << 20;

class Applier {
 public:
  // `params` must be those the scanner cuts with: a local file's content hash comes from them.
  Applier(Filesystem* fs, LocalIndex* index, ChunkSource* chunks, Clock* clock, std::string device,
          ChunkParams params = ChunkParams{})
      : fs_(fs), index_(index), chunks_(chunks), clock_(clock), device_(std::move(device)), params_(params) {}

  // ApplyCommit applies every version of `commit` and moves the cursor to commit.seq.
  // On error, what was applied is recorded in the index but the cursor stays, so the commit is
  // applied again (idempotently) later. A version that cannot be applied here for a lasting
  // local reason (its directory is a local file or symlink, a name the filesystem refuses, no
  // permission: FailedPrecondition, InvalidArgument, PermissionDenied, AlreadyExists, with the
  // folder itself intact) does not hold the rest back: it is blocked (Blocked(), kept in the
  // index across restarts, tried again by RetryBlocked) and the commit completes without it.
  absl::Status ApplyCommit(const Commit& commit);
  // ApplyPart applies a part of a larger whole as ApplyCommit does, leaving the cursor where it
  // is (the store's file table, page by page).
  absl::Status ApplyPart(const Commit& part);
  // Blocked lists the remote versions not applied here, as "path: why" (path order).
  absl::StatusOr<std::vector<std::string>> Blocked();
  // RetryBlocked applies the blocked versions that no later version replaced (the local
  // obstruction may be gone); those that apply stop being blocked. The cursor does not move.
  absl::Status RetryBlocked();

  // Restore writes `versions` (as the index last recorded them) back into the folder, parents
  // first, and records them in the index: the undo of local deletions the store refused (a
  // rejected mass delete). A path that exists again locally is left as it is.
  absl::Status Restore(std::vector<FileVersion> versions);

  // set_local_moves: moves this device made that the store has not taken yet (its commit was
  // stale): old path -> new path. A commit that changes an old path is applied with the move
  // undone and the move is made again after it, so the next scan commits it on top.
  void set_local_moves(std::vector<std::pair<std::string, std::string>> moves) { local_moves_ = std::move(moves); }

  const ApplyStats& stats() const { return stats_; }
  // TakeInstalled hands over the files written into place and the directories made since it
  // was last called, as the index records them (the watcher reports each of them back:
  // SyncEngine knows those events as its own while they are as installed). At most
  // kMaxInstalledKept are kept.
  std::vector<IndexEntry> TakeInstalled() { return std::exchange(installed_, {}); }
  static constexpr size_t kMaxInstalledKept = 1 << 16;
  // While re-syncing with a store restored from an older backup, a local file that differs from
  // the store's version is the newer one (Plan's local_wins).
  void set_local_wins(bool local_wins) { local_wins_ = local_wins; }
  // set_device_name: the name this device registered with, which conflict copies made here
  // carry beside its id (common/model/conflict_name.h).
  void set_device_name(std::string name) { device_name_ = std::move(name); }
  // set_sync_xattrs: files are written with their versions' "user." extended attributes (the
  // namespace syncs them); otherwise those are left as they are.
  void set_sync_xattrs(bool on) { sync_xattrs_ = on; }
  // set_gear: the chunker's table from now on (the scanner's: local files chunk alike).
  void set_gear(std::shared_ptr<const GearTable> gear) { params_.gear = std::move(gear); }
  // set_progress: called with every chunk's bytes as they are fetched or reused (progress of a
  // long download).
  void set_progress(std::function<void(uint64_t bytes)> fn) { progress_ = std::move(fn); }
  // set_selection: remote versions at paths `selection` excludes are recorded in the index as
  // absent here, never written (selective sync; Vacate and Restore move a subtree out and in).
  void set_selection(Selection selection) { selection_ = std::move(selection); }
  // set_send_only: other devices' versions are recorded in the index as not applied
  // (IndexEntry::not_applied), never written; this device's own apply as usual.
  void set_send_only(bool on) { send_only_ = on; }

  // Materialize writes `versions` (the index's own, of entries that are not here: a subtree this
  // device includes again, a receive-only folder's changes set aside) as an apply of them would:
  // parents first, small files in batches (one fetch each), a local entry in the way of one
  // never written here kept as a conflict copy. The cursor stays.
  absl::Status Materialize(std::vector<FileVersion> versions);

  // ApplyNotApplied applies the versions a send-only folder recorded without writing (`entries`,
  // IndexEntry::not_applied), now that the folder takes others' changes: each is planned
  // against what the folder had when it was recorded (a file unchanged since is replaced or
  // removed; one changed here is kept as a conflict copy or stays). The cursor stays.
  absl::Status ApplyNotApplied(const std::vector<IndexEntry>& entries);

  // Vacate removes the local copies of `entries` (synced entries of a subtree this device now
  // keeps out) that are still as synced, children first, and records them absent in the index.
  // A file changed here since it was synced stays, as does a directory still holding something;
  // they are counted in *kept. Nothing is reported deleted: the scanner skips excluded paths.
  absl::Status Vacate(std::vector<IndexEntry> entries, uint64_t* kept);

 private:
  // A small file to write in the next batch; planned_local is the local entry it replaces (absent
  // after a conflict copy was moved aside).
  struct PendingWrite {
    const FileVersion* remote;
    LocalStat planned_local;
    std::optional<Digest> base;  // the old content's chunk, if the local copy still has it
  };

  // ApplyOne plans and applies one version; returns nullopt when its write joined `pending`.
  absl::StatusOr<std::optional<IndexEntry>> ApplyOne(const FileVersion& remote,
                                                     std::vector<PendingWrite>* pending);
  // WriteVersion writes a file or symlink into out->local and returns true, or adds a small
  // file to `pending` (the next batch) and returns false.
  absl::StatusOr<bool> WriteVersion(const FileVersion& remote, const std::optional<IndexEntry>& entry,
                                    const LocalStat& local, IndexEntry* out, std::vector<PendingWrite>* pending);
  // WriteBatch writes the pending files and appends what it installed to `applied`.
  absl::Status WriteBatch(std::vector<PendingWrite>* pending, std::vector<IndexEntry>* applied);
  // GatherBatchChunks puts every chunk of the batch into *chunks (by digest bytes).
  absl::Status GatherBatchChunks(const std::vector<PendingWrite>& batch,
                                 absl::flat_hash_map<std::string, std::string>* chunks);
  // InstallBatch renames the batch's synced temp files into place (a local edit made meanwhile
  // is moved aside) and syncs their directories.
  absl::Status InstallBatch(const std::vector<PendingWrite>& batch, std::vector<std::unique_ptr<TempFile>>* temps,
                            std::vector<IndexEntry>* applied);
  // WriteFile downloads `remote` (reusing the local copy's chunks and any other synced file's)
  // into a temp file and installs it, unless the local file changed since it was planned.
  absl::StatusOr<LocalStat> WriteFile(const FileVersion& remote, const std::optional<IndexEntry>& entry,
                                      const LocalStat& planned_local);
  struct LocalCopy;
  LocalCopy OpenLocalCopy(const FileVersion& remote, const std::optional<IndexEntry>& entry,
                          const LocalStat& planned_local);
  // OpenTarget opens the file to assemble `remote` in; *first: the chunks a partial file of an
  // interrupted download already holds, verified.
  absl::StatusOr<std::unique_ptr<TempFile>> OpenTarget(const FileVersion& remote, size_t* first);
  // AssembleWindow writes chunks [start, end) of `remote`: reused from the folder or fetched
  // (as deltas against the local copy's chunks when it has similar ones), in order, through
  // `behind` if given.
  absl::Status AssembleWindow(const FileVersion& remote, size_t start, size_t end,
                              const std::vector<uint64_t>& offsets, const LocalCopy& local, TempFile* temp,
                              WriteBehind* behind);
  absl::Status MoveAside(const std::string& path);
  // MakeRoomAbove moves aside, as a conflict copy, a file or symlink made here where `path`
  // needs a directory (one synced as a leaf is left for its own later version to replace).
  // With `local_wins` (this device's own older version) the local file stays and the result is
  // false: the version is not written.
  absl::StatusOr<bool> MakeRoomAbove(const std::string& path, bool local_wins);
  // ClearForTypeChange makes way for `remote` where the unchanged *local entry has another type
  // (kReplace): a directory on either side is removed first (*local becomes absent). False: a
  // directory still holding entries stays, against this device's own older version (local_wins).
  // PrepareFor does what comes before a version's write: a removal, new metadata, a type
  // change's removal, a conflict copy. False: the version needs nothing more (*out is final).
  absl::StatusOr<bool> PrepareFor(Action action, const FileVersion& remote, bool local_wins, LocalStat* local,
                                  IndexEntry* out);
  absl::StatusOr<bool> ClearForTypeChange(const FileVersion& remote, LocalStat* local, bool local_wins);
  // MoveInPlace renames the local files that `commit` moves (same file_id, tombstone at the old
  // path) when the local copy is there and the new path is free, records them, and adds the
  // moved versions whose content is unchanged to `done` (the rest are applied as edits of the
  // moved file).
  absl::Status MoveInPlace(const Commit& commit, absl::flat_hash_set<const FileVersion*>* done);
  // ApplyOrder: the order `commit`'s versions not in `done` are applied in: deletions below a
  // path that becomes a file or symlink, then creations parents first, then the other
  // deletions children first.
  static std::vector<const FileVersion*> ApplyOrder(const Commit& commit,
                                                    const absl::flat_hash_set<const FileVersion*>& done);
  // ApplyWithMoves undoes the local moves `commit` touches, applies it in place (moving the
  // cursor to `cursor` if given) and makes the moves again.
  absl::Status ApplyWithMoves(const Commit& commit, std::optional<uint64_t> cursor);
  // ApplyCommitInPlace is ApplyCommit without undoing and redoing local moves; it moves the
  // cursor to `cursor` if given.
  absl::Status ApplyCommitInPlace(const Commit& commit, std::optional<uint64_t> cursor);
  // Block records `v` as blocked by `why` and returns true if `why` is a lasting local reason
  // (see ApplyCommit); false if the commit must fail with it.
  bool Block(const FileVersion& v, const absl::Status& why);
  absl::Status LoadBlocked();
  absl::Status SaveBlocked();
  // UndoLocalMoves puts back the local moves whose old path `commit` changes and returns them.
  std::vector<std::pair<std::string, std::string>> UndoLocalMoves(const Commit& commit);
  // FindLocally returns a chunk's bytes from any synced file of the folder that still has it
  // (checked against its hash), or nullopt.
  std::optional<std::string> FindLocally(const Digest& d);

  Filesystem* const fs_;
  LocalIndex* const index_;
  ChunkSource* const chunks_;
  Clock* const clock_;
  const std::string device_;
  std::string device_name_;
  bool sync_xattrs_ = false;
  ChunkParams params_;  // its gear changes by set_gear only
  bool local_wins_ = false;
  ApplyStats stats_;
  std::vector<IndexEntry> installed_;  // see TakeInstalled
  // Directories MakeRoomAbove found in place while this commit is applied (forgotten once
  // anything is removed or moved aside).
  absl::flat_hash_set<std::string> dirs_in_place_;
  std::function<void(uint64_t)> progress_;
  Selection selection_;
  bool send_only_ = false;
  bool materializing_ = false;  // in Materialize: entries recorded as not here count as none
  bool catching_up_ = false;    // in ApplyNotApplied: a not-applied entry stands for what was here
  // RecordNotApplied takes the versions of `commit` from other devices into `applied` as not
  // applied here (a send-only folder) and adds them to `done`.
  absl::Status RecordNotApplied(const Commit& commit, absl::flat_hash_set<const FileVersion*>* done,
                                std::vector<IndexEntry>* applied);
  // StillAsSynced: the local file at entry's path is the content `entry` recorded.
  absl::StatusOr<bool> StillAsSynced(const IndexEntry& entry, const LocalStat& now);
  // RecordExcluded takes the versions of `commit` at excluded paths (not in `done`) into `applied`
  // as absent here and adds them to `done`.
  void RecordExcluded(const Commit& commit, absl::flat_hash_set<const FileVersion*>* done,
                      std::vector<IndexEntry>* applied);
  std::vector<std::pair<std::string, std::string>> local_moves_;
  struct BlockedVersion {
    FileVersion version;
    std::string why;
  };
  bool blocked_loaded_ = false;
  bool blocked_dirty_ = false;
  std::map<std::string, BlockedVersion> blocked_;  // by path
};

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_SYNC_APPLIER_H_
