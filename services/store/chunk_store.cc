#include "services/store/chunk_store.h"

#include <rocksdb/write_batch.h>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/model.h"

namespace converge::store {

absl::StatusOr<bool> ChunkStore::Has(const Digest& d) {
  rocksdb::PinnableSlice value;
  const std::string key = StoreDb::ChunkKey(d);
  std::string unused;
  bool value_found = false;
  if (!db_->db()->KeyMayExist(rocksdb::ReadOptions(), key, &unused, &value_found)) return false;
  rocksdb::Status s =
      db_->db()->Get(rocksdb::ReadOptions(), db_->db()->DefaultColumnFamily(), key, &value);
  if (s.IsNotFound()) return false;
  if (!s.ok()) return RocksStatus(s, "read chunk");
  return true;
}

absl::StatusOr<std::vector<Digest>> ChunkStore::FindMissing(const std::vector<Digest>& wanted) {
  std::vector<Digest> missing;
  absl::flat_hash_set<std::string> seen;
  for (const Digest& d : wanted) {
    if (!seen.insert(DigestToBytes(d)).second) continue;
    absl::StatusOr<bool> has = Has(d);
    if (!has.ok()) return has.status();
    if (!*has) missing.push_back(d);
  }
  return missing;
}

absl::Status ChunkStore::Put(const std::vector<ChunkData>& chunks) {
  rocksdb::WriteBatch batch;
  for (const ChunkData& c : chunks) {
    if (c.data.empty() || c.data.size() > kMaxChunkBytes) {
      return absl::InvalidArgumentError(absl::StrCat("chunk ", DigestToHex(c.sha256), " has ",
                                                     c.data.size(), " bytes, outside (0, ",
                                                     kMaxChunkBytes, "]"));
    }
    if (HashOf(c.data) != c.sha256) {
      return absl::InvalidArgumentError(
          absl::StrCat("chunk bytes do not match their hash ", DigestToHex(c.sha256)));
    }
    batch.Put(StoreDb::ChunkKey(c.sha256), c.data);
  }
  return RocksStatus(db_->db()->Write(rocksdb::WriteOptions(), &batch), "write chunks");
}

absl::StatusOr<std::string> ChunkStore::Get(const Digest& d) {
  std::string value;
  rocksdb::Status s = db_->db()->Get(rocksdb::ReadOptions(), StoreDb::ChunkKey(d), &value);
  if (s.IsNotFound()) return absl::NotFoundError(absl::StrCat("no chunk ", DigestToHex(d)));
  if (!s.ok()) return RocksStatus(s, "read chunk");
  if (HashOf(value) != d) {
    return absl::DataLossError(absl::StrCat("stored chunk ", DigestToHex(d), " is corrupt"));
  }
  return value;
}

}  // namespace converge::store
