#include "services/store/chunk_store.h"

#include <rocksdb/write_batch.h>

#include <optional>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/base/coding.h"
#include "common/base/crc32c.h"
#include "common/base/status_macros.h"
#include "common/codec/rsync_delta.h"
#include "common/model/model.h"

namespace converge::store {

namespace {

// A chunk's value: a tag byte, the CRC-32C of the payload (4 bytes, little-endian), then the
// payload itself (raw or zstd) or, for a chunk in a pack, its place there (three varints: pack,
// offset, length). Any other value is corrupt.
constexpr char kCheckedRawTag = static_cast<char>(0xC2);
constexpr char kCheckedZstdTag = static_cast<char>(0xC3);
constexpr char kPackedRawTag = static_cast<char>(0xC4);
constexpr char kPackedZstdTag = static_cast<char>(0xC5);
constexpr size_t kCheckedHeaderBytes = 5;
// New chunk bytes of one Put from this much on go to a pack; below, into RocksDB (its WAL, then
// a blob file), where a stream of small commits costs no fsync of its own.
constexpr uint64_t kPackedBatchBytes = 4 << 20;

absl::StatusOr<std::string> Decode(ChunkEncoding encoding, absl::string_view payload) {
  switch (encoding) {
    case ChunkEncoding::kRaw: return std::string(payload);
    case ChunkEncoding::kZstd: return Decompress(payload, kMaxChunkBytes);
    default: return absl::InvalidArgumentError("chunks are stored raw or zstd");
  }
}

bool IsPacked(absl::string_view value) {
  return value.size() > kCheckedHeaderBytes && (value[0] == kPackedRawTag || value[0] == kPackedZstdTag);
}

std::optional<PackPlace> PlaceOf(absl::string_view value) {
  if (!IsPacked(value)) return std::nullopt;
  Decoder d(value.substr(kCheckedHeaderBytes));
  PackPlace at;
  if (!d.GetVarint64(&at.pack) || !d.GetVarint64(&at.offset) || !d.GetVarint64(&at.length) || !d.done() ||
      at.length == 0 || at.length > 2 * kMaxChunkBytes) {
    return std::nullopt;
  }
  return at;
}

// The chunk's header for a value: tag and CRC-32C of the bytes as they came.
void MakeHeader(const ChunkData& c, bool packed, char* header) {
  const bool zstd = c.encoding == ChunkEncoding::kZstd;
  header[0] = packed ? (zstd ? kPackedZstdTag : kPackedRawTag) : (zstd ? kCheckedZstdTag : kCheckedRawTag);
  const uint32_t crc = Crc32c(c.data);
  for (int i = 0; i < 4; ++i) header[1 + i] = static_cast<char>(crc >> (8 * i));
}

}  // namespace

absl::StatusOr<bool> ChunkStore::Has(const std::string& owner, const Digest& d) {
  std::string value;
  rocksdb::Status s = db_->db()->Get(rocksdb::ReadOptions(), StoreDb::OwnedKey(owner, d), &value);
  if (s.IsNotFound()) return false;
  if (!s.ok()) return RocksStatus(s, "read chunk owner");
  return true;
}

absl::StatusOr<uint64_t> ChunkStore::ReadCounter(const std::string& key) {
  std::string value;
  rocksdb::Status s = db_->db()->Get(rocksdb::ReadOptions(), key, &value);
  if (s.IsNotFound()) return 0;
  if (!s.ok()) return RocksStatus(s, "read counter");
  if (value.size() != 8) return absl::DataLossError("corrupt counter");
  return DecodeFixed64BE(value);
}

absl::StatusOr<uint64_t> ChunkStore::SetQuota(const std::string& owner, uint64_t quota_bytes) {
  absl::MutexLock lock(&owner_mu_);
  std::string v;
  PutFixed64BE(&v, quota_bytes);
  absl::Status s = RocksStatus(db_->PutSynced(StoreDb::QuotaKey(owner), v), "write quota");
  if (!s.ok()) return s;
  return ReadCounter(StoreDb::UsageKey(owner));
}

absl::StatusOr<std::pair<uint64_t, uint64_t>> ChunkStore::Usage(const std::string& owner) {
  absl::StatusOr<uint64_t> used = ReadCounter(StoreDb::UsageKey(owner));
  if (!used.ok()) return used.status();
  absl::StatusOr<uint64_t> quota = ReadCounter(StoreDb::QuotaKey(owner));
  if (!quota.ok()) return quota.status();
  return std::make_pair(*used, *quota);
}

absl::StatusOr<bool> ChunkStore::HasContent(const Digest& d) {
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

absl::StatusOr<std::vector<Digest>> ChunkStore::FindMissing(const std::string& owner,
                                                            const std::vector<Digest>& wanted) {
  std::vector<Digest> distinct;
  absl::flat_hash_set<std::string> seen;
  for (const Digest& d : wanted) {
    if (seen.insert(DigestToBytes(d)).second) distinct.push_back(d);
  }
  // Looked up together: one MultiGet sorts and batches them (a Get each cost a fifth of the
  // store's CPU for 10,000 small files).
  std::vector<std::string> keys;
  keys.reserve(distinct.size());
  for (const Digest& d : distinct) keys.push_back(StoreDb::OwnedKey(owner, d));
  std::vector<rocksdb::Slice> slices(keys.begin(), keys.end());
  std::vector<rocksdb::PinnableSlice> values(keys.size());
  std::vector<rocksdb::Status> statuses(keys.size());
  db_->db()->MultiGet(rocksdb::ReadOptions(), db_->db()->DefaultColumnFamily(), keys.size(), slices.data(),
                      values.data(), statuses.data());
  std::vector<Digest> missing;
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&recent_mu_);
  for (size_t i = 0; i < distinct.size(); ++i) {
    if (statuses[i].IsNotFound()) {
      missing.push_back(distinct[i]);
    } else if (!statuses[i].ok()) {
      return RocksStatus(statuses[i], "read chunk owner");
    } else {
      recent_[DigestToBytes(distinct[i])] = now;  // as Touch
    }
  }
  return missing;
}

void ChunkStore::Touch(const Digest& d) {
  absl::MutexLock lock(&recent_mu_);
  recent_[DigestToBytes(d)] = absl::Now();
}

absl::StatusOr<ChunkStore::SweepResult> ChunkStore::Sweep(
    const absl::flat_hash_map<std::string, absl::flat_hash_set<std::string>>& referenced, absl::Time touched_since) {
  const absl::flat_hash_set<std::string> recent = TouchedSince(touched_since);
  absl::MutexLock lock(&owner_mu_);
  SweepResult result;
  rocksdb::WriteBatch batch;
  absl::flat_hash_map<std::string, uint64_t> freed;  // owner -> raw bytes no longer held
  absl::flat_hash_set<std::string> still_held;       // digests some owner keeps
  absl::flat_hash_map<std::string, uint64_t> dropped;  // digest -> raw size, held by nobody now?
  static const absl::flat_hash_set<std::string> kNone;
  std::unique_ptr<rocksdb::Iterator> it(db_->db()->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek("o"); it->Valid() && it->key().starts_with("o"); it->Next()) {
    absl::string_view key = View(it->key());
    if (key.size() < 1 + 1 + kDigestSize) continue;
    const std::string owner(key.substr(1, key.size() - 2 - kDigestSize));
    const std::string digest(key.substr(key.size() - kDigestSize));
    auto refs = referenced.find(owner);
    const absl::flat_hash_set<std::string>& mine = refs == referenced.end() ? kNone : refs->second;
    if (mine.contains(digest) || recent.contains(digest)) {
      still_held.insert(digest);
      continue;
    }
    Decoder d(View(it->value()));
    uint64_t size = 0;
    if (!d.GetVarint64(&size)) size = 0;
    batch.Delete(it->key());
    freed[owner] += size;
    dropped[digest] = size;
    ++result.holds_dropped;
  }
  CONVERGE_RETURN_IF_ERROR(RocksStatus(it->status(), "read chunk owners"));
  std::vector<PackPlace> released;
  std::vector<uint64_t> emptied;
  CONVERGE_RETURN_IF_ERROR(DropContent(dropped, still_held, &batch, &result, &released, &emptied));
  for (const auto& [owner, bytes] : freed) {
    CONVERGE_ASSIGN_OR_RETURN(uint64_t used, ReadCounter(StoreDb::UsageKey(owner)));
    std::string v;
    PutFixed64BE(&v, used > bytes ? used - bytes : 0);
    batch.Put(StoreDb::UsageKey(owner), v);
  }
  CONVERGE_RETURN_IF_ERROR(RocksStatus(db_->WriteSynced(&batch), "sweep chunks"));
  CONVERGE_RETURN_IF_ERROR(FreePacks(released, emptied));
  return result;
}

absl::flat_hash_set<std::string> ChunkStore::TouchedSince(absl::Time since) {
  absl::flat_hash_set<std::string> recent;
  absl::MutexLock lock(&recent_mu_);
  for (auto it = recent_.begin(); it != recent_.end();) {
    if (it->second < since) {
      recent_.erase(it++);
    } else {
      recent.insert(it->first);
      ++it;
    }
  }
  return recent;
}

absl::Status ChunkStore::DropContent(const absl::flat_hash_map<std::string, uint64_t>& dropped,
                                     const absl::flat_hash_set<std::string>& still_held, rocksdb::WriteBatch* batch,
                                     SweepResult* result, std::vector<PackPlace>* released,
                                     std::vector<uint64_t>* emptied) {
  absl::flat_hash_map<uint64_t, uint64_t> pack_freed;  // pack -> its bytes no longer live
  for (const auto& [digest, size] : dropped) {
    if (still_held.contains(digest)) continue;
    const std::string key = absl::StrCat("c", digest);
    std::string value;
    rocksdb::Status got = db_->db()->Get(rocksdb::ReadOptions(), key, &value);
    if (!got.ok() && !got.IsNotFound()) return RocksStatus(got, "read chunk");
    if (const std::optional<PackPlace> at = PlaceOf(value); at.has_value()) {
      released->push_back(*at);
      pack_freed[at->pack] += at->length;
    }
    batch->Delete(key);
    ++result->chunks_dropped;
    result->bytes_dropped += size;
  }
  for (const auto& [pack, bytes] : pack_freed) {
    CONVERGE_ASSIGN_OR_RETURN(uint64_t live, ReadCounter(StoreDb::PackKey(pack)));
    std::string v;
    PutFixed64BE(&v, live > bytes ? live - bytes : 0);
    batch->Put(StoreDb::PackKey(pack), v);
    if (live <= bytes) emptied->push_back(pack);
  }
  return absl::OkStatus();
}

absl::Status ChunkStore::FreePacks(const std::vector<PackPlace>& released, const std::vector<uint64_t>& emptied) {
  // Only now that no index entry names them: dead bytes are punched out, empty packs deleted.
  for (const PackPlace& at : released) db_->packs()->Release(at);
  rocksdb::WriteBatch gone;
  for (uint64_t pack : emptied) {
    if (db_->packs()->Delete(pack)) gone.Delete(StoreDb::PackKey(pack));
  }
  if (gone.Count() == 0) return absl::OkStatus();
  return RocksStatus(db_->WriteSynced(&gone), "drop empty packs");
}


absl::StatusOr<uint64_t> ChunkStore::CheckChunk(const ChunkData& c) {
  // Raw bytes are checked where they are; zstd ones once decoded.
  std::string decoded;
  if (c.encoding != ChunkEncoding::kRaw) {
    absl::StatusOr<std::string> d = Decode(c.encoding, c.data);
    if (!d.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("chunk ", DigestToHex(c.sha256), ": ", d.status().message()));
    }
    decoded = std::move(*d);
  }
  const absl::string_view raw = c.encoding == ChunkEncoding::kRaw ? absl::string_view(c.data) : decoded;
  if (raw.empty() || raw.size() > kMaxChunkBytes) {
    return absl::InvalidArgumentError(absl::StrCat("chunk ", DigestToHex(c.sha256), " has ", raw.size(),
                                                   " bytes, outside (0, ", kMaxChunkBytes, "]"));
  }
  if (HashOf(raw) != c.sha256) {
    return absl::InvalidArgumentError(absl::StrCat("chunk bytes do not match their hash ", DigestToHex(c.sha256)));
  }
  // An owner is charged what the chunk takes: its raw bytes, or the bytes as stored if more.
  return std::max<uint64_t>(raw.size(), c.data.size());
}

