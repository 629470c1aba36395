// RocksDB at the edges: its Status as absl::Status, its Slice as absl::string_view.
#ifndef CONVERGE_COMMON_BASE_ROCKSDB_STATUS_H_
#define CONVERGE_COMMON_BASE_ROCKSDB_STATUS_H_

#include <rocksdb/slice.h>
#include <rocksdb/status.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace converge {

// FromRocksStatus maps codes by what the caller should do: NotFound -> NotFound, corruption ->
// DataLoss, no space -> ResourceExhausted, invalid argument -> InvalidArgument, anything else
// (I/O errors, busy, timeouts) -> Unavailable. The message is prefixed with `what`.
absl::Status FromRocksStatus(const rocksdb::Status& s, absl::string_view what);

// View returns the bytes of a slice (Debian's absl::string_view is not std::string_view).
inline absl::string_view View(const rocksdb::Slice& s) { return absl::string_view(s.data(), s.size()); }

}  // namespace converge

#endif  // CONVERGE_COMMON_BASE_ROCKSDB_STATUS_H_
