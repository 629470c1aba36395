// ControlService: the engine's local control API (protos/converge/engine/v1/control.proto) over
// FolderHistory. Served on a Unix socket in the folder's state directory: only the folder's
// owner can reach it.
#ifndef CONVERGE_ENGINE_CONTROL_CONTROL_SERVICE_H_
#define CONVERGE_ENGINE_CONTROL_CONTROL_SERVICE_H_

#include "converge/engine/v1/control.grpc.pb.h"
#include "engine/sync/history.h"

namespace converge::engine {

class ControlService final : public v1::EngineControl::Service {
 public:
  explicit ControlService(FolderHistory* history) : history_(history) {}

  grpc::Status ListVersions(grpc::ServerContext* ctx, const v1::ListVersionsRequest* req,
                            v1::ListVersionsResponse* resp) override;
  grpc::Status Restore(grpc::ServerContext* ctx, const v1::RestoreRequest* req, v1::RestoreResponse* resp) override;
  grpc::Status ListConflicts(grpc::ServerContext* ctx, const v1::ListConflictsRequest* req,
                             store::v1::ListConflictsResponse* resp) override;
  grpc::Status ResolveConflict(grpc::ServerContext* ctx, const v1::ResolveConflictRequest* req,
                               store::v1::Conflict* resp) override;

 private:
  FolderHistory* const history_;
};

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_CONTROL_CONTROL_SERVICE_H_
