// A store restored from an older backup is behind the devices that synced with it: an engine's
// cursor can be past the store's head, and sequence numbers the engine applied will be reused for
// other commits. The store refuses such a Pull with FAILED_PRECONDITION carrying this marker;
// the engine then forgets its sync state and re-syncs, keeping its local files as the newer ones
// (uploaded as edits on top of what the store has).
#ifndef CONVERGE_COMMON_MODEL_STORE_BEHIND_H_
#define CONVERGE_COMMON_MODEL_STORE_BEHIND_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace converge {

inline constexpr char kStoreBehind[] = "the store is behind this device";

inline absl::Status StoreBehindError(uint64_t cursor, uint64_t head) {
  return absl::FailedPreconditionError(absl::StrCat(kStoreBehind, " (device at seq ", cursor, ", store head ", head,
                                                    "): restored from an older backup? re-sync"));
}

inline bool IsStoreBehind(const absl::Status& s) {
  return absl::IsFailedPrecondition(s) && absl::StrContains(s.message(), kStoreBehind);
}

// A device whose cursor is below what the store's log still keeps (compaction folded it into
// the file table) is refused a Pull with OUT_OF_RANGE carrying this marker; the engine then
// applies the file table (a snapshot) and pulls the log after it.
inline constexpr char kLogCompacted[] = "compacted: the log before seq ";

inline absl::Status LogCompactedError(uint64_t first_kept) {
  return absl::OutOfRangeError(absl::StrCat(kLogCompacted, first_kept,
                                            " is folded into the file table: list the files, then pull from their head"));
}

inline bool IsLogCompacted(const absl::Status& s) {
  return absl::IsOutOfRange(s) && absl::StrContains(s.message(), kLogCompacted);
}

// A namespace converted to end-to-end encryption refuses a device that still syncs it plain
// with FAILED_PRECONDITION carrying this marker; its engine then restarts as one of an
// encrypted namespace (it waits for the keyring, forgets its plain sync state, and syncs
// sealed from the conversion on, keeping its files).
inline constexpr char kNamespaceConverted[] = "converted to end-to-end encryption";

inline absl::Status NamespaceConvertedError(const std::string& ns) {
  return absl::FailedPreconditionError(absl::StrCat("namespace '", ns, "' was ", kNamespaceConverted,
                                                    ": sync it sealed, with its keys (restart the engine)"));
}

inline bool IsNamespaceConverted(const absl::Status& s) {
  return absl::IsFailedPrecondition(s) && absl::StrContains(s.message(), kNamespaceConverted);
}

// A namespace moved to another store shard (an online move, services/store/namespace_transfer.h)
// is refused by the shard it left with FAILED_PRECONDITION carrying this marker; the engine then
// asks management for its endpoints again and goes on with the shard named there.
inline constexpr char kNamespaceMoved[] = "moved to another store shard";

inline absl::Status NamespaceMovedError(const std::string& ns) {
  return absl::FailedPreconditionError(
      absl::StrCat("namespace '", ns, "' ", kNamespaceMoved, ": ask management for its endpoints"));
}

inline bool IsNamespaceMoved(const absl::Status& s) {
  return absl::IsFailedPrecondition(s) && absl::StrContains(s.message(), kNamespaceMoved);
}

}  // namespace converge

#endif  // CONVERGE_COMMON_MODEL_STORE_BEHIND_H_
