// Validation of paths that name entries inside a synced folder. Every path that comes from the
// network or from a peer goes through ValidateRelativePath before it is used.
#ifndef CONVERGE_COMMON_PATH_H_
#define CONVERGE_COMMON_PATH_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace converge {

inline constexpr size_t kMaxPathBytes = 4096;
inline constexpr size_t kMaxNameBytes = 255;
// The engine keeps its state and temp files under this top-level name; no synced path uses it.
inline constexpr absl::string_view kReservedName = ".converge";

// ValidateRelativePath returns OK for a '/'-separated relative path of valid UTF-8 whose
// components are neither empty, "." nor "..", contain no NUL or backslash, are at most
// kMaxNameBytes long, and whose first component is not kReservedName in any case.
// Returns InvalidArgument naming the problem otherwise.
absl::Status ValidateRelativePath(absl::string_view path);

// ValidateId returns OK for ids of users, namespaces and devices: [a-z0-9][a-z0-9._-]{0,63}.
absl::Status ValidateId(absl::string_view what, absl::string_view id);

// CaseFold maps a valid UTF-8 path to the key under which case-insensitive filesystems (macOS,
// Windows) see it: ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic capitals become small
// letters; every other byte is kept. Two different paths with the same fold cannot both exist
// on such a device, so the store refuses the second (a case collision).
std::string CaseFold(absl::string_view path);

// ParentPath returns "a/b" for "a/b/c" and "" for "c".
absl::string_view ParentPath(absl::string_view path);
// BaseName returns "c" for "a/b/c".
absl::string_view BaseName(absl::string_view path);

}  // namespace converge

#endif  // CONVERGE_COMMON_PATH_H_
