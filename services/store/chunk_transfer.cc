#include "services/store/chunk_transfer.h"

#include <memory>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/base/metrics.h"
#include "common/base/status_macros.h"

namespace converge::store {
namespace {

struct Metrics {
  Counter* bytes_in = DefaultMetrics().AddCounter("converge_store_chunk_bytes_total",
                                                  "chunk bytes received and sent", "direction=\"in\"");
  Counter* bytes_out = DefaultMetrics().AddCounter("converge_store_chunk_bytes_total",
                                                   "chunk bytes received and sent", "direction=\"out\"");
  Counter* delta_saved = DefaultMetrics().AddCounter("converge_store_delta_saved_bytes_total",
                                                     "bytes not sent because a delta against the device's chunk was");
};

Metrics& M() {
  static Metrics* m = new Metrics();
  return *m;
}

// EachOnce: InvalidArgument if a chunk is asked for twice in one call (engines never do; repeats
// would multiply the work a call buys).
absl::Status EachOnce(const std::vector<ChunkWant>& wanted) {
  absl::flat_hash_set<Digest> seen;
  for (const ChunkWant& w : wanted) {
    if (!seen.insert(w.digest).second) {
      return absl::InvalidArgumentError(absl::StrCat("chunk ", DigestToHex(w.digest), " asked for twice in one call"));
    }
  }
  return absl::OkStatus();
}

// ToStore: a chunk received whole, kept zstd-compressed on its own when that pays.
ChunkData ToStore(const Digest& digest, std::string raw) {
  std::optional<std::string> z = CompressIfWorthIt(raw);
  return z.has_value() ? ChunkData{digest, std::move(*z), ChunkEncoding::kZstd}
                       : ChunkData{digest, std::move(raw), ChunkEncoding::kRaw};
}

}  // namespace

double WorkCost(uint64_t bytes) { return static_cast<double>(bytes) / (32 << 10); }

absl::StatusOr<std::string> ChunkTransfer::Upload::Rebuild(const TransferChunk& delta) {
  if (delta.bases.empty() || delta.bases.size() > kMaxDeltaBases) {
    return absl::InvalidArgumentError(absl::StrCat("a delta's base is 1 to ", kMaxDeltaBases, " chunks, not ",
                                                   delta.bases.size()));
  }
  absl::StatusOr<std::string> raw =
      transfer_->chunks_->RebuildFromDelta(owner_, delta.bases, delta.block_bytes, delta.data);
  if (!raw.ok()) return raw.status();
  // Reading the bases and applying the delta is work the device pays for.
  const absl::Status charged = transfer_->limiter_->Charge(device_, WorkCost(raw->size() * (1 + delta.bases.size())));
  if (!charged.ok()) return charged;
  return raw;
}

absl::Status ChunkTransfer::Upload::Add(TransferChunk chunk) {
  batch_wire_bytes_ += chunk.data.size();
  M().bytes_in->Add(chunk.data.size());
  switch (chunk.encoding) {
    case TransferEncoding::kRsyncDelta: {
      absl::StatusOr<std::string> raw = Rebuild(chunk);  // Put checks its hash
      if (!raw.ok()) return raw.status();
      batch_.push_back(ToStore(chunk.digest, std::move(*raw)));
      break;
    }
    case TransferEncoding::kZstdStream: {
      // Stored on its own (compressed again without the stream's context); Put checks the hash.
      absl::StatusOr<std::string> raw = stream_.Decode(chunk.data, kMaxChunkBytes);
      if (!raw.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("chunk ", DigestToHex(chunk.digest), ": ", raw.status().message()));
      }
      batch_.push_back(ToStore(chunk.digest, std::move(*raw)));
      break;
    }
    case TransferEncoding::kRaw:
    case TransferEncoding::kZstd:
      batch_.push_back(ChunkData{chunk.digest, std::move(chunk.data),
                                 chunk.encoding == TransferEncoding::kZstd ? ChunkEncoding::kZstd : ChunkEncoding::kRaw});
      break;
    default:
      return absl::InvalidArgumentError("uploaded chunks are raw, zstd, zstd stream or rsync deltas");
  }
  held_bytes_ += batch_.back().data.size();
  return held_bytes_ >= kUploadBatchBytes ? Finish() : absl::OkStatus();
}

absl::Status ChunkTransfer::Upload::Finish() {
  absl::Status s = transfer_->chunks_->Put(owner_, batch_);
  if (s.ok()) {
    chunks_stored_ += batch_.size();
    bytes_stored_ += batch_wire_bytes_;
  }
  batch_.clear();
  batch_.shrink_to_fit();
  batch_wire_bytes_ = 0;
  held_bytes_ = 0;
  return s;
}

absl::Status ChunkTransfer::StoreInline(const std::string& owner, const std::string& device,
                                       std::vector<TransferChunk> chunks) {
  if (chunks.size() > kMaxCommitChunks) {
    return absl::InvalidArgumentError(absl::StrCat("a commit carries at most ", kMaxCommitChunks, " chunks, not ",
                                                   chunks.size()));
  }
  size_t bytes = 0;
  for (const TransferChunk& c : chunks) {
    if (c.encoding != TransferEncoding::kRaw) return absl::InvalidArgumentError("a commit's own chunks are raw");
    bytes += c.data.size();
  }
  if (bytes > kMaxCommitChunkBytes) {
    return absl::InvalidArgumentError(absl::StrCat("a commit carries at most ", kMaxCommitChunkBytes,
                                                   " bytes of chunks, not ", bytes, ": upload them with PutChunks"));
  }
  Upload upload = StartUpload(owner, device);
  for (TransferChunk& c : chunks) CONVERGE_RETURN_IF_ERROR(upload.Add(std::move(c)));
  return upload.Finish();
}

