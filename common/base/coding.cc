#include "common/base/coding.h"

namespace converge {

void PutFixed64BE(std::string* dst, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) dst->push_back(static_cast<char>(v >> shift));
}

void PutVarint64(std::string* dst, uint64_t v) {
  while (v >= 0x80) {
    dst->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  dst->push_back(static_cast<char>(v));
}

void PutLengthPrefixed(std::string* dst, absl::string_view s) {
  PutVarint64(dst, s.size());
  dst->append(s.data(), s.size());
}

uint64_t DecodeFixed64BE(absl::string_view s) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(s[i]);
  return v;
}

bool Decoder::GetFixed64BE(uint64_t* v) {
  if (in_.size() < 8) return false;
  *v = DecodeFixed64BE(in_);
  in_.remove_prefix(8);
  return true;
}

bool Decoder::GetVarint64(uint64_t* v) {
  uint64_t result = 0;
  for (int shift = 0; shift <= 63 && !in_.empty(); shift += 7) {
    const uint8_t byte = static_cast<uint8_t>(in_.front());
    in_.remove_prefix(1);
    result |= static_cast<uint64_t>(byte & 0x7F) << shift;
    if ((byte & 0x80) == 0) {
      *v = result;
      return true;
    }
  }
  return false;
}

bool Decoder::GetLengthPrefixed(absl::string_view* s) {
  uint64_t len;
  if (!GetVarint64(&len) || len > in_.size()) return false;
  *s = in_.substr(0, len);
  in_.remove_prefix(len);
  return true;
}

bool Decoder::GetRaw(size_t n, absl::string_view* s) {
  if (n > in_.size()) return false;
  *s = in_.substr(0, n);
  in_.remove_prefix(n);
  return true;
}

bool Decoder::GetLengthPrefixed(std::string* s) {
  absl::string_view view;
  if (!GetLengthPrefixed(&view)) return false;
  s->assign(view.data(), view.size());
  return true;
}

}  // namespace converge
