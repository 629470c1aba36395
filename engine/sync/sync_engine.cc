#include "engine/sync/sync_engine.h"

#include <algorithm>
#include <cstring>
#include <chrono>
#include <map>

#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/base/logging.h"
#include "common/base/metrics.h"
#include "common/base/status_macros.h"
#include "common/codec/chunk_codec.h"
#include "common/codec/rsync_delta.h"
#include "common/model/mass_delete.h"
#include "common/model/path.h"
#include "common/model/store_behind.h"

namespace converge::engine {
namespace {

// The index setting holding the selection this device adopted (Selection::ToText).
constexpr char kSelectionSetting[] = "selection";
// Index setting: "1" while re-syncing after the store was found behind this device.
constexpr char kResyncSetting[] = "resync_after_store_loss";
}  // namespace

namespace {

// BatchEnd: where the commit starting at changes[start] ends: at most max_files versions and
// kMaxCommitBytes as `store` sends them (less room for a move's tombstone that must follow its
// last version).
size_t BatchEnd(StoreClient* store, const std::vector<LocalChange>& changes, size_t start, size_t max_files) {
  size_t end = start, bytes = 0;
  while (end < changes.size() && end - start < max_files) {
    bytes += store->CommitBytesOf(changes[end].version);
    if (end > start && bytes > kMaxCommitBytes - (8 << 10)) break;
    ++end;
  }
  return end;
}

// SortChanges splits a scan's changes into those committed at once, in order (creations, edits,
// moves each followed by its tombstone; then each directory replaced by a file or symlink, after
// the deletions below it: the store takes no file with live entries below it), and the other
// deletions, deepest first (committed after them, together). A change with a chunk that could
// not be read is left out (it waits for the next scan).
void SortChanges(std::vector<LocalChange> changes, const absl::flat_hash_set<std::string>& unreadable,
                 std::vector<LocalChange>* others, std::vector<LocalChange>* deletions) {
  std::vector<LocalChange> readable;
  absl::flat_hash_set<std::string> leaves;  // paths that become files or symlinks
  for (LocalChange& c : changes) {
    bool ok = true;
    for (const ChunkRef& ref : c.version.chunks) ok = ok && !unreadable.contains(DigestToBytes(ref.sha256));
    if (!ok) continue;
    if (!c.version.deleted && c.version.kind != FileKind::kDirectory) leaves.insert(c.version.path);
    readable.push_back(std::move(c));
  }
  auto leaf_above = [&](absl::string_view path) -> std::optional<std::string> {
    for (absl::string_view dir = ParentPath(path); !dir.empty(); dir = ParentPath(dir)) {
      if (leaves.contains(dir)) return std::string(dir);
    }
    return std::nullopt;
  };
  std::vector<LocalChange> below_leaves;
  absl::flat_hash_set<std::string> replaced;  // leaves with deletions below them
  for (LocalChange& c : readable) {
    if (!c.version.deleted || c.moved) continue;
    if (std::optional<std::string> leaf = leaf_above(c.version.path); leaf.has_value()) {
      replaced.insert(*leaf);
      below_leaves.push_back(std::move(c));
    } else {
      deletions->push_back(std::move(c));
    }
  }
  std::vector<LocalChange> replacements;
  for (LocalChange& c : readable) {
    if (c.version.deleted && !c.moved) continue;  // sorted above
    (replaced.contains(c.version.path) && !c.version.deleted ? replacements : *others).push_back(std::move(c));
  }
  for (LocalChange& c : below_leaves) others->push_back(std::move(c));
  for (LocalChange& c : replacements) others->push_back(std::move(c));
}

constexpr uint32_t kPullBatch = 500;
// While a long pull applies, the store hears how far this device got this often (operators see
// its lag fall), and the status shows it as a catch-up once this many commits wait.
constexpr absl::Duration kProgressAckEvery = absl::Seconds(2);
constexpr uint64_t kCatchUpCommits = 20;
constexpr int kStaleRetries = 3;
constexpr absl::Duration kHeldRetry = absl::Seconds(2);
// A verifying scan that suspects more paths than this hands over a full scan instead.
constexpr size_t kMaxSuspects = 10000;
// Changed paths kept to scan one by one: past this many (a new device installing a million
// files hears each of them), the next round scans the whole folder instead, and paths reported
// until that scan begins are not kept (the scan looks at them).
constexpr size_t kMaxDirtyPaths = 32768;

std::shared_ptr<spdlog::logger> Log() {
  static auto log = GetLogger("engine");
  return log;
}

struct Metrics {
  Counter* snapshots = DefaultMetrics().AddCounter("converge_engine_snapshots_total",
                                                   "file tables applied because the store had compacted the log");
  Histogram* commit_to_applied = DefaultMetrics().AddHistogram(
      "converge_engine_commit_to_applied_seconds",
      "from the store making another device's commit durable to this engine having applied it "
      "(store clock vs engine clock; millisecond commit times)",
      LatencyBuckets());
  Histogram* change_to_committed = DefaultMetrics().AddHistogram(
      "converge_engine_change_to_committed_seconds",
      "from the watcher reporting a local change to its commit being durable in the store", LatencyBuckets());
  Counter* full_scans = DefaultMetrics().AddCounter("converge_engine_scans_total", "scans", "kind=\"full\"");
  Counter* targeted_scans = DefaultMetrics().AddCounter("converge_engine_scans_total", "scans", "kind=\"paths\"");
  Counter* commits = DefaultMetrics().AddCounter("converge_engine_commits_total", "local changes committed");
  Counter* applied = DefaultMetrics().AddCounter("converge_engine_applied_commits_total", "remote commits applied");
  Counter* bytes_up = DefaultMetrics().AddCounter("converge_engine_chunk_bytes_total", "chunk bytes moved",
                                                  "direction=\"up\"");
  Gauge* cursor = DefaultMetrics().AddGauge("converge_engine_cursor", "the highest seq applied");
  Counter* delta_saved = DefaultMetrics().AddCounter("converge_engine_delta_saved_bytes_total",
                                                     "upload bytes saved by rsync deltas against the store's chunks");
};

Metrics& M() {
  static Metrics* m = new Metrics();
  return *m;
}

}  // namespace

const char* StateName(EngineStatus::State s) {
  switch (s) {
    case EngineStatus::State::kStarting: return "starting";
    case EngineStatus::State::kUpToDate: return "up to date";
    case EngineStatus::State::kSyncing: return "syncing";
    case EngineStatus::State::kPaused: return "paused";
    case EngineStatus::State::kError: return "error";
    case EngineStatus::State::kRevoked: return "revoked";
    case EngineStatus::State::kHeld: return "waiting for approval";
  }
  return "?";
}

SyncEngine::SyncEngine(Filesystem* fs, LocalIndex* index, StoreClient* store, Clock* clock,
                       std::string device_id, EngineOptions options)
    : fs_(fs),
      index_(index),
      store_(store),
      clock_(clock),
      device_id_(std::move(device_id)),
      options_(options),
      scanner_(fs, index, clock, options.chunk_params),
      applier_(fs, index, store, clock, device_id_, options.chunk_params) {
  if (options_.new_file_id) scanner_.set_file_ids(options_.new_file_id);
  applier_.set_device_name(options_.device_name);
  applier_.set_sync_xattrs(options_.sync_xattrs);
  scanner_.set_sync_xattrs(options_.sync_xattrs);
  if (options_.syncable) scanner_.set_syncable(options_.syncable);
  applier_.set_progress([this](uint64_t bytes) { AddTransferred(bytes); });
  applier_.set_send_only(options_.send_only);
  status_.cursor = index_->cursor();
  selection_loaded_ = LoadSelection();
  if (!selection_loaded_.ok()) Log()->error("{}", selection_loaded_.ToString());
}

absl::Status SyncEngine::LoadSelection() {
  absl::StatusOr<std::optional<std::string>> saved = index_->GetSetting(kSelectionSetting);
  absl::StatusOr<Selection> selection = saved.ok() ? Selection::Parse(saved->value_or("")) : saved.status();
  if (!selection.ok()) {
    return absl::Status(selection.status().code(),
                        absl::StrCat("the selection this device keeps cannot be read (nothing syncs until it can: "
                                     "its excluded copies would read as deletions): ",
                                     selection.status().message()));
  }
  scanner_.set_selection(*selection);
  applier_.set_selection(*selection);
  absl::MutexLock lock(&mu_);
  selection_ = *std::move(selection);
  return absl::OkStatus();
}

EngineStatus SyncEngine::status() const {
  EngineStatus s;
  {
    absl::MutexLock lock(&status_mu_);
    s = status_;
  }
  absl::MutexLock lock(&mu_);
  s.remote_head = std::max(s.remote_head, remote_head_);
  s.pending_uploads = dirty_.size();
  s.excluded = selection_.Rules();
  s.selection_pending = wanted_selection_.has_value();
  s.receive_only = options_.receive_only;
  s.revert_pending = revert_requested_;
  s.send_only = options_.send_only;
  s.override_pending = override_requested_;
  if (paused_) s.state = EngineStatus::State::kPaused;
  return s;
}

void SyncEngine::SetState(EngineStatus::State state, const std::string& error) {
  absl::MutexLock lock(&status_mu_);
  status_.state = state;
  status_.error = error;
  status_.cursor = index_->cursor();
  if (state == EngineStatus::State::kUpToDate) status_.last_synced = clock_->Now();
}

void SyncEngine::StartTransfer(const char* direction, uint64_t total) {
  absl::MutexLock lock(&status_mu_);
  status_.transfer = direction;
  status_.transfer_done = 0;
  status_.transfer_total = total;
  status_.transfer_started = clock_->Now();
}

void SyncEngine::AddTransferred(uint64_t bytes) {
  absl::MutexLock lock(&status_mu_);
  status_.transfer_done += bytes;
}

void SyncEngine::EndTransfer() {
  absl::MutexLock lock(&status_mu_);
  status_.transfer.clear();
  status_.cursor = index_->cursor();
}

void SyncEngine::SetSelection(Selection wanted) {
  absl::MutexLock lock(&mu_);
  if (wanted_selection_.has_value() ? *wanted_selection_ == wanted : selection_ == wanted) return;
  wanted_selection_ = std::move(wanted);
}

absl::Status SyncEngine::AdoptSelection() {
  if (!selection_loaded_.ok()) {
    selection_loaded_ = LoadSelection();
    CONVERGE_RETURN_IF_ERROR(selection_loaded_);
  }
  Selection wanted;
  Selection before;
  {
    absl::MutexLock lock(&mu_);
    if (!wanted_selection_.has_value()) return absl::OkStatus();
    wanted = *wanted_selection_;
    before = selection_;
  }
  // A path changes side only with its deepest ruled ancestor, so the subtrees that change are
  // those of the ruled paths (of either selection) that change.
  std::vector<std::string> ruled = before.Paths();
  for (std::string& p : wanted.Paths()) ruled.push_back(std::move(p));
  std::sort(ruled.begin(), ruled.end());
  ruled.erase(std::unique(ruled.begin(), ruled.end()), ruled.end());
  std::vector<std::string> leaving;
  std::vector<std::string> entering;
  for (const std::string& p : ruled) {
    if (wanted.Excluded(p) != before.Excluded(p)) (wanted.Excluded(p) ? leaving : entering).push_back(p);
  }
  // The synced entries of those subtrees whose side changes.
  auto entries_under = [&](const std::vector<std::string>& roots, bool excluded_now) {
    std::vector<IndexEntry> out;
    auto take = [&](const IndexEntry& e) {
      if (wanted.Excluded(e.version.path) == excluded_now && before.Excluded(e.version.path) != excluded_now) {
        out.push_back(e);
      }
    };
    absl::Status status;
    for (const std::string& root : roots) {
      absl::StatusOr<std::optional<IndexEntry>> at = index_->Get(root);
      if (at.ok() && at->has_value() && !(*at)->version.deleted) take(**at);
      status.Update(at.status());
      status.Update(index_->ForEachLiveUnder(root, take));
    }
    return status.ok() ? absl::StatusOr<std::vector<IndexEntry>>(std::move(out)) : status;
  };
  // What was made or changed here in the subtrees leaving goes up first: nothing made here is
  // lost by being kept out.
  if (!leaving.empty()) CONVERGE_RETURN_IF_ERROR(SyncOnce(leaving));
  // What comes back is written before the selection changes: an entry the index has that is
  // missing from an included path would be taken for a deletion.
  CONVERGE_ASSIGN_OR_RETURN(std::vector<IndexEntry> back, entries_under(entering, false));
  std::vector<FileVersion> versions;
  versions.reserve(back.size());
  for (IndexEntry& e : back) versions.push_back(std::move(e.version));
  CONVERGE_RETURN_IF_ERROR(applier_.Materialize(std::move(versions)));
  // Recorded before any copy is removed: a crash from here on cannot make them deletions.
  CONVERGE_RETURN_IF_ERROR(index_->SetSetting(kSelectionSetting, wanted.ToText()));
  scanner_.set_selection(wanted);
  applier_.set_selection(wanted);
  CONVERGE_ASSIGN_OR_RETURN(std::vector<IndexEntry> out, entries_under(leaving, true));
  uint64_t kept = 0;
  CONVERGE_RETURN_IF_ERROR(applier_.Vacate(std::move(out), &kept));
  {
    absl::MutexLock lock(&status_mu_);
    status_.excluded_kept = kept;
  }
  absl::MutexLock lock(&mu_);
  selection_ = wanted;
  if (wanted_selection_.has_value() && *wanted_selection_ == wanted) wanted_selection_.reset();
  Log()->info("selection adopted: {} subtree(s) left, {} came back", leaving.size(), entering.size());
  return absl::OkStatus();
}

absl::Status SyncEngine::NoteLocalDifferences(const std::optional<std::vector<std::string>>& paths) {
  const absl::Time started = clock_->Now();
  std::optional<std::vector<std::string>> look = paths;
  if (look.has_value()) {
    // A difference already noted whose stat has not moved is not read again.
    std::vector<std::string> kept;
    for (const std::string& p : *look) {
      auto known = differences_.find(p);
      absl::StatusOr<LocalStat> now = fs_->Stat(p);
      if (known != differences_.end() && now.ok() && now->kind != FileKind::kDirectory &&
          now->exists == known->second.local.exists && (!now->exists || now->Same(known->second.local))) {
        continue;
      }
      kept.push_back(p);
    }
    if (kept.empty()) return absl::OkStatus();
    look = std::move(kept);
  }
  absl::StatusOr<ScanResult> scanned = look.has_value() ? scanner_.ScanPaths(*look) : scanner_.Scan();
  CONVERGE_ASSIGN_OR_RETURN(ScanResult scan, std::move(scanned));
  if (scan.whole_folder) look.reset();
  RecordScan(scan, look.has_value(), clock_->Now() - started);
  CONVERGE_RETURN_IF_ERROR(index_->Update(scan.refreshed, std::nullopt));
  // What this scan looked at is replaced by what it found.
  if (!look.has_value()) {
    differences_.clear();
  } else {
    for (const std::string& p : *look) {
      differences_.erase(p);
      const std::string below = absl::StrCat(p, "/");
      for (auto it = differences_.lower_bound(below); it != differences_.end() && absl::StartsWith(it->first, below);) {
        it = differences_.erase(it);
      }
    }
  }
  for (const LocalChange& c : scan.changes) {
    absl::StatusOr<std::optional<IndexEntry>> entry = index_->Get(c.version.path);
    const bool synced = entry.ok() && entry->has_value() && !(*entry)->version.deleted;
    const char* kind = c.version.deleted ? "deleted" : synced ? "changed" : "added";
    differences_[c.version.path] = Difference{kind, c.version.deleted ? LocalStat{} : c.local};
  }
  PublishDifferences();
  return absl::OkStatus();
}

void SyncEngine::PublishDifferences() {
  constexpr size_t kShown = 10;
  std::vector<std::string> shown;
  for (const auto& [path, d] : differences_) {
    if (shown.size() == kShown) break;
    shown.push_back(absl::StrCat(path, " (", d.kind, ")"));
  }
  absl::MutexLock lock(&status_mu_);
  status_.local_differences = differences_.size();
  status_.differences_shown = std::move(shown);
}

void SyncEngine::Answered(bool* request) {
  absl::MutexLock lock(&mu_);
  *request = false;
}

void SyncEngine::RequestRevert() {
  absl::MutexLock lock(&mu_);
  revert_requested_ = true;
}

absl::Status SyncEngine::Revert() {
  // Asked for until done (status shows it pending; a failed revert is tried again).
  auto done = [this] { Answered(&revert_requested_); };
  if (!options_.receive_only) {
    done();
    return absl::FailedPreconditionError("only a receive-only folder keeps local differences to revert");
  }
  CONVERGE_RETURN_IF_ERROR(PullAndApply());
  CONVERGE_ASSIGN_OR_RETURN(ScanResult scan, scanner_.Scan());
  const std::string bin = absl::FormatTime("%Y%m%dT%H%M%E3SZ", clock_->Now(), absl::UTCTimeZone());
  std::vector<FileVersion> back;         // the namespace's versions to write again
  absl::flat_hash_set<std::string> set_aside;
  std::string where;
  for (const LocalChange& c : scan.changes) {  // parents before what they hold, then deletions
    const std::string& path = c.version.path;
    CONVERGE_ASSIGN_OR_RETURN(std::optional<IndexEntry> entry, index_->Get(path));
    const bool synced = entry.has_value() && !entry->version.deleted;
    if (synced) back.push_back(entry->version);
    // What is here and is not the namespace's goes aside; a synced directory stays (only what
    // it holds differs).
    if (c.version.deleted || (synced && entry->version.kind == FileKind::kDirectory &&
                              c.version.kind == FileKind::kDirectory)) {
      continue;
    }
    bool below = false;
    for (absl::string_view p = ParentPath(path); !p.empty() && !below; p = ParentPath(p)) below = set_aside.contains(p);
    if (below) continue;
    absl::StatusOr<std::string> moved = fs_->SetAside(path, bin);
    if (absl::IsNotFound(moved.status())) continue;
    CONVERGE_RETURN_IF_ERROR(moved.status());
    set_aside.insert(path);
    where = moved->substr(0, moved->size() - path.size() - 1);
  }
  const size_t written = back.size();
  CONVERGE_RETURN_IF_ERROR(applier_.Materialize(std::move(back)));
  differences_.clear();
  PublishDifferences();
  Log()->info("reverted: {} local entr{} set aside{}{}, {} namespace version(s) written back", set_aside.size(),
              set_aside.size() == 1 ? "y" : "ies", where.empty() ? "" : " in ", where, written);
  {
    absl::MutexLock lock(&status_mu_);
    if (!where.empty()) status_.reverted_to = where;
  }
  done();
  return absl::OkStatus();
}

void SyncEngine::RequestOverride() {
  absl::MutexLock lock(&mu_);
  override_requested_ = true;
}

absl::Status SyncEngine::CountNotApplied() {
  constexpr size_t kShown = 10;
  uint64_t count = 0;
  std::vector<std::string> shown;
  auto note = [&](const IndexEntry& e) {
    if (!e.not_applied) return;
    ++count;
    if (shown.size() < kShown) shown.push_back(absl::StrCat(e.version.path, e.version.deleted ? " (deleted)" : ""));
  };
  CONVERGE_RETURN_IF_ERROR(index_->ForEachNotApplied(note));
  absl::MutexLock lock(&status_mu_);
  status_.not_applied = count;
  status_.not_applied_shown = std::move(shown);
  return absl::OkStatus();
}

absl::Status SyncEngine::Override() {
  auto done = [this] { Answered(&override_requested_); };
  if (!options_.send_only) {
    done();
    return absl::FailedPreconditionError("only a send-only folder keeps changes it did not apply to override");
  }
  CONVERGE_RETURN_IF_ERROR(PullAndApply());
  // Each entry not applied is made to read as changed here: the scan below then uploads what
  // the folder holds, or deletes what it never had, on top of the namespace's version.
  std::vector<IndexEntry> pushed;
  auto push = [&](const IndexEntry& e) {
    if (!e.not_applied) return;
    IndexEntry p = e;
    p.not_applied = false;
    if (!e.version.deleted) {
      p.local = LocalStat{};
      p.local.exists = true;  // a stat no file has: read again, or gone (a deletion)
      p.local.kind = e.local.exists ? e.local.kind : e.version.kind;
    }
    pushed.push_back(std::move(p));
  };
  CONVERGE_RETURN_IF_ERROR(index_->ForEachNotApplied(push));
  CONVERGE_RETURN_IF_ERROR(index_->Update(pushed, std::nullopt));
  Log()->info("override: {} change(s) made elsewhere replaced by this folder's state", pushed.size());
  CONVERGE_RETURN_IF_ERROR(SyncOnce());
  CONVERGE_RETURN_IF_ERROR(CountNotApplied());
  done();
  return absl::OkStatus();
}

void SyncEngine::SetPaused(bool paused) {
  absl::MutexLock lock(&mu_);
  paused_ = paused;
}

absl::Status SyncEngine::PullAndApply() {
  // A re-sync after the store lost newer versions survives a restart of the engine.
  absl::StatusOr<std::optional<std::string>> resync = index_->GetSetting(kResyncSetting);
  const bool resyncing = resync.ok() && resync->has_value() && **resync == "1";
  applier_.set_local_wins(resyncing);
  // The local moves are looked for once there is something to apply (most pulls bring nothing:
  // a large new folder is then not walked once more for them).
  bool noted = false;
  auto note_moves = [&]() -> absl::Status {
    if (noted) return absl::OkStatus();
    noted = true;
    return NoteUnscannedMoves();
  };
  absl::Cleanup forget_moves = [&] {
    if (noted) return;
    moves_to_detect_.clear();
    pending_local_moves_.clear();
  };
  uint64_t before = index_->cursor();
  bool forgot = false;
  progress_acked_ = clock_->Now();
  absl::Cleanup caught_up = [&] { EndCatchUp(); };
  while (true) {
    uint32_t pulled = 0;
    absl::Status s = store_->Pull(index_->cursor(), kPullBatch, [&](const Commit& c) {
      ++pulled;
      CONVERGE_RETURN_IF_ERROR(note_moves());
      StartCatchUp();  // the head may be heard of only now
      CONVERGE_RETURN_IF_ERROR(ApplyPulled(c));
      AckProgress(c.files.size());
      return absl::OkStatus();
    });
    if (IsLogCompacted(s)) {
      // Offline longer than the store keeps its log: the file table, then the log after it.
      CONVERGE_RETURN_IF_ERROR(note_moves());
      CONVERGE_RETURN_IF_ERROR(ApplySnapshot());
      continue;
    }
    if (IsStoreBehind(s) && !forgot) {
      // The store was restored from an older backup: what this device applied past its head is
      // gone there and its seqs will be reused. Re-sync from scratch; local files that differ
      // from the store's are the newer versions and are uploaded as edits (nothing is lost).
      Log()->warn("{}: re-syncing; local files newer than the store's are uploaded again", s.message());
      CONVERGE_RETURN_IF_ERROR(index_->SetSetting(kResyncSetting, "1"));
      CONVERGE_RETURN_IF_ERROR(index_->ForgetSyncState());
      applier_.set_local_wins(true);
      forgot = true;
      before = 0;
      continue;
    }
    if (s.ok() && pulled < kPullBatch && (resyncing || forgot)) {
      CONVERGE_RETURN_IF_ERROR(index_->SetSetting(kResyncSetting, "0"));
      applier_.set_local_wins(false);
      Log()->info("re-synced with the store up to seq {}", index_->cursor());
    }
    if (!s.ok() || pulled < kPullBatch) {
      AckApplied(before);
      if (s.ok() && options_.send_only && index_->cursor() != before) CONVERGE_RETURN_IF_ERROR(CountNotApplied());
      if (s.ok()) {
        absl::MutexLock lock(&mu_);
        last_pull_ = clock_->Now();
      }
      return s;
    }
  }
}

absl::Status SyncEngine::NoteUnscannedMoves() {
  // The paths of the round first (an error there fails the pull, as a failed scan would).
  std::vector<std::string> reported;
  reported.swap(moves_to_detect_);
  CONVERGE_RETURN_IF_ERROR(DetectLocalMoves(reported));
  // A move made here that no scan has taken yet (reported late, or not ready to scan) is noted
  // too: another device's change of the moved file is then applied with the move undone.
  if (flush_local_events_) flush_local_events_();
  std::vector<std::string> unscanned;
  {
    absl::MutexLock lock(&mu_);
    unscanned.reserve(dirty_.size());
    for (const auto& [path, d] : dirty_) unscanned.push_back(path);
  }
  if (absl::Status s = DetectLocalMoves(unscanned); !s.ok()) {
    Log()->warn("looking for moves among changed paths: {}", s.ToString());  // the pull goes on
  }
  applier_.set_local_moves(std::move(pending_local_moves_));
  pending_local_moves_.clear();
  return absl::OkStatus();
}

absl::Status SyncEngine::ApplyPulled(const Commit& c) {
  uint64_t bytes = 0;
  for (const FileVersion& v : c.files) bytes += v.deleted ? 0 : v.size;
  StartTransfer("download", bytes);
  absl::Status applied = applier_.ApplyCommit(c);
  EndTransfer();
  for (IndexEntry& e : applier_.TakeInstalled()) {
    if (own_installs_.size() >= Applier::kMaxInstalledKept) break;
    own_installs_.insert_or_assign(std::move(e.version.path), Installed{e.version.kind, e.local, Trusted(e)});
  }
  if (applied.ok()) {
    M().applied->Add();
    M().cursor->Set(static_cast<int64_t>(c.seq));
    if (c.origin_device != device_id_ && c.committed_at_unix_ms > 0) {
      M().commit_to_applied->Observe(absl::ToDoubleSeconds(clock_->Now() - absl::FromUnixMillis(c.committed_at_unix_ms)));
    }
  }
  return applied;
}

void SyncEngine::StartCatchUp() {
  uint64_t head;
  {
    absl::MutexLock lock(&mu_);
    head = remote_head_;
  }
  absl::MutexLock lock(&status_mu_);
  if (status_.catchup_started != absl::InfinitePast() || head < index_->cursor() + kCatchUpCommits) return;
  status_.catchup_started = clock_->Now();
  status_.catchup_from = index_->cursor();
  status_.catchup_files = 0;
}

void SyncEngine::EndCatchUp() {
  absl::MutexLock lock(&status_mu_);
  status_.catchup_started = absl::InfinitePast();
}

void SyncEngine::AckProgress(size_t files) {
  {
    absl::MutexLock lock(&status_mu_);
    status_.catchup_files += files;
    status_.cursor = index_->cursor();
  }
  const absl::Time now = clock_->Now();
  if (now - progress_acked_ < kProgressAckEvery) return;
  progress_acked_ = now;
  if (absl::Status acked = store_->Ack(index_->cursor(), acked_blocked_); !acked.ok()) {
    Log()->warn("ack {} failed: {}", index_->cursor(), acked.ToString());  // the pull goes on
  }
}

void SyncEngine::AckApplied(uint64_t before) {
  // Versions a local obstruction kept out are tried again (it may be gone), and shown.
  if (absl::Status retried = applier_.RetryBlocked(); !retried.ok()) {
    Log()->warn("applying blocked versions again: {}", retried.ToString());
  }
  absl::StatusOr<std::vector<std::string>> blocked = applier_.Blocked();
  if (blocked.ok()) {
    absl::MutexLock lock(&status_mu_);
    status_.blocked = *blocked;
  }
  const bool blocked_changed = blocked.ok() && *blocked != acked_blocked_;
  if (index_->cursor() <= before && !blocked_changed) return;
  absl::Status acked = store_->Ack(index_->cursor(), blocked.ok() ? *blocked : acked_blocked_);
  if (acked.ok() && blocked.ok()) acked_blocked_ = *blocked;
  if (!acked.ok()) Log()->warn("ack {} failed: {}", index_->cursor(), acked.ToString());
  Log()->info("applied up to seq {}", index_->cursor());
}

absl::Status SyncEngine::ApplySnapshot() {
  // The table is applied a page at a time as it streams in, the cursor left where it is until
  // all of it is: nothing holds the whole table, and an engine killed halfway lists it again
  // and finds what it installed already in place. What is listed is remembered by a 128-bit
  // hash of its path (16 bytes a file), to find what this device has that the table no longer
  // lists: deleted, and compacted away since.
  const uint64_t from = index_->cursor();
  absl::flat_hash_set<std::pair<uint64_t, uint64_t>> listed;
  auto key = [](const std::string& path) {
    const Digest d = HashOf(path);
    uint64_t a, b;
    std::memcpy(&a, d.data(), 8);
    std::memcpy(&b, d.data() + 8, 8);
    return std::make_pair(a, b);
  };
  Commit page;
  page.seq = from;
  absl::Status applied;
  auto apply_page = [&] {
    if (applied.ok() && !page.files.empty()) applied = applier_.ApplyPart(page);
    page.files.clear();
  };
  CONVERGE_ASSIGN_OR_RETURN(uint64_t head, store_->ListFiles([&](const FileVersion& v) {
    listed.insert(key(v.path));
    if (!applied.ok()) return;  // the rest of the listing is read and dropped
    page.files.push_back(v);
    if (page.files.size() >= options_.max_files_per_commit) apply_page();
  }));
  apply_page();
  CONVERGE_RETURN_IF_ERROR(applied);
  Commit gone;
  gone.seq = head;
  CONVERGE_RETURN_IF_ERROR(index_->ForEachLive([&](const IndexEntry& e) {
    if (listed.contains(key(e.version.path))) return;
    FileVersion v;
    v.file_id = e.version.file_id;
    v.path = e.version.path;
    v.kind = e.version.kind;
    v.deleted = true;
    v.seq = head;
    gone.files.push_back(std::move(v));
  }));
  Log()->info("the store compacted the log past this device's cursor {}: applied its file table at seq {} "
              "({} entries, {} gone from it), then the log after it", from, head, listed.size(), gone.files.size());
  M().snapshots->Add();
  ++snapshots_;
  return applier_.ApplyCommit(gone);  // and the cursor moves to the table's seq
}

namespace {

// A scan uploads what it read in batches of this many bytes, while it goes on.
constexpr uint64_t kScanUploadBatchBytes = 16 << 20;
// How long a successful pull stands for "nothing newer" without a notification saying otherwise.
constexpr absl::Duration kPullFreshFor = absl::Seconds(2);

}  // namespace

absl::StatusOr<SyncEngine::PreviousChunks> SyncEngine::PreviousOf(const std::string& path) {
  PreviousChunks out;
  CONVERGE_ASSIGN_OR_RETURN(std::optional<IndexEntry> old, index_->Get(path));
  if (!old.has_value() || old->version.deleted || old->version.kind != FileKind::kFile) return out;
  for (const ChunkRef& c : old->version.chunks) {
    if (!c.hole()) out.chunks.insert(DigestToBytes(c.sha256));
  }
  out.layout = ChunkLayout(old->version.chunks);
  return out;
}

void SyncEngine::EncodeUpload(const Digest& d, const std::vector<Digest>& bases, std::string bytes,
                              const Signature* signature, ChunkUpload* out) {
  out->sha256 = d;
  out->delta = false;
  out->bases = bases;
  std::string delta;
  if (signature != nullptr) delta = Compress(MakeDelta(bytes, *signature));
  // Chunks go raw to the transport, which compresses them in the call's zstd stream with the
  // call's earlier chunks as context (StreamEncoder::Worth: what compresses alone, and anything
  // while the stream pays: a chunk that does not compress alone may repeat one sent before it,
  // the same archive in two packages).
  out->encoding = ChunkEncoding::kRaw;
  out->in_stream = true;
  out->data = std::move(bytes);
  size_t plain = out->data.size();  // what the chunk costs without a delta, about
  if (!delta.empty() && LooksCompressible(out->data)) {
    const size_t z = Compress(out->data).size();
    if (z > 0) plain = std::min(plain, z);
  }
  if (!delta.empty() && delta.size() * 10 < plain * 9) {
    M().delta_saved->Add(plain - delta.size());
    out->in_stream = false;
    out->delta = true;
    out->block_bytes = signature->block_bytes;
    out->data = std::move(delta);
  }
}

absl::Status SyncEngine::UploadChunks(std::vector<OutgoingChunk> chunks, absl::flat_hash_set<std::string>* stored,
                                      absl::flat_hash_set<std::string>* unreadable) {
  if (chunks.empty()) return absl::OkStatus();
  absl::flat_hash_map<std::string, size_t> index_of;
  std::vector<Digest> digests;
  for (size_t i = 0; i < chunks.size(); ++i) {
    if (index_of.emplace(DigestToBytes(chunks[i].sha256), i).second) digests.push_back(chunks[i].sha256);
  }
  CONVERGE_ASSIGN_OR_RETURN(std::vector<Digest> missing, store_->FindMissing(digests));
  absl::flat_hash_set<std::string> lacking;
  for (const Digest& d : missing) lacking.insert(DigestToBytes(d));
  for (const Digest& d : digests) {
    if (!lacking.contains(DigestToBytes(d))) stored->insert(DigestToBytes(d));
  }
  if (missing.empty()) return absl::OkStatus();
  // An edit of chunks the store has: their signature, for an rsync delta against them.
  std::vector<std::vector<Digest>> bases;
  absl::flat_hash_set<std::string> asked_bases;
  for (const Digest& d : missing) {
    const OutgoingChunk& c = chunks[index_of[DigestToBytes(d)]];
    if (!c.bases.empty() && asked_bases.insert(SequenceKey(c.bases)).second) bases.push_back(c.bases);
  }
  absl::flat_hash_map<std::string, Signature> signatures;
  if (!bases.empty()) {
    absl::StatusOr<absl::flat_hash_map<std::string, Signature>> got = store_->Signatures(bases);
    if (got.ok()) signatures = std::move(*got);  // without them, chunks go whole
  }
  uint64_t upload_total = 0;
  for (const Digest& d : missing) upload_total += chunks[index_of[DigestToBytes(d)]].length;
  StartTransfer("upload", upload_total);

  size_t next = 0;
  std::string open_path;
  std::unique_ptr<ReadableFile> open_file;
  absl::Status sent = store_->PutChunks([&](ChunkUpload* out) -> absl::StatusOr<bool> {
    while (next < missing.size()) {
      const Digest& d = missing[next++];
      OutgoingChunk& c = chunks[index_of[DigestToBytes(d)]];
      std::string bytes = std::move(c.bytes);
      if (bytes.empty()) {
        // Not kept from the scan: read again; a file that changed since is left for the next scan.
        if (c.path != open_path) {
          open_path = c.path;
          absl::StatusOr<std::unique_ptr<ReadableFile>> f = fs_->OpenRead(c.path);
          open_file = f.ok() ? std::move(*f) : nullptr;
        }
        upload_stats_.bytes_read_again += c.length;
        if (open_file == nullptr || !open_file->Read(c.offset, c.length, &bytes).ok() || HashOf(bytes) != d) {
          unreadable->insert(DigestToBytes(d));
          continue;
        }
      }
      auto sig = c.bases.empty() ? signatures.end() : signatures.find(SequenceKey(c.bases));
      EncodeUpload(d, c.bases, std::move(bytes), sig == signatures.end() ? nullptr : &sig->second, out);
      ++upload_stats_.chunks_uploaded;
      upload_stats_.bytes_uploaded += out->data.size();
      M().bytes_up->Add(out->data.size());
      AddTransferred(c.length);
      stored->insert(DigestToBytes(d));
      return true;
    }
    return false;
  });
  EndTransfer();
  if (!sent.ok()) {
    for (const Digest& d : missing) stored->erase(DigestToBytes(d));  // not known to have arrived
  }
  return sent;
}

void SyncEngine::CollectScanChunk(ScanUploads* u, const std::string& path, const ChunkRef& ref, uint64_t offset,
                                  absl::string_view bytes) {
  if (!u->status.ok()) return;
  if (path != u->layout_path) {
    // The previous version of this file: its chunks are stored (it is the store's version), and
    // a changed chunk's base is the old chunk it overlaps most.
    absl::StatusOr<PreviousChunks> previous = PreviousOf(path);
    if (!previous.ok()) {
      u->status = previous.status();
      return;
    }
    u->layout_path = path;
    u->previous = std::move(*previous);
  }
  const std::string key = DigestToBytes(ref.sha256);
  if (u->previous.chunks.contains(key) || u->stored.contains(key) || !u->queued.insert(key).second) return;
  u->pending.push_back(OutgoingChunk{ref.sha256, ref.length, u->previous.layout.BasesFor(offset, ref.length),
                                        std::string(bytes), path, offset});
  u->pending_bytes += ref.length;
  if (u->pending_bytes >= kScanUploadBatchBytes) HandOverScanBatch(u);
}

void SyncEngine::AwaitScanBatch(ScanUploads* u) {
  if (u->in_flight.valid()) Absorb(u, u->in_flight.get());
}

void SyncEngine::Absorb(ScanUploads* u, BatchUpload done) {
  u->stored.merge(done.stored);
  u->unreadable.merge(done.unreadable);
  if (u->status.ok()) u->status = done.status;
}

void SyncEngine::HandOverScanBatch(ScanUploads* u) {
  AwaitScanBatch(u);
  if (!u->status.ok()) return;
  std::vector<OutgoingChunk> batch = TakePending(u);
  // Only this batch's upload calls the store meanwhile: the scan reads the folder.
  u->in_flight = std::async(std::launch::async, [this, batch = std::move(batch)]() mutable {
    BatchUpload out;
    out.status = UploadChunks(std::move(batch), &out.stored, &out.unreadable);
    return out;
  });
}

absl::Status SyncEngine::FlushScanUploads(ScanUploads* u) {
  AwaitScanBatch(u);
  CONVERGE_RETURN_IF_ERROR(u->status);
  return UploadChunks(TakePending(u), &u->stored, &u->unreadable);
}

// An edited chunk up to this size goes whole with the commit rather than as a delta after two
// more round trips (FindMissing, Signatures).
constexpr uint32_t kInlineOverDeltaBytes = 16 << 10;
// Raw bytes up to this much go with the commit even if zstd would shrink them.
constexpr uint64_t kInlineCompressibleBytes = 256 << 10;

bool SyncEngine::AnyCompresses(const std::vector<OutgoingChunk>& chunks) {
  constexpr size_t kSampleBytes = 16 << 10;
  std::string sample;
  for (const OutgoingChunk& c : chunks) {
    if (c.bytes.size() > 4 * kSampleBytes) {
      if (LooksCompressible(c.bytes)) return true;  // by samples
    } else if (c.bytes.size() > kSampleBytes) {
      if (Compresses(c.bytes)) return true;
    } else {
      sample += c.bytes;
      if (sample.size() < kSampleBytes) continue;
      if (Compresses(sample)) return true;
      sample.clear();
    }
  }
  return Compresses(sample);
}

bool SyncEngine::TakeInline(ScanUploads* u) {
  if (u->pending.empty() || u->pending_bytes > kMaxInlineChunkBytes || u->pending.size() > kMaxCommitChunks) {
    return false;
  }
  for (const OutgoingChunk& c : u->pending) {
    // Not kept from the scan; or an edit of a chunk large enough that a delta pays off.
    if (c.bytes.size() != c.length || (!c.bases.empty() && c.length > kInlineOverDeltaBytes)) return false;
  }
  // Past kInlineCompressibleBytes, bytes that PutChunks' zstd would shrink stay out (a commit's
  // own chunks go raw).
  if (u->pending_bytes > kInlineCompressibleBytes && AnyCompresses(u->pending)) return false;
  for (OutgoingChunk& c : TakePending(u)) {
    u->stored.insert(DigestToBytes(c.sha256));
    ++upload_stats_.chunks_uploaded;
    upload_stats_.bytes_uploaded += c.length;
    M().bytes_up->Add(c.length);
    inline_chunks_.push_back(InlineChunk{c.sha256, std::move(c.bytes)});
  }
  return true;
}

std::vector<SyncEngine::OutgoingChunk> SyncEngine::TakePending(ScanUploads* u) {
  std::vector<OutgoingChunk> batch;
  batch.swap(u->pending);
  u->pending_bytes = 0;
  u->queued.clear();
  return batch;
}

absl::Status SyncEngine::ScanAndUpload(const std::optional<std::vector<std::string>>& paths) {
  if (options_.receive_only) return NoteLocalDifferences(paths);
  const absl::Time started = clock_->Now();
  // The files the scan reads go to the store as they are read (once), batch by batch.
  ScanUploads uploads;
  scanner_.set_chunk_sink([this, &uploads](const std::string& path, const ChunkRef& ref, uint64_t offset,
                                           absl::string_view bytes) {
    CollectScanChunk(&uploads, path, ref, offset, bytes);
  });
  scanner_.set_change_sink(options_.max_files_per_commit, [this, &uploads](std::vector<LocalChange>* changes,
                                                                           int64_t scanned_at_ns) {
    return CommitWhileScanning(changes, scanned_at_ns, &uploads);
  });
  absl::StatusOr<ScanResult> scanned = paths.has_value() ? scanner_.ScanPaths(*paths) : scanner_.Scan();
  scanner_.set_chunk_sink(nullptr);
  scanner_.set_change_sink(0, nullptr);
  AwaitScanBatch(&uploads);
  CONVERGE_RETURN_IF_ERROR(uploads.status);
  CONVERGE_ASSIGN_OR_RETURN(ScanResult scan, std::move(scanned));
  const bool targeted = paths.has_value() && !scan.whole_folder;
  RecordScan(scan, targeted, clock_->Now() - started);
  CONVERGE_RETURN_IF_ERROR(index_->Update(scan.refreshed, std::nullopt));
  if (scan.changes.empty()) return absl::OkStatus();
  inline_chunks_.clear();
  if (!TakeInline(&uploads)) CONVERGE_RETURN_IF_ERROR(FlushScanUploads(&uploads));
  BatchUpload leftovers;
  leftovers.status = UploadLeftovers(scan.changes, uploads, &leftovers);
  Absorb(&uploads, std::move(leftovers));
  CONVERGE_RETURN_IF_ERROR(uploads.status);

  // Creations and edits in batches; deletions after them, together (so the store can judge a
  // mass delete as a whole). A move's tombstone stays right after its new path (one commit
  // renames in place elsewhere). A change with a chunk that could not be read waits.
  std::vector<LocalChange> deletions;
  std::vector<LocalChange> others;
  SortChanges(std::move(scan.changes), uploads.unreadable, &others, &deletions);
  const bool deferred = DeferDeletionsWhileBusy(&deletions);
  CONVERGE_RETURN_IF_ERROR(CommitInBatches(others, scan.scanned_at_ns));
  HeldDeletions held;
  CONVERGE_RETURN_IF_ERROR(CommitDeletions(deletions, scan.scanned_at_ns, &held));
  // A full scan sees every pending deletion; a targeted one only says something if it had any.
  if (!deferred && (!deletions.empty() || !targeted)) {
    absl::MutexLock lock(&status_mu_);
    if (held.count > 0 && held.message != status_.held_message) {
      Log()->warn("{} local deletion(s) held by the store until an operator approves: {}", held.count, held.message);
    }
    status_.held_deletes = held.count;
    status_.held_message = held.message;
  }
  return absl::OkStatus();
}

absl::Status SyncEngine::CommitWhileScanning(std::vector<LocalChange>* changes, int64_t scanned_at_ns,
                                             ScanUploads* uploads) {
  // The store takes one call of this scan at a time: the batch or commit before this one first.
  AwaitScanBatch(uploads);
  CONVERGE_RETURN_IF_ERROR(uploads->status);
  // New and edited entries only, in walk order (Scanner::ChangeSink): their chunks go first,
  // with the commit or just before it.
  std::vector<LocalChange> found;
  found.swap(*changes);
  inline_chunks_.clear();
  std::vector<OutgoingChunk> batch;
  if (!TakeInline(uploads)) batch = TakePending(uploads);
  // Committed while the scan reads on. Until the scan awaits it, the scan only reads what
  // `uploads` knows as stored or unreadable, and this call only adds to its own sets.
  uploads->in_flight = std::async(std::launch::async, [this, uploads, found = std::move(found),
                                                       batch = std::move(batch), scanned_at_ns]() mutable {
    BatchUpload out;
    out.status = CommitFound(std::move(found), std::move(batch), scanned_at_ns, *uploads, &out);
    return out;
  });
  return absl::OkStatus();
}

absl::Status SyncEngine::CommitFound(std::vector<LocalChange> found, std::vector<OutgoingChunk> batch,
                                     int64_t scanned_at_ns, const ScanUploads& scan, BatchUpload* out) {
  CONVERGE_RETURN_IF_ERROR(UploadChunks(std::move(batch), &out->stored, &out->unreadable));
  CONVERGE_RETURN_IF_ERROR(UploadLeftovers(found, scan, out));
  absl::flat_hash_set<std::string> unreadable = scan.unreadable;
  unreadable.insert(out->unreadable.begin(), out->unreadable.end());
  std::vector<LocalChange> ready;
  std::vector<LocalChange> deletions;  // none among them
  SortChanges(std::move(found), unreadable, &ready, &deletions);
  return CommitInBatches(ready, scanned_at_ns);
}

absl::Status SyncEngine::CommitInBatches(const std::vector<LocalChange>& changes, int64_t scanned_at_ns) {
  for (size_t start = 0, end = 0; start < changes.size(); start = end) {
    end = BatchEnd(store_, changes, start, options_.max_files_per_commit);
    if (end < changes.size() && changes[end].moved) ++end;  // never part a move from its tombstone
    CONVERGE_RETURN_IF_ERROR(
        CommitBatch(std::vector<LocalChange>(changes.begin() + start, changes.begin() + end), scanned_at_ns));
  }
  return absl::OkStatus();
}

bool SyncEngine::AsInstalled(const std::string& path, const LocalStat& now) const {
  auto it = own_installs_.find(path);
  if (it == own_installs_.end()) return false;
  const Installed& made = it->second;
  if (made.kind == FileKind::kDirectory) {
    // Still the directory the applier made (its mtime moves as files go in): what arrived in
    // it since is reported on its own (the watcher reports what a new directory held before
    // its watch).
    return now.exists && now.kind == FileKind::kDirectory && now.inode == made.local.inode;
  }
  // As a scan would judge it against the index entry the applier recorded.
  return made.local.Same(now) && made.trusted;
}

void SyncEngine::DropOwnEchoes(std::vector<std::string>* paths) {
  if (own_installs_.empty()) return;
  FilesystemBatch batch(fs_);
  std::vector<std::string> rest;
  for (std::string& path : *paths) {
    if (!own_installs_.contains(path)) {
      rest.push_back(std::move(path));
      continue;
    }
    absl::StatusOr<LocalStat> now = fs_->Stat(path);
    const bool as_installed = now.ok() && AsInstalled(path, *now);
    own_installs_.erase(path);
    if (!as_installed) rest.push_back(std::move(path));
  }
  paths->swap(rest);
}

void SyncEngine::RecordScan(const ScanResult& scan, bool targeted, absl::Duration took) {
  if (!targeted) {
    // A full scan finds every case collision again (a renamed one is gone).
    absl::MutexLock lock(&status_mu_);
    status_.case_collisions.clear();
  }
  ++scan_stats_.scans;
  if (targeted) {
    ++scan_stats_.targeted_scans;
    M().targeted_scans->Add();
  } else {
    M().full_scans->Add();
  }
  scan_stats_.last_entries = scan.entries_seen;
  scan_stats_.last_files_hashed = scan.files_hashed;
  scan_stats_.last_changes = scan.changes.size() + scan.handed_over;
  scan_stats_.last_duration = took;
  Log()->debug("scan: {} entries, {} files hashed, {} changes in {}", scan.entries_seen, scan.files_hashed,
               scan.changes.size() + scan.handed_over, absl::FormatDuration(took));
}

absl::Status SyncEngine::UploadLeftovers(const std::vector<LocalChange>& changes, const ScanUploads& scan,
                                         BatchUpload* out) {
  // Any chunk of a change not uploaded from the scan (normally none) is read again from its
  // file. Chunks of a file's previous version are stored already (that version is the store's
  // current one): not asked about; a moved file's are those of the entry it was moved from.
  std::vector<OutgoingChunk> leftovers;
  absl::flat_hash_set<std::string> listed;
  auto known = [&](const ChunkRef& ref) {
    const std::string key = DigestToBytes(ref.sha256);
    return ref.hole() || scan.stored.contains(key) || scan.unreadable.contains(key) || out->stored.contains(key) ||
           out->unreadable.contains(key);
  };
  for (const LocalChange& c : changes) {
    // The common case: every chunk went up as the scan read it (the index is not asked).
    if (std::all_of(c.version.chunks.begin(), c.version.chunks.end(), known)) continue;
    CONVERGE_ASSIGN_OR_RETURN(PreviousChunks previous, PreviousOf(c.moved_from.empty() ? c.version.path : c.moved_from));
    uint64_t offset = 0;
    for (const ChunkRef& ref : c.version.chunks) {
      const std::string key = DigestToBytes(ref.sha256);
      if (!known(ref) && !previous.chunks.contains(key) && listed.insert(key).second) {
        leftovers.push_back(OutgoingChunk{ref.sha256, ref.length, previous.layout.BasesFor(offset, ref.length), "",
                                          c.version.path, offset});
      }
      offset += ref.length;
    }
  }
  return UploadChunks(std::move(leftovers), &out->stored, &out->unreadable);
}

bool SyncEngine::DeferDeletionsWhileBusy(std::vector<LocalChange>* deletions) {
  if (deletions->empty()) return false;
  // Deletions wait until the folder has been quiet for delete_settle (rm -r in progress).
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  if (now - last_local_event_ >= options_.delete_settle) return false;
  for (const LocalChange& c : *deletions) {
    auto [it, inserted] = dirty_.try_emplace(c.version.path);
    if (inserted) it->second.first_event = now;
    it->second.deletion = true;
    it->second.last_event = now;
  }
  deletions->clear();
  return true;
}

absl::Status SyncEngine::CommitDeletions(const std::vector<LocalChange>& deletions, int64_t scanned_at_ns,
                                         HeldDeletions* held) {
  for (size_t start = 0, end = 0; start < deletions.size(); start = end) {
    end = BatchEnd(store_, deletions, start, kMaxFilesPerCommit);
    std::vector<LocalChange> batch(deletions.begin() + start, deletions.begin() + end);
    absl::Status s = CommitBatch(batch, scanned_at_ns);
    if (IsMassDeleteHeld(s)) {
      // The store keeps one hold for the whole burst: the rest goes to it too, so one approval
      // releases all of it (the store holds every deletion of this device while it is pending:
      // a directory whose contents are held is never deleted).
      held->count += batch.size();
      held->message = std::string(s.message());
      continue;
    }
    if (held->count > 0 && !s.ok()) {
      held->count += deletions.size() - start;  // the rest waits for the next scan
      return absl::OkStatus();
    }
    if (IsMassDeleteRejected(s)) {
      Log()->warn("the store rejected {} local deletion(s) ({}): restoring", batch.size(), s.message());
      std::vector<FileVersion> restore;
      for (const LocalChange& c : batch) {
        CONVERGE_ASSIGN_OR_RETURN(std::optional<IndexEntry> e, index_->Get(c.version.path));
        if (e.has_value() && !e->version.deleted) restore.push_back(e->version);
      }
      return applier_.Restore(std::move(restore));  // the parents of restored entries stay too
    }
    CONVERGE_RETURN_IF_ERROR(s);
  }
  return absl::OkStatus();
}

absl::Status SyncEngine::CommitBatch(const std::vector<LocalChange>& batch, int64_t scanned_at_ns) {
  absl::Status s = CommitBatchOnce(batch, scanned_at_ns);
  if (!absl::IsAlreadyExists(s)) return s;
  CONVERGE_ASSIGN_OR_RETURN(std::vector<LocalChange> rest, WithoutCaseCollisions(batch));
  if (rest.size() == batch.size()) return s;  // not one we can see: another device's new name
  return rest.empty() ? absl::OkStatus() : CommitBatchOnce(rest, scanned_at_ns);
}

absl::StatusOr<std::vector<LocalChange>> SyncEngine::WithoutCaseCollisions(const std::vector<LocalChange>& batch) {
  absl::flat_hash_set<std::string> deleted_here;
  for (const LocalChange& c : batch) {
    if (c.version.deleted) deleted_here.insert(c.version.path);
  }
  absl::flat_hash_map<std::string, std::string> holder;  // CaseFold -> live path
  CONVERGE_RETURN_IF_ERROR(index_->ForEachLive([&](const IndexEntry& e) {
    if (!deleted_here.contains(e.version.path)) holder.emplace(CaseFold(e.version.path), e.version.path);
  }));
  std::vector<LocalChange> rest;
  std::vector<std::string> colliding;
  for (const LocalChange& c : batch) {
    bool collides = false;
    if (!c.version.deleted) {
      for (absl::string_view p = c.version.path; !p.empty() && !collides; p = ParentPath(p)) {
        auto [it, inserted] = holder.try_emplace(CaseFold(p), std::string(p));
        collides = !inserted && it->second != p;
      }
    }
    if (collides) {
      colliding.push_back(c.version.path);
    } else {
      rest.push_back(c);
    }
  }
  absl::MutexLock lock(&status_mu_);
  for (const std::string& p : colliding) {
    if (case_warned_.insert(p).second) {
      Log()->warn("not syncing '{}': its name differs only in case from a synced one (rename it to sync it)", p);
    }
    if (std::find(status_.case_collisions.begin(), status_.case_collisions.end(), p) == status_.case_collisions.end()) {
      status_.case_collisions.push_back(p);
    }
  }
  return rest;
}

absl::Status SyncEngine::CommitBatchOnce(const std::vector<LocalChange>& batch, int64_t scanned_at_ns) {
  std::vector<FileVersion> versions;
  for (const LocalChange& c : batch) versions.push_back(c.version);
  // The scan's small leftovers go with the first commit; kept until one succeeds (a commit
  // refused after they were stored re-sends them, at no harm).
  absl::StatusOr<uint64_t> committed =
      inline_chunks_.empty() ? store_->Commit(versions) : store_->CommitWithChunks(versions, inline_chunks_);
  if (committed.ok()) inline_chunks_.clear();
  if (absl::IsAborted(committed.status())) {
    // Another device changed some of these paths first: the pull that follows applies that with
    // this batch's moves undone, then makes them again (PullAndApply).
    for (const LocalChange& c : batch) {
      if (!c.moved_from.empty()) pending_local_moves_.emplace_back(c.moved_from, c.version.path);
    }
  }
  CONVERGE_ASSIGN_OR_RETURN(uint64_t seq, committed);
  std::vector<IndexEntry> entries;
  for (const LocalChange& c : batch) {
    IndexEntry e{c.version, c.local, scanned_at_ns};
    e.version.seq = seq;
    e.version.origin_device = device_id_;
    entries.push_back(std::move(e));
  }
  // The commit right after the cursor is this device's own, applied already: the cursor moves
  // past it (and is acked: a device that only writes must not hold back compaction).
  const bool next = index_->cursor() + 1 == seq;
  CONVERGE_RETURN_IF_ERROR(index_->Update(entries, next ? std::optional<uint64_t>(seq) : std::nullopt));
  if (next) {
    absl::Status acked = store_->Ack(seq, acked_blocked_);  // an ack replaces what the store was told
    if (!acked.ok()) Log()->debug("ack {} failed: {}", seq, acked.ToString());
  }
  ++upload_stats_.commits;
  M().commits->Add();
  upload_stats_.files_committed += entries.size();
  Log()->info("committed {} change(s) as seq {}", entries.size(), seq);
  return absl::OkStatus();
}

void SyncEngine::SetChunkGear(std::shared_ptr<const GearTable> gear) {
  absl::MutexLock lock(&mu_);
  new_gear_ = std::move(gear);
}

absl::Status SyncEngine::SyncOnce(const std::optional<std::vector<std::string>>& reported) {
  if (!selection_loaded_.ok()) {
    selection_loaded_ = LoadSelection();
    CONVERGE_RETURN_IF_ERROR(selection_loaded_);
  }
  if (!options_.send_only && !caught_up_) {
    // Versions recorded while this folder was send-only are applied now that it takes others'
    // changes (else the folder would keep them out for good).
    std::vector<IndexEntry> waiting;
    CONVERGE_RETURN_IF_ERROR(index_->ForEachNotApplied([&](const IndexEntry& e) { waiting.push_back(e); }));
    CONVERGE_RETURN_IF_ERROR(applier_.ApplyNotApplied(waiting));
    caught_up_ = true;
  }
  {
    absl::MutexLock lock(&mu_);
    if (new_gear_.has_value()) {
      scanner_.set_gear(*new_gear_);
      applier_.set_gear(*std::move(new_gear_));
      new_gear_.reset();
    }
  }
  // The watcher's reports of this engine's own installs are no changes to look at.
  std::optional<std::vector<std::string>> paths = reported;
  if (!paths.has_value()) {
    own_installs_.clear();  // a full scan looks at everything
  } else if (!paths->empty()) {
    DropOwnEchoes(&*paths);
    if (paths->empty()) return absl::OkStatus();
  }
  // Moves among the paths the watcher reported are known before pulling: another device's
  // change of a moved file is then applied with the move undone and made again after it.
  // A targeted scan with nothing newer to pull (no head past the cursor heard of, and a pull
  // succeeded lately) skips the pull: a small edit costs no round trip for it. If another device
  // did change the same paths, the commit is refused as stale and the pull below comes first.
  if (!paths.has_value() || PullDue()) {
    if (paths.has_value()) moves_to_detect_.insert(moves_to_detect_.end(), paths->begin(), paths->end());
    CONVERGE_RETURN_IF_ERROR(PullAndApply());
  }
  for (int attempt = 0;; ++attempt) {
    absl::Status s = ScanAndUpload(paths);
    if (!absl::IsAborted(s) || attempt >= kStaleRetries) return s;
    Log()->info("another device changed the same paths first ({}); pulling", s.message());
    CONVERGE_RETURN_IF_ERROR(PullAndApply());
  }
}

absl::Status SyncEngine::DetectLocalMoves(const std::vector<std::string>& paths) {
  auto check = [&](const std::string& path, const LocalStat& st) -> absl::Status {
    if (!st.exists || st.kind != FileKind::kFile || st.inode == 0) return absl::OkStatus();
    CONVERGE_ASSIGN_OR_RETURN(std::optional<IndexEntry> here, index_->Get(path));
    if (here.has_value() && !here->version.deleted) return absl::OkStatus();
    CONVERGE_ASSIGN_OR_RETURN(std::optional<std::string> was, index_->FindInode(st.inode));
    if (!was.has_value() || *was == path) return absl::OkStatus();
    CONVERGE_ASSIGN_OR_RETURN(std::optional<IndexEntry> old, index_->Get(*was));
    if (!old.has_value() || !RenamedFrom(*old, st)) return absl::OkStatus();
    CONVERGE_ASSIGN_OR_RETURN(LocalStat there, fs_->Stat(*was));
    if (there.exists && there.inode == st.inode) return absl::OkStatus();  // a hard link
    pending_local_moves_.emplace_back(*was, path);
    return absl::OkStatus();
  };
  FilesystemBatch batch(fs_);
  for (const std::string& path : paths) {
    if (!ValidateRelativePath(path).ok()) continue;
    // A path the index has as a file is no move's destination (one with a directory there now
    // uploads its files as new ones).
    CONVERGE_ASSIGN_OR_RETURN(std::optional<IndexEntry> here, index_->Get(path));
    if (here.has_value() && !here->version.deleted && here->version.kind != FileKind::kDirectory) continue;
    CONVERGE_ASSIGN_OR_RETURN(LocalStat st, fs_->Stat(path));
    if (AsInstalled(path, st)) continue;  // made by the applier: no move's destination
    if (st.exists && st.kind == FileKind::kDirectory) {
      absl::Status inner;
      absl::Status walked = fs_->Walk(path, [&](const std::string& p, const LocalStat& s) {
        if (inner.ok()) inner = check(p, s);
      });
      if (!walked.ok() && !absl::IsNotFound(walked)) return walked;
      CONVERGE_RETURN_IF_ERROR(inner);
      continue;
    }
    CONVERGE_RETURN_IF_ERROR(check(path, st));
  }
  return absl::OkStatus();
}

bool SyncEngine::PullDue() {
  absl::MutexLock lock(&mu_);
  return remote_head_ > index_->cursor() || pull_requested_ || clock_->Now() - last_pull_ >= kPullFreshFor;
}

void SyncEngine::NotifyRemoteHead(uint64_t seq) {
  absl::MutexLock lock(&mu_);
  if (seq > remote_head_) remote_head_ = seq;
}

void SyncEngine::RequestPull() {
  absl::MutexLock lock(&mu_);
  pull_requested_ = true;
}

void SyncEngine::NotifyLocalChange() {
  absl::MutexLock lock(&mu_);
  full_scan_requested_ = true;
}

void SyncEngine::NotifyLocalPaths(const std::vector<std::pair<std::string, bool>>& paths) {
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  last_local_event_ = now;
  if (full_scan_requested_) return;
  if (dirty_.size() + paths.size() > kMaxDirtyPaths) {
    full_scan_requested_ = true;
    ++dirty_overflows_;
    dirty_.clear();
    return;
  }
  for (const auto& [path, writing] : paths) {
    auto [it, inserted] = dirty_.try_emplace(path);
    if (inserted) it->second.first_event = now;
    it->second.writing = writing;
    it->second.deletion = false;
    it->second.last_event = now;
  }
}

std::vector<std::string> SyncEngine::TakeReadyPaths(absl::Time now, absl::Time* earliest) {
  std::vector<std::string> ready;
  *earliest = absl::InfiniteFuture();
  for (auto it = dirty_.begin(); it != dirty_.end();) {
    if (!Ready(it->second, now)) {
      ++it;
      continue;
    }
    ready.push_back(it->first);
    *earliest = std::min(*earliest, it->second.first_event);
    dirty_.erase(it++);
  }
  return ready;
}

void SyncEngine::Stop() {
  absl::MutexLock lock(&mu_);
  stopping_ = true;
}

SyncEngine::Round SyncEngine::WaitForWork(absl::Time next_scan) {
  absl::MutexLock lock(&mu_);
  const uint64_t cursor = index_->cursor();
  // Wake for: stop, a head past the cursor, a requested pull or full scan, a dirty path that is
  // ready; else at the next full scan or when a path being written settles.
  absl::Time deadline = next_scan;
  for (const auto& [path, d] : dirty_) {
    if (d.writing || d.deletion) deadline = std::min(deadline, ReadyAt(d));
  }
  auto wake = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (stopping_) return true;
    if (paused_) return false;
    if (remote_head_ > cursor || pull_requested_ || full_scan_requested_ || wanted_selection_.has_value() ||
        revert_requested_ || override_requested_) {
      return true;
    }
    for (const auto& [path, d] : dirty_) {
      if (!d.writing && !d.deletion) return true;
    }
    return false;
  };
  Round round;
  if (paused_) {
    // Paused: wake only to stop or resume (SetPaused does not signal; look twice a second).
    auto resume = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || !paused_; };
    mu_.AwaitWithTimeout(absl::Condition(&resume), absl::Milliseconds(500));
    round.stop = stopping_;
    return round;
  }
  const absl::Duration wait = deadline - clock_->Now();
  if (wait > absl::ZeroDuration()) mu_.AwaitWithTimeout(absl::Condition(&wake), wait);
  round.stop = stopping_;
  if (stopping_ || paused_) return round;
  const absl::Time now = clock_->Now();
  // With a watcher reporting changes, the periodic verifying scan runs beside the rounds.
  round.verify = !full_scan_requested_ && now >= next_scan && flush_local_events_ && full_scan_done_ && !held_;
  round.full_scan = full_scan_requested_ || (now >= next_scan && !round.verify);
  round.local = round.full_scan;
  for (const auto& [path, d] : dirty_) round.local = round.local || Ready(d, now);
  round.pull = remote_head_ > cursor || pull_requested_;
  round.select = wanted_selection_.has_value();
  round.revert = revert_requested_;
  round.override = override_requested_;
  pull_requested_ = false;
  return round;
}