absl::StatusOr<std::vector<std::optional<PackPlace>>> ChunkStore::PackNew(const std::vector<ChunkData>& chunks) {
  std::vector<std::optional<PackPlace>> places(chunks.size());
  std::vector<absl::string_view> pieces;
  std::vector<size_t> of;
  uint64_t bytes = 0;
  absl::flat_hash_set<Digest> seen;
  for (size_t i = 0; i < chunks.size(); ++i) {
    if (!seen.insert(chunks[i].sha256).second) continue;
    absl::StatusOr<bool> content = HasContent(chunks[i].sha256);
    if (!content.ok()) return content.status();
    if (*content) continue;
    pieces.push_back(chunks[i].data);
    of.push_back(i);
    bytes += chunks[i].data.size();
  }
  if (bytes < kPackedBatchBytes) return places;
  absl::StatusOr<std::vector<PackPlace>> written = db_->packs()->Append(pieces);
  if (!written.ok()) return written.status();
  for (size_t j = 0; j < of.size(); ++j) places[of[j]] = (*written)[j];
  return places;
}

absl::Status ChunkStore::Put(const std::string& owner, const std::vector<ChunkData>& chunks) {
  std::vector<uint64_t> charges;
  charges.reserve(chunks.size());
  for (const ChunkData& c : chunks) {
    CONVERGE_ASSIGN_OR_RETURN(uint64_t charge, CheckChunk(c));
    charges.push_back(charge);
  }
  for (const ChunkData& c : chunks) Touch(c.sha256);
  // Outside the lock below: the bytes of a large batch's new chunks are written to a pack (and
  // made durable) first; only their places are written under it.
  CONVERGE_ASSIGN_OR_RETURN(std::vector<std::optional<PackPlace>> places, PackNew(chunks));
  std::vector<PackPlace> unused;  // packed, but stored meanwhile by another upload
  absl::Status s = Index(owner, chunks, charges, places, &unused);
  if (!s.ok()) {
    for (const std::optional<PackPlace>& at : places) {
      if (at.has_value()) unused.push_back(*at);
    }
  }
  for (const PackPlace& at : unused) db_->packs()->Release(at);
  for (const std::optional<PackPlace>& at : places) {
    if (!at.has_value()) continue;
    db_->packs()->Unpin(at->pack);  // one Append: one pack, pinned once
    break;
  }
  return s;
}

