// StoreService: the gRPC face of the store. Each handler validates and converts the request,
// calls one method of ChunkStore or CommitLog, maps the status and fills the response.
#ifndef CONVERGE_SERVICES_STORE_STORE_SERVICE_H_
#define CONVERGE_SERVICES_STORE_STORE_SERVICE_H_

#include "common/rpc/call_limiter.h"
#include "common/security/auth.h"
#include "converge/store/v1/store.grpc.pb.h"
#include "services/store/chunk_store.h"
#include "services/store/chunk_transfer.h"
#include "services/store/commit_log.h"
#include "services/store/namespace_transfer.h"
#include "services/store/publisher.h"
#include "services/store/registry_area.h"

namespace converge::store {

// Limits on one call.
inline constexpr int kMaxDigestsPerCall = 100000;
inline constexpr int kMaxChunksPerGetCall = 4096;
// What one device may do: calls in flight (an engine has at most three: each holds a server
// thread) and calls started a second (an engine committing small files one by one makes a few
// hundred).
inline constexpr CallLimiter::Limits kDefaultDeviceLimits = {8, 2000, 4000};

// How long old versions and deletions are kept by default.
inline constexpr absl::Duration kDefaultHistoryRetention = absl::Hours(24 * 30);

class StoreService final : public v1::StoreService::Service {
 public:
  // `auth` says who calls: devices (by their token) for the data calls, services (mutual TLS or
  // the service token) for RegisterNamespace, SetQuota, stats and held deletes.
  // A device's calls are limited by `per_device` (in flight and per second); more are refused
  // with RESOURCE_EXHAUSTED.
  StoreService(ChunkStore* chunks, CommitLog* log, Publisher* publisher, AuthOptions auth,
               CallLimiter::Limits per_device = kDefaultDeviceLimits)
      : chunks_(chunks), log_(log), publisher_(publisher), auth_(std::move(auth)), limiter_(per_device),
        transfer_(chunks, &limiter_) {}

  grpc::Status FindMissingChunks(grpc::ServerContext* ctx, const v1::FindMissingChunksRequest* req,
                                 v1::FindMissingChunksResponse* resp) override;
  grpc::Status PutChunks(grpc::ServerContext* ctx, grpc::ServerReader<v1::PutChunksRequest>* reader,
                         v1::PutChunksResponse* resp) override;
  grpc::Status Commit(grpc::ServerContext* ctx, const v1::CommitRequest* req,
                      v1::CommitResponse* resp) override;
  grpc::Status Pull(grpc::ServerContext* ctx, const v1::PullRequest* req,
                    grpc::ServerWriter<v1::PullResponse>* writer) override;
  grpc::Status GetChunks(grpc::ServerContext* ctx, const v1::GetChunksRequest* req,
                         grpc::ServerWriter<v1::GetChunksResponse>* writer) override;
  grpc::Status Ack(grpc::ServerContext* ctx, const v1::AckRequest* req,
                   v1::AckResponse* resp) override;
  grpc::Status ListFiles(grpc::ServerContext* ctx, const v1::ListFilesRequest* req,
                         grpc::ServerWriter<v1::ListFilesResponse>* writer) override;
  grpc::Status RegisterNamespace(grpc::ServerContext* ctx, const v1::RegisterNamespaceRequest* req,
                                 v1::RegisterNamespaceResponse* resp) override;
  grpc::Status SetQuota(grpc::ServerContext* ctx, const v1::SetQuotaRequest* req,
                        v1::SetQuotaResponse* resp) override;
  grpc::Status GetChunkSignatures(grpc::ServerContext* ctx, const v1::GetChunkSignaturesRequest* req,
                                  v1::GetChunkSignaturesResponse* resp) override;
  grpc::Status ListHeldDeletes(grpc::ServerContext* ctx, const v1::ListHeldDeletesRequest* req,
                               v1::ListHeldDeletesResponse* resp) override;
  grpc::Status ResolveHeldDelete(grpc::ServerContext* ctx, const v1::ResolveHeldDeleteRequest* req,
                                 v1::HeldDelete* resp) override;
  grpc::Status GetNamespaceStats(grpc::ServerContext* ctx, const v1::GetNamespaceStatsRequest* req,
                                 v1::GetNamespaceStatsResponse* resp) override;
  grpc::Status ListVersions(grpc::ServerContext* ctx, const v1::ListVersionsRequest* req,
                            v1::ListVersionsResponse* resp) override;
  grpc::Status ListFilesAt(grpc::ServerContext* ctx, const v1::ListFilesAtRequest* req,
                           grpc::ServerWriter<v1::ListFilesResponse>* writer) override;
  grpc::Status RestoreVersion(grpc::ServerContext* ctx, const v1::RestoreVersionRequest* req,
                              v1::RestoreVersionResponse* resp) override;
  grpc::Status ReadVersion(grpc::ServerContext* ctx, const v1::ReadVersionRequest* req,
                           grpc::ServerWriter<v1::ReadVersionResponse>* writer) override;
  grpc::Status KeepConflictSide(grpc::ServerContext* ctx, const v1::KeepConflictSideRequest* req,
                                v1::RestoreVersionResponse* resp) override;
  grpc::Status ListConflicts(grpc::ServerContext* ctx, const v1::ListConflictsRequest* req,
                             v1::ListConflictsResponse* resp) override;
  grpc::Status ResolveConflict(grpc::ServerContext* ctx, const v1::ResolveConflictRequest* req,
                               v1::Conflict* resp) override;
  grpc::Status Compact(grpc::ServerContext* ctx, const v1::CompactRequest* req, v1::CompactResponse* resp) override;
  grpc::Status EvictDevice(grpc::ServerContext* ctx, const v1::EvictDeviceRequest* req,
                           v1::EvictDeviceResponse* resp) override;
  // The history retention Compact applies, and how long an unreferenced chunk that was just
  // uploaded or asked about is kept (a commit may be about to reference it).
  void set_compaction(absl::Duration retention, absl::Duration chunk_grace) {
    retention_ = retention;
    chunk_grace_ = chunk_grace;
  }
  grpc::Status RegistryRead(grpc::ServerContext* ctx, const v1::RegistryReadRequest* req,
                            v1::RegistryReadResponse* resp) override;
  grpc::Status RegistryWrite(grpc::ServerContext* ctx, const v1::RegistryWriteRequest* req,
                             v1::RegistryWriteResponse* resp) override;
  grpc::Status RegistryLock(grpc::ServerContext* ctx, const v1::RegistryLockRequest* req,
                            v1::RegistryLockResponse* resp) override;
  // Where management's shared registry lives (null: the Registry RPCs are UNIMPLEMENTED). Not owned.
  void set_registry(RegistryArea* registry) { registry_ = registry; }

