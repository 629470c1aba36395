#include "engine/keys/encrypting_store_client.h"

#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/codec/chunk_codec.h"
#include "common/codec/rsync_delta.h"
#include "common/crypto/chunk_cipher.h"
#include "common/crypto/name_cipher.h"
#include "common/model/conflict_name.h"
#include "common/model/store_behind.h"
#include "common/model/path.h"

namespace converge::engine {
namespace {

constexpr uint32_t kStoreMode = 0600;

bool IsDirectory(const FileVersion& v) { return v.kind == FileKind::kDirectory; }

// A frame of a chunk that looks compressible (LooksCompressible: samples of it, once) is sealed
// compressed when zstd saves an eighth of it or more.
std::string CompressFrame(absl::string_view frame) {
  std::string z = Compress(frame);
  return z.size() + z.size() / 8 < frame.size() ? z : std::string();
}

absl::StatusOr<std::string> DecompressFrame(absl::string_view z, size_t max_bytes) {
  return Decompress(z, max_bytes);  // bounded: no bomb
}

// Epochs tried when a base is sealed again (the newest first).
constexpr uint32_t kResealEpochs = 8;

}  // namespace

static_assert(crypto::kMaxEncryptedNameChars <= kMaxSealedNameBytes, "a sealed 255-byte name must fit the store");

bool FitsEncryptedStore(const std::string& path) {
  size_t longest = 0;
  return crypto::EncryptedPathSize(path, &longest) <= kMaxSealedPathBytes && longest <= kMaxSealedNameBytes;
}

EncryptingStoreClient::EncryptingStoreClient(StoreClient* inner, std::optional<crypto::Keyring> ring) : inner_(inner) {
  if (ring.has_value()) SetKeyring(*std::move(ring));
}

void EncryptingStoreClient::SetKeyring(crypto::Keyring ring) {
  auto keys = std::make_shared<const Keys>(Keys{ring, ring.Names()});
  absl::MutexLock lock(&mu_);
  keys_ = std::move(keys);
}

void EncryptingStoreClient::SetLogGuard(LogGuard* guard) {
  absl::MutexLock lock(&mu_);
  guard_ = guard;
}

absl::StatusOr<LogGuard*> EncryptingStoreClient::Guard() const {
  absl::MutexLock lock(&mu_);
  if (guard_ == nullptr) return absl::FailedPreconditionError("this device's keys for the namespace are not open");
  return guard_;
}

absl::StatusOr<std::shared_ptr<const EncryptingStoreClient::Keys>> EncryptingStoreClient::CurrentKeys() const {
  absl::MutexLock lock(&mu_);
  if (keys_ == nullptr) {
    return absl::FailedPreconditionError(
        "the namespace is end-to-end encrypted and this device does not hold its keyring yet: run `converge-engine "
        "keys request` here and approve this device on one that holds it, or `converge-engine keys recover`");
  }
  return keys_;
}

void EncryptingStoreClient::Remember(const Digest& plain, SealedChunk sealed) {
  if (sealed_.size() >= kMaxRememberedChunks && !sealed_.contains(plain)) sealed_.clear();
  sealed_[plain] = sealed;
}

absl::StatusOr<std::string> EncryptingStoreClient::EncryptPath(const std::string& path) const {
  CONVERGE_ASSIGN_OR_RETURN(std::shared_ptr<const Keys> keys, CurrentKeys());
  return crypto::EncryptPath(keys->names, path);
}

absl::Status EncryptingStoreClient::DecryptPaths(ConflictRecord* r) const {
  CONVERGE_ASSIGN_OR_RETURN(std::shared_ptr<const Keys> keys, CurrentKeys());
  CONVERGE_ASSIGN_OR_RETURN(r->copy_path, crypto::DecryptPath(keys->names, r->copy_path));
  CONVERGE_ASSIGN_OR_RETURN(r->original_path, crypto::DecryptPath(keys->names, r->original_path));
  return absl::OkStatus();
}

absl::StatusOr<std::string> EncryptingStoreClient::Seal(const Digest& plain_id, ChunkEncoding encoding,
                                                        std::string data, Digest* sealed_id) {
  if (encoding == ChunkEncoding::kZstd) {
    CONVERGE_ASSIGN_OR_RETURN(data, Decompress(data, kMaxChunkBytes));
  } else if (encoding != ChunkEncoding::kRaw) {
    return absl::InternalError("a delta upload in an encrypted namespace");
  }
  CONVERGE_ASSIGN_OR_RETURN(std::shared_ptr<const Keys> keys, CurrentKeys());
  std::string sealed = crypto::SealChunk(keys->ring.Current(), data,
                                         LooksCompressible(data) ? CompressFrame : crypto::Compressor());
  const SealedChunk chunk{HashOf(sealed), static_cast<uint32_t>(sealed.size())};
  *sealed_id = chunk.id;
  absl::MutexLock lock(&mu_);
  Remember(plain_id, chunk);
  return sealed;
}

absl::StatusOr<std::string> EncryptingStoreClient::Reseal(const Keys& keys, const Digest& sealed_id,
                                                          const std::string& plain) const {
  const uint32_t newest = keys.ring.current_epoch();
  for (uint32_t epoch = newest; epoch >= 1 && newest - epoch < kResealEpochs; --epoch) {
    absl::StatusOr<crypto::ContentKeys> content = keys.ring.Content(epoch);
    if (!content.ok()) continue;
    std::string again =
        crypto::SealChunk(*content, plain, LooksCompressible(plain) ? CompressFrame : crypto::Compressor());
    if (HashOf(again) == sealed_id) return again;
  }
  return absl::DataLossError(absl::StrCat("a local base does not seal again to chunk ", DigestToHex(sealed_id)));
}

absl::StatusOr<FileVersion> EncryptingStoreClient::Sealed(const FileVersion& plain) {
  CONVERGE_ASSIGN_OR_RETURN(std::shared_ptr<const Keys> keys, CurrentKeys());
  FileVersion s;
  CONVERGE_ASSIGN_OR_RETURN(s.path, EncryptPath(plain.path));
  s.file_id = plain.file_id;
  s.kind = IsDirectory(plain) ? FileKind::kDirectory : FileKind::kFile;  // a symlink shows as an empty file
  s.mode = kStoreMode;
  s.deleted = plain.deleted;
  s.seq = plain.seq;
  s.origin_device = plain.origin_device;
  s.base_seq = plain.base_seq;
  if (s.kind == FileKind::kFile && !s.deleted) {
    absl::MutexLock lock(&mu_);
    for (const ChunkRef& c : plain.chunks) {
      if (c.hole()) {
        s.chunks.push_back(c);
      } else {
        const auto it = sealed_.find(c.sha256);
        if (it == sealed_.end()) {
          return absl::FailedPreconditionError(absl::StrCat(plain.path, ": a chunk was not sealed before its commit"));
        }
        s.chunks.push_back(ChunkRef{it->second.id, it->second.length});
      }
      s.size += s.chunks.back().length;
    }
    s.content_sha256 = ContentDigest(s.chunks);
  }
  if (std::optional<ConflictCopyName> copy = ParseConflictName(plain.path);
      copy.has_value() && s.kind == FileKind::kFile && !s.deleted) {
    CONVERGE_ASSIGN_OR_RETURN(s.conflict_original, crypto::EncryptPath(keys->names, copy->original_path));
  }
  s.sealed_record = crypto::SealRecord(keys->ring.Current(), s.path, EncodeFileVersion(plain));
  return s;
}

absl::StatusOr<FileVersion> EncryptingStoreClient::Opened(const FileVersion& sealed) {
  const auto refuse = [&](absl::string_view why) {
    return absl::DataLossError(absl::StrCat("a version the store holds does not open: ", why));
  };
  CONVERGE_ASSIGN_OR_RETURN(std::shared_ptr<const Keys> keys, CurrentKeys());
  if (sealed.sealed_record.empty()) return refuse("it has no sealed record (written without the namespace's keys)");
  absl::StatusOr<std::string> bytes = crypto::OpenRecord(keys->ring, sealed.path, sealed.sealed_record);
  if (absl::IsNotFound(bytes.status()) && refresh_ && refresh_()) {  // an epoch newer than this device's
    CONVERGE_ASSIGN_OR_RETURN(keys, CurrentKeys());
    bytes = crypto::OpenRecord(keys->ring, sealed.path, sealed.sealed_record);
  }
  if (!bytes.ok()) return refuse(bytes.status().message());
  absl::StatusOr<FileVersion> plain = DecodeFileVersion(*bytes);
  absl::StatusOr<std::string> path = crypto::DecryptPath(keys->names, sealed.path);
  if (!plain.ok() || !path.ok()) return refuse(plain.ok() ? path.status().message() : plain.status().message());
  if (*path != plain->path || plain->deleted != sealed.deleted || IsDirectory(*plain) != IsDirectory(sealed) ||
      plain->file_id != sealed.file_id) {
    return refuse(absl::StrCat(*path, ": the store's version disagrees with its sealed record"));
  }
  plain->seq = sealed.seq;
  plain->origin_device = sealed.origin_device;
  plain->base_seq = sealed.base_seq;
  plain->sealed_record.clear();
  plain->conflict_original.clear();
  // What a member sealed is checked like anything from the network (a name like "..", a chunk
  // list that does not add up): refused as the rest, so it is skipped, not a stop.
  if (absl::Status valid = ValidateFileVersion(*plain); !valid.ok()) return refuse(valid.message());
  if (plain->kind == FileKind::kFile && !plain->deleted) {
    if (plain->chunks.size() != sealed.chunks.size()) return refuse(absl::StrCat(*path, ": chunk lists differ"));
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < plain->chunks.size(); ++i) {
      const ChunkRef& p = plain->chunks[i];
      const ChunkRef& s = sealed.chunks[i];
      if (p.hole() != s.hole()) return refuse(absl::StrCat(*path, ": chunk lists differ"));
      if (!p.hole()) Remember(p.sha256, SealedChunk{s.sha256, s.length});
    }
  }
  return *std::move(plain);
}

