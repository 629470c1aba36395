// What an engine does when management revokes its device: find out (AskFate), and for a remote
// wipe delete what it synced (WipeSyncedFiles) and report it done (ConfirmWipe).
#ifndef CONVERGE_ENGINE_CLIENT_DEVICE_CONTROL_H_
#define CONVERGE_ENGINE_CLIENT_DEVICE_CONTROL_H_

#include <string>

#include "absl/status/statusor.h"
#include "converge/management/v1/management.grpc.pb.h"
#include "engine/fs/filesystem.h"
#include "engine/sync/local_index.h"

namespace converge::engine {

enum class DeviceFate { kActive, kRevoked, kWipe };

// AskFate asks management whether this device is still active, authenticated by the device's
// own credential (a revoked device has no token).
absl::StatusOr<DeviceFate> AskFate(management::v1::ManagementService::StubInterface* management,
                                   const std::string& device_id, const std::string& credential);

struct WipeResult {
  uint64_t files_removed = 0;
  uint64_t dirs_removed = 0;
  uint64_t left = 0;  // directories kept because they hold files that were never synced
};

// WipeSyncedFiles deletes every file and directory the index records as synced, deepest first.
// Files that were never synced stay (and so do the directories holding them).
absl::StatusOr<WipeResult> WipeSyncedFiles(Filesystem* fs, LocalIndex* index);

// ConfirmWipe tells management the wipe is done, authenticated by the device's credential.
absl::Status ConfirmWipe(management::v1::ManagementService::StubInterface* management,
                         const std::string& device_id, const std::string& credential);

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_CLIENT_DEVICE_CONTROL_H_
