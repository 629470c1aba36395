// StoreClient: the engine's view of converge-store, in domain types. GrpcStoreClient is the real
// one; tests may substitute their own.
//
// Thread-safe (gRPC stubs are).
#ifndef CONVERGE_ENGINE_STORE_CLIENT_H_
#define CONVERGE_ENGINE_STORE_CLIENT_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/container/flat_hash_map.h"
#include "common/chunk_codec.h"
#include "common/rsync_delta.h"
#include "common/model.h"
#include "converge/store/v1/store.grpc.pb.h"
#include "engine/applier.h"

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
  bool delta = false;         // an rsync delta against `bases`' bytes one after another
  std::vector<Digest> bases;  // 1 to kMaxDeltaBases
  uint32_t block_bytes = 0;
};

// One kept version of a path (the store's history).
struct VersionInfo {
  FileVersion version;
  int64_t committed_at_unix_ms = 0;
};

// A conflict copy the store recorded.
struct ConflictInfo {
  std::string copy_path;
  std::string original_path;
  std::string device;
  uint64_t seq = 0;
  int64_t created_at_unix_ms = 0;
  bool resolved = false;
  int64_t resolved_at_unix_ms = 0;
  std::string resolved_by;
};

class StoreClient : public ChunkSource {
 public:
  // ListFiles calls fn with every entry of the namespace's file table (tombstones too) and
  // returns the head seq it was read at (the table may be newer). `at_unix_ms` >= 0: the state
  // as of that time instead, from the history.
  virtual absl::StatusOr<uint64_t> ListFiles(const std::function<void(const FileVersion&)>& fn,
                                             int64_t at_unix_ms = -1) {
    return absl::UnimplementedError("ListFiles");
  }
  // History and conflicts (the engine's CLI).
  virtual absl::StatusOr<std::vector<VersionInfo>> ListVersions(const std::string& path, uint32_t limit) {
    return absl::UnimplementedError("ListVersions");
  }
  virtual absl::StatusOr<std::vector<ConflictInfo>> ListConflicts(bool include_resolved) {
    return absl::UnimplementedError("ListConflicts");
  }
  virtual absl::StatusOr<ConflictInfo> ResolveConflict(const std::string& copy_path) {
    return absl::UnimplementedError("ResolveConflict");
  }
  virtual absl::StatusOr<std::vector<Digest>> FindMissing(const std::vector<Digest>& digests) = 0;
  // Signatures returns the rsync signatures of the bases (each one chunk, or up to
  // kMaxDeltaBases whose bytes follow one another) whose chunks the store holds, by SequenceKey.
  virtual absl::StatusOr<absl::flat_hash_map<std::string, Signature>> Signatures(
      const std::vector<std::vector<Digest>>& bases) = 0;
  // PutChunks uploads chunks produced by `next` until it returns false.
  virtual absl::Status PutChunks(const std::function<absl::StatusOr<bool>(ChunkUpload*)>& next) = 0;
  // Commit returns the new seq; Aborted names the stale paths.
  virtual absl::StatusOr<uint64_t> Commit(const std::vector<FileVersion>& changes) = 0;
  // Pull calls fn for each commit after since_seq (at most max_commits).
  virtual absl::Status Pull(uint64_t since_seq, uint32_t max_commits,
                            const std::function<absl::Status(const converge::Commit&)>& fn) = 0;
  // Ack records that everything up to `seq` is applied here, but for the `blocked` versions
  // ("path: why", shown to operators).
  virtual absl::Status Ack(uint64_t seq, const std::vector<std::string>& blocked) = 0;
};

class GrpcStoreClient : public StoreClient {
 public:
  GrpcStoreClient(std::shared_ptr<grpc::Channel> channel, std::string namespace_id,
                  std::string device_id);

  absl::StatusOr<std::vector<Digest>> FindMissing(const std::vector<Digest>& digests) override;
  absl::StatusOr<absl::flat_hash_map<std::string, Signature>> Signatures(
      const std::vector<std::vector<Digest>>& bases) override;
  absl::Status PutChunks(const std::function<absl::StatusOr<bool>(ChunkUpload*)>& next) override;
  absl::StatusOr<uint64_t> Commit(const std::vector<FileVersion>& changes) override;
  absl::Status Pull(uint64_t since_seq, uint32_t max_commits,
                    const std::function<absl::Status(const converge::Commit&)>& fn) override;
  absl::Status Ack(uint64_t seq, const std::vector<std::string>& blocked) override;
  absl::StatusOr<uint64_t> ListFiles(const std::function<void(const FileVersion&)>& fn, int64_t at_unix_ms) override;
  absl::StatusOr<std::vector<VersionInfo>> ListVersions(const std::string& path, uint32_t limit) override;
  absl::StatusOr<std::vector<ConflictInfo>> ListConflicts(bool include_resolved) override;
  absl::StatusOr<ConflictInfo> ResolveConflict(const std::string& copy_path) override;
  using ChunkSource::Fetch;
  absl::Status Fetch(const std::vector<ChunkWant>& wants, const BaseReader& read_base, const Sink& sink) override;

 private:
  void Prepare(grpc::ClientContext* ctx, absl::Duration deadline) const;

  std::unique_ptr<store::v1::StoreService::Stub> stub_;
  const std::string namespace_id_;
  const std::string device_id_;
};

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_STORE_CLIENT_H_
