#include "services/store/history.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "common/base/coding.h"
#include "common/base/status_macros.h"
#include "common/model/conflict_name.h"

namespace converge::store {
namespace {

constexpr absl::string_view kNul("\0", 1);

}  // namespace

std::string HistoryPrefix(absl::string_view ns) { return absl::StrCat("v", ns, kNul); }

std::string HistoryPathPrefix(absl::string_view ns, absl::string_view path) {
  return absl::StrCat(HistoryPrefix(ns), path, kNul);
}

std::string HistoryKey(absl::string_view ns, absl::string_view path, uint64_t seq) {
  std::string k = HistoryPathPrefix(ns, path);
  PutFixed64BE(&k, seq);
  return k;
}

std::string EncodeHistory(const FileVersion& v, int64_t committed_at_unix_ms) {
  std::string out;
  PutFixed64BE(&out, static_cast<uint64_t>(committed_at_unix_ms));
  out.append(EncodeFileVersion(v));
  return out;
}

absl::StatusOr<HistoryVersion> DecodeHistory(absl::string_view bytes) {
  Decoder d(bytes);
  uint64_t at = 0;
  if (!d.GetFixed64BE(&at)) return absl::DataLossError("corrupt history record");
  HistoryVersion h;
  h.committed_at_unix_ms = static_cast<int64_t>(at);
  CONVERGE_ASSIGN_OR_RETURN(h.version, DecodeFileVersion(bytes.substr(8)));
  return h;
}

std::string ConflictPrefix(absl::string_view ns) { return absl::StrCat("x", ns, kNul); }

std::string ConflictKey(absl::string_view ns, absl::string_view copy_path) {
  return absl::StrCat(ConflictPrefix(ns), copy_path);
}

std::string EncodeConflict(const ConflictRecord& r) {
  std::string out;
  PutLengthPrefixed(&out, r.original_path);
  PutLengthPrefixed(&out, r.device);
  PutVarint64(&out, r.seq);
  PutVarint64(&out, static_cast<uint64_t>(r.created_at_unix_ms));
  PutVarint64(&out, r.resolved ? 1 : 0);
  PutVarint64(&out, static_cast<uint64_t>(r.resolved_at_unix_ms));
  PutLengthPrefixed(&out, r.resolved_by);
  return out;
}

absl::StatusOr<ConflictRecord> DecodeConflict(absl::string_view ns, absl::string_view copy_path,
                                              absl::string_view bytes) {
  Decoder d(bytes);
  ConflictRecord r;
  r.namespace_id = std::string(ns);
  r.copy_path = std::string(copy_path);
  uint64_t created = 0, resolved = 0, resolved_at = 0;
  if (!d.GetLengthPrefixed(&r.original_path) || !d.GetLengthPrefixed(&r.device) || !d.GetVarint64(&r.seq) ||
      !d.GetVarint64(&created) || !d.GetVarint64(&resolved) || !d.GetVarint64(&resolved_at) ||
      !d.GetLengthPrefixed(&r.resolved_by) || !d.done()) {
    return absl::DataLossError("corrupt conflict record");
  }
  r.created_at_unix_ms = static_cast<int64_t>(created);
  r.resolved = resolved != 0;
  r.resolved_at_unix_ms = static_cast<int64_t>(resolved_at);
  return r;
}

absl::Status RecordHistory(StoreDb* db, const Commit& commit, const std::function<bool(const std::string&)>& was_live,
                           rocksdb::WriteBatch* batch) {
  for (const FileVersion& v : commit.files) {
    batch->Put(HistoryKey(commit.namespace_id, v.path, commit.seq), EncodeHistory(v, commit.committed_at_unix_ms));
    if (v.kind != FileKind::kFile) continue;
    // A conflict copy by its name, or (sealed: the name is encrypted) by what its device said.
    std::optional<ConflictCopyName> copy =
        v.sealed_record.empty() ? ParseConflictName(v.path)
        : v.conflict_original.empty() ? std::nullopt
                                      : std::optional<ConflictCopyName>(ConflictCopyName{v.conflict_original});
    if (!copy.has_value()) continue;
    const std::string key = ConflictKey(commit.namespace_id, v.path);
    std::string value;
    rocksdb::Status s = db->db()->Get(rocksdb::ReadOptions(), key, &value);
    if (!s.ok() && !s.IsNotFound()) return RocksStatus(s, "read conflict record");
    std::optional<ConflictRecord> record;
    if (s.ok()) {
      CONVERGE_ASSIGN_OR_RETURN(record, DecodeConflict(commit.namespace_id, v.path, value));
    }
    if (!v.deleted && !was_live(v.path)) {
      // A new conflict copy: a new open conflict (again, if an older one had this name).
      ConflictRecord r;
      r.namespace_id = commit.namespace_id;
      r.copy_path = v.path;
      r.original_path = copy->original_path;
      r.device = commit.origin_device;
      r.seq = commit.seq;
      r.created_at_unix_ms = commit.committed_at_unix_ms;
      batch->Put(key, EncodeConflict(r));
    } else if (v.deleted && record.has_value() && !record->resolved) {
      record->resolved = true;
      record->resolved_at_unix_ms = commit.committed_at_unix_ms;
      record->resolved_by = absl::StrCat("deleted by ", commit.origin_device);
      batch->Put(key, EncodeConflict(*record));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<HistoryVersion>> Versions(StoreDb* db, absl::string_view ns, absl::string_view path,
                                                     size_t limit) {
  const std::string prefix = HistoryPathPrefix(ns, path);
  std::vector<HistoryVersion> out;
  std::unique_ptr<rocksdb::Iterator> it(db->db()->NewIterator(rocksdb::ReadOptions()));
  std::string end = prefix;
  PutFixed64BE(&end, ~uint64_t{0});
  for (it->SeekForPrev(end); it->Valid() && it->key().starts_with(prefix); it->Prev()) {
    CONVERGE_ASSIGN_OR_RETURN(HistoryVersion h, DecodeHistory(View(it->value())));
    out.push_back(std::move(h));
    if (limit != 0 && out.size() >= limit) break;
  }
  CONVERGE_RETURN_IF_ERROR(RocksStatus(it->status(), "read history"));
  return out;
}

absl::Status StateAt(StoreDb* db, absl::string_view ns, int64_t at_unix_ms,
                     const std::function<void(const HistoryVersion&)>& fn, absl::string_view path_prefix) {
  const std::string prefix = absl::StrCat(HistoryPrefix(ns), path_prefix);
  std::unique_ptr<rocksdb::Iterator> it(db->db()->NewIterator(rocksdb::ReadOptions()));
  std::optional<HistoryVersion> best;  // of the current path
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    CONVERGE_ASSIGN_OR_RETURN(HistoryVersion h, DecodeHistory(View(it->value())));
    if (best.has_value() && best->version.path != h.version.path) {
      fn(*best);
      best.reset();
    }
    if (h.committed_at_unix_ms <= at_unix_ms) best = std::move(h);
  }
  CONVERGE_RETURN_IF_ERROR(RocksStatus(it->status(), "read history"));
  if (best.has_value()) fn(*best);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ConflictRecord>> Conflicts(StoreDb* db, absl::string_view ns, bool include_resolved) {
  const std::string prefix = ConflictPrefix(ns);
  std::vector<ConflictRecord> out;
  std::unique_ptr<rocksdb::Iterator> it(db->db()->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    absl::string_view key = View(it->key());
    CONVERGE_ASSIGN_OR_RETURN(ConflictRecord r, DecodeConflict(ns, key.substr(prefix.size()), View(it->value())));
    if (include_resolved || !r.resolved) out.push_back(std::move(r));
  }
  CONVERGE_RETURN_IF_ERROR(RocksStatus(it->status(), "read conflicts"));
  return out;
}

}  // namespace converge::store
