// Conflict copies: when two devices change one file concurrently, the losing edit is kept next
// to it as "dir/name (conflict <device name> <device id> <UTC time>).ext", for example
// "notes (conflict laptop dev-a6e0d83b8e6adf2e 20261127T101500Z).txt": the name the device
// registered with, so people recognise whose copy it is, and its id, which is unique. Names made
// before device names were kept ("(conflict <device id> <UTC time>)") are still recognised. The
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
  std::string device;        // its id
  std::string device_label;  // its name as the copy's name has it ("" in older names)
  std::string detected_at;   // 20261127T101500Z
};

// The longest device name a conflict copy's name carries.
inline constexpr size_t kMaxConflictLabelBytes = 24;

// ConflictLabel is a device name as a conflict copy's name carries it: letters, digits, '.',
// '_' and '-' kept, anything else (spaces, slashes, parentheses, non-ASCII) as '-', at most
// kMaxConflictLabelBytes; "" if nothing is left.
std::string ConflictLabel(absl::string_view device_name);

// MakeConflictName returns the conflict copy name of `path` for the device `device` (its id)
// named `device_name` ("" leaves the name out) at `when`.
std::string MakeConflictName(absl::string_view path, absl::string_view device, absl::Time when,
                             absl::string_view device_name = "");

// ParseConflictName reads a conflict copy's name; nullopt for any other path.
std::optional<ConflictCopyName> ParseConflictName(absl::string_view path);

inline bool IsConflictCopy(absl::string_view path) { return ParseConflictName(path).has_value(); }

}  // namespace converge

#endif  // CONVERGE_COMMON_MODEL_CONFLICT_NAME_H_