absl::StatusOr<uint64_t> EncryptingStoreClient::ListFiles(const std::function<void(const FileVersion&)>& fn,
                                                          int64_t at_unix_ms) {
  absl::Status failed;
  std::vector<FileVersion> opened;
  const auto open = [&](const FileVersion& v) {
    if (!failed.ok()) return;
    absl::StatusOr<FileVersion> plain = Opened(v);
    if (plain.ok()) {
      opened.push_back(*std::move(plain));
    } else {
      failed = plain.status();
    }
  };
  uint64_t head = 0;
  if (at_unix_ms >= 0) {
    CONVERGE_ASSIGN_OR_RETURN(head, inner_->ListFiles(open, at_unix_ms));
  } else {
    // The current table comes with the chain head at its seq: checked (or, after compaction,
    // taken as the chain's start) before any of it is handed on.
    CONVERGE_ASSIGN_OR_RETURN(LogGuard * guard, Guard());
    CONVERGE_ASSIGN_OR_RETURN(Table table, inner_->ListTable(open));
    bool rooting = false;
    {
      absl::MutexLock lock(&mu_);
      std::swap(rooting, rooting_);
    }
    CONVERGE_RETURN_IF_ERROR(guard->Table(table.seq, table.chain, rooting));
    head = table.seq;
  }
  if (!failed.ok()) return failed;
  for (const FileVersion& v : opened) fn(v);
  return head;
}

