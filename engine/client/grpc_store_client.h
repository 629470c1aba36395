// GrpcStoreClient: StoreClient over converge-store's gRPC API (protos/converge/store/v1).
//
// Thread-safe (gRPC stubs are).
#ifndef CONVERGE_ENGINE_CLIENT_GRPC_STORE_CLIENT_H_
#define CONVERGE_ENGINE_CLIENT_GRPC_STORE_CLIENT_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "converge/store/v1/store.grpc.pb.h"
#include "engine/sync/store_client.h"

namespace converge::engine {

class GrpcStoreClient : public StoreClient {
 public:
  GrpcStoreClient(std::shared_ptr<grpc::Channel> channel, std::string namespace_id,
                  std::string device_id);

  // set_redirect: asked for the namespace's store again when the store answers that the namespace
  // moved to another shard (IsNamespaceMoved); the calls after it go to the channel it gives, and
  // the call that met the move fails with Unavailable (retry). Without it the moved error is
  // returned as it came (a synced folder's engine restarts on it). Set before use.
  using Redirect = std::function<absl::StatusOr<std::shared_ptr<grpc::Channel>>()>;
  void set_redirect(Redirect redirect) { redirect_ = std::move(redirect); }

  // set_sealed: this device syncs the namespace sealed (beneath an EncryptingStoreClient); said
  // with every Pull and listing (store.proto PullRequest.sealed). Set before use.
  void set_sealed(bool sealed) { sealed_ = sealed; }

  absl::StatusOr<std::vector<Digest>> FindMissing(const std::vector<Digest>& digests) override;
  absl::StatusOr<absl::flat_hash_map<std::string, Signature>> Signatures(
      const std::vector<std::vector<Digest>>& bases) override;
  absl::Status PutChunks(const std::function<absl::StatusOr<bool>(ChunkUpload*)>& next) override;
  absl::StatusOr<uint64_t> Commit(const std::vector<FileVersion>& changes) override;
  absl::StatusOr<uint64_t> CommitWithChunks(const std::vector<FileVersion>& changes,
                                            const std::vector<InlineChunk>& chunks) override;
  absl::StatusOr<uint64_t> CommitSigned(const std::vector<FileVersion>& changes, const std::vector<InlineChunk>& chunks,
                                        const std::string& attestation) override;
  absl::Status Pull(uint64_t since_seq, uint32_t max_commits,
                    const std::function<absl::Status(const converge::Commit&)>& fn) override;
  absl::Status Ack(uint64_t seq, const std::vector<std::string>& blocked) override;
  absl::StatusOr<uint64_t> ListFiles(const std::function<void(const FileVersion&)>& fn, int64_t at_unix_ms) override;
  absl::StatusOr<Table> ListTable(const std::function<void(const FileVersion&)>& fn) override;
  absl::StatusOr<std::vector<HistoryVersion>> ListVersions(const std::string& path, uint32_t limit) override;
  absl::StatusOr<std::vector<ConflictRecord>> ListConflicts(bool include_resolved) override;
  absl::StatusOr<ConflictRecord> ResolveConflict(const std::string& copy_path) override;
  using ChunkSource::Fetch;
  absl::Status Fetch(const std::vector<ChunkWant>& wants, const BaseReader& read_base, const Sink& sink) override;

 private:
  // List: ListFiles (at a time when at_unix_ms >= 0) and the head it came with.
  absl::StatusOr<Table> List(const std::function<void(const FileVersion&)>& fn, int64_t at_unix_ms);
  // Chunks of small files a Pull sent along with their commits (the store's budget: 1 MiB a
  // commit, applied before the next is read), checked against their digests; Fetch serves them
  // from memory and asks the store only for the rest (a commit whose small files come to more
  // than the store sends along, as sealed ones may, costs no chunk twice). A pull drops what
  // the previous one sent and nobody asked for.
  static constexpr size_t kSentAlongBytes = 2 << 20;
  void KeepSentAlong(const store::v1::PullResponse& resp);
  // TakeSentAlong: for each want, its bytes if a Pull sent them along (taken out), else none.
  std::vector<std::optional<std::string>> TakeSentAlong(const std::vector<ChunkWant>& wants);
  absl::Mutex sent_along_mu_;
  absl::flat_hash_map<Digest, std::string> sent_along_ ABSL_GUARDED_BY(sent_along_mu_);
  size_t sent_along_bytes_ ABSL_GUARDED_BY(sent_along_mu_) = 0;

  void Prepare(grpc::ClientContext* ctx, absl::Duration deadline) const;
  // The store's stub now; Checked converts a call's status and follows a move (set_redirect).
  store::v1::StoreService::Stub* stub();
  absl::Status Checked(const grpc::Status& status, const char* what);

  absl::Mutex stub_mu_;
  std::unique_ptr<store::v1::StoreService::Stub> stub_ ABSL_GUARDED_BY(stub_mu_);
  // Stubs a move replaced: calls in flight may still use them.
  std::vector<std::unique_ptr<store::v1::StoreService::Stub>> retired_ ABSL_GUARDED_BY(stub_mu_);
  Redirect redirect_;
  const std::string namespace_id_;
  const std::string device_id_;
  bool sealed_ = false;
};

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_CLIENT_GRPC_STORE_CLIENT_H_
