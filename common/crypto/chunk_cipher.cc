#include "common/crypto/chunk_cipher.h"

#include <sodium.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace converge::crypto {
namespace {

constexpr uint8_t kVersion = 1;
constexpr uint8_t kVersionCompressed = 2;  // chunks only: the payload is the chunk zstd-compressed
constexpr size_t kNonceBytes = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr size_t kTagBytes = crypto_aead_xchacha20poly1305_ietf_ABYTES;
constexpr size_t kHeaderBytes = 1 + 4 + kNonceBytes;
constexpr size_t kMinPadded = 256;

const unsigned char* U(absl::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

// Padmé (Nikitin et al., "Reducing metadata leakage from encrypted files and communication
// with PURBs"): round n up so that only the top ~log2(log2(n)) bits of it remain free.
size_t Padme(size_t n) {
  if (n < 2) return n;
  const int e = 63 - __builtin_clzll(n);       // floor(log2 n)
  const int s = (31 - __builtin_clz(e)) + 1;   // floor(log2 e) + 1
  const int last_bits = e - s;
  const size_t mask = (size_t{1} << last_bits) - 1;
  return (n + mask) & ~mask;
}

// SyntheticNonce: the keyed BLAKE2b of a chunk's plaintext, as its nonce.
std::array<uint8_t, kNonceBytes> SyntheticNonce(const ContentKeys& keys, absl::string_view plaintext) {
  std::array<uint8_t, kNonceBytes> nonce{};
  crypto_generichash(nonce.data(), nonce.size(), U(plaintext), plaintext.size(), keys.chunk_id.data(), kKeyBytes);
  return nonce;
}

// Header: version byte, epoch, nonce.
void AppendHeader(std::string* out, uint32_t epoch, const uint8_t* nonce, uint8_t version = kVersion) {
  out->push_back(static_cast<char>(version));
  AppendU32(out, epoch);
  out->append(reinterpret_cast<const char*>(nonce), kNonceBytes);
}

// ReadHeader: the epoch and nonce of `sealed`, and the ciphertext after them in *rest; with
// `compressed`, a chunk's header may also say its payload is compressed.
bool ReadHeader(absl::string_view sealed, uint32_t* epoch, absl::string_view* nonce, absl::string_view* rest,
                bool* compressed = nullptr) {
  absl::string_view version;
  *rest = sealed;
  if (!ReadBytes(rest, 1, &version)) return false;
  const uint8_t v = static_cast<uint8_t>(version[0]);
  if (v != kVersion && (compressed == nullptr || v != kVersionCompressed)) return false;
  if (compressed != nullptr) *compressed = v == kVersionCompressed;
  return ReadU32(rest, epoch) && ReadBytes(rest, kNonceBytes, nonce) && rest->size() >= kTagBytes;
}

}  // namespace

size_t PaddedSize(size_t n) { return std::max(kMinPadded, Padme(n + 1)); }

size_t SealedSize(size_t n) { return kHeaderBytes + PaddedSize(n) + kTagBytes; }

std::string SealChunk(const ContentKeys& keys, absl::string_view plaintext, bool compressed) {
  EnsureSodium();
  const size_t padded = PaddedSize(plaintext.size());
  const std::array<uint8_t, kNonceBytes> nonce = SyntheticNonce(keys, plaintext);
  std::string out;
  out.reserve(kHeaderBytes + padded + kTagBytes);
  AppendHeader(&out, keys.epoch, nonce.data(), compressed ? kVersionCompressed : kVersion);
  // Pad in place in the output, then encrypt it there (libsodium allows the overlap).
  out.resize(kHeaderBytes + padded + kTagBytes);
  unsigned char* body = reinterpret_cast<unsigned char*>(out.data()) + kHeaderBytes;
  memcpy(body, plaintext.data(), plaintext.size());
  size_t padded_len = 0;
  sodium_pad(&padded_len, body, plaintext.size(), padded, padded);
  crypto_aead_xchacha20poly1305_ietf_encrypt(body, nullptr, body, padded_len, U(out), 5, nullptr, nonce.data(),
                                             keys.chunk.data());
  return out;
}

absl::StatusOr<std::string> OpenChunk(const Keyring& ring, absl::string_view sealed, size_t max_bytes,
                                      bool* compressed) {
  EnsureSodium();
  uint32_t epoch = 0;
  absl::string_view nonce, in;
  bool is_compressed = false;
  if (!ReadHeader(sealed, &epoch, &nonce, &in, &is_compressed) || in.size() < kTagBytes + kMinPadded ||
      (is_compressed && compressed == nullptr)) {
    return absl::InvalidArgumentError("not a sealed chunk");
  }
  if (in.size() - kTagBytes > PaddedSize(max_bytes)) {
    return absl::InvalidArgumentError(absl::StrCat("sealed chunk of ", in.size(), " bytes: above the limit"));
  }
  absl::StatusOr<ContentKeys> keys = ring.Content(epoch);
  if (!keys.ok()) return keys.status();
  std::string plain(in.size() - kTagBytes, '\0');
  unsigned long long plain_len = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(reinterpret_cast<unsigned char*>(plain.data()), &plain_len, nullptr,
                                                 U(in), in.size(), U(sealed), 5, U(nonce), keys->chunk.data()) != 0) {
    return absl::DataLossError("sealed chunk: does not open under its epoch's key (altered or not this namespace's)");
  }
  size_t unpadded = 0;
  if (sodium_unpad(&unpadded, reinterpret_cast<unsigned char*>(plain.data()), plain_len, plain_len) != 0 ||
      unpadded > max_bytes) {
    return absl::DataLossError("sealed chunk: bad padding");
  }
  plain.resize(unpadded);
  const std::array<uint8_t, kNonceBytes> expected = SyntheticNonce(*keys, plain);
  if (sodium_memcmp(expected.data(), nonce.data(), kNonceBytes) != 0) {
    return absl::DataLossError("sealed chunk: its plaintext does not hash to its nonce");
  }
  if (compressed != nullptr) *compressed = is_compressed;
  return plain;
}

