// The one place where protobuf wire types and domain types (model.h) meet.
// FromWire functions validate: what they return is safe to use.
#ifndef CONVERGE_COMMON_WIRE_WIRE_H_
#define CONVERGE_COMMON_WIRE_WIRE_H_

#include <vector>

#include "absl/status/statusor.h"
#include "common/model/model.h"
#include "converge/common/v1/types.pb.h"

namespace converge::wire {

// Returns InvalidArgument for malformed digests, kinds or versions (ValidateFileVersion).
absl::StatusOr<FileVersion> FileVersionFromProto(const common::v1::FileVersion& p);
void FileVersionToProto(const FileVersion& v, common::v1::FileVersion* p);

absl::StatusOr<Commit> CommitFromProto(const common::v1::Commit& p);
void CommitToProto(const Commit& c, common::v1::Commit* p);

// DigestsFromProto converts a list of 32-byte digests; InvalidArgument on a bad one.
absl::StatusOr<std::vector<Digest>> DigestsFromProto(
    const google::protobuf::RepeatedPtrField<std::string>& p);

}  // namespace converge::wire

#endif  // CONVERGE_COMMON_WIRE_WIRE_H_
