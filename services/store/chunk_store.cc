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

namespace {

constexpr char kRawTag = static_cast<char>(0xC0);
constexpr char kZstdTag = static_cast<char>(0xC1);

absl::StatusOr<std::string> Decode(ChunkEncoding encoding, absl::string_view payload) {
  switch (encoding) {
    case ChunkEncoding::kRaw: return std::string(payload);
    case ChunkEncoding::kZstd: return Decompress(payload, kMaxChunkBytes);
    default: return absl::InvalidArgumentError("chunks are stored raw or zstd");
  }
}

}  // namespace

absl::Status ChunkStore::Put(const std::vector<ChunkData>& chunks) {
  rocksdb::WriteBatch batch;
  for (const ChunkData& c : chunks) {
    absl::StatusOr<std::string> raw = Decode(c.encoding, c.data);
    if (!raw.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("chunk ", DigestToHex(c.sha256), ": ", raw.status().message()));
    }
    if (raw->empty() || raw->size() > kMaxChunkBytes) {
      return absl::InvalidArgumentError(absl::StrCat("chunk ", DigestToHex(c.sha256), " has ",
                                                     raw->size(), " bytes, outside (0, ",
                                                     kMaxChunkBytes, "]"));
    }
    if (HashOf(*raw) != c.sha256) {
      return absl::InvalidArgumentError(
          absl::StrCat("chunk bytes do not match their hash ", DigestToHex(c.sha256)));
    }
    std::string value;
    value.reserve(c.data.size() + 1);
    value.push_back(c.encoding == ChunkEncoding::kZstd ? kZstdTag : kRawTag);
    value.append(c.data);
    batch.Put(StoreDb::ChunkKey(c.sha256), value);
  }
  return RocksStatus(db_->db()->Write(rocksdb::WriteOptions(), &batch), "write chunks");
}

absl::StatusOr<StoredChunk> ChunkStore::GetStored(const Digest& d, std::string* raw) {
  std::string value;
  rocksdb::Status s = db_->db()->Get(rocksdb::ReadOptions(), StoreDb::ChunkKey(d), &value);
  if (s.IsNotFound()) return absl::NotFoundError(absl::StrCat("no chunk ", DigestToHex(d)));
  if (!s.ok()) return RocksStatus(s, "read chunk");
  StoredChunk out;
  if (!value.empty() && (value[0] == kRawTag || value[0] == kZstdTag)) {
    out.encoding = value[0] == kZstdTag ? ChunkEncoding::kZstd : ChunkEncoding::kRaw;
    out.payload = value.substr(1);
    absl::StatusOr<std::string> decoded = Decode(out.encoding, out.payload);
    if (decoded.ok() && HashOf(*decoded) == d) {
      *raw = std::move(*decoded);
      return out;
    }
  }
  // A value written before chunks carried a tag is the raw bytes.
  if (HashOf(value) == d) {
    out.encoding = ChunkEncoding::kRaw;
    out.payload = value;
    *raw = std::move(value);
    return out;
  }
  return absl::DataLossError(absl::StrCat("stored chunk ", DigestToHex(d), " is corrupt"));
}

absl::StatusOr<std::string> ChunkStore::Get(const Digest& d) {
  std::string raw;
  absl::StatusOr<StoredChunk> stored = GetStored(d, &raw);
  if (!stored.ok()) return stored.status();
  return raw;
}

}  // namespace converge::store
