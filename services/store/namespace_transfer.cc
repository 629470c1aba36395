#include "services/store/namespace_transfer.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/base/coding.h"
#include "common/base/status_macros.h"
#include "common/model/model.h"
#include "common/model/path.h"
#include "services/store/history.h"

namespace converge::store {
namespace {

constexpr char kNul = '\0';

// The first key after every key that starts with `prefix` (prefixes here end with '\0').
std::string PrefixEnd(const std::string& prefix) {
  std::string end = prefix;
  end.back() = static_cast<char>(end.back() + 1);
  return end;
}

void CollectChunks(const FileVersion& v, absl::flat_hash_set<Digest>* digests) {
  if (v.deleted || v.kind != FileKind::kFile) return;
  for (const ChunkRef& c : v.chunks) {
    if (!c.hole()) digests->insert(c.sha256);
  }
}

}  // namespace

std::vector<std::string> NamespacePrefixes(const std::string& ns) {
  std::vector<std::string> out;
  for (char tag : std::string("lfahHkvx")) out.push_back(absl::StrCat(std::string(1, tag), ns, std::string(1, kNul)));
  return out;
}

std::vector<std::string> NamespaceExactKeys(const std::string& ns) {
  return {StoreDb::NamespaceKey(ns), StoreDb::NamespaceOwnerKey(ns), StoreDb::CompactionKey(ns)};
}

// Pager gathers records into pages and hands each full one on; it also notes the chunks the
// records reference (sent after them, once each).
class NamespaceTransfer::Pager {
 public:
  explicit Pager(const std::function<absl::Status(TransferPage&&)>* emit) : emit_(emit) {}

  absl::Status Add(TransferRecord::Op op, std::string key, std::string value = "") {
    page_.bytes += key.size() + value.size() + 8;
    page_.records.push_back(TransferRecord{op, std::move(key), std::move(value)});
    return page_.bytes >= kPageBytes ? Flush() : absl::OkStatus();
  }
  absl::Status AddChunk(ChunkData chunk) {
    if (!page_.chunks.empty() && page_.bytes + chunk.data.size() > kPageBytes) CONVERGE_RETURN_IF_ERROR(Flush());
    page_.bytes += chunk.data.size() + 40;
    page_.chunks.push_back(std::move(chunk));
    return absl::OkStatus();
  }
  absl::Status Flush() {
    if (page_.records.empty() && page_.chunks.empty()) return absl::OkStatus();
    absl::Status s = (*emit_)(std::move(page_));
    page_ = TransferPage();
    return s;
  }
  absl::flat_hash_set<Digest>* digests() { return &digests_; }