std::string SealRecord(const ContentKeys& keys, absl::string_view bound_to, absl::string_view record) {
  EnsureSodium();
  std::array<uint8_t, kNonceBytes> nonce{};
  randombytes_buf(nonce.data(), nonce.size());
  std::string out;
  AppendHeader(&out, keys.epoch, nonce.data());
  const std::string ad = absl::StrCat(absl::string_view(out).substr(0, 5), bound_to);
  out.resize(kHeaderBytes + record.size() + kTagBytes);
  crypto_aead_xchacha20poly1305_ietf_encrypt(reinterpret_cast<unsigned char*>(out.data()) + kHeaderBytes, nullptr,
                                             U(record), record.size(), U(ad), ad.size(), nullptr, nonce.data(),
                                             keys.record.data());
  return out;
}

absl::StatusOr<std::string> OpenRecord(const Keyring& ring, absl::string_view bound_to, absl::string_view sealed) {
  EnsureSodium();
  uint32_t epoch = 0;
  absl::string_view nonce, in;
  if (!ReadHeader(sealed, &epoch, &nonce, &in)) return absl::DataLossError("not a sealed version record");
  absl::StatusOr<ContentKeys> keys = ring.Content(epoch);
  if (!keys.ok()) return keys.status();
  const std::string ad = absl::StrCat(sealed.substr(0, 5), bound_to);
  std::string out(in.size() - kTagBytes, '\0');
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(reinterpret_cast<unsigned char*>(out.data()), nullptr, nullptr, U(in),
                                                 in.size(), U(ad), ad.size(), U(nonce), keys->record.data()) != 0) {
    return absl::DataLossError("sealed version record: altered, or not this path's");
  }
  return out;
}

std::array<uint64_t, 256> GearTable(const ContentKeys& keys) {
  static_assert(randombytes_SEEDBYTES == kKeyBytes);
  EnsureSodium();
  std::array<uint64_t, 256> table{};
  randombytes_buf_deterministic(table.data(), sizeof(table), keys.gear.data());
  return table;
}

}  // namespace converge::crypto
