// StoreClient: the engine's view of converge-store, in domain types and free of gRPC. The
// daemon uses GrpcStoreClient (engine/client); tests use the simulation's SimStoreClient.
//
// Implementations are thread-safe.
#ifndef CONVERGE_ENGINE_SYNC_STORE_CLIENT_H_
#define CONVERGE_ENGINE_SYNC_STORE_CLIENT_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/codec/chunk_codec.h"
#include "common/codec/rsync_delta.h"
#include "common/model/model.h"
#include "common/model/namespace_state.h"
#include "engine/sync/applier.h"

namespace converge::engine {

// SequenceKey names a delta's base (chunks whose bytes follow one another) in the answer of
// StoreClient::Signatures: their digests' bytes, one after another.
inline std::string SequenceKey(const std::vector<Digest>& bases) {
  std::string key;
  for (const Digest& d : bases) key += DigestToBytes(d);
  return key;
}

struct ChunkUpload {
  Digest sha256;
  std::string data;  // in `encoding`; for a delta, the zstd-compressed rsync delta
  ChunkEncoding encoding = ChunkEncoding::kRaw;
  // Raw bytes the transport may compress with the call's earlier chunks as context
  // (GrpcStoreClient: CHUNK_ENCODING_ZSTD_STREAM, when StreamEncoder::Worth says so).
  bool in_stream = false;
  bool delta = false;  // an rsync delta against `bases`' bytes one after another
  // 1 to kMaxDeltaBases: for a delta, what it is against; for a chunk sent whole, the chunks of
  // the file's previous version it overlaps (a client that seals chunks makes its own delta).
  std::vector<Digest> bases;
  uint32_t block_bytes = 0;
};

// A raw chunk a commit carries itself (StoreClient::CommitWithChunks).
struct InlineChunk {
  Digest sha256;
  std::string data;
};
// What a commit may carry: a change this small (raw bytes, and at most kMaxCommitChunks chunks)
// goes to the store in one round trip.
inline constexpr uint64_t kMaxInlineChunkBytes = kMaxCommitChunkBytes / 2;

class StoreClient : public ChunkSource {
 public:
  // ListFiles calls fn with every entry of the namespace's file table (tombstones too) and
  // returns the head seq it was read at (the table may be newer). `at_unix_ms` >= 0: the state
  // as of that time instead, from the history.
  virtual absl::StatusOr<uint64_t> ListFiles(const std::function<void(const FileVersion&)>& fn,
                                             int64_t at_unix_ms = -1) = 0;
  // History and conflicts (the engine's CLI).
  virtual absl::StatusOr<std::vector<HistoryVersion>> ListVersions(const std::string& path, uint32_t limit) = 0;
  virtual absl::StatusOr<std::vector<ConflictRecord>> ListConflicts(bool include_resolved) = 0;
  virtual absl::StatusOr<ConflictRecord> ResolveConflict(const std::string& copy_path) = 0;
  virtual absl::StatusOr<std::vector<Digest>> FindMissing(const std::vector<Digest>& digests) = 0;
  // Signatures returns the rsync signatures of the bases (each one chunk, or up to
  // kMaxDeltaBases whose bytes follow one another) whose chunks the store holds, by SequenceKey.
  virtual absl::StatusOr<absl::flat_hash_map<std::string, Signature>> Signatures(
      const std::vector<std::vector<Digest>>& bases) = 0;
  // PutChunks uploads chunks produced by `next` until it returns false.
  virtual absl::Status PutChunks(const std::function<absl::StatusOr<bool>(ChunkUpload*)>& next) = 0;
  // Commit returns the new seq; Aborted names the stale paths.
  virtual absl::StatusOr<uint64_t> Commit(const std::vector<FileVersion>& changes) = 0;
  // CommitWithChunks stores `chunks` (raw, at most kMaxInlineChunkBytes) and then commits, as
  // PutChunks followed by Commit do; a transport that can carries both in one call.
  virtual absl::StatusOr<uint64_t> CommitWithChunks(const std::vector<FileVersion>& changes,
                                                    const std::vector<InlineChunk>& chunks) {
    size_t next = 0;
    absl::Status put = PutChunks([&](ChunkUpload* out) -> absl::StatusOr<bool> {
      if (next == chunks.size()) return false;
      out->sha256 = chunks[next].sha256;
      out->data = chunks[next].data;
      out->encoding = ChunkEncoding::kRaw;
      ++next;
      return true;
    });
    if (!put.ok()) return put;
    return Commit(changes);
  }
  // CommitSigned is CommitWithChunks with the commit's attestation (end-to-end encrypted
  // namespaces: engine/keys/log_guard.h). A transport that carries none answers Unimplemented.
  virtual absl::StatusOr<uint64_t> CommitSigned(const std::vector<FileVersion>& changes,
                                                const std::vector<InlineChunk>& chunks,
                                                const std::string& attestation) {
    return absl::UnimplementedError("this store client carries no signed commits");
  }
  // ListTable is ListFiles of the current table, with the chain head the store gives at its seq
  // (end-to-end encrypted namespaces; zero where the transport carries none).
  struct Table {
    uint64_t seq = 0;
    Digest chain{};
  };
  virtual absl::StatusOr<Table> ListTable(const std::function<void(const FileVersion&)>& fn) {
    absl::StatusOr<uint64_t> seq = ListFiles(fn);
    if (!seq.ok()) return seq.status();
    return Table{*seq, {}};
  }
  // CommitBytesOf: what `v` counts towards kMaxCommitBytes once this client sends it (CommitBytes;
  // a client that seals versions sends larger ones). The engine splits its commits by it.
  virtual size_t CommitBytesOf(const FileVersion& v) { return CommitBytes(v); }
  // Pull calls fn for each commit after since_seq (at most max_commits).
  virtual absl::Status Pull(uint64_t since_seq, uint32_t max_commits,
                            const std::function<absl::Status(const converge::Commit&)>& fn) = 0;
  // Ack records that everything up to `seq` is applied here, but for the `blocked` versions
  // ("path: why", shown to operators).
  virtual absl::Status Ack(uint64_t seq, const std::vector<std::string>& blocked) = 0;
};


}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_SYNC_STORE_CLIENT_H_