 private:
  const std::function<absl::Status(TransferPage&&)>* emit_;
  TransferPage page_;
  absl::flat_hash_set<Digest> digests_;
};

absl::StatusOr<uint64_t> NamespaceTransfer::Export(const std::string& ns, uint64_t after_seq,
                                                   const std::function<absl::Status(TransferPage&&)>& emit) {
  CONVERGE_RETURN_IF_ERROR(ValidateId("namespace id", ns));
  rocksdb::DB* db = db_->db();
  const rocksdb::Snapshot* snap = db->GetSnapshot();
  std::unique_ptr<const rocksdb::Snapshot, std::function<void(const rocksdb::Snapshot*)>> release(
      snap, [db](const rocksdb::Snapshot* s) { db->ReleaseSnapshot(s); });
  rocksdb::ReadOptions at;
  at.snapshot = snap;
  std::string owner, record;
  rocksdb::Status s = db->Get(at, StoreDb::NamespaceOwnerKey(ns), &owner);
  if (s.IsNotFound()) return absl::NotFoundError(absl::StrCat("namespace '", ns, "' is not on this store shard"));
  CONVERGE_RETURN_IF_ERROR(RocksStatus(s, "read namespace owner"));
  // The head at the snapshot: the last log key (or the record's head when the log is compacted).
  CONVERGE_RETURN_IF_ERROR(RocksStatus(db->Get(at, StoreDb::NamespaceKey(ns), &record), "read namespace"));
  Decoder d(record);
  uint64_t format = 0, head = 0;
  if (!d.GetVarint64(&format) || !d.GetVarint64(&head)) return absl::DataLossError("corrupt namespace record");
  if (after_seq > head) {
    return absl::OutOfRangeError(absl::StrCat("namespace '", ns, "' has head ", head, ", not ", after_seq));
  }
  Pager pager(&emit);
  if (after_seq == 0) {
    CONVERGE_RETURN_IF_ERROR(ExportAll(ns, snap, &pager));
  } else {
    CONVERGE_RETURN_IF_ERROR(ExportSince(ns, after_seq, head, snap, &pager));
  }
  CONVERGE_RETURN_IF_ERROR(pager.Flush());
  CONVERGE_RETURN_IF_ERROR(ExportChunks(owner, &pager));
  CONVERGE_RETURN_IF_ERROR(pager.Flush());
  return head;
}

absl::Status NamespaceTransfer::ExportPrefix(
    const std::string& prefix, const rocksdb::Snapshot* snap, Pager* out,
    const std::function<absl::Status(absl::string_view, absl::string_view)>& seen) {
  rocksdb::ReadOptions at;
  at.snapshot = snap;
  const std::string end = PrefixEnd(prefix);
  rocksdb::Slice bound(end);
  at.iterate_upper_bound = &bound;
  std::unique_ptr<rocksdb::Iterator> it(db_->db()->NewIterator(at));
  for (it->Seek(prefix); it->Valid(); it->Next()) {
    if (seen) CONVERGE_RETURN_IF_ERROR(seen(View(it->key()), View(it->value())));
    CONVERGE_RETURN_IF_ERROR(out->Add(TransferRecord::Op::kPut, it->key().ToString(), it->value().ToString()));
  }
  return RocksStatus(it->status(), "export records");
}

absl::Status NamespaceTransfer::ExportSmall(const std::string& ns, const rocksdb::Snapshot* snap, Pager* out) {
  rocksdb::ReadOptions at;
  at.snapshot = snap;
  for (const std::string& key : NamespaceExactKeys(ns)) {
    std::string value;
    rocksdb::Status s = db_->db()->Get(at, key, &value);
    if (!s.ok() && !s.IsNotFound()) return RocksStatus(s, "export record");
    CONVERGE_RETURN_IF_ERROR(s.ok() ? out->Add(TransferRecord::Op::kPut, key, std::move(value))
                                    : out->Add(TransferRecord::Op::kDelete, key));
  }
  // Cursors, held deletes (and their paths), conflict records: whole.
  for (const std::string& prefix : {StoreDb::CursorPrefix(ns), StoreDb::HeldPrefix(ns),
                                    absl::StrCat("H", ns, std::string(1, kNul)), ConflictPrefix(ns)}) {
    CONVERGE_RETURN_IF_ERROR(out->Add(TransferRecord::Op::kClearPrefix, prefix));
    CONVERGE_RETURN_IF_ERROR(ExportPrefix(prefix, snap, out, nullptr));
  }
  return absl::OkStatus();
}

absl::Status NamespaceTransfer::ExportAll(const std::string& ns, const rocksdb::Snapshot* snap, Pager* out) {
  CONVERGE_RETURN_IF_ERROR(ExportSmall(ns, snap, out));
  absl::flat_hash_set<Digest>* digests = out->digests();
  CONVERGE_RETURN_IF_ERROR(ExportPrefix(StoreDb::LogPrefix(ns), snap, out, [&](absl::string_view, absl::string_view v) {
    CONVERGE_ASSIGN_OR_RETURN(Commit c, DecodeCommit(v));
    for (const FileVersion& f : c.files) CollectChunks(f, digests);
    return absl::OkStatus();
  }));
  CONVERGE_RETURN_IF_ERROR(ExportPrefix(StoreDb::FilePrefix(ns), snap, out, [&](absl::string_view, absl::string_view v) {
    CONVERGE_ASSIGN_OR_RETURN(FileVersion f, DecodeFileVersion(v));
    CollectChunks(f, digests);
    return absl::OkStatus();
  }));
  CONVERGE_RETURN_IF_ERROR(ExportPrefix(HistoryPrefix(ns), snap, out, [&](absl::string_view, absl::string_view v) {
    CONVERGE_ASSIGN_OR_RETURN(HistoryVersion h, DecodeHistory(v));
    CollectChunks(h.version, digests);
    return absl::OkStatus();
  }));
  return ExportPrefix(absl::StrCat("k", ns, std::string(1, kNul)), snap, out, nullptr);
}

absl::Status NamespaceTransfer::ExportSince(const std::string& ns, uint64_t after_seq, uint64_t head,
                                            const rocksdb::Snapshot* snap, Pager* out) {
  rocksdb::ReadOptions at;
  at.snapshot = snap;
  if (after_seq < head) {
    std::string next;
    rocksdb::Status s = db_->db()->Get(at, StoreDb::LogKey(ns, after_seq + 1), &next);
    if (s.IsNotFound()) {
      return absl::OutOfRangeError(
          absl::StrCat("the log of '", ns, "' no longer holds seq ", after_seq + 1, ": copy it whole"));
    }
    CONVERGE_RETURN_IF_ERROR(RocksStatus(s, "read log"));
  }
  // The commits after it, and the paths they changed.
  absl::flat_hash_set<std::string> paths;
  absl::flat_hash_set<Digest>* digests = out->digests();
  const std::string log_prefix = StoreDb::LogPrefix(ns);
  const std::string end = PrefixEnd(log_prefix);
  rocksdb::Slice bound(end);
  at.iterate_upper_bound = &bound;
  std::unique_ptr<rocksdb::Iterator> it(db_->db()->NewIterator(at));
  for (it->Seek(StoreDb::LogKey(ns, after_seq + 1)); it->Valid(); it->Next()) {
    CONVERGE_ASSIGN_OR_RETURN(Commit c, DecodeCommit(View(it->value())));
    for (const FileVersion& f : c.files) {
      CollectChunks(f, digests);
      paths.insert(f.path);
    }
    CONVERGE_RETURN_IF_ERROR(out->Add(TransferRecord::Op::kPut, it->key().ToString(), it->value().ToString()));
  }
  CONVERGE_RETURN_IF_ERROR(RocksStatus(it->status(), "export log"));
  at.iterate_upper_bound = nullptr;
  // Each changed path: its file table entry and case index key as they are now, its history whole.
  for (const std::string& path : paths) {
    for (const std::string& key : {StoreDb::FileKey(ns, path), StoreDb::CaseKey(ns, CaseFold(path))}) {
      std::string value;
      rocksdb::Status s = db_->db()->Get(at, key, &value);
      if (!s.ok() && !s.IsNotFound()) return RocksStatus(s, "export record");
      CONVERGE_RETURN_IF_ERROR(s.ok() ? out->Add(TransferRecord::Op::kPut, key, std::move(value))
                                      : out->Add(TransferRecord::Op::kDelete, key));
    }
    const std::string history = HistoryPathPrefix(ns, path);
    CONVERGE_RETURN_IF_ERROR(out->Add(TransferRecord::Op::kClearPrefix, history));
    CONVERGE_RETURN_IF_ERROR(ExportPrefix(history, snap, out, nullptr));
  }
  return ExportSmall(ns, snap, out);
}

absl::Status NamespaceTransfer::ExportChunks(const std::string& owner, Pager* out) {
  for (const Digest& d : *out->digests()) {
    CONVERGE_ASSIGN_OR_RETURN(StoredChunk stored, chunks_->GetStored(owner, d, nullptr));
    ChunkData chunk;
    chunk.sha256 = d;
    chunk.encoding = stored.encoding;
    chunk.data = std::move(stored.payload);
    CONVERGE_RETURN_IF_ERROR(out->AddChunk(std::move(chunk)));
  }
  return absl::OkStatus();
}

absl::Status NamespaceTransfer::Import(const std::string& ns, const TransferPage& page) {
  CONVERGE_RETURN_IF_ERROR(ValidateId("namespace id", ns));
  if (log_->GateOf(ns) != CommitLog::Gate::kArriving) {
    return absl::FailedPreconditionError(absl::StrCat("namespace '", ns, "' is not arriving on this store shard"));
  }
  const std::vector<std::string> prefixes = NamespacePrefixes(ns);
  const std::vector<std::string> exact = NamespaceExactKeys(ns);
  auto in_prefix = [&](const std::string& key) {
    for (const std::string& p : prefixes) {
      if (absl::StartsWith(key, p)) return true;
    }
    return false;
  };
  rocksdb::WriteBatch batch;
  std::string owner;
  for (const TransferRecord& r : page.records) {
    const bool is_exact = std::find(exact.begin(), exact.end(), r.key) != exact.end();
    if (!(r.op == TransferRecord::Op::kClearPrefix ? in_prefix(r.key) : (is_exact || in_prefix(r.key)))) {
      return absl::InvalidArgumentError(absl::StrCat("record key is not one of namespace '", ns, "'"));
    }
    if (r.op == TransferRecord::Op::kPut && r.key == StoreDb::NamespaceOwnerKey(ns)) owner = r.value;
    switch (r.op) {
      case TransferRecord::Op::kPut:
        batch.Put(r.key, r.value);
        break;
      case TransferRecord::Op::kDelete:
        batch.Delete(r.key);
        break;
      case TransferRecord::Op::kClearPrefix:
        batch.DeleteRange(r.key, PrefixEnd(r.key));
        break;
    }
  }
  if (!page.chunks.empty()) {
    if (owner.empty()) {
      rocksdb::Status s = db_->db()->Get(rocksdb::ReadOptions(), StoreDb::NamespaceOwnerKey(ns), &owner);
      if (s.IsNotFound()) return absl::InvalidArgumentError("chunks came before the namespace's owner");
      CONVERGE_RETURN_IF_ERROR(RocksStatus(s, "read namespace owner"));
    }
    CONVERGE_RETURN_IF_ERROR(ValidateId("user id", owner));
    CONVERGE_RETURN_IF_ERROR(chunks_->Put(owner, page.chunks));
  }
  return RocksStatus(db_->WriteSynced(&batch), "import records");
}

absl::Status NamespaceTransfer::Drop(const std::string& ns) {
  CONVERGE_RETURN_IF_ERROR(ValidateId("namespace id", ns));
  rocksdb::WriteBatch batch;
  for (const std::string& key : NamespaceExactKeys(ns)) batch.Delete(key);
  for (const std::string& prefix : NamespacePrefixes(ns)) batch.DeleteRange(prefix, PrefixEnd(prefix));
  return RocksStatus(db_->WriteSynced(&batch), "drop namespace records");
}

}  // namespace converge::store
