// ChunkStore: content-addressed chunk bytes, each kept once (dedup across files, versions and
// devices), named by SHA-256.
//
// Thread-safe: all methods may be called concurrently.
#ifndef CONVERGE_SERVICES_STORE_CHUNK_STORE_H_
#define CONVERGE_SERVICES_STORE_CHUNK_STORE_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/sha256.h"
#include "services/store/store_db.h"

namespace converge::store {

struct ChunkData {
  Digest sha256;
  std::string data;
};

class ChunkStore {
 public:
  explicit ChunkStore(StoreDb* db) : db_(db) {}

  // FindMissing returns the digests of `wanted` the store does not hold, in request order,
  // without duplicates.
  absl::StatusOr<std::vector<Digest>> FindMissing(const std::vector<Digest>& wanted);

  // Has reports whether the chunk is stored.
  absl::StatusOr<bool> Has(const Digest& d);

  // Put stores chunks after checking each one's bytes against its digest. Returns
  // InvalidArgument naming the first chunk whose bytes do not match (and stores none of the
  // batch), or whose size is 0 or above kMaxChunkBytes. The write is not synced on its own: the
  // synced commit that references the chunks makes them durable (same WAL).
  absl::Status Put(const std::vector<ChunkData>& chunks);

  // Get returns the bytes of a chunk, NotFound if absent, DataLoss if the stored bytes no
  // longer match the digest.
  absl::StatusOr<std::string> Get(const Digest& d);

 private:
  StoreDb* db_;
};

}  // namespace converge::store

#endif  // CONVERGE_SERVICES_STORE_CHUNK_STORE_H_
