// ChunkCache: chunk bytes an on-demand folder has fetched, one file per chunk under the engine's
// state directory, within a disk budget. Bytes are checked against their digest each time they
// are read from disk (a file damaged there is dropped and fetched again); when a new chunk takes
// the cache past its budget, the least recently used chunks that are not pinned go first.
//
//   ChunkCache::Open(state_dir + "/cache", 1 << 30);
//   cache->Put(digest, bytes);           // bytes already verified by the fetch
//   absl::StatusOr<std::string> b = cache->Get(digest);  // NotFound: fetch it
//
// Thread-safe. Disk reads and writes happen outside the lock, so one reader's slow disk does
// not hold another's lookup.
#ifndef CONVERGE_ENGINE_ONDEMAND_CHUNK_CACHE_H_
#define CONVERGE_ENGINE_ONDEMAND_CHUNK_CACHE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/base/sha256.h"

namespace converge::engine {

class ChunkCache {
 public:
  // Open makes `dir` if needed and takes in the chunks already there (oldest first by mtime),
  // dropping leftovers of interrupted writes.
  static absl::StatusOr<std::unique_ptr<ChunkCache>> Open(std::string dir, uint64_t budget_bytes);

  // Get returns the chunk's bytes, checked against `d`; NotFound if the cache lacks it (or held
  // a damaged copy, now dropped).
  absl::StatusOr<std::string> Get(const Digest& d);
  bool Has(const Digest& d);
  // Put stores bytes whose digest the caller checked, then evicts past the budget. The write is
  // not synced: a copy lost to a power cut is fetched again, a torn one fails its check.
  absl::Status Put(const Digest& d, absl::string_view bytes);
  // SetPinned replaces the chunks eviction never takes (those of pinned subtrees).
  void SetPinned(absl::flat_hash_set<Digest> pinned);
  void AddPinned(const std::vector<Digest>& more);

  struct Stats {
    uint64_t budget_bytes = 0;
    uint64_t cached_bytes = 0;
    uint64_t cached_chunks = 0;
    uint64_t pinned_bytes = 0;  // cached bytes of pinned chunks
    uint64_t evicted_bytes = 0;  // since Open
    uint64_t damaged_dropped = 0;
  };
  Stats stats();

 private:
  ChunkCache(std::string dir, uint64_t budget) : dir_(std::move(dir)), budget_(budget) {}
  std::string PathOf(const Digest& d) const;
  void Touch(const Digest& d) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Forget(const Digest& d) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string dir_;
  const uint64_t budget_;
  absl::Mutex mu_;
  struct Entry {
    uint64_t bytes = 0;
    uint64_t last_use = 0;  // a tick of use_clock_
  };
  absl::flat_hash_map<Digest, Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, Digest> by_use_ ABSL_GUARDED_BY(mu_);  // last_use -> chunk, oldest first
  uint64_t use_clock_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t cached_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_set<Digest> pinned_ ABSL_GUARDED_BY(mu_);
  uint64_t evicted_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t damaged_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_ONDEMAND_CHUNK_CACHE_H_
