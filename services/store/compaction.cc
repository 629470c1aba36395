// CommitLog's history, conflict records and compaction (commit_log.h).
#include <algorithm>
#include <map>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/base/coding.h"
#include "common/base/status_macros.h"
#include "services/store/commit_log.h"
#include "services/store/cursor_record.h"

namespace converge::store {

absl::StatusOr<std::vector<HistoryVersion>> CommitLog::Versions(const std::string& ns, const std::string& path,
                                                                size_t limit) {
  CONVERGE_RETURN_IF_ERROR(CheckAccess(ns, ""));
  return store::Versions(db_, ns, path, limit);
}

absl::StatusOr<HistoryVersion> CommitLog::VersionAt(const std::string& ns, const std::string& path, uint64_t seq) {
  CONVERGE_RETURN_IF_ERROR(CheckAccess(ns, ""));
  std::string value;
  rocksdb::Status s = db_->db()->Get(rocksdb::ReadOptions(), HistoryKey(ns, path, seq), &value);
  if (s.IsNotFound()) return absl::NotFoundError(absl::StrCat("'", path, "' has no kept version ", seq));
  CONVERGE_RETURN_IF_ERROR(RocksStatus(s, "read history"));
  return DecodeHistory(value);
}

bool CommitLog::ContentUnchanged(const std::string& ns, const FileVersion& v) {
  if (v.base_seq == 0 || v.deleted) return false;
  std::string value;
  if (!db_->db()->Get(rocksdb::ReadOptions(), HistoryKey(ns, v.path, v.base_seq), &value).ok()) return false;
  absl::StatusOr<HistoryVersion> base = DecodeHistory(value);
  return base.ok() && !base->version.deleted && base->version.kind == v.kind &&
         base->version.content_sha256 == v.content_sha256;
}

absl::Status CommitLog::StateAt(const std::string& ns, int64_t at_unix_ms,
                                const std::function<void(const HistoryVersion&)>& fn, const std::string& path_prefix) {
  CONVERGE_RETURN_IF_ERROR(CheckAccess(ns, ""));
  return store::StateAt(db_, ns, at_unix_ms, fn, path_prefix);
}

absl::StatusOr<std::vector<ConflictRecord>> CommitLog::ListConflicts(const std::string& ns, bool include_resolved) {
  CONVERGE_RETURN_IF_ERROR(CheckAccess(ns, ""));
  return Conflicts(db_, ns, include_resolved);
}

absl::StatusOr<ConflictRecord> CommitLog::ResolveConflict(const std::string& ns, const std::string& copy_path,
                                                          const std::string& by) {
  CONVERGE_ASSIGN_OR_RETURN(Namespace * n, Find(ns));
  absl::MutexLock lock(&n->mu);  // not racing a commit that deletes the copy
  CONVERGE_RETURN_IF_ERROR(CheckGate(ns, /*writing=*/true));
  const std::string key = ConflictKey(ns, copy_path);
  std::string value;
  rocksdb::Status s = db_->db()->Get(rocksdb::ReadOptions(), key, &value);
  if (s.IsNotFound()) return absl::NotFoundError(absl::StrCat("no conflict copy '", copy_path, "' in '", ns, "'"));
  CONVERGE_RETURN_IF_ERROR(RocksStatus(s, "read conflict record"));
  CONVERGE_ASSIGN_OR_RETURN(ConflictRecord r, DecodeConflict(ns, copy_path, value));
  if (r.resolved) return r;
  r.resolved = true;
  r.resolved_at_unix_ms = absl::ToUnixMillis(clock_->Now());
  r.resolved_by = by;
  CONVERGE_RETURN_IF_ERROR(RocksStatus(db_->PutSynced(key, EncodeConflict(r)), "resolve conflict"));
  return r;
}

absl::StatusOr<std::vector<std::string>> CommitLog::Namespaces() {
  std::vector<std::string> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->db()->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek("n"); it->Valid() && it->key().starts_with("n"); it->Next()) {
    out.emplace_back(View(it->key()).substr(1));
  }
  CONVERGE_RETURN_IF_ERROR(RocksStatus(it->status(), "list namespaces"));
  return out;
}

absl::Status CommitLog::Evict(const std::string& ns, const std::string& device) {
  CONVERGE_ASSIGN_OR_RETURN(Namespace * n, Find(ns));
  absl::MutexLock lock(&n->mu);
  if (!n->state.members.contains(device)) {
    return absl::NotFoundError(absl::StrCat("device '", device, "' is not a member of '", ns, "'"));
  }
  return UpdateCursorLocked(ns, device, /*sync=*/true, [](CursorRecord* record) { record->evicted = true; });
}