absl::Status SyncEngine::SyncLocal(bool full_scan, absl::Time* next_scan) {
  // Let the burst settle; events during the scan mark paths dirty again for another round.
  absl::SleepFor(options_.coalesce_delay);
  absl::Time earliest;
  std::vector<std::string> paths;
  {
    absl::MutexLock lock(&mu_);
    paths = TakeReadyPaths(clock_->Now(), &earliest);
    if (full_scan) full_scan_requested_ = false;
  }
  absl::Status s;
  if (full_scan) {
    moves_to_detect_ = paths;  // looked at if the pull brings something to apply
    s = SyncOnce();
    *next_scan = clock_->Now() + options_.rescan_interval;
    full_scan_done_ = full_scan_done_ || s.ok();
  } else {
    s = SyncOnce(paths);
  }
  if (s.ok() && earliest != absl::InfiniteFuture()) {
    M().change_to_committed->Observe(absl::ToDoubleSeconds(clock_->Now() - earliest));
  }
  if (!s.ok() && !full_scan) {
    // Scan them again on the next round (after the pause that follows a failure).
    std::vector<std::pair<std::string, bool>> again;
    for (const std::string& p : paths) again.emplace_back(p, false);
    NotifyLocalPaths(again);
  }
  return s;
}

bool SyncEngine::AfterRound(const absl::Status& s, absl::Status* last, absl::Time* next_scan) {
  if (s.ok() && options_.send_only) {
    // Local changes committed on top of versions not applied here make them applied.
    if (absl::Status counted = CountNotApplied(); !counted.ok()) Log()->warn("counting changes not applied: {}", counted.ToString());
  }
  if (!s.ok() && s.ToString() != last->ToString()) Log()->error("sync: {}", s.ToString());
  if (s.ok() && !last->ok()) Log()->info("sync healthy again");
  *last = s;
  if (absl::IsPermissionDenied(s) && options_.on_denied && options_.on_denied(s)) {
    SetState(EngineStatus::State::kRevoked, std::string(s.message()));
    return false;
  }
  if (IsNamespaceMoved(s) && options_.on_moved) {
    SetState(EngineStatus::State::kError, std::string(s.message()));
    options_.on_moved();
    return false;
  }
  if (IsNamespaceConverted(s) && options_.on_converted) {
    SetState(EngineStatus::State::kError, std::string(s.message()));
    options_.on_converted();
    return false;
  }
  bool held = false;
  {
    absl::MutexLock lock(&status_mu_);
    held = status_.held_deletes > 0;
  }
  SetState(!s.ok() ? EngineStatus::State::kError
                   : held ? EngineStatus::State::kHeld : EngineStatus::State::kUpToDate,
           s.ok() ? "" : s.ToString());
  // Held deletions: ask again soon, so an operator's decision takes effect within seconds.
  held_ = held;
  if (held) *next_scan = std::min(*next_scan, clock_->Now() + kHeldRetry);
  if (!s.ok()) {
    // Do not spin on a failing store: pause before the next attempt.
    absl::MutexLock lock(&mu_);
    auto stop = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
    mu_.AwaitWithTimeout(absl::Condition(&stop), absl::Milliseconds(200));
  }
  return true;
}

