#include "engine/client/device_control.h"

#include <grpcpp/grpcpp.h>

#include <vector>

#include "common/base/status_macros.h"
#include "common/rpc/grpc_status.h"
#include "common/security/bearer_token.h"

namespace converge::engine {

absl::StatusOr<DeviceFate> AskFate(management::v1::ManagementService::StubInterface* management,
                                   const std::string& device_id, const std::string& credential) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  management::v1::GetDeviceRequest req;
  req.set_device_id(device_id);
  req.set_credential(credential);
  management::v1::Device resp;
  CONVERGE_RETURN_IF_ERROR(FromGrpcStatus(management->GetDevice(&ctx, req, &resp), "management.GetDevice"));
  switch (resp.state()) {
    case management::v1::DEVICE_STATE_WIPE_PENDING:
    case management::v1::DEVICE_STATE_WIPED:
      return DeviceFate::kWipe;
    case management::v1::DEVICE_STATE_REVOKED:
      return DeviceFate::kRevoked;
    default:
      return DeviceFate::kActive;
  }
}

absl::StatusOr<WipeResult> WipeSyncedFiles(Filesystem* fs, LocalIndex* index) {
  CONVERGE_RETURN_IF_ERROR(fs->RootIntact());
  std::vector<IndexEntry> entries;
  CONVERGE_RETURN_IF_ERROR(index->ForEachLive([&](const IndexEntry& e) { entries.push_back(e); }));
  WipeResult result;
  // Path order puts a directory before its contents: go backwards, deepest first.
  for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
    absl::Status s = fs->Remove(it->version.path);
    if (s.ok()) {
      ++(it->version.kind == FileKind::kDirectory ? result.dirs_removed : result.files_removed);
    } else if (absl::IsFailedPrecondition(s)) {
      ++result.left;  // a directory that still holds unsynced files
    } else {
      return s;
    }
  }
  CONVERGE_RETURN_IF_ERROR(fs->SyncAll());
  return result;
}

absl::Status ConfirmWipe(management::v1::ManagementService::StubInterface* management,
                         const std::string& device_id, const std::string& credential) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  management::v1::ConfirmWipeRequest req;
  req.set_device_id(device_id);
  req.set_credential(credential);
  management::v1::Device resp;
  return FromGrpcStatus(management->ConfirmWipe(&ctx, req, &resp), "management.ConfirmWipe");
}

}  // namespace converge::engine
