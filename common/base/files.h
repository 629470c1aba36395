// Whole-file writes that a crash leaves either old or new.
//
//   CONVERGE_RETURN_IF_ERROR(WriteFileAtomically(path, json));
//   CONVERGE_RETURN_IF_ERROR(WriteFileAtomically(path, secret, /*sync_dir=*/true));
#ifndef CONVERGE_COMMON_BASE_FILES_H_
#define CONVERGE_COMMON_BASE_FILES_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace converge {

// WriteFileAtomically writes `contents` to a temp file beside `path` (mode 0600), fsyncs and
// renames it over `path`. With `sync_dir`, the directory is fsynced too, so the new file survives
// a power cut once this returns (what a key or a record needs; a port or status file does not).
absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents, bool sync_dir = false);

}  // namespace converge

#endif  // CONVERGE_COMMON_BASE_FILES_H_
