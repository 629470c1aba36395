// Mass deletes: a commit that would delete a large share of a namespace is held by the store
// until an operator approves it. The store says so in its FAILED_PRECONDITION message; engines
// recognise it with these helpers (the message survives every hop).
#ifndef CONVERGE_COMMON_MODEL_MASS_DELETE_H_
#define CONVERGE_COMMON_MODEL_MASS_DELETE_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace converge {

inline constexpr char kMassDeleteHeld[] = "mass delete held for approval";
inline constexpr char kMassDeleteRejected[] = "mass delete rejected";

inline absl::Status MassDeleteHeldError(const std::string& id, uint64_t deletes, uint64_t live) {
  return absl::FailedPreconditionError(
      absl::StrCat(kMassDeleteHeld, " (id ", id, "): deletes ", deletes, " of ", live, " entries"));
}

inline absl::Status MassDeleteRejectedError(const std::string& id) {
  return absl::FailedPreconditionError(
      absl::StrCat(kMassDeleteRejected, " (id ", id, "): restore the deleted files"));
}

inline bool IsMassDeleteHeld(const absl::Status& s) {
  return absl::IsFailedPrecondition(s) && absl::StrContains(s.message(), kMassDeleteHeld);
}

inline bool IsMassDeleteRejected(const absl::Status& s) {
  return absl::IsFailedPrecondition(s) && absl::StrContains(s.message(), kMassDeleteRejected);
}

}  // namespace converge

#endif  // CONVERGE_COMMON_MODEL_MASS_DELETE_H_