absl::Status ChunkStore::Index(const std::string& owner, const std::vector<ChunkData>& chunks,
                               const std::vector<uint64_t>& charges,
                               const std::vector<std::optional<PackPlace>>& places, std::vector<PackPlace>* unused) {
  rocksdb::WriteBatch batch;
  absl::MutexLock lock(&owner_mu_);
  uint64_t added = 0;
  absl::flat_hash_map<uint64_t, uint64_t> packed;  // pack -> live bytes added
  absl::flat_hash_set<Digest> in_batch;
  for (size_t i = 0; i < chunks.size(); ++i) {
    const ChunkData& c = chunks[i];
    const std::optional<PackPlace>& at = places[i];
    if (!in_batch.insert(c.sha256).second) continue;
    CONVERGE_ASSIGN_OR_RETURN(bool content, HasContent(c.sha256));
    char header[kCheckedHeaderBytes];
    MakeHeader(c, at.has_value(), header);
    const std::string key = StoreDb::ChunkKey(c.sha256);
    const rocksdb::Slice key_part(key);
    if (content) {
      if (at.has_value()) unused->push_back(*at);
    } else if (at.has_value()) {
      std::string place;
      PutVarint64(&place, at->pack);
      PutVarint64(&place, at->offset);
      PutVarint64(&place, at->length);
      const rocksdb::Slice value_parts[2] = {rocksdb::Slice(header, sizeof(header)), rocksdb::Slice(place)};
      batch.Put(rocksdb::SliceParts(&key_part, 1), rocksdb::SliceParts(value_parts, 2));
      packed[at->pack] += at->length;
    } else {
      // The value is the header and the bytes as they came, put together by the batch itself.
      const rocksdb::Slice value_parts[2] = {rocksdb::Slice(header, sizeof(header)), rocksdb::Slice(c.data)};
      batch.Put(rocksdb::SliceParts(&key_part, 1), rocksdb::SliceParts(value_parts, 2));
    }
    CONVERGE_ASSIGN_OR_RETURN(bool owned, Has(owner, c.sha256));
    if (!owned) {
      std::string size;
      PutVarint64(&size, charges[i]);
      batch.Put(StoreDb::OwnedKey(owner, c.sha256), size);
      added += charges[i];
    }
  }
  for (const auto& [pack, bytes] : packed) {
    CONVERGE_ASSIGN_OR_RETURN(uint64_t live, ReadCounter(StoreDb::PackKey(pack)));
    std::string v;
    PutFixed64BE(&v, live + bytes);
    batch.Put(StoreDb::PackKey(pack), v);
  }
  if (added > 0) {
    absl::StatusOr<std::pair<uint64_t, uint64_t>> usage = Usage(owner);
    if (!usage.ok()) return usage.status();
    const auto [used, quota] = *usage;
    if (quota != 0 && used + added > quota) {
      return absl::ResourceExhaustedError(absl::StrCat("storage quota of '", owner, "' exceeded: ", used, " + ",
                                                       added, " bytes > quota ", quota));
    }
    std::string v;
    PutFixed64BE(&v, used + added);
    batch.Put(StoreDb::UsageKey(owner), v);
  }
  // Not synced: the synced commit that references these chunks syncs the WAL they are in.
  return RocksStatus(db_->Checked(db_->db()->Write(rocksdb::WriteOptions(), &batch)), "write chunks");
}

