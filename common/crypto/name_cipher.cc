#include "common/crypto/name_cipher.h"

#include <sodium.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace converge::crypto {
namespace {

constexpr size_t kIvBytes = 16;
constexpr size_t kMaxNameBytes = 255;
using Iv = std::array<uint8_t, kIvBytes>;

const unsigned char* U(absl::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

Iv SyntheticIv(const NameKeys& keys, absl::string_view parent, absl::string_view padded) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, keys.mac.data(), kKeyBytes, kIvBytes);
  std::string len;
  AppendU64(&len, parent.size());
  crypto_generichash_update(&st, U(len), len.size());
  crypto_generichash_update(&st, U(parent), parent.size());
  crypto_generichash_update(&st, U(padded), padded.size());
  Iv iv{};
  crypto_generichash_final(&st, iv.data(), iv.size());
  return iv;
}

// Xor applies XChaCha20 with the nonce IV | 0^8 to `bytes` in place.
void Xor(const NameKeys& keys, const Iv& iv, std::string* bytes) {
  std::array<uint8_t, crypto_stream_xchacha20_NONCEBYTES> nonce{};
  memcpy(nonce.data(), iv.data(), iv.size());
  unsigned char* p = reinterpret_cast<unsigned char*>(bytes->data());
  crypto_stream_xchacha20_xor(p, p, bytes->size(), nonce.data(), keys.cipher.data());
}

}  // namespace

absl::StatusOr<std::string> EncryptName(const NameKeys& keys, absl::string_view encrypted_parent,
                                        absl::string_view name) {
  EnsureSodium();
  if (name.empty() || name.size() > kMaxNameBytes || name.find('/') != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("cannot encrypt the name '", name, "': 1-255 bytes, no '/'"));
  }
  std::string padded(name);
  const size_t blocks = name.size() / kNameBlockBytes + 1;
  padded.resize(blocks * kNameBlockBytes);
  size_t padded_len = 0;
  sodium_pad(&padded_len, reinterpret_cast<unsigned char*>(padded.data()), name.size(), kNameBlockBytes,
             padded.size());
  padded.resize(padded_len);
  const Iv iv = SyntheticIv(keys, encrypted_parent, padded);
  Xor(keys, iv, &padded);
  std::string raw(reinterpret_cast<const char*>(iv.data()), iv.size());
  raw += padded;
  return Base32(raw);
}

absl::StatusOr<std::string> DecryptName(const NameKeys& keys, absl::string_view encrypted_parent,
                                        absl::string_view encrypted) {
  EnsureSodium();
  if (encrypted.size() > kMaxEncryptedNameChars) return absl::DataLossError("encrypted name: too long");
  absl::StatusOr<std::string> raw = FromBase32(encrypted);
  if (!raw.ok()) return absl::DataLossError(absl::StrCat("encrypted name: ", raw.status().message()));
  if (raw->size() < kIvBytes + kNameBlockBytes || (raw->size() - kIvBytes) % kNameBlockBytes != 0) {
    return absl::DataLossError("encrypted name: wrong length");
  }
  Iv iv{};
  memcpy(iv.data(), raw->data(), kIvBytes);
  std::string padded = raw->substr(kIvBytes);
  Xor(keys, iv, &padded);
  const Iv again = SyntheticIv(keys, encrypted_parent, padded);
  size_t len = 0;
  if (sodium_memcmp(iv.data(), again.data(), kIvBytes) != 0 ||
      sodium_unpad(&len, reinterpret_cast<const unsigned char*>(padded.data()), padded.size(), kNameBlockBytes) != 0 ||
      len == 0) {
    return absl::DataLossError("encrypted name: not made with this namespace's key under this folder");
  }
  padded.resize(len);
  return padded;
}

size_t EncryptedNameSize(size_t name_bytes) {
  const size_t raw = kIvBytes + (name_bytes / kNameBlockBytes + 1) * kNameBlockBytes;
  return (raw * 8 + 4) / 5;
}

size_t EncryptedPathSize(absl::string_view path, size_t* longest) {
  size_t total = 0, most = 0;
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    const size_t n = EncryptedNameSize(part.size());
    total += n + (total == 0 ? 0 : 1);
    most = std::max(most, n);
  }
  if (longest != nullptr) *longest = most;
  return total;
}

absl::StatusOr<std::string> EncryptPath(const NameKeys& keys, absl::string_view path) {
  std::string out;
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    absl::StatusOr<std::string> name = EncryptName(keys, out, part);
    if (!name.ok()) return name.status();
    absl::StrAppend(&out, out.empty() ? "" : "/", *name);
  }
  return out;
}

absl::StatusOr<std::string> DecryptPath(const NameKeys& keys, absl::string_view encrypted_path) {
  std::vector<std::string> names;
  size_t at = 0;
  while (at <= encrypted_path.size()) {
    const size_t slash = std::min(encrypted_path.find('/', at), encrypted_path.size());
    absl::StatusOr<std::string> name =
        DecryptName(keys, encrypted_path.substr(0, at == 0 ? 0 : at - 1), encrypted_path.substr(at, slash - at));
    if (!name.ok()) return name.status();
    names.push_back(*std::move(name));
    at = slash + 1;
  }
  return absl::StrJoin(names, "/");
}

}  // namespace converge::crypto
