// ChunkStore: content-addressed chunk bytes, each kept once (dedup across files, versions and
// devices), named by SHA-256 of the raw bytes, stored zstd-compressed when that paid (values:
// one byte 0xC0 raw / 0xC1 zstd, then the payload).
//
// Thread-safe: all methods may be called concurrently.
#ifndef CONVERGE_SERVICES_STORE_CHUNK_STORE_H_
#define CONVERGE_SERVICES_STORE_CHUNK_STORE_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/chunk_codec.h"
#include "common/sha256.h"
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
};

class ChunkStore {
 public:
  explicit ChunkStore(StoreDb* db) : db_(db) {}

  // FindMissing returns the digests of `wanted` the store does not hold, in request order,
  // without duplicates.
  absl::StatusOr<std::vector<Digest>> FindMissing(const std::vector<Digest>& wanted);

  // Has reports whether the chunk is stored.
  absl::StatusOr<bool> Has(const Digest& d);

  // Put stores chunks after decoding each one and checking its raw bytes against its digest.
  // Returns InvalidArgument naming the first chunk that does not decode or match (and stores
  // none of the batch), or whose raw size is 0 or above kMaxChunkBytes. Compressed chunks are
  // kept compressed. The write is not synced on its own: the synced commit that references the
  // chunks makes them durable (same WAL).
  absl::Status Put(const std::vector<ChunkData>& chunks);

  // Get returns the raw bytes of a chunk, NotFound if absent, DataLoss if the stored bytes no
  // longer match the digest.
  absl::StatusOr<std::string> Get(const Digest& d);
  // GetStored returns a chunk as stored, and its raw bytes in *raw (checked as Get does).
  absl::StatusOr<StoredChunk> GetStored(const Digest& d, std::string* raw);

 private:
  StoreDb* db_;
};

}  // namespace converge::store

#endif  // CONVERGE_SERVICES_STORE_CHUNK_STORE_H_