void SyncEngine::Run() {
  absl::Time next_scan = clock_->Now();
  absl::Status last;
  while (true) {
    const Round round = WaitForWork(next_scan);
    if (round.stop) break;
    if (round.verify) {
      StartVerify();
      next_scan = clock_->Now() + options_.rescan_interval;
    }
    if (!round.local && !round.pull && !round.select && !round.revert && !round.override) continue;
    // A retry keeps the failure in view: the status of a folder failing every round reads
    // "syncing: retrying after: <why>", never a bare "syncing" between two errors.
    SetState(EngineStatus::State::kSyncing, last.ok() ? "" : absl::StrCat("retrying after: ", last.ToString()));
    if (round.select) {
      const absl::Status s = AdoptSelection();
      if (!AfterRound(s, &last, &next_scan)) break;
      if (!s.ok() || (!round.local && !round.pull && !round.revert)) continue;
    }
    if (round.revert || round.override) {
      const absl::Status s = round.revert ? Revert() : Override();
      if (!AfterRound(s, &last, &next_scan)) break;
      if (!s.ok() || (!round.local && !round.pull)) continue;
    }
    const absl::Status s = round.local ? SyncLocal(round.full_scan, &next_scan) : PullAndApply();
    if (!AfterRound(s, &last, &next_scan)) break;
  }
  if (verifying_.valid()) verifying_.wait();  // it uses the folder and the index
}