absl::StatusOr<StoredChunk> ChunkStore::GetStored(const std::string& owner, const Digest& d, std::string* raw) {
  absl::StatusOr<bool> owned = Has(owner, d);
  if (!owned.ok()) return owned.status();
  if (!*owned) return absl::NotFoundError(absl::StrCat("no chunk ", DigestToHex(d)));
  return ReadStored(d, raw);
}

absl::StatusOr<StoredChunk> ChunkStore::ReadStored(const Digest& d, std::string* raw) {
  std::string value;
  // The chunk's own CRC-32C below proves its bytes;
  // RocksDB's CRC over them (software CRC32c in Debian's build, ~1 s of CPU a GiB) would check
  // them a second time.
  rocksdb::ReadOptions read;
  read.verify_checksums = false;
  rocksdb::Status s = db_->db()->Get(read, StoreDb::ChunkKey(d), &value);
  if (s.IsNotFound()) return absl::NotFoundError(absl::StrCat("no chunk ", DigestToHex(d)));
  if (!s.ok()) return RocksStatus(s, "read chunk");
  const std::string corrupt = absl::StrCat("stored chunk ", DigestToHex(d), " is corrupt");
  if (value.size() < kCheckedHeaderBytes) return absl::DataLossError(corrupt);
  const char tag = value[0];
  uint32_t crc = 0;
  for (int i = 0; i < 4; ++i) crc |= static_cast<uint32_t>(static_cast<uint8_t>(value[1 + i])) << (8 * i);
  StoredChunk out;
  if (tag == kPackedRawTag || tag == kPackedZstdTag) {
    const std::optional<PackPlace> at = PlaceOf(value);
    if (!at.has_value()) return absl::DataLossError(corrupt);
    absl::StatusOr<std::string> bytes = db_->packs()->Read(*at);
    if (!bytes.ok()) return absl::DataLossError(absl::StrCat(corrupt, ": ", bytes.status().message()));
    out.payload = std::move(*bytes);
  } else if (tag == kCheckedRawTag || tag == kCheckedZstdTag) {
    value.erase(0, kCheckedHeaderBytes);
    out.payload = std::move(value);
  } else {
    return absl::DataLossError(corrupt);
  }
  // Checked by its SHA-256 when it was put; the CRC says it is still those bytes.
  if (Crc32c(out.payload) != crc) return absl::DataLossError(corrupt);
  const bool zstd = tag == kCheckedZstdTag || tag == kPackedZstdTag;
  out.encoding = zstd ? ChunkEncoding::kZstd : ChunkEncoding::kRaw;
  if (!zstd) {
    if (raw != nullptr) *raw = out.payload;
    return out;
  }
  absl::StatusOr<std::string> decoded = Decode(out.encoding, out.payload);
  if (!decoded.ok()) return absl::DataLossError(corrupt);
  (raw != nullptr ? *raw : out.decoded) = std::move(*decoded);
  return out;
}

