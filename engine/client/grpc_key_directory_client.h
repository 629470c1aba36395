// GrpcKeyDirectoryClient: KeyDirectoryClient over converge-management's key records (its calls
// carry the device token of the channel's TokenSource).
//
// Thread-safe (gRPC stubs are).
#ifndef CONVERGE_ENGINE_CLIENT_GRPC_KEY_DIRECTORY_CLIENT_H_
#define CONVERGE_ENGINE_CLIENT_GRPC_KEY_DIRECTORY_CLIENT_H_

#include <string>

#include "converge/management/v1/management.grpc.pb.h"
#include "engine/keys/key_directory_client.h"

namespace converge::engine {

class GrpcKeyDirectoryClient : public KeyDirectoryClient {
 public:
  GrpcKeyDirectoryClient(management::v1::ManagementService::StubInterface* management, std::string namespace_id,
                         std::string device_id)
      : management_(management), namespace_id_(std::move(namespace_id)), device_id_(std::move(device_id)) {}

  absl::StatusOr<KeyRecord> Publish(const std::string& public_key) override;
  absl::StatusOr<KeyListing> List() override;
  absl::Status Grant(const KeyRecord& grant) override;
  absl::StatusOr<KeyRecord> Own() override;
  absl::Status SetRecovery(const std::string& wrapped_keyring, const std::string& keyring_id) override;
  absl::StatusOr<std::string> GetRecovery() override;

 private:
  management::v1::ManagementService::StubInterface* const management_;
  const std::string namespace_id_;
  const std::string device_id_;
};

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_CLIENT_GRPC_KEY_DIRECTORY_CLIENT_H_
