// A device's cursor record in the store ('a' ns '\0' device): its acked seq, when it was last
// seen with which software version, and whether an operator evicted it (a varint 1 at the end,
// written only when it was).
#ifndef CONVERGE_SERVICES_STORE_CURSOR_RECORD_H_
#define CONVERGE_SERVICES_STORE_CURSOR_RECORD_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/base/coding.h"

namespace converge::store {

struct CursorRecord {
  uint64_t seq = 0;
  int64_t last_seen_unix_ms = 0;
  std::string software_version;
  bool evicted = false;
};

inline absl::StatusOr<CursorRecord> DecodeCursor(absl::string_view bytes) {
  Decoder d(bytes);
  CursorRecord r;
  uint64_t seen = 0;
  absl::string_view version;
  if (!d.GetVarint64(&r.seq) || !d.GetVarint64(&seen) || !d.GetLengthPrefixed(&version)) {
    return absl::DataLossError("corrupt cursor record");
  }
  r.last_seen_unix_ms = static_cast<int64_t>(seen);
  r.software_version = std::string(version);
  uint64_t evicted = 0;
  if (!d.done() && (!d.GetVarint64(&evicted) || !d.done())) return absl::DataLossError("corrupt cursor record");
  r.evicted = evicted != 0;
  return r;
}

inline std::string EncodeCursor(const CursorRecord& r) {
  std::string out;
  PutVarint64(&out, r.seq);
  PutVarint64(&out, static_cast<uint64_t>(r.last_seen_unix_ms));
  PutLengthPrefixed(&out, r.software_version);
  if (r.evicted) PutVarint64(&out, 1);
  return out;
}

}  // namespace converge::store

#endif  // CONVERGE_SERVICES_STORE_CURSOR_RECORD_H_
