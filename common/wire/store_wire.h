// Conversion between the namespace-state domain types (common/model/namespace_state.h) and the
// store API's messages (protos/converge/store/v1). Every side of that API converts here.
#ifndef CONVERGE_COMMON_WIRE_STORE_WIRE_H_
#define CONVERGE_COMMON_WIRE_STORE_WIRE_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/model/namespace_state.h"
#include "converge/store/v1/store.pb.h"

namespace converge::wire {

void NamespaceStatsToProto(const NamespaceStats& s, store::v1::GetNamespaceStatsResponse* p);
NamespaceStats NamespaceStatsFromProto(const store::v1::GetNamespaceStatsResponse& p);

void CompactionToProto(const CompactionResult& r, store::v1::CompactResponse* p);
CompactionResult CompactionFromProto(const store::v1::CompactResponse& p);

void HeldDeleteToProto(const HeldDelete& h, store::v1::HeldDelete* p);
// InvalidArgument for a state this version does not know.
absl::StatusOr<HeldDelete> HeldDeleteFromProto(const store::v1::HeldDelete& p);

void ConflictToProto(const ConflictRecord& r, store::v1::Conflict* p);
// The store API names a conflict's namespace in the request, not in the record.
ConflictRecord ConflictFromProto(const std::string& namespace_id, const store::v1::Conflict& p);

void HistoryVersionToProto(const HistoryVersion& h, store::v1::HistoryVersion* p);
// InvalidArgument for a version that does not validate (FileVersionFromProto).
absl::StatusOr<HistoryVersion> HistoryVersionFromProto(const store::v1::HistoryVersion& p);

}  // namespace converge::wire

#endif  // CONVERGE_COMMON_WIRE_STORE_WIRE_H_