void SyncEngine::StartVerify() {
  if (verifying_.valid() && verifying_.wait_for(std::chrono::seconds(0)) != std::future_status::ready) return;
  own_installs_.clear();  // as a full scan does: their echoes are long past, or suspected
  verifying_ = std::async(std::launch::async, [this, filter = scanner_.filter()] { Verify(filter); });
}

void SyncEngine::Verify(const ScanFilter& filter) {
  const absl::Time started = clock_->Now();
  absl::StatusOr<std::vector<std::string>> suspects = scanner_.Suspects(filter);
  const absl::Time now = clock_->Now();
  if (suspects.ok()) {
    // The case collisions still there are new paths to the index, hence suspects (or below a
    // suspect directory, which stands for them).
    const absl::flat_hash_set<std::string> named(suspects->begin(), suspects->end());
    const auto gone = [&](const std::string& path) {
      for (absl::string_view p = path; !p.empty(); p = ParentPath(p)) {
        if (named.contains(p)) return false;
      }
      return true;
    };
    absl::MutexLock lock(&status_mu_);
    std::vector<std::string>& collisions = status_.case_collisions;
    collisions.erase(std::remove_if(collisions.begin(), collisions.end(), gone), collisions.end());
  }
  absl::MutexLock lock(&mu_);
  ++verifications_;
  pull_requested_ = true;  // as a full scan pulls: a lost notification is not waited out
  if (!suspects.ok() || suspects->size() > kMaxSuspects) {
    // The round reports the error (a missing root) or does the many paths at once.
    full_scan_requested_ = true;
    last_suspects_ = suspects.ok() ? suspects->size() : 0;
    return;
  }
  last_suspects_ = suspects->size();
  Log()->debug("verifying scan: {} path(s) to look at, in {}", suspects->size(), absl::FormatDuration(now - started));
  for (const std::string& path : *suspects) {
    auto [it, inserted] = dirty_.try_emplace(path);
    if (!inserted) continue;  // already reported
    it->second.first_event = now;
    it->second.last_event = now;
  }
}

}  // namespace converge::engine
