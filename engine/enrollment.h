// Enrollment: makes sure this folder's device is registered with converge-management and is a
// member of its namespace, keeping the device id and credential in the folder's state
// (owner-only). Safe to repeat: a registered device only re-confirms its membership.
#ifndef CONVERGE_ENGINE_ENROLLMENT_H_
#define CONVERGE_ENGINE_ENROLLMENT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "converge/management/v1/management.grpc.pb.h"
#include "engine/local_index.h"

namespace converge::engine {

struct EnrollmentRequest {
  std::string user_id;
  std::string device_name;
  std::string namespace_id;
  std::string token;  // management bearer token
};

struct Enrollment {
  std::string device_id;
  std::string credential;
  std::string store_address;
  std::string notification_address;
};

// Enroll returns FailedPrecondition if the folder is already bound to another namespace or user.
absl::StatusOr<Enrollment> Enroll(management::v1::ManagementService::StubInterface* management,
                                  LocalIndex* index, const EnrollmentRequest& request);

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_ENROLLMENT_H_
