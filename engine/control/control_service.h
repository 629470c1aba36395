// ControlService: the engine's local control API (protos/converge/engine/v1/control.proto) over
// FolderHistory. Served on a Unix socket in the folder's state directory: only the folder's
// owner can reach it. Versions and conflicts name their devices by id and, where `name_of` knows
// it, by the name each registered with.
#ifndef CONVERGE_ENGINE_CONTROL_CONTROL_SERVICE_H_
#define CONVERGE_ENGINE_CONTROL_CONTROL_SERVICE_H_

#include <functional>
#include <string>

#include "converge/engine/v1/control.grpc.pb.h"
#include "engine/keys/namespace_keys.h"
#include "engine/sync/history.h"

namespace converge::engine {

class ControlService final : public v1::EngineControl::Service {
 public:
  // NameOf returns the name device `id` registered with, or "" if unknown.
  using NameOf = std::function<std::string(const std::string& id)>;

  // OpenKeys opens this device's NamespaceKeys (on the first Keys call).
  using OpenKeys = std::function<absl::StatusOr<std::unique_ptr<NamespaceKeys>>()>;

  ControlService(FolderHistory* history, NameOf name_of, OpenKeys open_keys = nullptr)
      : history_(history), name_of_(std::move(name_of)), open_keys_(std::move(open_keys)) {}

  grpc::Status ListVersions(grpc::ServerContext* ctx, const v1::ListVersionsRequest* req,
                            v1::ListVersionsResponse* resp) override;
  grpc::Status Restore(grpc::ServerContext* ctx, const v1::RestoreRequest* req, v1::RestoreResponse* resp) override;
  grpc::Status ListConflicts(grpc::ServerContext* ctx, const v1::ListConflictsRequest* req,
                             store::v1::ListConflictsResponse* resp) override;
  grpc::Status ResolveConflict(grpc::ServerContext* ctx, const v1::ResolveConflictRequest* req,
                               store::v1::Conflict* resp) override;
  grpc::Status Keys(grpc::ServerContext* ctx, const v1::KeysRequest* req, v1::KeysResponse* resp) override;

 private:
  absl::StatusOr<NamespaceKeys*> keys();

  FolderHistory* const history_;
  const NameOf name_of_;
  const OpenKeys open_keys_;
  absl::Mutex keys_mu_;
  std::unique_ptr<NamespaceKeys> keys_ ABSL_GUARDED_BY(keys_mu_);
};

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_CONTROL_CONTROL_SERVICE_H_
