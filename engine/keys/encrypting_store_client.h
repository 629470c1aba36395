// EncryptingStoreClient: a StoreClient that keeps an end-to-end encrypted namespace encrypted. It
// sits between the sync engine, which sees plaintext paths, versions and chunks, and the store's
// client, which carries only what the store may know (docs/security.md):
//
//   path        every component encrypted (name_cipher.h)
//   chunks      sealed (chunk_cipher.h); the store's id of a chunk is the SHA-256 of its sealed
//               bytes, which the store checks as for any chunk, and its length theirs
//   version     kind (a directory or not), deleted, file_id, base_seq, the sealed chunk list and
//               its total; mode 0600 and mtime 0; for a conflict copy, the encrypted path of its
//               original (the store keeps conflict records); the real version (path, size, mtime, mode,
//               kind, chunk list, symlink target, attributes) is its sealed record, bound to the
//               encrypted path
//
// A chunk's plaintext id (the SHA-256 the engine knows) maps to its sealed id once this client
// sealed it or saw both in a pulled version; a chunk whose sealed id is not known is reported
// missing, so the engine uploads it again (it seals to the same bytes: the store keeps one copy).
// At most kMaxRememberedChunks mappings are kept (about 100 MiB); past that they are forgotten
// together, which costs uploads again, never correctness. A commit that references a chunk not
// known here (the engine does not upload its files' previous chunks: the store has them) makes
// the client relearn the ids from the store's table, once per commit.
// A pulled version that does not open (a member that wrote garbage, a store that altered it) is
// not applied: it is logged and reported to the store as blocked, and the rest of the commit
// applies, so one bad version cannot stop a device.
// Every commit goes out signed and every pulled commit is checked before anything of it is
// opened (LogGuard): a store that drops, replays, reorders, alters, invents or forks commits is
// caught, and nothing of them is applied. A device that starts from the store's file table
// (compacted log) starts its chain at the head the store lists with it.
// Chunks are sealed in frames (chunk_cipher.h), each compressed when that pays: an edited chunk
// seals to the frames it had but around the edit, so it still travels as a delta both ways, of
// its sealed bytes. Up: the store signs the sealed bases (Signatures), and PutChunks sends the
// sealed chunk as an rsync delta against them. Down: Fetch offers the sealed ids of the local
// bases the engine names, and rebuilds a delta the store sends against them by sealing the
// local plaintext again (sealing is deterministic; a base that does not seal back to its id is
// not offered again). Until it has the
// namespace's keyring (SetKeyring) and its log guard (SetLogGuard) every call fails with
// FailedPrecondition, saying how to get them.
//
// Thread-safe.
#ifndef CONVERGE_ENGINE_KEYS_ENCRYPTING_STORE_CLIENT_H_
#define CONVERGE_ENGINE_KEYS_ENCRYPTING_STORE_CLIENT_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "common/crypto/keyring.h"
#include "engine/keys/log_guard.h"
#include "engine/sync/store_client.h"

namespace converge::engine {

// FitsEncryptedStore: whether `path`, encrypted, is a path the store holds (kMaxSealedNameBytes
// a name, kMaxSealedPathBytes in all: every valid plain path fits, a 255-byte name too). Others
// are not synced (EngineOptions::syncable).
bool FitsEncryptedStore(const std::string& path);

inline constexpr size_t kMaxRememberedChunks = 1 << 20;
// Signatures of sealed bases kept between Signatures and PutChunks (about 12 KiB each).
inline constexpr size_t kMaxSignedBases = 1024;

class EncryptingStoreClient : public StoreClient {
 public:
  // `inner` must outlive this. Without `ring`, nothing syncs until SetKeyring.
  EncryptingStoreClient(StoreClient* inner, std::optional<crypto::Keyring> ring);

  // SetKeyring: the namespace's keyring as this device now holds it (first, or a newer epoch).
  void SetKeyring(crypto::Keyring ring);
  // SetLogGuard: this device's check of the log; `guard` must outlive this.
  void SetLogGuard(LogGuard* guard);
  // set_refresh: asked when a version or chunk is sealed under an epoch this device does not hold
  // yet (a rotation elsewhere); true if it got a newer keyring (through SetKeyring), and the
  // opening is tried again. Set before use.
  void set_refresh(std::function<bool()> refresh) { refresh_ = std::move(refresh); }

