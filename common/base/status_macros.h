// Status propagation macros (Debian's Abseil 20220623 has none).
//
//   CONVERGE_RETURN_IF_ERROR(DoThing());
//   CONVERGE_ASSIGN_OR_RETURN(Seq seq, log.Append(batch));
#ifndef CONVERGE_COMMON_BASE_STATUS_MACROS_H_
#define CONVERGE_COMMON_BASE_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define CONVERGE_RETURN_IF_ERROR(expr)                  \
  do {                                                  \
    ::absl::Status _converge_status = (expr);           \
    if (!_converge_status.ok()) return _converge_status; \
  } while (0)

#define CONVERGE_CONCAT_INNER_(a, b) a##b
#define CONVERGE_CONCAT_(a, b) CONVERGE_CONCAT_INNER_(a, b)

#define CONVERGE_ASSIGN_OR_RETURN(lhs, expr) \
  CONVERGE_ASSIGN_OR_RETURN_IMPL_(CONVERGE_CONCAT_(_converge_statusor_, __LINE__), lhs, expr)

#define CONVERGE_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                    \
  if (!statusor.ok()) return statusor.status();              \
  lhs = std::move(statusor).value()

#endif  // CONVERGE_COMMON_BASE_STATUS_MACROS_H_