std::vector<TransferChunk> ChunkTransfer::SmallChunksOf(const std::string& owner, const std::string& device,
                                                        const Commit& commit,
                                                        const std::function<bool(const FileVersion&)>& is_new,
                                                        uint64_t* uncharged) {
  std::vector<TransferChunk> out;
  if (commit.origin_device == device) return out;
  // A file moved in this commit keeps its file_id, and its old path's tombstone comes with it:
  // the device has its bytes.
  absl::flat_hash_set<std::string> moved;
  for (const FileVersion& v : commit.files) {
    if (v.deleted) moved.insert(v.file_id);
  }
  absl::flat_hash_set<Digest> seen;
  uint64_t budget = kPullInlineBytes;  // this commit's message
  for (const FileVersion& v : commit.files) {
    if (v.deleted || v.kind != FileKind::kFile || v.size == 0 || v.size > kPullInlineFileBytes) continue;
    if (v.size > budget) return out;
    if (moved.contains(v.file_id) || !is_new(v)) continue;
    for (const ChunkRef& c : v.chunks) {
      if (c.hole() || !seen.insert(c.sha256).second) continue;
      // Past the call's first kPullInlineBytes, reading is charged as GetChunks charges it; a
      // device out of rate gets the rest of its commits bare and fetches their bytes.
      if (*uncharged >= c.length) {
        *uncharged -= c.length;
      } else if (!limiter_->Charge(device, WorkCost(c.length)).ok()) {
        return out;
      }
      absl::StatusOr<std::string> raw = chunks_->Get(owner, c.sha256);
      if (!raw.ok()) continue;
      budget -= std::min<uint64_t>(budget, raw->size());
      M().bytes_out->Add(raw->size());
      TransferChunk t;
      t.digest = c.sha256;
      t.data = std::move(*raw);
      t.encoding = TransferEncoding::kRaw;
      out.push_back(std::move(t));
    }
  }
  return out;
}

void ChunkTransfer::DeltaIfSmaller(const std::string& owner, const std::string& device, const ChunkWant& want,
                                   const std::string& raw, uint64_t* base_bytes, TransferChunk* chunk) {
  absl::StatusOr<std::string> base_raw = chunks_->Sequence(owner, want.bases);
  if (!base_raw.ok()) return;  // the device's base is not here: the chunk goes whole
  *base_bytes += base_raw->size();
  if (!limiter_->Charge(device, WorkCost(base_raw->size())).ok()) return;
  std::optional<std::string> delta = DeltaEncode(raw, *base_raw, chunk->data.size());
  if (!delta.has_value()) return;
  M().delta_saved->Add(chunk->data.size() - delta->size());
  chunk->encoding = TransferEncoding::kZstdDelta;
  chunk->bases = want.bases;
  chunk->data = std::move(*delta);
}

absl::Status ChunkTransfer::Download(const std::string& owner, const std::string& device,
                                     const std::vector<ChunkWant>& wanted, bool accept_stream,
                                     const std::function<bool(TransferChunk)>& send) {
  if (absl::Status once = EachOnce(wanted); !once.ok()) return once;
  std::unique_ptr<StreamEncoder> stream;  // made for the first chunk, if the device takes streams
  uint64_t base_bytes = 0;                // read for deltas in this call
  for (const ChunkWant& want : wanted) {
    // A delta costs its bases' bytes: within the call's budget and charged to the device's rate;
    // past either, the chunk goes whole (the device still gets it).
    const bool has_base = !want.bases.empty() && base_bytes < kMaxBaseBytesPerDownload;
    std::string raw;  // wanted only to make a delta
    absl::StatusOr<StoredChunk> stored = chunks_->GetStored(owner, want.digest, has_base ? &raw : nullptr);
    if (!stored.ok()) return stored.status();
    TransferChunk out;
    out.digest = want.digest;
    out.encoding = stored->encoding == ChunkEncoding::kZstd ? TransferEncoding::kZstd : TransferEncoding::kRaw;
    out.data = std::move(stored->payload);
    if (has_base) DeltaIfSmaller(owner, device, want, raw, &base_bytes, &out);
    if (stream == nullptr && accept_stream) stream = std::make_unique<StreamEncoder>();
    if (out.encoding != TransferEncoding::kZstdDelta && stream != nullptr) {
      const std::string& plain = out.encoding == TransferEncoding::kRaw ? out.data : has_base ? raw : stored->decoded;
      if (stream->Worth(plain)) {
        // Compressed (again) with the call's earlier chunks as context (StreamEncoder::Worth).
        absl::StatusOr<std::string> piece = stream->Encode(plain);
        if (!piece.ok()) return piece.status();
        out.encoding = TransferEncoding::kZstdStream;
        out.data = std::move(*piece);
      }
    }
    M().bytes_out->Add(out.data.size());
    if (!send(std::move(out))) return absl::CancelledError("the device went away");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<SignedBase>> ChunkTransfer::Sign(const std::string& owner, const std::string& device,
                                                            const std::vector<std::vector<Digest>>& bases) {
  std::vector<SignedBase> signed_bases;
  for (const std::vector<Digest>& base : bases) {
    absl::StatusOr<std::string> raw = chunks_->Sequence(owner, base);
    if (absl::IsNotFound(raw.status())) continue;
    if (!raw.ok()) return raw.status();
    if (!limiter_->Charge(device, WorkCost(raw->size())).ok()) continue;
    signed_bases.push_back(SignedBase{base, MakeSignature(*raw, BlockBytesFor(raw->size()))});
  }
  return signed_bases;
}

}  // namespace converge::store
