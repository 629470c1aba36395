// Validation of paths that name entries inside a synced folder. Every path that comes from the
// network or from a peer goes through ValidateRelativePath before it is used.
#ifndef CONVERGE_COMMON_MODEL_PATH_H_
#define CONVERGE_COMMON_MODEL_PATH_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace converge {

inline constexpr size_t kMaxPathBytes = 4096;
inline constexpr size_t kMaxNameBytes = 255;
// The engine keeps its state and temp files under this top-level name; no synced path uses it.
inline constexpr absl::string_view kReservedName = ".converge";

// A path has at most this many components (a commit's case checks cost its depth).
inline constexpr size_t kMaxPathDepth = 128;

// A sealed path (an end-to-end encrypted namespace's, as the store holds it): lowercase base32
// components. A 255-byte name seals to at most 436 characters; a valid path of at most
// kMaxPathBytes and kMaxPathDepth components to under 17,000.
inline constexpr size_t kMaxSealedNameBytes = 440;
inline constexpr size_t kMaxSealedPathBytes = 20 << 10;

// ValidateRelativePath returns OK for a '/'-separated relative path of valid UTF-8 whose
// components are neither empty, "." nor "..", are at most kMaxNameBytes long, and could exist
// on every supported OS: no NUL, backslash, control character or character Windows forbids
// (< > : " | ? *), no name ending in a dot or a space, no Windows device name (CON, PRN, AUX,
// NUL, COM1-9, LPT1-9, with or without an extension), at most kMaxPathDepth components, and a
// first component that is not kReservedName in any case or normalisation form.
// Returns InvalidArgument naming the problem otherwise.
absl::Status ValidateRelativePath(absl::string_view path);
// ValidateSealedPath returns OK for a sealed path: '/'-separated components of 1 to
// kMaxSealedNameBytes characters of [a-z2-7] (no dot: never ".", ".." or the reserved name), at
// most kMaxPathDepth of them and kMaxSealedPathBytes in all; InvalidArgument otherwise.
absl::Status ValidateSealedPath(absl::string_view path);
// ValidateStoredPath: a path as a store may hold it, plain (ValidateRelativePath) or sealed.
absl::Status ValidateStoredPath(absl::string_view path);

// ValidateId returns OK for ids of users, namespaces and devices: [a-z0-9][a-z0-9._-]{0,63}.
absl::Status ValidateId(absl::string_view what, absl::string_view id);

// CaseFold maps a valid UTF-8 path to the key under which case- and normalisation-insensitive
// filesystems (macOS, Windows) see it: Unicode full case folding and canonical composition (NFC)
// by ICU, so "Café" (NFD) and "café" (NFC), "K-file" with a Kelvin sign and "k-file", "STRASSE"
// and "straße" fold alike. Components fold one by one ('/' is kept). Two different paths with the
// same fold cannot both exist on such a device, so the store refuses the second.
std::string CaseFold(absl::string_view path);

// ParentPath returns "a/b" for "a/b/c" and "" for "c".
absl::string_view ParentPath(absl::string_view path);
// BaseName returns "c" for "a/b/c".
absl::string_view BaseName(absl::string_view path);

}  // namespace converge

#endif  // CONVERGE_COMMON_MODEL_PATH_H_