absl::StatusOr<std::vector<HistoryVersion>> EncryptingStoreClient::ListVersions(const std::string& path,
                                                                                uint32_t limit) {
  CONVERGE_ASSIGN_OR_RETURN(std::string encrypted, EncryptPath(path));
  CONVERGE_ASSIGN_OR_RETURN(std::vector<HistoryVersion> versions, inner_->ListVersions(encrypted, limit));
  for (HistoryVersion& h : versions) {
    CONVERGE_ASSIGN_OR_RETURN(h.version, Opened(h.version));
  }
  return versions;
}

absl::StatusOr<std::vector<ConflictRecord>> EncryptingStoreClient::ListConflicts(bool include_resolved) {
  CONVERGE_ASSIGN_OR_RETURN(std::vector<ConflictRecord> records, inner_->ListConflicts(include_resolved));
  for (ConflictRecord& r : records) CONVERGE_RETURN_IF_ERROR(DecryptPaths(&r));
  return records;
}

absl::StatusOr<ConflictRecord> EncryptingStoreClient::ResolveConflict(const std::string& copy_path) {
  CONVERGE_ASSIGN_OR_RETURN(std::string encrypted, EncryptPath(copy_path));
  CONVERGE_ASSIGN_OR_RETURN(ConflictRecord r, inner_->ResolveConflict(encrypted));
  CONVERGE_RETURN_IF_ERROR(DecryptPaths(&r));
  return r;
}