  absl::StatusOr<uint64_t> ListFiles(const std::function<void(const FileVersion&)>& fn,
                                     int64_t at_unix_ms = -1) override;
  absl::StatusOr<std::vector<HistoryVersion>> ListVersions(const std::string& path, uint32_t limit) override;
  absl::StatusOr<std::vector<ConflictRecord>> ListConflicts(bool include_resolved) override;
  absl::StatusOr<ConflictRecord> ResolveConflict(const std::string& copy_path) override;
  absl::StatusOr<std::vector<Digest>> FindMissing(const std::vector<Digest>& digests) override;
  absl::StatusOr<absl::flat_hash_map<std::string, Signature>> Signatures(
      const std::vector<std::vector<Digest>>& bases) override;
  absl::Status PutChunks(const std::function<absl::StatusOr<bool>(ChunkUpload*)>& next) override;
  absl::StatusOr<uint64_t> Commit(const std::vector<FileVersion>& changes) override;
  absl::StatusOr<uint64_t> CommitWithChunks(const std::vector<FileVersion>& changes,
                                            const std::vector<InlineChunk>& chunks) override;
  absl::Status Pull(uint64_t since_seq, uint32_t max_commits,
                    const std::function<absl::Status(const converge::Commit&)>& fn) override;
  absl::Status Ack(uint64_t seq, const std::vector<std::string>& blocked) override;
  // The sealed version's: its encrypted path, its sealed record (the whole plain version), its
  // sealed chunk list, a conflict copy's original's encrypted path (at most; never less).
  size_t CommitBytesOf(const FileVersion& v) override;
  using ChunkSource::Fetch;
  absl::Status Fetch(const std::vector<ChunkWant>& wants, const BaseReader& read_base, const Sink& sink) override;

  // Sealed: what the store holds for `plain`'s version (for tests and the operator's view).
  absl::StatusOr<FileVersion> Sealed(const FileVersion& plain);
  // Opened: the version a sealed one stands for; DataLoss if it does not open or disagrees with
  // what the store says of it.
  absl::StatusOr<FileVersion> Opened(const FileVersion& sealed);

 private:
  struct SealedChunk {
    Digest id;
    uint32_t length = 0;
  };
  struct Keys {
    crypto::Keyring ring;
    crypto::NameKeys names;
  };
  // A base the store signed: its sealed chunks and the signature of their sealed bytes.
  struct SignedBase {
    std::vector<Digest> sealed;
    Signature signature;
  };
  // CurrentKeys: FailedPrecondition while this device has no keyring.
  absl::StatusOr<std::shared_ptr<const Keys>> CurrentKeys() const;
  // Seal seals a chunk's raw bytes and remembers its sealed id (also in *sealed_id).
  absl::StatusOr<std::string> Seal(const Digest& plain_id, ChunkEncoding encoding, std::string data,
                                   Digest* sealed_id);
  absl::StatusOr<std::string> EncryptPath(const std::string& path) const;
  // Reseal: a base's plaintext sealed again as the store holds it (`sealed_id`), under the
  // epoch it was sealed with; DataLoss if none of the last few seals it to that id.
  absl::StatusOr<std::string> Reseal(const Keys& keys, const Digest& sealed_id, const std::string& plain) const;
  // SealedUpload makes `plain`'s chunk what PutChunks sends: sealed, as a delta against the
  // sealed bases the store signed for the chunks it is like, when that is much smaller.
  absl::Status SealedUpload(ChunkUpload plain, ChunkUpload* out);
  absl::StatusOr<LogGuard*> Guard() const;
  // SealAll seals a commit's versions; a chunk whose sealed id is not known makes it relearn
  // them from the store's table once (RelearnFromTable) before it gives up.
  absl::StatusOr<std::vector<FileVersion>> SealAll(const std::vector<FileVersion>& changes);
  absl::Status RelearnFromTable();
  // CommitSealed signs and commits sealed versions (with `chunks`, sealed, in the call).
  absl::StatusOr<uint64_t> CommitSealed(const std::vector<FileVersion>& sealed, const std::vector<InlineChunk>& chunks);
  absl::Status DecryptPaths(ConflictRecord* r) const;

  StoreClient* const inner_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const Keys> keys_ ABSL_GUARDED_BY(mu_);
  LogGuard* guard_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::function<bool()> refresh_;
  // The store compacted its log past this device's head: the next listing of its table roots
  // the chain (LogGuard::Table).
  bool rooting_ ABSL_GUARDED_BY(mu_) = false;
  void Remember(const Digest& plain, SealedChunk sealed) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::flat_hash_map<Digest, SealedChunk> sealed_ ABSL_GUARDED_BY(mu_);  // plaintext id -> sealed
  // Signatures of sealed bases, by SequenceKey of the plaintext bases (at most kMaxSignedBases).
  absl::flat_hash_map<std::string, SignedBase> signed_ ABSL_GUARDED_BY(mu_);
  // Plaintext bases that did not seal back to the id the store knows (not offered again).
  absl::flat_hash_set<Digest> unresealable_ ABSL_GUARDED_BY(mu_);
  // Versions pulled that did not open: (seq, why), reported with the Ack that covers them.
  std::vector<std::pair<uint64_t, std::string>> unopened_ ABSL_GUARDED_BY(mu_);
};

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_KEYS_ENCRYPTING_STORE_CLIENT_H_