absl::StatusOr<std::string> ChunkStore::Get(const std::string& owner, const Digest& d) {
  std::string raw;
  absl::StatusOr<StoredChunk> stored = GetStored(owner, d, &raw);
  if (!stored.ok()) return stored.status();
  return raw;
}

absl::StatusOr<std::string> ChunkStore::Sequence(const std::string& owner, const std::vector<Digest>& chunks) {
  if (chunks.empty() || chunks.size() > kMaxDeltaBases) {
    return absl::InvalidArgumentError(absl::StrCat("a base is 1 to ", kMaxDeltaBases, " chunks, not ", chunks.size()));
  }
  if (chunks.size() == 1) return Get(owner, chunks[0]);
  std::string out;
  for (const Digest& d : chunks) {
    CONVERGE_ASSIGN_OR_RETURN(std::string raw, Get(owner, d));
    out += raw;
  }
  return out;
}

absl::StatusOr<std::string> ChunkStore::RebuildFromDelta(const std::string& owner, const std::vector<Digest>& bases,
                                                       uint32_t block_bytes, absl::string_view delta) {
  absl::StatusOr<std::string> base = Sequence(owner, bases);
  if (absl::IsNotFound(base.status())) {
    return absl::FailedPreconditionError("the delta's base chunk is not stored: upload the chunk whole");
  }
  if (!base.ok()) return base.status();
  if (block_bytes < 64 || block_bytes > (1u << 20)) {
    return absl::InvalidArgumentError(absl::StrCat("delta block size ", block_bytes, " out of range"));
  }
  // The ops stream is itself bounded: literals plus 10 bytes per copied block at most.
  absl::StatusOr<std::string> ops = Decompress(delta, 2 * kMaxChunkBytes);
  if (!ops.ok()) return ops.status();
  return ApplyDelta(*ops, *base, block_bytes, kMaxChunkBytes);
}

}  // namespace converge::store
