// CommitLog's history, conflict records and compaction (commit_log.h).
#include <algorithm>
#include <map>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/coding.h"
#include "common/status_macros.h"
#include "services/store/commit_log.h"
#include "services/store/cursor_record.h"

namespace converge::store {

absl::StatusOr<std::vector<HistoryVersion>> CommitLog::Versions(const std::string& ns, const std::string& path,
                                                                size_t limit) {
  CONVERGE_RETURN_IF_ERROR(CheckAccess(ns, ""));
  return store::Versions(db_, ns, path, limit);
}

absl::Status CommitLog::StateAt(const std::string& ns, int64_t at_unix_ms,
                                const std::function<void(const HistoryVersion&)>& fn) {
  CONVERGE_RETURN_IF_ERROR(CheckAccess(ns, ""));
  return store::StateAt(db_, ns, at_unix_ms, fn);
}

absl::StatusOr<std::vector<ConflictRecord>> CommitLog::ListConflicts(const std::string& ns, bool include_resolved) {
  CONVERGE_RETURN_IF_ERROR(CheckAccess(ns, ""));
  return Conflicts(db_, ns, include_resolved);
}

absl::StatusOr<ConflictRecord> CommitLog::ResolveConflict(const std::string& ns, const std::string& copy_path,
                                                          const std::string& by) {
  absl::MutexLock lock(&mu_);  // not racing a commit that deletes the copy
  CONVERGE_RETURN_IF_ERROR(LoadLocked(ns).status());
  const std::string key = ConflictKey(ns, copy_path);
  std::string value;
  rocksdb::Status s = db_->db()->Get(rocksdb::ReadOptions(), key, &value);
  if (s.IsNotFound()) return absl::NotFoundError(absl::StrCat("no conflict copy '", copy_path, "' in '", ns, "'"));
  CONVERGE_RETURN_IF_ERROR(RocksStatus(s, "read conflict record"));
  CONVERGE_ASSIGN_OR_RETURN(ConflictRecord r, DecodeConflict(copy_path, value));
  if (r.resolved) return r;
  r.resolved = true;
  r.resolved_at_unix_ms = absl::ToUnixMillis(clock_->Now());
  r.resolved_by = by;
  rocksdb::WriteOptions sync;
  sync.sync = true;
  CONVERGE_RETURN_IF_ERROR(RocksStatus(db_->Checked(db_->db()->Put(sync, key, EncodeConflict(r))), "resolve conflict"));
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
  absl::MutexLock lock(&mu_);
  CONVERGE_ASSIGN_OR_RETURN(NamespaceState * state, LoadLocked(ns));
  if (!state->members.contains(device)) {
    return absl::NotFoundError(absl::StrCat("device '", device, "' is not a member of '", ns, "'"));
  }
  return UpdateCursorLocked(ns, device, /*sync=*/true, [](CursorRecord* record) { record->evicted = true; });
}

absl::StatusOr<CompactionResult> CommitLog::Compact(const std::string& ns, absl::Duration retention) {
  absl::MutexLock lock(&mu_);
  CONVERGE_ASSIGN_OR_RETURN(NamespaceState * state, LoadLocked(ns));
  CompactionResult result;

  // The watermark: the lowest cursor of the members not evicted (a member that never acked
  // holds it at 0).
  std::map<std::string, CursorRecord> cursors;
  const std::string cursor_prefix = StoreDb::CursorPrefix(ns);
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->db()->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(cursor_prefix); it->Valid() && it->key().starts_with(cursor_prefix); it->Next()) {
      CONVERGE_ASSIGN_OR_RETURN(CursorRecord r, DecodeCursor(View(it->value())));
      cursors.emplace(std::string(View(it->key()).substr(cursor_prefix.size())), r);
    }
    CONVERGE_RETURN_IF_ERROR(RocksStatus(it->status(), "read cursors"));
  }
  result.watermark = state->head_seq;
  for (const std::string& m : state->members) {
    const CursorRecord r = cursors.count(m) > 0 ? cursors[m] : CursorRecord{};
    if (!r.evicted) result.watermark = std::min(result.watermark, r.seq);
  }
  for (const std::string& m : state->members) {
    const CursorRecord r = cursors.count(m) > 0 ? cursors[m] : CursorRecord{};
    if (!r.evicted && r.seq == result.watermark && result.watermark < state->head_seq) result.pinned_by.push_back(m);
  }
  std::sort(result.pinned_by.begin(), result.pinned_by.end());

  rocksdb::WriteBatch batch;
  // 1. The log at or below the watermark: every member has applied it; the file table has it.
  const uint64_t compacted_through = std::max(state->compacted_through, result.watermark);
  {
    const std::string prefix = StoreDb::LogPrefix(ns);
    std::unique_ptr<rocksdb::Iterator> it(db_->db()->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(StoreDb::LogKey(ns, state->compacted_through + 1));
         it->Valid() && it->key().starts_with(prefix) && it->key().compare(StoreDb::LogKey(ns, compacted_through)) <= 0;
         it->Next()) {
      batch.Delete(it->key());
      ++result.log_entries_dropped;
    }
    CONVERGE_RETURN_IF_ERROR(RocksStatus(it->status(), "read log"));
  }

  // 2. History: a version superseded before the cutoff goes; so does a deleted path whose
  // tombstone is older than the cutoff and applied by every member (with its file table entry).
  const int64_t cutoff_ms = absl::ToUnixMillis(clock_->Now() - retention);
  uint64_t dropped_through = state->dropped_through;
  struct Kept {
    std::string key;
    HistoryVersion h;
  };
  std::vector<Kept> group;  // one path's versions, oldest first
  auto settle = [&]() -> absl::Status {
    if (group.empty()) return absl::OkStatus();
    for (size_t i = 0; i + 1 < group.size(); ++i) {
      if (group[i + 1].h.committed_at_unix_ms < cutoff_ms) {
        batch.Delete(group[i].key);
        ++result.versions_dropped;
      }
    }
    const HistoryVersion& last = group.back().h;
    if (last.version.deleted && last.committed_at_unix_ms < cutoff_ms && last.version.seq <= result.watermark) {
      std::string value;
      rocksdb::Status s = db_->db()->Get(rocksdb::ReadOptions(), StoreDb::FileKey(ns, last.version.path), &value);
      CONVERGE_RETURN_IF_ERROR(RocksStatus(s.IsNotFound() ? rocksdb::Status::OK() : s, "read file table"));
      if (s.ok()) {
        CONVERGE_ASSIGN_OR_RETURN(FileVersion current, DecodeFileVersion(value));
        if (current.deleted && current.seq == last.version.seq) {
          batch.Delete(StoreDb::FileKey(ns, last.version.path));
          batch.Delete(group.back().key);
          ++result.versions_dropped;
          ++result.tombstones_dropped;
          dropped_through = std::max(dropped_through, last.version.seq);
        }
      }
    }
    group.clear();
    return absl::OkStatus();
  };
  {
    const std::string prefix = HistoryPrefix(ns);
    std::unique_ptr<rocksdb::Iterator> it(db_->db()->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      CONVERGE_ASSIGN_OR_RETURN(HistoryVersion h, DecodeHistory(View(it->value())));
      if (!group.empty() && group.back().h.version.path != h.version.path) CONVERGE_RETURN_IF_ERROR(settle());
      group.push_back(Kept{it->key().ToString(), std::move(h)});
    }
    CONVERGE_RETURN_IF_ERROR(RocksStatus(it->status(), "read history"));
    CONVERGE_RETURN_IF_ERROR(settle());
  }

  std::string record;
  PutFixed64BE(&record, compacted_through);
  PutFixed64BE(&record, dropped_through);
  batch.Put(StoreDb::CompactionKey(ns), record);
  rocksdb::WriteOptions sync;
  sync.sync = true;
  CONVERGE_RETURN_IF_ERROR(RocksStatus(db_->Checked(db_->db()->Write(sync, &batch)), "write compaction"));
  state->compacted_through = compacted_through;
  state->dropped_through = dropped_through;
  result.compacted_through = compacted_through;
  return result;
}

absl::StatusOr<ChunkStore::SweepResult> CommitLog::CollectGarbage(absl::Duration grace) {
  CONVERGE_ASSIGN_OR_RETURN(std::vector<std::string> namespaces, Namespaces());
  absl::MutexLock lock(&mu_);  // no commit between marking and sweeping
  absl::flat_hash_map<std::string, absl::flat_hash_set<std::string>> referenced;  // owner -> digests
  for (const std::string& ns : namespaces) {
    CONVERGE_ASSIGN_OR_RETURN(NamespaceState * state, LoadLocked(ns));
    absl::flat_hash_set<std::string>& mine = referenced[state->owner];
    auto mark = [&](const FileVersion& v) {
      if (v.deleted || v.kind != FileKind::kFile) return;
      for (const ChunkRef& c : v.chunks) mine.insert(DigestToBytes(c.sha256));
    };
    CONVERGE_RETURN_IF_ERROR(ListFilesLocked(ns, mark));
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
  return chunks_->Sweep(referenced, grace);
}

}  // namespace converge::store