absl::StatusOr<CompactionResult> CommitLog::Compact(const std::string& ns, absl::Duration retention) {
  absl::MutexLock one_at_a_time(&compaction_mu_);
  if (GateOf(ns) != Gate::kOpen) {
    // Moving: what the copy read must stay as it was (compaction resumes on the shard it lands on).
    return absl::UnavailableError(absl::StrCat("namespace '", ns, "' is moving between store shards: not compacted now"));
  }
  CompactionResult result;
  uint64_t head = 0, compacted_before = 0, dropped_before = 0;
  absl::flat_hash_set<std::string> members;
  {
    CONVERGE_ASSIGN_OR_RETURN(Namespace * n, Find(ns));
    absl::MutexLock lock(&n->mu);
    head = n->state.head_seq;
    compacted_before = n->state.compacted_through;
    dropped_before = n->state.dropped_through;
    members = n->state.members;
  }
  CONVERGE_RETURN_IF_ERROR(FindWatermark(ns, members, head, &result));
  rocksdb::WriteBatch batch;
  // 1. The log at or below the watermark: every member has applied it; the file table has it.
  const uint64_t compacted_through = std::max(compacted_before, result.watermark);
  CONVERGE_RETURN_IF_ERROR(DropLog(ns, compacted_before, compacted_through, &batch, &result));
  // 2. History versions superseded before the cutoff; deleted paths that may go with them.
  const int64_t cutoff_ms = absl::ToUnixMillis(clock_->Now() - retention);
  CONVERGE_ASSIGN_OR_RETURN(std::vector<DeadPath> dead, PruneHistory(ns, cutoff_ms, &batch, &result));

  // 3. Under the lock: drop the deleted paths still deleted at that seq, and write.
  CONVERGE_ASSIGN_OR_RETURN(Namespace * n, Find(ns));
  absl::MutexLock lock(&n->mu);
  NamespaceState* state = &n->state;
  uint64_t dropped_through = std::max(dropped_before, state->dropped_through);
  for (const DeadPath& d : dead) {
    std::string value;
    rocksdb::Status s = db_->db()->Get(rocksdb::ReadOptions(), StoreDb::FileKey(ns, d.path), &value);
    if (s.IsNotFound()) continue;
    CONVERGE_RETURN_IF_ERROR(RocksStatus(s, "read file table"));
    CONVERGE_ASSIGN_OR_RETURN(FileVersion current, DecodeFileVersion(value));
    if (!current.deleted || current.seq != d.seq) continue;  // re-created meanwhile
    batch.Delete(StoreDb::FileKey(ns, d.path));
    batch.Delete(d.history_key);
    ++result.versions_dropped;
    ++result.tombstones_dropped;
    dropped_through = std::max(dropped_through, d.seq);
  }
  std::string record;
  const uint64_t through = std::max(compacted_through, state->compacted_through);
  PutFixed64BE(&record, through);
  PutFixed64BE(&record, dropped_through);
  batch.Put(StoreDb::CompactionKey(ns), record);
  CONVERGE_RETURN_IF_ERROR(RocksStatus(db_->WriteSynced(&batch), "write compaction"));
  state->compacted_through = through;
  state->dropped_through = dropped_through;
  result.compacted_through = through;
  return result;
}

absl::Status CommitLog::FindWatermark(const std::string& ns, const absl::flat_hash_set<std::string>& members,
                                      uint64_t head, CompactionResult* result) {
  // The watermark: the lowest cursor of the members not evicted (a member that never acked
  // holds it at 0). Cursors only move forward, so one read late is merely conservative.
  std::map<std::string, CursorRecord> cursors;
  const std::string prefix = StoreDb::CursorPrefix(ns);
  std::unique_ptr<rocksdb::Iterator> it(db_->db()->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    CONVERGE_ASSIGN_OR_RETURN(CursorRecord r, DecodeCursor(View(it->value())));
    cursors.emplace(std::string(View(it->key()).substr(prefix.size())), r);
  }
  CONVERGE_RETURN_IF_ERROR(RocksStatus(it->status(), "read cursors"));
  auto cursor_of = [&](const std::string& m) { return cursors.count(m) > 0 ? cursors[m] : CursorRecord{}; };
  result->watermark = head;
  for (const std::string& m : members) {
    const CursorRecord r = cursor_of(m);
    if (!r.evicted) result->watermark = std::min(result->watermark, r.seq);
  }
  for (const std::string& m : members) {
    const CursorRecord r = cursor_of(m);
    if (!r.evicted && r.seq == result->watermark && result->watermark < head) result->pinned_by.push_back(m);
  }
  std::sort(result->pinned_by.begin(), result->pinned_by.end());
  return absl::OkStatus();
}

absl::Status CommitLog::DropLog(const std::string& ns, uint64_t after, uint64_t through, rocksdb::WriteBatch* batch,
                                CompactionResult* result) {
  const std::string prefix = StoreDb::LogPrefix(ns);
  const std::string last = StoreDb::LogKey(ns, through);
  std::unique_ptr<rocksdb::Iterator> it(db_->db()->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(StoreDb::LogKey(ns, after + 1)); it->Valid() && it->key().starts_with(prefix) && it->key().compare(last) <= 0;
       it->Next()) {
    batch->Delete(it->key());
    ++result->log_entries_dropped;
  }
  return RocksStatus(it->status(), "read log");
}

