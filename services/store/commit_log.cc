#include "services/store/commit_log.h"

#include <rocksdb/write_batch.h>

#include <map>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/coding.h"
#include "common/conflict_name.h"
#include "common/path.h"
#include "common/status_macros.h"

namespace converge::store {
namespace {

constexpr uint64_t kNamespaceFormat = 1;
constexpr size_t kMaxNamedPaths = 20;

// A cursor record: varint seq, then (optional, newer records) varint last-seen ms and the
// length-prefixed software version.
struct CursorRecord {
  uint64_t seq = 0;
  int64_t last_seen_unix_ms = 0;
  std::string software_version;
};

absl::StatusOr<CursorRecord> DecodeCursor(absl::string_view bytes) {
  Decoder d(bytes);
  CursorRecord r;
  if (!d.GetVarint64(&r.seq)) return absl::DataLossError("corrupt cursor record");
  if (d.done()) return r;
  uint64_t seen = 0;
  absl::string_view version;
  if (!d.GetVarint64(&seen) || !d.GetLengthPrefixed(&version) || !d.done()) {
    return absl::DataLossError("corrupt cursor record");
  }
  r.last_seen_unix_ms = static_cast<int64_t>(seen);
  r.software_version = std::string(version);
  return r;
}

std::string EncodeCursor(const CursorRecord& r) {
  std::string out;
  PutVarint64(&out, r.seq);
  PutVarint64(&out, static_cast<uint64_t>(r.last_seen_unix_ms));
  PutLengthPrefixed(&out, r.software_version);
  return out;
}

std::string ActivityKey(absl::string_view ns, absl::string_view device) {
  return absl::StrCat(ns, std::string(1, '\0'), device);
}

std::string NamedPaths(const std::vector<std::string>& paths) {
  std::string out = absl::StrJoin(paths.begin(),
                                  paths.begin() + std::min(paths.size(), kMaxNamedPaths), ", ");
  if (paths.size() > kMaxNamedPaths) absl::StrAppend(&out, " and ", paths.size() - kMaxNamedPaths, " more");
  return out;
}

}  // namespace

std::string CommitLog::EncodeNamespace(const NamespaceState& state) {
  std::string out;
  PutVarint64(&out, kNamespaceFormat);
  PutVarint64(&out, state.head_seq);
  std::vector<std::string> members(state.members.begin(), state.members.end());
  std::sort(members.begin(), members.end());
  PutVarint64(&out, members.size());
  for (const std::string& m : members) PutLengthPrefixed(&out, m);
  return out;
}

absl::StatusOr<CommitLog::NamespaceState*> CommitLog::LoadLocked(const std::string& ns) {
  auto it = ns_.find(ns);
  if (it != ns_.end()) return &it->second;
  std::string value;
  rocksdb::Status s = db_->db()->Get(rocksdb::ReadOptions(), StoreDb::NamespaceKey(ns), &value);
  if (s.IsNotFound()) return absl::NotFoundError(absl::StrCat("unknown namespace '", ns, "'"));
  CONVERGE_RETURN_IF_ERROR(RocksStatus(s, "read namespace"));
  Decoder d(value);
  NamespaceState state;
  uint64_t format, n;
  if (!d.GetVarint64(&format) || format != kNamespaceFormat || !d.GetVarint64(&state.head_seq) ||
      !d.GetVarint64(&n)) {
    return absl::DataLossError(absl::StrCat("corrupt namespace record '", ns, "'"));
  }
  for (uint64_t i = 0; i < n; ++i) {
    std::string member;
    if (!d.GetLengthPrefixed(&member)) return absl::DataLossError("corrupt namespace record");
    state.members.insert(std::move(member));
  }
  return &ns_.emplace(ns, std::move(state)).first->second;
}

absl::Status CommitLog::RegisterNamespace(const std::string& ns,
                                          const std::vector<std::string>& members) {
  CONVERGE_RETURN_IF_ERROR(ValidateId("namespace id", ns));
  for (const std::string& m : members) CONVERGE_RETURN_IF_ERROR(ValidateId("device id", m));
  absl::MutexLock lock(&mu_);
  NamespaceState next;
  absl::StatusOr<NamespaceState*> current = LoadLocked(ns);
  if (current.ok()) {
    next.head_seq = (*current)->head_seq;
  } else if (!absl::IsNotFound(current.status())) {
    return current.status();
  }
  next.members.insert(members.begin(), members.end());
  rocksdb::WriteOptions sync;
  sync.sync = true;
  CONVERGE_RETURN_IF_ERROR(RocksStatus(
      db_->db()->Put(sync, StoreDb::NamespaceKey(ns), EncodeNamespace(next)), "write namespace"));
  ns_[ns] = std::move(next);
  return absl::OkStatus();
}

absl::Status CommitLog::CheckAccess(const std::string& ns, const std::string& device) {
  absl::MutexLock lock(&mu_);
  CONVERGE_ASSIGN_OR_RETURN(NamespaceState * state, LoadLocked(ns));
  if (!device.empty() && !state->members.contains(device)) {
    return absl::PermissionDeniedError(
        absl::StrCat("device '", device, "' is not a member of namespace '", ns, "'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Commit> CommitLog::Append(const std::string& ns, const std::string& device,
                                         std::vector<FileVersion> changes) {
  CONVERGE_RETURN_IF_ERROR(ValidateChanges(changes));
  absl::MutexLock lock(&mu_);
  CONVERGE_ASSIGN_OR_RETURN(NamespaceState * state, LoadLocked(ns));
  if (!state->members.contains(device)) {
    return absl::PermissionDeniedError(
        absl::StrCat("device '", device, "' is not a member of namespace '", ns, "'"));
  }

  // Optimistic concurrency: each change must be made on top of the path's current version.
  std::vector<std::string> stale;
  for (const FileVersion& v : changes) {
    std::string value;
    rocksdb::Status s = db_->db()->Get(rocksdb::ReadOptions(), StoreDb::FileKey(ns, v.path), &value);
    uint64_t current_seq = 0;
    if (s.ok()) {
      CONVERGE_ASSIGN_OR_RETURN(FileVersion current, DecodeFileVersion(value));
      current_seq = current.seq;
    } else if (!s.IsNotFound()) {
      return RocksStatus(s, "read file table");
    }
    if (v.base_seq != current_seq) stale.push_back(v.path);
  }
  if (!stale.empty()) {
    return absl::AbortedError(absl::StrCat("stale base_seq (pull and retry) for: ", NamedPaths(stale)));
  }

  // Every chunk a live file references must already be stored.
  std::vector<Digest> referenced;
  for (const FileVersion& v : changes) {
    if (v.deleted || v.kind != FileKind::kFile) continue;
    for (const ChunkRef& c : v.chunks) referenced.push_back(c.sha256);
  }
  CONVERGE_ASSIGN_OR_RETURN(std::vector<Digest> missing, chunks_->FindMissing(referenced));
  if (!missing.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(missing.size(), " referenced chunk(s) not uploaded, first ",
                     DigestToHex(missing.front())));
  }

  Commit commit;
  commit.namespace_id = ns;
  commit.seq = state->head_seq + 1;
  commit.origin_device = device;
  commit.committed_at_unix_ms = absl::ToUnixMillis(clock_->Now());
  commit.files = std::move(changes);
  rocksdb::WriteBatch batch;
  for (FileVersion& v : commit.files) {
    v.seq = commit.seq;
    v.origin_device = device;
    batch.Put(StoreDb::FileKey(ns, v.path), EncodeFileVersion(v));
  }
  batch.Put(StoreDb::LogKey(ns, commit.seq), EncodeCommit(commit));
  NamespaceState next = *state;
  next.head_seq = commit.seq;
  batch.Put(StoreDb::NamespaceKey(ns), EncodeNamespace(next));
  rocksdb::WriteOptions sync;
  sync.sync = true;
  CONVERGE_RETURN_IF_ERROR(RocksStatus(db_->db()->Write(sync, &batch), "write commit"));
  state->head_seq = commit.seq;
  return commit;
}

absl::Status CommitLog::ReadSince(const std::string& ns, uint64_t since_seq, uint32_t max_commits,
                                  const std::function<bool(const Commit&)>& fn) {
  CONVERGE_RETURN_IF_ERROR(CheckAccess(ns, ""));
  const std::string prefix = StoreDb::LogPrefix(ns);
  std::unique_ptr<rocksdb::Iterator> it(db_->db()->NewIterator(rocksdb::ReadOptions()));
  uint32_t sent = 0;
  for (it->Seek(StoreDb::LogKey(ns, since_seq + 1)); it->Valid() && it->key().starts_with(prefix);
       it->Next()) {
    CONVERGE_ASSIGN_OR_RETURN(Commit c, DecodeCommit(View(it->value())));
    if (!fn(c)) return absl::OkStatus();
    if (max_commits != 0 && ++sent >= max_commits) return absl::OkStatus();
  }
  return RocksStatus(it->status(), "read log");
}

absl::Status CommitLog::ListFiles(const std::string& ns,
                                  const std::function<void(const FileVersion&)>& fn) {
  CONVERGE_RETURN_IF_ERROR(CheckAccess(ns, ""));
  const std::string prefix = StoreDb::FilePrefix(ns);
  std::unique_ptr<rocksdb::Iterator> it(db_->db()->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    CONVERGE_ASSIGN_OR_RETURN(FileVersion v, DecodeFileVersion(View(it->value())));
    fn(v);
  }
  return RocksStatus(it->status(), "read file table");
}

absl::Status CommitLog::Ack(const std::string& ns, const std::string& device, uint64_t seq,
                            const std::string& software_version) {
  CONVERGE_ASSIGN_OR_RETURN(uint64_t head, HeadSeq(ns));
  CONVERGE_RETURN_IF_ERROR(CheckAccess(ns, device));
  if (seq > head) {
    return absl::InvalidArgumentError(absl::StrCat("ack of seq ", seq, " above head ", head));
  }
  Touch(ns, device, software_version);
  absl::MutexLock lock(&mu_);  // cursor read-modify-write
  const std::string key = StoreDb::CursorKey(ns, device);
  std::string value;
  CursorRecord record;
  rocksdb::Status s = db_->db()->Get(rocksdb::ReadOptions(), key, &value);
  if (s.ok()) {
    CONVERGE_ASSIGN_OR_RETURN(record, DecodeCursor(value));
  } else if (!s.IsNotFound()) {
    return RocksStatus(s, "read cursor");
  }
  record.seq = std::max(record.seq, seq);
  record.last_seen_unix_ms = absl::ToUnixMillis(clock_->Now());
  if (!software_version.empty()) record.software_version = software_version;
  return RocksStatus(db_->db()->Put(rocksdb::WriteOptions(), key, EncodeCursor(record)), "write cursor");
}

void CommitLog::Touch(const std::string& ns, const std::string& device, const std::string& software_version) {
  if (device.empty()) return;
  absl::MutexLock lock(&activity_mu_);
  Activity& a = activity_[ActivityKey(ns, device)];
  a.last_seen_unix_ms = absl::ToUnixMillis(clock_->Now());
  if (!software_version.empty()) a.software_version = software_version;
}


absl::StatusOr<uint64_t> CommitLog::HeadSeq(const std::string& ns) {
  absl::MutexLock lock(&mu_);
  CONVERGE_ASSIGN_OR_RETURN(NamespaceState * state, LoadLocked(ns));
  return state->head_seq;
}

absl::StatusOr<NamespaceStats> CommitLog::Stats(const std::string& ns) {
  NamespaceStats stats;
  std::vector<std::string> members;
  {
    absl::MutexLock lock(&mu_);
    CONVERGE_ASSIGN_OR_RETURN(NamespaceState * state, LoadLocked(ns));
    stats.head_seq = state->head_seq;
    members.assign(state->members.begin(), state->members.end());
  }
  absl::flat_hash_set<std::string> chunks;
  CONVERGE_RETURN_IF_ERROR(ListFiles(ns, [&](const FileVersion& v) {
    if (v.deleted || v.kind != FileKind::kFile) return;
    ++stats.live_files;
    stats.live_bytes += v.size;
    if (IsConflictCopy(v.path)) stats.conflict_paths.push_back(v.path);
    for (const ChunkRef& c : v.chunks) {
      if (chunks.insert(DigestToBytes(c.sha256)).second) {
        ++stats.unique_chunks;
        stats.unique_chunk_bytes += c.length;
      }
    }
  }));

  // Every member, with its durable cursor record, then what it did since (in memory).
  std::map<std::string, DeviceState> devices;
  for (const std::string& m : members) devices[m].device_id = m;
  const std::string prefix = StoreDb::CursorPrefix(ns);
  std::unique_ptr<rocksdb::Iterator> it(db_->db()->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    CONVERGE_ASSIGN_OR_RETURN(CursorRecord r, DecodeCursor(View(it->value())));
    DeviceState& d = devices[std::string(View(it->key()).substr(prefix.size()))];
    d.device_id = std::string(View(it->key()).substr(prefix.size()));
    d.acked_seq = r.seq;
    d.last_seen_unix_ms = r.last_seen_unix_ms;
    d.software_version = r.software_version;
  }
  CONVERGE_RETURN_IF_ERROR(RocksStatus(it->status(), "read cursors"));
  {
    absl::MutexLock lock(&activity_mu_);
    for (auto& [id, d] : devices) {
      auto a = activity_.find(ActivityKey(ns, id));
      if (a == activity_.end() || a->second.last_seen_unix_ms < d.last_seen_unix_ms) continue;
      d.last_seen_unix_ms = a->second.last_seen_unix_ms;
      if (!a->second.software_version.empty()) d.software_version = a->second.software_version;
    }
  }

  // Lag: one pass over the log from the lowest cursor (bounded), then per device.
  uint64_t lowest = stats.head_seq;
  for (const auto& [id, d] : devices) lowest = std::min(lowest, d.acked_seq);
  struct Entry {
    uint64_t seq;
    uint64_t bytes;
    int64_t committed_at_unix_ms;
  };
  std::vector<Entry> tail;
  if (lowest < stats.head_seq) {
    const uint64_t from = stats.head_seq - lowest > kMaxLagScan ? stats.head_seq - kMaxLagScan : lowest;
    CONVERGE_RETURN_IF_ERROR(ReadSince(ns, from, kMaxLagScan, [&](const Commit& c) {
      uint64_t bytes = 0;
      for (const FileVersion& v : c.files) bytes += v.deleted ? 0 : v.size;
      tail.push_back(Entry{c.seq, bytes, c.committed_at_unix_ms});
      return true;
    }));
  }
  const int64_t now_ms = absl::ToUnixMillis(clock_->Now());
  for (auto& [id, d] : devices) {
    d.lag_commits = stats.head_seq - std::min(d.acked_seq, stats.head_seq);
    bool first = true;
    for (const Entry& e : tail) {
      if (e.seq <= d.acked_seq) continue;
      d.lag_bytes += e.bytes;
      if (first) d.lag_seconds = std::max<double>(0, (now_ms - e.committed_at_unix_ms) / 1000.0);
      first = false;
    }
    stats.devices.push_back(d);
  }
  return stats;
}

}  // namespace converge::store