absl::StatusOr<std::vector<Digest>> EncryptingStoreClient::FindMissing(const std::vector<Digest>& digests) {
  // Known chunks are asked about by their sealed ids; unknown ones are missing (uploaded again,
  // they seal to the bytes the store may already hold).
  std::vector<Digest> asked;
  absl::flat_hash_map<Digest, Digest> plain_of;
  {
    absl::MutexLock lock(&mu_);
    for (const Digest& d : digests) {
      const auto it = sealed_.find(d);
      if (it == sealed_.end()) continue;
      asked.push_back(it->second.id);
      plain_of[it->second.id] = d;
    }
  }
  absl::flat_hash_set<Digest> missing_sealed;
  if (!asked.empty()) {
    CONVERGE_ASSIGN_OR_RETURN(std::vector<Digest> missing, inner_->FindMissing(asked));
    missing_sealed.insert(missing.begin(), missing.end());
  }
  std::vector<Digest> out;
  absl::flat_hash_set<Digest> seen;
  absl::MutexLock lock(&mu_);
  for (const Digest& d : digests) {
    const auto it = sealed_.find(d);
    const bool missing = it == sealed_.end() || missing_sealed.contains(it->second.id);
    if (missing && seen.insert(d).second) out.push_back(d);
  }
  return out;
}

absl::StatusOr<absl::flat_hash_map<std::string, Signature>> EncryptingStoreClient::Signatures(
    const std::vector<std::vector<Digest>>& bases) {
  // The store signs the sealed bases; the deltas are of sealed bytes, made in PutChunks. The
  // engine gets none (it would make them of the plaintext) and sends chunks whole to PutChunks.
  std::vector<std::vector<Digest>> sealed_bases;
  std::vector<std::string> plain_keys;
  {
    absl::MutexLock lock(&mu_);
    for (const std::vector<Digest>& base : bases) {
      std::vector<Digest> sealed;
      for (const Digest& d : base) {
        const auto it = sealed_.find(d);
        if (it == sealed_.end()) break;
        sealed.push_back(it->second.id);
      }
      if (sealed.size() != base.size()) continue;
      sealed_bases.push_back(std::move(sealed));
      plain_keys.push_back(SequenceKey(base));
    }
  }
  if (sealed_bases.empty()) return absl::flat_hash_map<std::string, Signature>();
  CONVERGE_ASSIGN_OR_RETURN(auto signatures, inner_->Signatures(sealed_bases));
  absl::MutexLock lock(&mu_);
  if (signed_.size() + sealed_bases.size() > kMaxSignedBases) signed_.clear();
  for (size_t i = 0; i < sealed_bases.size() && i < kMaxSignedBases; ++i) {
    auto it = signatures.find(SequenceKey(sealed_bases[i]));
    if (it != signatures.end()) signed_[plain_keys[i]] = SignedBase{sealed_bases[i], std::move(it->second)};
  }
  return absl::flat_hash_map<std::string, Signature>();
}

