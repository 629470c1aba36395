// PackFiles: large chunk bytes in append-only pack files beside the store's RocksDB, so that
// they are written once (one write(2) from the bytes as received, one fdatasync) instead of
// going through a write batch, a memtable and a blob file (three copies, two checksums, and
// page faults on fresh memory for each). The chunk's index entry in RocksDB names its place
// (ChunkStore); PackFiles knows nothing of chunks.
//
// Files: <dir>/<id>.pack, id a decimal number that only grows. A pack is written by one
// upload at a time (writers are pooled, so uploads never wait for each other) and sealed at
// kPackBytes. Bytes are durable before Append returns them: a place that reaches the index is
// never one a power cut can take back. Bytes appended but never indexed (a crash between the
// two) are dead space in their pack, as are the bytes of chunks the store drops; Release
// punches them out of the file (fallocate PUNCH_HOLE) where the filesystem can, and Delete
// removes a pack none of whose bytes are live.
//
// Thread-safe.
#ifndef CONVERGE_SERVICES_STORE_PACK_FILES_H_
#define CONVERGE_SERVICES_STORE_PACK_FILES_H_

#include <rocksdb/env.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace converge::store {

// Where bytes are in the packs.
struct PackPlace {
  uint64_t pack = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
};

class PackFiles {
 public:
  static constexpr uint64_t kPackBytes = 256 << 20;

  // Open uses `dir` (created if missing) through `env` (the real filesystem when null).
  static absl::StatusOr<std::unique_ptr<PackFiles>> Open(rocksdb::Env* env, const std::string& dir);
  ~PackFiles();

  // Append writes `pieces` one after another into one pack, makes them durable (the file's data,
  // and the folder's entry for a new pack) and returns their places, in order. The pack is
  // pinned (Delete refuses it) until Unpin: the caller indexes the places in between. On an
  // error nothing is returned or pinned; bytes already written are dead space.
  absl::StatusOr<std::vector<PackPlace>> Append(const std::vector<absl::string_view>& pieces);
  void Unpin(uint64_t id);

  // Read returns the bytes at `at`. DataLoss if the pack is shorter than the place says or
  // missing.
  absl::StatusOr<std::string> Read(const PackPlace& at);

  // Release: the bytes at `at` are dead; their blocks are given back to the filesystem where it
  // can punch holes (the real filesystem; otherwise the space stays until the pack is deleted).
  void Release(const PackPlace& at);

  // Delete removes pack `id` unless an upload is writing it or it is pinned (returns false then).
  bool Delete(uint64_t id);

  // Packs lists the packs on disk.
  absl::StatusOr<std::vector<uint64_t>> Packs();
  // Bytes: the packs' total size on disk (sum of file sizes, holes included).
  uint64_t Bytes();

 private:
  struct Writer {
    uint64_t id = 0;
    uint64_t size = 0;
    std::unique_ptr<rocksdb::WritableFile> file;
    bool fresh = true;  // its folder entry is not durable yet
  };
  PackFiles(rocksdb::Env* env, std::string dir, uint64_t next_id)
      : env_(env), dir_(std::move(dir)), next_id_(next_id) {}

  std::string PathOf(uint64_t id) const;
  absl::StatusOr<std::unique_ptr<Writer>> TakeWriter();
  void GiveBack(std::unique_ptr<Writer> w);
  absl::StatusOr<std::shared_ptr<rocksdb::RandomAccessFile>> Reader(uint64_t id);

  rocksdb::Env* env_;
  const std::string dir_;
  absl::Mutex mu_;  // held only to take or give back a writer, or to find a reader
  uint64_t next_id_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Writer>> idle_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<uint64_t> writing_ ABSL_GUARDED_BY(mu_);  // ids of all open writers
  absl::flat_hash_map<uint64_t, int> pinned_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, std::shared_ptr<rocksdb::RandomAccessFile>> readers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace converge::store

#endif  // CONVERGE_SERVICES_STORE_PACK_FILES_H_