  // Online moves (store_service_moves.cc; service only). Without a transfer they are UNIMPLEMENTED.
  grpc::Status SetNamespaceGate(grpc::ServerContext* ctx, const v1::SetNamespaceGateRequest* req,
                                v1::SetNamespaceGateResponse* resp) override;
  grpc::Status ExportNamespace(grpc::ServerContext* ctx, const v1::ExportNamespaceRequest* req,
                               grpc::ServerWriter<v1::NamespaceRecords>* writer) override;
  grpc::Status ImportNamespace(grpc::ServerContext* ctx, grpc::ServerReader<v1::NamespaceRecords>* reader,
                               v1::ImportNamespaceResponse* resp) override;
  void set_transfer(NamespaceTransfer* transfer) { namespace_transfer_ = transfer; }

 private:
  // Caller: the device a call acts for (from its token) and the owner of the namespace it may
  // use (whose chunks it sees).
  struct Caller {
    std::string device;
    std::string owner;
    CallLimiter::Slot slot;  // the device's place among its calls in flight
  };
  // Authorize: Unauthenticated without a valid device token, PermissionDenied if the device is
  // not a member of `ns` (or the request names another device), NotFound for an unknown `ns`.
  absl::StatusOr<Caller> Authorize(const grpc::ServerContext& ctx, const std::string& ns,
                                   const std::string& request_device_id);
  // StoreInlineChunks stores the chunks a Commit carries (ChunkTransfer::StoreInline).
  absl::Status StoreInlineChunks(const Caller& caller, const v1::CommitRequest* req);
  // MemberOrOperator: a service caller (an operator through management) is "operator";
  // otherwise the call must come from a member device (Authorize), named in the result.
  absl::StatusOr<std::string> MemberOrOperator(const grpc::ServerContext& ctx, const std::string& ns,
                                               const std::string& request_device_id);

  ChunkStore* const chunks_;
  CommitLog* const log_;
  Publisher* const publisher_;
  Authenticator auth_;
  CallLimiter limiter_;
  ChunkTransfer transfer_;
  RegistryArea* registry_ = nullptr;
  NamespaceTransfer* namespace_transfer_ = nullptr;
  absl::Duration retention_ = kDefaultHistoryRetention;
  absl::Duration chunk_grace_ = absl::Hours(1);
};

}  // namespace converge::store

#endif  // CONVERGE_SERVICES_STORE_STORE_SERVICE_H_
