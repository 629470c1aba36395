// ChunkStore: content-addressed chunk bytes, each kept once (dedup across files, versions and
// devices), named by SHA-256 of the raw bytes (checked when put), stored zstd-compressed when
// that paid. Index values: one tag byte, the payload's CRC-32C, then the payload (0xC2 raw,
// 0xC3 zstd: chunks of small uploads, in RocksDB's blob files) or its place in a pack file
// (0xC4 raw, 0xC5 zstd: chunks of uploads of 4 MiB or more, pack_files.h). The CRC is checked
// on every read, so a chunk damaged on disk is refused, not served.
//
// Chunks belong to owners (the user whose namespaces they were uploaded to). Content is stored
// once for everyone, but an owner sees only chunks it uploaded itself: FindMissing reports a chunk
// another owner holds as missing (the device proves it has the bytes by uploading them), and Get
// answers NotFound for it, so dedup leaks nothing across tenants. Each owner's distinct chunk
// bytes count against its quota.
//
// Thread-safe: all methods may be called concurrently.
#ifndef CONVERGE_SERVICES_STORE_CHUNK_STORE_H_
#define CONVERGE_SERVICES_STORE_CHUNK_STORE_H_

#include <rocksdb/write_batch.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/base/sha256.h"
#include "common/codec/chunk_codec.h"
#include "services/store/store_db.h"

namespace converge::store {

struct ChunkData {
  Digest sha256;
  std::string data;  // in `encoding` (raw or zstd)
  ChunkEncoding encoding = ChunkEncoding::kRaw;
};

// A chunk as stored: raw, or zstd-compressed when that paid.
struct StoredChunk {
  ChunkEncoding encoding = ChunkEncoding::kRaw;
  std::string payload;
  std::string decoded;  // a compressed chunk's raw bytes (decoded to check them), unless given back in *raw
};

class ChunkStore {
 public:
  explicit ChunkStore(StoreDb* db) : db_(db) {}

  // FindMissing returns the digests of `wanted` that `owner` does not hold, in request order,
  // without duplicates.
  absl::StatusOr<std::vector<Digest>> FindMissing(const std::string& owner, const std::vector<Digest>& wanted);

  // Has reports whether `owner` holds the chunk.
  absl::StatusOr<bool> Has(const std::string& owner, const Digest& d);

  // Put stores chunks after decoding each one and checking its raw bytes against its digest.
  // Returns InvalidArgument naming the first chunk that does not decode or match (and stores
  // none of the batch), or whose raw size is 0 or above kMaxChunkBytes. Compressed chunks are
  // kept compressed. When the batch's chunks new to the store come to 4 MiB or more, their bytes
  // are written to a pack and made durable before they are indexed (outside the owners' lock);
  // smaller batches go into RocksDB. The index write is not synced: the synced commit that
  // references the chunks makes it durable; a crash before then loses chunks nothing references
  // yet, and the device uploads them again. ResourceExhausted (and nothing stored) if the chunks
  // new to `owner` would take it over its quota.
  absl::Status Put(const std::string& owner, const std::vector<ChunkData>& chunks);

  // RebuildFromDelta returns the raw chunk an uploaded rsync delta (zstd-compressed ops against
  // the bytes of `bases` one after another, blocks of `block_bytes`) describes.
  // FailedPrecondition if `owner` lacks one of `bases` (upload the chunk whole); InvalidArgument
  // for a malformed delta or more than kMaxDeltaBases bases. Put checks the result's hash.
  absl::StatusOr<std::string> RebuildFromDelta(const std::string& owner, const std::vector<Digest>& bases,
                                               uint32_t block_bytes, absl::string_view delta);

  // Sequence returns the bytes of `chunks` (1 to kMaxDeltaBases of them) one after another, as
  // Get does for one; InvalidArgument for none or too many.
  absl::StatusOr<std::string> Sequence(const std::string& owner, const std::vector<Digest>& chunks);

