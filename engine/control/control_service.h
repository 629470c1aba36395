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

  // KeysOf returns this device's NamespaceKeys, or why there are none.
  using KeysOf = std::function<absl::StatusOr<NamespaceKeys*>()>;

  ControlService(FolderHistory* history, NameOf name_of, KeysOf keys = nullptr)
      : history_(history), name_of_(std::move(name_of)), keys_of_(std::move(keys)) {}

  grpc::Status ListVersions(grpc::ServerContext* ctx, const v1::ListVersionsRequest* req,
                            v1::ListVersionsResponse* resp) override;
  grpc::Status Restore(grpc::ServerContext* ctx, const v1::RestoreRequest* req, v1::RestoreResponse* resp) override;
  grpc::Status ListConflicts(grpc::ServerContext* ctx, const v1::ListConflictsRequest* req,
                             store::v1::ListConflictsResponse* resp) override;
  grpc::Status ResolveConflict(grpc::ServerContext* ctx, const v1::ResolveConflictRequest* req,
                               store::v1::Conflict* resp) override;
  grpc::Status Keys(grpc::ServerContext* ctx, const v1::KeysRequest* req, v1::KeysResponse* resp) override;

 private:
  FolderHistory* const history_;
  const NameOf name_of_;
  const KeysOf keys_of_;
};

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_CONTROL_CONTROL_SERVICE_H_
