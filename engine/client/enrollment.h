// Enrollment: makes sure this folder's device is registered with converge-management and is a
// member of its namespace, keeping the device id and credential in the folder's state
// (owner-only). Safe to repeat: a registered device only re-confirms its membership.
#ifndef CONVERGE_ENGINE_CLIENT_ENROLLMENT_H_
#define CONVERGE_ENGINE_CLIENT_ENROLLMENT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/rpc/channel.h"
#include "converge/management/v1/management.grpc.pb.h"
#include "engine/sync/local_index.h"

namespace converge::engine {

struct EnrollmentRequest {
  std::string user_id;
  std::string device_name;
  std::string namespace_id;
  std::string token;             // the operator's bearer token (registers for any user)
  std::string enrollment_token;  // or a token an operator issued for this user
};

struct Enrollment {
  std::string device_id;
  std::string device_name;  // as registered
  bool sync_xattrs = false;  // the namespace's option, as of joining
  bool encrypted = false;    // end-to-end encrypted: syncs only with the namespace's keyring
  std::string credential;
  std::string store_address;
  std::string notification_address;
};

// Enroll returns FailedPrecondition if the folder is already bound to another namespace or user.
// It puts the device's token into `tokens` (the channels' TokenSource), which is how it then joins
// the namespace and asks for the endpoints; without a token (management signs none) it uses the
// operator token.
absl::StatusOr<Enrollment> Enroll(management::v1::ManagementService::StubInterface* management,
                                  LocalIndex* index, const EnrollmentRequest& request, TokenSource* tokens);

// RefreshDeviceToken gets a fresh device token into `tokens` and returns when it expires.
// FailedPrecondition if management signs no tokens.
absl::StatusOr<absl::Time> RefreshDeviceToken(management::v1::ManagementService::StubInterface* management,
                                              const std::string& device_id, const std::string& credential,
                                              TokenSource* tokens);

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_CLIENT_ENROLLMENT_H_
