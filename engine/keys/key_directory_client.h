// KeyDirectoryClient: management's key records of one namespace, as this device uses them
// (GrpcKeyDirectoryClient, engine/client, calls converge-management with the device's token).
#ifndef CONVERGE_ENGINE_KEYS_KEY_DIRECTORY_CLIENT_H_
#define CONVERGE_ENGINE_KEYS_KEY_DIRECTORY_CLIENT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace converge::engine {

struct KeyRecord {
  std::string device_id;
  std::string device_name;     // in listings
  std::string public_key;      // 64 bytes
  std::string sealed_keyring;  // only in this device's own record, once granted
  bool granted = false;
  std::string granted_by;
  std::string grant_signature;
  std::string keyring_id;
  uint32_t epoch = 0;
  bool rotation = false;
  bool revoked = false;   // in a listing: the device was revoked  // in a Grant: this device starts the next epoch (management lets one)
};

struct KeyListing {
  std::vector<KeyRecord> records;
  std::string keyring_id;  // empty until a device made the namespace's keyring
};

class KeyDirectoryClient {
 public:
  virtual ~KeyDirectoryClient() = default;
  // Publish this device's public key (a request for the keyring).
  virtual absl::StatusOr<KeyRecord> Publish(const std::string& public_key) = 0;
  virtual absl::StatusOr<KeyListing> List() = 0;
  // Grant: `grant` sealed by this device (device_id is the recipient).
  virtual absl::Status Grant(const KeyRecord& grant) = 0;
  // Own: this device's record; NotFound if it published no key.
  virtual absl::StatusOr<KeyRecord> Own() = 0;
  virtual absl::Status SetRecovery(const std::string& wrapped_keyring, const std::string& keyring_id) = 0;
  // GetRecovery: the wrapped keyring; NotFound if none was set.
  virtual absl::StatusOr<std::string> GetRecovery() = 0;
};

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_KEYS_KEY_DIRECTORY_CLIENT_H_
