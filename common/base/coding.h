// Compact binary encoding for values kept in RocksDB (LevelDB's coding style): fixed-width
// big-endian integers for keys that must sort, varints and length-prefixed strings for values.
// Domain types define their own Encode/Decode on top of these.
#ifndef CONVERGE_COMMON_BASE_CODING_H_
#define CONVERGE_COMMON_BASE_CODING_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace converge {

void PutFixed64BE(std::string* dst, uint64_t v);
void PutVarint64(std::string* dst, uint64_t v);
void PutLengthPrefixed(std::string* dst, absl::string_view s);

// Decoder reads what the Put* functions wrote. Each Get* returns false (and leaves the output
// unspecified) on truncated or malformed input.
class Decoder {
 public:
  explicit Decoder(absl::string_view in) : in_(in) {}
  bool GetFixed64BE(uint64_t* v);
  bool GetVarint64(uint64_t* v);
  bool GetLengthPrefixed(absl::string_view* s);
  bool GetLengthPrefixed(std::string* s);
  // GetRaw reads exactly n bytes.
  bool GetRaw(size_t n, absl::string_view* s);
  bool done() const { return in_.empty(); }
  size_t remaining() const { return in_.size(); }

 private:
  absl::string_view in_;
};

// DecodeFixed64BE reads 8 bytes; REQUIRES: s.size() >= 8.
uint64_t DecodeFixed64BE(absl::string_view s);

}  // namespace converge

#endif  // CONVERGE_COMMON_BASE_CODING_H_
