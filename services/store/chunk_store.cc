#include "services/store/chunk_store.h"

#include <rocksdb/write_batch.h>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/base/coding.h"
#include "common/base/crc32c.h"
#include "common/base/status_macros.h"
#include "common/codec/rsync_delta.h"
#include "common/model/model.h"

namespace converge::store {

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
  std::vector<Digest> missing;
  absl::flat_hash_set<std::string> seen;
  for (const Digest& d : wanted) {
    if (!seen.insert(DigestToBytes(d)).second) continue;
    absl::StatusOr<bool> has = Has(owner, d);
    if (!has.ok()) return has.status();
    if (*has) {
      Touch(d);
    } else {
      missing.push_back(d);
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
  absl::flat_hash_set<std::string> recent;
  {
    absl::MutexLock lock(&recent_mu_);
    const absl::Time cutoff = touched_since;
    for (auto it = recent_.begin(); it != recent_.end();) {
      if (it->second < cutoff) {
        recent_.erase(it++);
      } else {
        recent.insert(it->first);
        ++it;
      }
    }
  }
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
  for (const auto& [digest, size] : dropped) {
    if (still_held.contains(digest)) continue;
    batch.Delete(absl::StrCat("c", digest));
    ++result.chunks_dropped;
    result.bytes_dropped += size;
  }
  for (const auto& [owner, bytes] : freed) {
    CONVERGE_ASSIGN_OR_RETURN(uint64_t used, ReadCounter(StoreDb::UsageKey(owner)));
    std::string v;
    PutFixed64BE(&v, used > bytes ? used - bytes : 0);
    batch.Put(StoreDb::UsageKey(owner), v);
  }
  CONVERGE_RETURN_IF_ERROR(RocksStatus(db_->WriteSynced(&batch), "sweep chunks"));
  return result;
}

namespace {

// A chunk's value: a tag byte (raw or zstd), the CRC-32C of the payload (4 bytes,
// little-endian), then the payload. Any other value is corrupt.
constexpr char kCheckedRawTag = static_cast<char>(0xC2);
constexpr char kCheckedZstdTag = static_cast<char>(0xC3);
constexpr size_t kCheckedHeaderBytes = 5;
constexpr uint64_t kUnloggedBatchBytes = 4 << 20;

absl::StatusOr<std::string> Decode(ChunkEncoding encoding, absl::string_view payload) {
  switch (encoding) {
    case ChunkEncoding::kRaw: return std::string(payload);
    case ChunkEncoding::kZstd: return Decompress(payload, kMaxChunkBytes);
    default: return absl::InvalidArgumentError("chunks are stored raw or zstd");
  }
}

}  // namespace

absl::Status ChunkStore::Put(const std::string& owner, const std::vector<ChunkData>& chunks) {
  rocksdb::WriteBatch batch;
  struct Checked {
    const ChunkData* chunk;
    uint64_t charged;  // against the owner's quota
    char header[kCheckedHeaderBytes];  // of its stored value: tag, CRC-32C of the bytes as they came
  };
  std::vector<Checked> checked;
  for (const ChunkData& c : chunks) {
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
      return absl::InvalidArgumentError(absl::StrCat("chunk ", DigestToHex(c.sha256), " has ",
                                                     raw.size(), " bytes, outside (0, ",
                                                     kMaxChunkBytes, "]"));
    }
    if (HashOf(raw) != c.sha256) {
      return absl::InvalidArgumentError(
          absl::StrCat("chunk bytes do not match their hash ", DigestToHex(c.sha256)));
    }
    // Computed here, outside the lock below. An owner is charged what the chunk takes: its raw
    // bytes, or the bytes as stored if those are more.
    Checked& k = checked.emplace_back(Checked{&c, std::max<uint64_t>(raw.size(), c.data.size()), {}});
    k.header[0] = c.encoding == ChunkEncoding::kZstd ? kCheckedZstdTag : kCheckedRawTag;
    const uint32_t crc = Crc32c(c.data);
    for (int i = 0; i < 4; ++i) k.header[1 + i] = static_cast<char>(crc >> (8 * i));
    Touch(c.sha256);
  }
  absl::MutexLock lock(&owner_mu_);
  uint64_t added = 0;
  uint64_t content_bytes = 0;  // chunk bytes new to the store
  absl::flat_hash_set<std::string> in_batch;
  for (const Checked& k : checked) {
    const ChunkData* c = k.chunk;
    if (!in_batch.insert(DigestToBytes(c->sha256)).second) continue;
    absl::StatusOr<bool> content = HasContent(c->sha256);
    if (!content.ok()) return content.status();
    if (!*content) {
      // The value is the header and the bytes as they came, put together by the batch itself.
      const std::string key = StoreDb::ChunkKey(c->sha256);
      const rocksdb::Slice key_part(key);
      const rocksdb::Slice value_parts[2] = {rocksdb::Slice(k.header, sizeof(k.header)), rocksdb::Slice(c->data)};
      batch.Put(rocksdb::SliceParts(&key_part, 1), rocksdb::SliceParts(value_parts, 2));
      content_bytes += c->data.size();
    }
    absl::StatusOr<bool> owned = Has(owner, c->sha256);
    if (!owned.ok()) return owned.status();
    if (!*owned) {
      std::string size;
      PutVarint64(&size, k.charged);
      batch.Put(StoreDb::OwnedKey(owner, c->sha256), size);
      added += k.charged;
    }
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
  // A large batch skips the WAL: its bytes are written once, into a blob file when flushed
  // (StoreDb::WriteUnlogged), and the commit that references them pays one flush. Small ones
  // go to the WAL as before, so a stream of small commits does not flush a memtable each.
  if (content_bytes >= kUnloggedBatchBytes) return RocksStatus(db_->WriteUnlogged(&batch), "write chunks");
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
  StoredChunk out;
  if (value.size() >= kCheckedHeaderBytes && (value[0] == kCheckedRawTag || value[0] == kCheckedZstdTag)) {
    // Checked by its SHA-256 when it was put; the CRC says it is still those bytes.
    uint32_t crc = 0;
    for (int i = 0; i < 4; ++i) crc |= static_cast<uint32_t>(static_cast<uint8_t>(value[1 + i])) << (8 * i);
    const bool zstd = value[0] == kCheckedZstdTag;
    value.erase(0, kCheckedHeaderBytes);
    if (Crc32c(value) != crc) return absl::DataLossError(absl::StrCat("stored chunk ", DigestToHex(d), " is corrupt"));
    out.encoding = zstd ? ChunkEncoding::kZstd : ChunkEncoding::kRaw;
    out.payload = std::move(value);
    if (!zstd) {
      if (raw != nullptr) *raw = out.payload;
      return out;
    }
    absl::StatusOr<std::string> decoded = Decode(out.encoding, out.payload);
    if (!decoded.ok()) return absl::DataLossError(absl::StrCat("stored chunk ", DigestToHex(d), " is corrupt"));
    (raw != nullptr ? *raw : out.decoded) = std::move(*decoded);
    return out;
  }
  return absl::DataLossError(absl::StrCat("stored chunk ", DigestToHex(d), " is corrupt"));
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