  // Get returns the raw bytes of a chunk `owner` holds, NotFound if it holds none, DataLoss if
  // the stored bytes no longer match the digest.
  absl::StatusOr<std::string> Get(const std::string& owner, const Digest& d);
  // GetStored returns a chunk as stored, checked as Get does, and its raw bytes in *raw unless
  // raw is null.
  absl::StatusOr<StoredChunk> GetStored(const std::string& owner, const Digest& d, std::string* raw);


  // Sweep drops what no kept version references: each owner's hold on a chunk not in
  // `referenced[owner]` (its usage shrinks) and the bytes of a chunk no owner holds any more.
  // Chunks uploaded or asked about since `touched_since` are kept (a commit may be about to
  // reference them). Returns the chunks and raw bytes whose content was dropped.
  struct SweepResult {
    uint64_t holds_dropped = 0;
    uint64_t chunks_dropped = 0;
    uint64_t bytes_dropped = 0;
  };
  absl::StatusOr<SweepResult> Sweep(
      const absl::flat_hash_map<std::string, absl::flat_hash_set<std::string>>& referenced, absl::Time touched_since);

  // SetQuota sets `owner`'s quota in bytes (0: unlimited) and returns the bytes it uses.
  absl::StatusOr<uint64_t> SetQuota(const std::string& owner, uint64_t quota_bytes);
  // Usage returns the distinct chunk bytes `owner` has stored and its quota (0: unlimited).
  absl::StatusOr<std::pair<uint64_t, uint64_t>> Usage(const std::string& owner);

 private:
  absl::StatusOr<bool> HasContent(const Digest& d);
  // CheckChunk decodes a chunk and checks its hash and size; returns what it costs its owner.
  static absl::StatusOr<uint64_t> CheckChunk(const ChunkData& c);
  // PackNew writes the bytes of `chunks` not yet stored to a pack if they come to 4 MiB or
  // more; returns each chunk's place (none for those not packed).
  absl::StatusOr<std::vector<std::optional<PackPlace>>> PackNew(const std::vector<ChunkData>& chunks);
  // Index writes the chunks' index entries (their bytes, or their places), the owner's holds
  // and usage, and the packs' live bytes, in one batch. Places of chunks another upload stored
  // meanwhile go to *unused.
  absl::Status Index(const std::string& owner, const std::vector<ChunkData>& chunks, const std::vector<uint64_t>& charges,
                     const std::vector<std::optional<PackPlace>>& places, std::vector<PackPlace>* unused);
  absl::StatusOr<StoredChunk> ReadStored(const Digest& d, std::string* raw);  // any owner's
  absl::StatusOr<uint64_t> ReadCounter(const std::string& key);

  // Sweep's steps: the chunks touched since `since` (forgetting older ones); dropping the index
  // entries of chunks no owner holds any more (their pack bytes to *released, the packs' live
  // bytes shrunk in `batch`, packs left with none to *emptied); after the sweep is durable,
  // punching the released bytes out and deleting the emptied packs.
  absl::flat_hash_set<std::string> TouchedSince(absl::Time since);
  absl::Status DropContent(const absl::flat_hash_map<std::string, uint64_t>& dropped,
                           const absl::flat_hash_set<std::string>& still_held, rocksdb::WriteBatch* batch,
                           SweepResult* result, std::vector<PackPlace>* released, std::vector<uint64_t>* emptied);
  absl::Status FreePacks(const std::vector<PackPlace>& released, const std::vector<uint64_t>& emptied);

  // Touch notes that a chunk was uploaded or found (Sweep keeps it for a while).
  void Touch(const Digest& d);

  StoreDb* db_;
  absl::Mutex owner_mu_;  // serialises quota checks with usage updates
  absl::Mutex recent_mu_;
  absl::flat_hash_map<std::string, absl::Time> recent_ ABSL_GUARDED_BY(recent_mu_);
};

}  // namespace converge::store

#endif  // CONVERGE_SERVICES_STORE_CHUNK_STORE_H_