absl::Status EncryptingStoreClient::SealedUpload(ChunkUpload plain, ChunkUpload* out) {
  if (plain.delta) return absl::InternalError("a delta of plaintext in an encrypted namespace");
  Digest sealed_id;
  CONVERGE_ASSIGN_OR_RETURN(std::string sealed,
                            Seal(plain.sha256, plain.encoding, std::move(plain.data), &sealed_id));
  *out = ChunkUpload();
  out->sha256 = sealed_id;
  out->encoding = ChunkEncoding::kRaw;
  std::string delta;
  std::vector<Digest> sealed_bases;
  uint32_t block_bytes = 0;
  if (!plain.bases.empty()) {
    absl::MutexLock lock(&mu_);
    const auto it = signed_.find(SequenceKey(plain.bases));
    if (it != signed_.end()) {
      delta = Compress(MakeDelta(sealed, it->second.signature));
      sealed_bases = it->second.sealed;
      block_bytes = it->second.signature.block_bytes;
    }
  }
  if (!delta.empty() && delta.size() * 10 < sealed.size() * 9) {
    out->delta = true;
    out->bases = std::move(sealed_bases);
    out->block_bytes = block_bytes;
    out->data = std::move(delta);
  } else {
    out->data = std::move(sealed);
  }
  return absl::OkStatus();
}

absl::Status EncryptingStoreClient::PutChunks(const std::function<absl::StatusOr<bool>(ChunkUpload*)>& next) {
  return inner_->PutChunks([&](ChunkUpload* out) -> absl::StatusOr<bool> {
    ChunkUpload plain;
    CONVERGE_ASSIGN_OR_RETURN(const bool more, next(&plain));
    if (!more) return false;
    CONVERGE_RETURN_IF_ERROR(SealedUpload(std::move(plain), out));
    return true;
  });
}

absl::StatusOr<uint64_t> EncryptingStoreClient::CommitSealed(const std::vector<FileVersion>& sealed,
                                                             const std::vector<InlineChunk>& chunks) {
  CONVERGE_ASSIGN_OR_RETURN(LogGuard * guard, Guard());
  CONVERGE_ASSIGN_OR_RETURN(std::string attestation, guard->Attest(sealed));
  CONVERGE_ASSIGN_OR_RETURN(uint64_t seq, inner_->CommitSigned(sealed, chunks, attestation));
  guard->Committed(seq, attestation);
  return seq;
}

absl::StatusOr<std::vector<FileVersion>> EncryptingStoreClient::SealAll(const std::vector<FileVersion>& changes) {
  for (int attempt = 0;; ++attempt) {
    std::vector<FileVersion> sealed;
    sealed.reserve(changes.size());
    absl::Status failed;
    for (const FileVersion& v : changes) {
      absl::StatusOr<FileVersion> s = Sealed(v);
      if (!s.ok()) {
        failed = s.status();
        break;
      }
      sealed.push_back(*std::move(s));
    }
    if (failed.ok()) return sealed;
    if (attempt > 0 || !absl::IsFailedPrecondition(failed)) return failed;
    // The engine does not upload chunks of a file's previous version (the store's current one):
    // after a restart their sealed ids are not known here. They are in the store's table.
    CONVERGE_RETURN_IF_ERROR(RelearnFromTable());
  }
}

