// Conflict copies: when two devices change one file concurrently, the losing edit is kept next
// to it as "dir/name (conflict <device> <UTC time>).ext" (time as 20261127T101500Z). The
// engine makes these names; the store, management and status views recognise them.
#ifndef CONVERGE_COMMON_MODEL_CONFLICT_NAME_H_
#define CONVERGE_COMMON_MODEL_CONFLICT_NAME_H_

#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace converge {

struct ConflictCopyName {
  std::string original_path;
  std::string device;
  std::string detected_at;  // 20261127T101500Z
};

// MakeConflictName returns the conflict copy name of `path` for `device` at `when`.
std::string MakeConflictName(absl::string_view path, absl::string_view device, absl::Time when);

// ParseConflictName reads a conflict copy's name; nullopt for any other path.
std::optional<ConflictCopyName> ParseConflictName(absl::string_view path);

inline bool IsConflictCopy(absl::string_view path) { return ParseConflictName(path).has_value(); }

}  // namespace converge

#endif  // CONVERGE_COMMON_MODEL_CONFLICT_NAME_H_
