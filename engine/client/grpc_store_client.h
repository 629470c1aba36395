// GrpcStoreClient: StoreClient over converge-store's gRPC API (protos/converge/store/v1).
//
// Thread-safe (gRPC stubs are).
#ifndef CONVERGE_ENGINE_CLIENT_GRPC_STORE_CLIENT_H_
#define CONVERGE_ENGINE_CLIENT_GRPC_STORE_CLIENT_H_

#include <memory>
#include <string>
#include <vector>

#include "converge/store/v1/store.grpc.pb.h"
#include "engine/sync/store_client.h"

namespace converge::engine {

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
  absl::StatusOr<std::vector<HistoryVersion>> ListVersions(const std::string& path, uint32_t limit) override;
  absl::StatusOr<std::vector<ConflictRecord>> ListConflicts(bool include_resolved) override;
  absl::StatusOr<ConflictRecord> ResolveConflict(const std::string& copy_path) override;
  using ChunkSource::Fetch;
  absl::Status Fetch(const std::vector<ChunkWant>& wants, const BaseReader& read_base, const Sink& sink) override;

 private:
  void Prepare(grpc::ClientContext* ctx, absl::Duration deadline) const;

  std::unique_ptr<store::v1::StoreService::Stub> stub_;
  const std::string namespace_id_;
  const std::string device_id_;
};

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_CLIENT_GRPC_STORE_CLIENT_H_
