#include "tests/testing/sim_store.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/codec/chunk_codec.h"
#include "common/codec/rsync_delta.h"
#include "common/model/store_behind.h"

namespace converge::sim {
namespace {

absl::Status Late(const char* call) { return absl::DeadlineExceededError(absl::StrCat(call, ": no reply in time")); }

absl::Status Lost(const char* call, bool after) {
  return absl::UnavailableError(absl::StrCat(call, after ? ": reply lost" : ": request lost"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<SimStore>> SimStore::Create(Clock* clock, const std::vector<std::string>& members,
                                                           store::MassDeletePolicy policy, bool encrypted) {
  std::unique_ptr<SimStore> s(new SimStore(clock, policy));
  CONVERGE_RETURN_IF_ERROR(s->Open());
  CONVERGE_RETURN_IF_ERROR(s->log_->RegisterNamespace(kNamespace, kOwner, members, encrypted));
  return s;
}

absl::Status SimStore::Open() {
  CONVERGE_ASSIGN_OR_RETURN(db_, store::StoreDb::Open("/store", env_.env()));
  db_->set_on_unrecoverable([] {});  // a power cut: the simulation reopens the store itself
  chunks_ = std::make_unique<store::ChunkStore>(db_.get());
  log_ = std::make_unique<store::CommitLog>(db_.get(), chunks_.get(), clock_, policy_);
  return absl::OkStatus();
}

absl::Status SimStore::PowerCut() {
  env_.Cut();
  log_.reset();
  chunks_.reset();
  db_.reset();
  CONVERGE_RETURN_IF_ERROR(env_.Recover());
  return Open();
}

absl::StatusOr<std::map<std::string, std::string>> SimStore::Files() {
  std::map<std::string, std::string> out;
  absl::Status problem;
  CONVERGE_RETURN_IF_ERROR(log_->ListFiles(kNamespace, [&](const FileVersion& v) {
    if (v.deleted || !problem.ok()) return;
    if (v.kind == FileKind::kDirectory) {
      out[v.path] = "/";
      return;
    }
    std::string content;
    for (const ChunkRef& c : v.chunks) {
      if (c.hole()) {
        content.append(c.length, '\0');
        continue;
      }
      absl::StatusOr<std::string> bytes = chunks_->Get(kOwner, c.sha256);
      if (!bytes.ok()) {
        problem = absl::DataLossError(absl::StrCat(v.path, "@", v.seq, ": ", bytes.status().ToString()));
        return;
      }
      content += *bytes;
    }
    out[v.path] = std::move(content);
  }));
  CONVERGE_RETURN_IF_ERROR(problem);
  return out;
}

absl::StatusOr<std::vector<Digest>> SimStoreClient::FindMissing(const std::vector<Digest>& digests) {
  const Fault f = Ask("FindMissing");
  if (f == Fault::kDropRequest || f == Fault::kDelay) return Lost("FindMissing", false);
  absl::StatusOr<std::vector<Digest>> missing = store_->chunks()->FindMissing(SimStore::kOwner, digests);
  if (f == Fault::kDropReply) return Lost("FindMissing", true);
  return missing;
}

absl::StatusOr<absl::flat_hash_map<std::string, Signature>> SimStoreClient::Signatures(
    const std::vector<std::vector<Digest>>& bases) {
  if (Ask("Signatures") != Fault::kNone) return Lost("Signatures", false);
  absl::flat_hash_map<std::string, Signature> out;
  for (const std::vector<Digest>& base : bases) {
    absl::StatusOr<std::string> raw = store_->chunks()->Sequence(SimStore::kOwner, base);
    if (absl::IsNotFound(raw.status())) continue;
    CONVERGE_RETURN_IF_ERROR(raw.status());
    out[engine::SequenceKey(base)] = MakeSignature(*raw, BlockBytesFor(raw->size()));
  }
  return out;
}

absl::Status SimStoreClient::PutChunks(const std::function<absl::StatusOr<bool>(engine::ChunkUpload*)>& next) {
  const Fault f = Ask("PutChunks");
  std::vector<store::ChunkData> batch;
  while (true) {
    engine::ChunkUpload up;
    CONVERGE_ASSIGN_OR_RETURN(bool more, next(&up));
    if (!more) break;
    bytes_up_ += up.data.size();
    if (up.delta) {
      CONVERGE_ASSIGN_OR_RETURN(std::string raw, store_->chunks()->RebuildFromDelta(SimStore::kOwner, up.bases,
                                                                                     up.block_bytes, up.data));
      batch.push_back(store::ChunkData{up.sha256, std::move(raw), ChunkEncoding::kRaw});
    } else {
      batch.push_back(store::ChunkData{up.sha256, std::move(up.data), up.encoding});
    }
  }
  if (f == Fault::kDropRequest) return Lost("PutChunks", false);
  if (f == Fault::kDelay) {
    SimStore* store = store_;
    defer_([store, batch = std::move(batch)] {
      if (!batch.empty()) store->chunks()->Put(SimStore::kOwner, batch).IgnoreError();
    });
    return Late("PutChunks");
  }
  if (!batch.empty()) CONVERGE_RETURN_IF_ERROR(store_->chunks()->Put(SimStore::kOwner, batch));
  if (f == Fault::kDropReply) return Lost("PutChunks", true);
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> SimStoreClient::Commit(const std::vector<FileVersion>& changes) {
  return CommitSigned(changes, {}, "");
}

absl::StatusOr<uint64_t> SimStoreClient::CommitSigned(const std::vector<FileVersion>& changes,
                                                      const std::vector<engine::InlineChunk>& chunks,
                                                      const std::string& attestation) {
  if (!chunks.empty()) {
    size_t next = 0;
    CONVERGE_RETURN_IF_ERROR(PutChunks([&](engine::ChunkUpload* out) -> absl::StatusOr<bool> {
      if (next == chunks.size()) return false;
      *out = engine::ChunkUpload();
      out->sha256 = chunks[next].sha256;
      out->data = chunks[next].data;
      ++next;
      return true;
    }));
  }
  const Fault f = Ask("Commit");
  if (f == Fault::kDropRequest) return Lost("Commit", false);
  if (f == Fault::kDelay) {
    // Arrives after whatever this device and the others do meanwhile: its base_seqs may be
    // stale by then (refused whole), or not (committed, and the device learns it by pulling).
    SimStore* store = store_;
    defer_([store, device = device_, changes, attestation] {
      store->log()->Append(SimStore::kNamespace, device, changes, attestation).IgnoreError();
    });
    return Late("Commit");
  }
  CONVERGE_ASSIGN_OR_RETURN(converge::Commit c,
                            store_->log()->Append(SimStore::kNamespace, device_, changes, attestation));
  if (f == Fault::kDropReply) return Lost("Commit", true);
  return c.seq;
}

absl::Status SimStoreClient::Pull(uint64_t since_seq, uint32_t max_commits,
                                  const std::function<absl::Status(const converge::Commit&)>& fn) {
  const Fault f = Ask("Pull");
  if (f == Fault::kDropRequest || f == Fault::kDelay) return Lost("Pull", false);
  CONVERGE_ASSIGN_OR_RETURN(uint64_t head, store_->log()->HeadSeq(SimStore::kNamespace));
  if (since_seq > head) return StoreBehindError(since_seq, head);
  absl::Status failed;
  int delivered = 0;
  CONVERGE_RETURN_IF_ERROR(store_->log()->ReadSince(SimStore::kNamespace, since_seq, max_commits, [&](const converge::Commit& c) {
    // A lost reply cuts the stream after its first commit.
    if (f == Fault::kDropReply && delivered == 1) return false;
    ++delivered;
    failed = fn(c);
    return failed.ok();
  }));
  CONVERGE_RETURN_IF_ERROR(failed);
  if (f == Fault::kDropReply) return Lost("Pull", true);
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> SimStoreClient::ListFiles(const std::function<void(const FileVersion&)>& fn,
                                                  int64_t at_unix_ms) {
  CONVERGE_ASSIGN_OR_RETURN(Table table, List(fn, at_unix_ms));
  return table.seq;
}

absl::StatusOr<engine::StoreClient::Table> SimStoreClient::ListTable(const std::function<void(const FileVersion&)>& fn) {
  return List(fn, -1);
}

absl::StatusOr<engine::StoreClient::Table> SimStoreClient::List(const std::function<void(const FileVersion&)>& fn,
                                                                int64_t at_unix_ms) {
  const Fault f = Ask("ListFiles");
  if (f == Fault::kDropRequest || f == Fault::kDelay) return Lost("ListFiles", false);
  CONVERGE_ASSIGN_OR_RETURN(crypto::LogHead head, store_->log()->Chain(SimStore::kNamespace));
  std::vector<FileVersion> files;
  if (at_unix_ms >= 0) {
    CONVERGE_RETURN_IF_ERROR(store_->log()->StateAt(SimStore::kNamespace, at_unix_ms,
                                                    [&](const HistoryVersion& h) { files.push_back(h.version); }));
  } else {
    CONVERGE_RETURN_IF_ERROR(store_->log()->ListFiles(SimStore::kNamespace, [&](const FileVersion& v) { files.push_back(v); }));
  }
  if (f == Fault::kDropReply) return Lost("ListFiles", true);
  for (const FileVersion& v : files) fn(v);
  return Table{head.seq, head.hash};
}

absl::StatusOr<std::vector<HistoryVersion>> SimStoreClient::ListVersions(const std::string& path,
                                                                             uint32_t limit) {
  if (Ask("ListVersions") != Fault::kNone) return Lost("ListVersions", false);
  return store_->log()->Versions(SimStore::kNamespace, path, limit);
}

absl::StatusOr<std::vector<ConflictRecord>> SimStoreClient::ListConflicts(bool include_resolved) {
  if (Ask("ListConflicts") != Fault::kNone) return Lost("ListConflicts", false);
  return store_->log()->ListConflicts(SimStore::kNamespace, include_resolved);
}

absl::StatusOr<ConflictRecord> SimStoreClient::ResolveConflict(const std::string& copy_path) {
  if (Ask("ResolveConflict") != Fault::kNone) return Lost("ResolveConflict", false);
  return store_->log()->ResolveConflict(SimStore::kNamespace, copy_path, device_);
}

absl::Status SimStoreClient::Ack(uint64_t seq, const std::vector<std::string>&) {
  const Fault f = Ask("Ack");
  if (f == Fault::kDropRequest) return Lost("Ack", false);
  if (f == Fault::kDelay) {
    SimStore* store = store_;
    defer_([store, device = device_, seq] { store->log()->Ack(SimStore::kNamespace, device, seq).IgnoreError(); });
    return Late("Ack");
  }
  CONVERGE_RETURN_IF_ERROR(store_->log()->Ack(SimStore::kNamespace, device_, seq));
  if (f == Fault::kDropReply) return Lost("Ack", true);
  return absl::OkStatus();
}

absl::Status SimStoreClient::Fetch(const std::vector<engine::ChunkWant>& wants, const BaseReader&, const Sink& sink) {
  const Fault f = Ask("Fetch");
  if (f == Fault::kDropRequest || f == Fault::kDelay) return Lost("Fetch", false);
  size_t i = 0;
  for (const engine::ChunkWant& w : wants) {
    if (f == Fault::kDropReply && i++ == wants.size() / 2) return Lost("Fetch", true);
    CONVERGE_ASSIGN_OR_RETURN(std::string raw, store_->chunks()->Get(SimStore::kOwner, w.sha256));
    bytes_down_ += raw.size();
    CONVERGE_RETURN_IF_ERROR(sink(w.sha256, std::move(raw)));
  }
  return absl::OkStatus();
}

}  // namespace converge::sim