absl::StatusOr<std::vector<CommitLog::DeadPath>> CommitLog::PruneHistory(const std::string& ns, int64_t cutoff_ms,
                                                                         rocksdb::WriteBatch* batch,
                                                                         CompactionResult* result) {
  // A version superseded before the cutoff goes (later commits only add newer versions, so this
  // stays true). A deleted path whose tombstone is older than the cutoff and applied by every
  // member is a candidate: the caller checks it against the file table under the lock.
  struct Kept {
    std::string key;
    HistoryVersion h;
  };
  std::vector<DeadPath> dead;
  std::vector<Kept> group;  // one path's versions, oldest first
  auto settle = [&]() {
    if (group.empty()) return;
    for (size_t i = 0; i + 1 < group.size(); ++i) {
      if (group[i + 1].h.committed_at_unix_ms < cutoff_ms) {
        batch->Delete(group[i].key);
        ++result->versions_dropped;
      }
    }
    const HistoryVersion& last = group.back().h;
    if (last.version.deleted && last.committed_at_unix_ms < cutoff_ms && last.version.seq <= result->watermark) {
      dead.push_back(DeadPath{group.back().key, last.version.path, last.version.seq});
    }
    group.clear();
  };
  const std::string prefix = HistoryPrefix(ns);
  std::unique_ptr<rocksdb::Iterator> it(db_->db()->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    CONVERGE_ASSIGN_OR_RETURN(HistoryVersion h, DecodeHistory(View(it->value())));
    if (!group.empty() && group.back().h.version.path != h.version.path) settle();
    group.push_back(Kept{it->key().ToString(), std::move(h)});
  }
  CONVERGE_RETURN_IF_ERROR(RocksStatus(it->status(), "read history"));
  settle();
  return dead;
}

absl::StatusOr<ChunkStore::SweepResult> CommitLog::CollectGarbage(absl::Duration grace) {
  // Whatever is touched from here on is kept whatever the grace: a commit made during the
  // marking may reference it.
  const absl::Time marking = absl::Now();
  CONVERGE_ASSIGN_OR_RETURN(std::vector<std::string> namespaces, Namespaces());
  absl::flat_hash_map<std::string, absl::flat_hash_set<std::string>> referenced;  // owner -> digests
  for (const std::string& ns : namespaces) {
    // A commit of this namespace in flight may have asked about its chunks before the marking
    // began (so they are not "recent") and write after the file table is read below: wait for
    // it. Commits that start later ask after the marking began, and their chunks are kept.
    CONVERGE_ASSIGN_OR_RETURN(Namespace * n, Find(ns));
    { absl::MutexLock no_commit_in_flight(&n->mu); }
    CONVERGE_ASSIGN_OR_RETURN(std::string owner, OwnerOf(ns));
    absl::flat_hash_set<std::string>& mine = referenced[owner];
    auto mark = [&](const FileVersion& v) {
      if (v.deleted || v.kind != FileKind::kFile) return;
      for (const ChunkRef& c : v.chunks) {
        if (!c.hole()) mine.insert(DigestToBytes(c.sha256));
      }
    };
    CONVERGE_RETURN_IF_ERROR(ScanFileTable(ns, mark));
    const std::string prefix = HistoryPrefix(ns);
    std::unique_ptr<rocksdb::Iterator> it(db_->db()->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      CONVERGE_ASSIGN_OR_RETURN(HistoryVersion h, DecodeHistory(View(it->value())));
      mark(h.version);
    }
    CONVERGE_RETURN_IF_ERROR(RocksStatus(it->status(), "read history"));
    // The log not yet compacted: a device behind the watermark still downloads from it.
    const std::string log_prefix = StoreDb::LogPrefix(ns);
    std::unique_ptr<rocksdb::Iterator> log(db_->db()->NewIterator(rocksdb::ReadOptions()));
    for (log->Seek(log_prefix); log->Valid() && log->key().starts_with(log_prefix); log->Next()) {
      CONVERGE_ASSIGN_OR_RETURN(Commit c, DecodeCommit(View(log->value())));
      for (const FileVersion& v : c.files) mark(v);
    }
    CONVERGE_RETURN_IF_ERROR(RocksStatus(log->status(), "read log"));
  }
  // A commit made since the marking asked about every chunk it references (Append's
  // FindMissing), which Sweep keeps as recent: sweeping while no commit runs sees that.
  absl::WriterMutexLock no_commits(&sweep_mu_);
  return chunks_->Sweep(referenced, std::min(marking, absl::Now() - grace));
}

}  // namespace converge::store
