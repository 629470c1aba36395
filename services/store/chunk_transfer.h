// ChunkTransfer: chunks moving between devices and the store, in domain types and free of
// gRPC. It decides encodings (a delta against the device's similar chunk, a zstd stream across a
// call's chunks), decodes what devices upload (rebuilding rsync deltas from the bases the store
// holds), batches writes by the bytes they hold once decoded, and signs bases. Every byte of
// work a call buys is charged to its device's rate (CallLimiter::Charge).
//
// Thread-safe: each call's state lives in its Upload or on its stack.
#ifndef CONVERGE_SERVICES_STORE_CHUNK_TRANSFER_H_
#define CONVERGE_SERVICES_STORE_CHUNK_TRANSFER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/codec/chunk_codec.h"
#include "common/codec/rsync_delta.h"
#include "common/model/model.h"
#include "common/rpc/call_limiter.h"
#include "services/store/chunk_store.h"

namespace converge::store {

// How a chunk travels (each is a value of the store API's ChunkEncoding).
enum class TransferEncoding {
  kRaw,         // as it is
  kZstd,        // one zstd frame of the chunk alone
  kZstdStream,  // compressed with the call's earlier chunks as context (StreamEncoder)
  kRsyncDelta,  // upload: an rsync delta against `bases`, zstd-compressed
  kZstdDelta,   // download: a zstd delta with `bases`' bytes as the dictionary
};

// One chunk in transit. `bases`: for a delta, the chunks whose bytes, one after another, it
// is against.
struct TransferChunk {
  Digest digest;
  TransferEncoding encoding = TransferEncoding::kRaw;
  std::string data;
  std::vector<Digest> bases;
  uint32_t block_bytes = 0;  // kRsyncDelta: the signature's block size
};

// A chunk a device wants, and the chunks (none, one or a sequence) it holds that are like it.
struct ChunkWant {
  Digest digest;
  std::vector<Digest> bases;
};

// A base's rsync signature, for the device to make a delta against.
struct SignedBase {
  std::vector<Digest> base;  // one chunk, or a sequence
  Signature signature;
};

// Bytes an upload holds decoded before it writes them (a delta or stream piece of a few hundred
// bytes may be a 4 MiB chunk once decoded).
inline constexpr size_t kUploadBatchBytes = 8 << 20;
// Pull sends the chunks of files this small along with their commits, up to kPullInlineBytes a
// commit (the call's first kPullInlineBytes free, the rest charged to the device's rate).
inline constexpr uint64_t kPullInlineFileBytes = 64 << 10;
inline constexpr uint64_t kPullInlineBytes = 1 << 20;
// Base bytes one download may read to make deltas (the rest of its chunks go whole).
inline constexpr uint64_t kMaxBaseBytesPerDownload = 64 << 20;

// WorkCost: what reading and encoding `bytes` for a caller counts against its call rate (one
// call's worth per 32 KiB: a device's burst buys about 128 MiB of such work, then 64 MiB a second).
double WorkCost(uint64_t bytes);

class ChunkTransfer {
 public:
  ChunkTransfer(ChunkStore* chunks, CallLimiter* limiter) : chunks_(chunks), limiter_(limiter) {}

  // Upload: one call's chunks from `device`, stored for `owner`.
  class Upload {
   public:
    // Add decodes the chunk and writes the batch once it holds kUploadBatchBytes.
    // InvalidArgument for an encoding devices may not upload or bytes that do not decode;
    // ResourceExhausted past the device's rate.
    absl::Status Add(TransferChunk chunk);
    // Finish writes what is left.
    absl::Status Finish();
    uint64_t chunks_stored() const { return chunks_stored_; }
    uint64_t bytes_stored() const { return bytes_stored_; }  // as they came over the wire

   private:
    friend class ChunkTransfer;
    Upload(ChunkTransfer* transfer, std::string owner, std::string device)
        : transfer_(transfer), owner_(std::move(owner)), device_(std::move(device)) {}
    absl::StatusOr<std::string> Rebuild(const TransferChunk& delta);

    ChunkTransfer* transfer_;
    std::string owner_;
    std::string device_;
    std::vector<ChunkData> batch_;
    size_t batch_wire_bytes_ = 0;
    size_t held_bytes_ = 0;
    StreamDecoder stream_;
    uint64_t chunks_stored_ = 0;
    uint64_t bytes_stored_ = 0;
  };

  // StoreInline stores the raw chunks a Commit carries (at most kMaxCommitChunks and
  // kMaxCommitChunkBytes in all; InvalidArgument past either), as an upload of them would.
  absl::Status StoreInline(const std::string& owner, const std::string& device, std::vector<TransferChunk> chunks);

  // SmallChunksOf returns the raw chunks of `commit`'s live files of kPullInlineFileBytes or
  // less whose content `is_new` says the device lacks (and not moved in the commit: a tombstone
  // with its file_id), up to kPullInlineBytes; nothing for the device's own commits. Bytes past
  // *uncharged (taken from it) are charged to the device's rate; once that refuses, the rest is
  // left out, as are chunks it cannot read (the device fetches them).
  std::vector<TransferChunk> SmallChunksOf(const std::string& owner, const std::string& device, const Commit& commit,
                                           const std::function<bool(const FileVersion&)>& is_new, uint64_t* uncharged);

  Upload StartUpload(std::string owner, std::string device) {
    return Upload(this, std::move(owner), std::move(device));
  }

  // Download sends each wanted chunk of `owner` to `send`, in order, as a delta against its
  // bases when that is much smaller (within kMaxBaseBytesPerDownload and the device's rate),
  // else compressed in a stream if `accept_stream`, else as stored. InvalidArgument if a chunk
  // is wanted twice; NotFound for a chunk the owner does not hold. `send` returns false to stop
  // (Cancelled).
  absl::Status Download(const std::string& owner, const std::string& device, const std::vector<ChunkWant>& wanted,
                        bool accept_stream, const std::function<bool(TransferChunk)>& send);

  // Sign returns the signatures of the bases `owner` holds; a base it does not hold, or one the
  // device's rate cannot pay to read now, gets none.
  absl::StatusOr<std::vector<SignedBase>> Sign(const std::string& owner, const std::string& device,
                                               const std::vector<std::vector<Digest>>& bases);

 private:
  // Shrink makes `chunk` (its stored bytes in `stored`) a delta against its bases if that pays.
  void DeltaIfSmaller(const std::string& owner, const std::string& device, const ChunkWant& want,
                      const std::string& raw, uint64_t* base_bytes, TransferChunk* chunk);

  ChunkStore* const chunks_;
  CallLimiter* const limiter_;
};

}  // namespace converge::store

#endif  // CONVERGE_SERVICES_STORE_CHUNK_TRANSFER_H_
