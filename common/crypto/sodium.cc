#include "common/crypto/sodium.h"

#include <sodium.h>

#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace converge::crypto {

void EnsureSodium() {
  static const bool ready = sodium_init() >= 0;
  if (!ready) abort();
}

SecretKey::~SecretKey() { sodium_memzero(bytes_.data(), bytes_.size()); }

SecretKey SecretKey::Random() {
  EnsureSodium();
  SecretKey k;
  randombytes_buf(k.bytes_.data(), k.bytes_.size());
  return k;
}

absl::StatusOr<SecretKey> SecretKey::FromBytes(absl::string_view bytes) {
  if (bytes.size() != kKeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat("a key has ", kKeyBytes, " bytes, not ", bytes.size()));
  }
  SecretKey k;
  memcpy(k.bytes_.data(), bytes.data(), kKeyBytes);
  return k;
}

std::string SecretKey::ToBytes() const { return std::string(reinterpret_cast<const char*>(data()), kKeyBytes); }

bool SecretKey::operator==(const SecretKey& o) const { return sodium_memcmp(data(), o.data(), kKeyBytes) == 0; }

SecretKey Derive(const SecretKey& root, uint64_t id, const char (&context)[9]) {
  static_assert(crypto_kdf_CONTEXTBYTES == 8 && crypto_kdf_KEYBYTES == kKeyBytes);
  EnsureSodium();
  SecretKey sub;
  crypto_kdf_derive_from_key(sub.mutable_data(), kKeyBytes, id, context, root.data());
  return sub;
}

void AppendU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}

void AppendU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}

bool ReadU32(absl::string_view* in, uint32_t* v) {
  if (in->size() < 4) return false;
  *v = 0;
  for (int i = 0; i < 4; ++i) *v |= uint32_t{static_cast<uint8_t>((*in)[i])} << (8 * i);
  in->remove_prefix(4);
  return true;
}

bool ReadU64(absl::string_view* in, uint64_t* v) {
  if (in->size() < 8) return false;
  *v = 0;
  for (int i = 0; i < 8; ++i) *v |= uint64_t{static_cast<uint8_t>((*in)[i])} << (8 * i);
  in->remove_prefix(8);
  return true;
}

bool ReadBytes(absl::string_view* in, size_t n, absl::string_view* out) {
  if (in->size() < n) return false;
  *out = in->substr(0, n);
  in->remove_prefix(n);
  return true;
}

namespace {
constexpr char kBase32[] = "abcdefghijklmnopqrstuvwxyz234567";
}  // namespace

std::string Base32(absl::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() * 8 + 4) / 5);
  uint32_t buffer = 0;
  int bits = 0;
  for (unsigned char c : bytes) {
    buffer = (buffer << 8) | c;
    bits += 8;
    while (bits >= 5) {
      out.push_back(kBase32[(buffer >> (bits - 5)) & 31]);
      bits -= 5;
    }
  }
  if (bits > 0) out.push_back(kBase32[(buffer << (5 - bits)) & 31]);
  return out;
}

absl::StatusOr<std::string> FromBase32(absl::string_view text) {
  std::string out;
  out.reserve(text.size() * 5 / 8);
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    int v = -1;
    if (c >= 'a' && c <= 'z') v = c - 'a';
    if (c >= '2' && c <= '7') v = 26 + (c - '2');
    if (v < 0) return absl::InvalidArgumentError("not base32: a character outside a-z and 2-7");
    buffer = (buffer << 5) | static_cast<uint32_t>(v);
    bits += 5;
    if (bits >= 8) {
      out.push_back(static_cast<char>((buffer >> (bits - 8)) & 0xff));
      bits -= 8;
    }
  }
  // What is left must be fewer than 5 bits and all zero (the encoder's own tail).
  if (bits >= 5 || (buffer & ((1u << bits) - 1)) != 0) {
    return absl::InvalidArgumentError("not base32: a malformed tail");
  }
  return out;
}

}  // namespace converge::crypto