absl::Status EncryptingStoreClient::RelearnFromTable() {
  size_t opened = 0;
  CONVERGE_RETURN_IF_ERROR(inner_
                               ->ListFiles([&](const FileVersion& v) {
                                 if (!v.deleted && Opened(v).ok()) ++opened;  // Opened remembers the chunks
                               })
                               .status());
  GetLogger("engine")->info("relearned the sealed chunk ids of {} live file(s) from the store's table", opened);
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> EncryptingStoreClient::Commit(const std::vector<FileVersion>& changes) {
  CONVERGE_ASSIGN_OR_RETURN(std::vector<FileVersion> sealed, SealAll(changes));
  return CommitSealed(sealed, {});
}

absl::StatusOr<uint64_t> EncryptingStoreClient::CommitWithChunks(const std::vector<FileVersion>& changes,
                                                                 const std::vector<InlineChunk>& chunks) {
  std::vector<InlineChunk> sealed_chunks;
  uint64_t sealed_bytes = 0;
  for (const InlineChunk& c : chunks) {
    Digest sealed_id;
    CONVERGE_ASSIGN_OR_RETURN(std::string sealed, Seal(c.sha256, ChunkEncoding::kRaw, c.data, &sealed_id));
    sealed_bytes += sealed.size();
    sealed_chunks.push_back(InlineChunk{sealed_id, std::move(sealed)});
  }
  CONVERGE_ASSIGN_OR_RETURN(std::vector<FileVersion> sealed, SealAll(changes));
  if (sealed_bytes <= kMaxCommitChunkBytes) return CommitSealed(sealed, sealed_chunks);
  // Padding took the chunks past what a commit carries: uploaded first.
  size_t next = 0;
  CONVERGE_RETURN_IF_ERROR(inner_->PutChunks([&](ChunkUpload* out) -> absl::StatusOr<bool> {
    if (next == sealed_chunks.size()) return false;
    *out = ChunkUpload();
    out->sha256 = sealed_chunks[next].sha256;
    out->data = std::move(sealed_chunks[next].data);
    ++next;
    return true;
  }));
  return CommitSealed(sealed, {});
}

absl::Status EncryptingStoreClient::Pull(uint64_t since_seq, uint32_t max_commits,
                                         const std::function<absl::Status(const converge::Commit&)>& fn) {
  CONVERGE_ASSIGN_OR_RETURN(LogGuard * guard, Guard());
  // From the verified head when the engine's cursor is past it (it applied, then stopped before
  // the head was kept): those commits are checked again, not applied again.
  const uint64_t from = std::min(since_seq, guard->head().seq);
  // What other devices verified before this pull began, the store must show this one too.
  const uint64_t expected = guard->AnnouncedThrough();
  uint32_t delivered = 0;
  absl::Status pulled = inner_->Pull(from, max_commits, [&](const converge::Commit& c) -> absl::Status {
    ++delivered;
    CONVERGE_RETURN_IF_ERROR(guard->Check(c));
    if (c.seq <= since_seq) return absl::OkStatus();
    converge::Commit plain = c;
    plain.files.clear();
    plain.attestation.clear();
    for (const FileVersion& v : c.files) {
      absl::StatusOr<FileVersion> opened = Opened(v);
      if (opened.ok()) {
        plain.files.push_back(*std::move(opened));
        continue;
      }
      if (!absl::IsDataLoss(opened.status())) return opened.status();
      GetLogger("engine")->error("commit {}: a version is not applied: {}", c.seq, opened.status().message());
      absl::MutexLock lock(&mu_);
      if (unopened_.size() < kMaxBlockedReported) unopened_.emplace_back(c.seq, std::string(opened.status().message()));
    }
    return fn(plain);
  });
  if (IsLogCompacted(pulled)) {
    absl::MutexLock lock(&mu_);
    rooting_ = true;
  }
  // A plain namespace's engine re-syncs from a store restored from an older backup; here the log
  // is checked, and a store whose log ends below what this device verified rolled it back.
  if (IsStoreBehind(pulled)) return guard->RolledBack(pulled.message());
  if (pulled.ok() && (max_commits == 0 || delivered < max_commits)) return guard->CaughtUp(expected);
  return pulled;
}

size_t EncryptingStoreClient::CommitBytesOf(const FileVersion& v) {
  constexpr size_t kRecordOverhead = 64;  // version, epoch, nonce, tag (chunk_cipher.h SealRecord)
  size_t longest = 0;
  size_t bytes = CommitBytes(v) + crypto::EncryptedPathSize(v.path, &longest) + EncodeFileVersion(v).size() +
                 kRecordOverhead;
  if (std::optional<ConflictCopyName> copy = ParseConflictName(v.path); copy.has_value()) {
    bytes += crypto::EncryptedPathSize(copy->original_path, &longest);
  }
  return bytes;
}

absl::Status EncryptingStoreClient::Ack(uint64_t seq, const std::vector<std::string>& blocked) {
  // "path: why" would tell the store a name: it learns only how many, and which versions did not
  // open here.
  std::vector<std::string> opaque(blocked.size(), "a version could not be applied on this device");
  // The head is kept before the store learns the ack: the store compacts only what every device
  // acked, so the log after the kept head is still there when this device restarts.
  CONVERGE_ASSIGN_OR_RETURN(LogGuard * guard, Guard());
  CONVERGE_RETURN_IF_ERROR(guard->Persist());
  {
    absl::MutexLock lock(&mu_);
    for (auto it = unopened_.begin(); it != unopened_.end();) {
      if (it->first > seq) {
        ++it;
        continue;
      }
      if (opaque.size() < kMaxBlockedReported) opaque.push_back(it->second.substr(0, kMaxBlockedReportBytes));
      it = unopened_.erase(it);
    }
  }
  return inner_->Ack(seq, opaque);
}

absl::Status EncryptingStoreClient::Fetch(const std::vector<ChunkWant>& wants, const BaseReader& read_base,
                                          const Sink& sink) {
  CONVERGE_ASSIGN_OR_RETURN(std::shared_ptr<const Keys> keys, CurrentKeys());
  std::vector<ChunkWant> sealed_wants;
  sealed_wants.reserve(wants.size());
  absl::flat_hash_map<Digest, Digest> plain_base;  // sealed id -> the local plaintext's
  {
    absl::MutexLock lock(&mu_);
    for (const ChunkWant& w : wants) {
      const auto it = sealed_.find(w.sha256);
      if (it == sealed_.end()) {
        return absl::NotFoundError(absl::StrCat("no sealed id known for chunk ", DigestToHex(w.sha256)));
      }
      ChunkWant sealed{it->second.id, {}};
      for (const Digest& b : read_base == nullptr ? std::vector<Digest>() : w.bases) {
        const auto base = sealed_.find(b);
        if (base == sealed_.end() || unresealable_.contains(b)) break;
        sealed.bases.push_back(base->second.id);
        plain_base[base->second.id] = b;
      }
      if (sealed.bases.size() != w.bases.size()) sealed.bases.clear();
      sealed_wants.push_back(std::move(sealed));
    }
  }
  // A delta the store sends is against the sealed base: the local plaintext sealed again.
  BaseReader sealed_base = [&](const Digest& sealed_id) -> absl::StatusOr<std::string> {
    const auto it = plain_base.find(sealed_id);
    if (it == plain_base.end()) return absl::NotFoundError("no such base");
    CONVERGE_ASSIGN_OR_RETURN(std::string plain, read_base(it->second));
    absl::StatusOr<std::string> again = Reseal(*keys, sealed_id, plain);
    if (!again.ok()) {
      absl::MutexLock lock(&mu_);
      if (unresealable_.size() < kMaxRememberedChunks) unresealable_.insert(it->second);
    }
    return again;
  };
  size_t next = 0;
  return inner_->Fetch(sealed_wants, plain_base.empty() ? nullptr : sealed_base,
                       [&](const Digest&, std::string sealed) -> absl::Status {
    if (next >= wants.size()) return absl::DataLossError("the store sent more chunks than asked for");
    const Digest& want = wants[next++].sha256;
    absl::StatusOr<std::string> plain = crypto::OpenChunk(keys->ring, sealed, kMaxChunkBytes, DecompressFrame);
    if (absl::IsNotFound(plain.status()) && refresh_ && refresh_()) {
      absl::StatusOr<std::shared_ptr<const Keys>> newer = CurrentKeys();
      if (!newer.ok()) return newer.status();
      keys = *std::move(newer);
      plain = crypto::OpenChunk(keys->ring, sealed, kMaxChunkBytes, DecompressFrame);
    }
    if (!plain.ok()) return plain.status();
    if (HashOf(*plain) != want) {
      return absl::DataLossError(absl::StrCat("chunk ", DigestToHex(want), " opened to other bytes"));
    }
    return sink(want, *std::move(plain));
  });
}

}  // namespace converge::engine
