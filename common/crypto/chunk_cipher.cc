#include "common/crypto/chunk_cipher.h"

#include <sodium.h>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace converge::crypto {
namespace {

constexpr uint8_t kVersion = 1;
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

// The associated data: the id the chunk was sealed for, then the version and epoch bytes.
std::string AssociatedData(const Digest& id, absl::string_view version_and_epoch) {
  std::string ad(reinterpret_cast<const char*>(id.data()), id.size());
  ad.append(version_and_epoch.data(), version_and_epoch.size());
  return ad;
}

}  // namespace

Digest ChunkId(const ContentKeys& keys, absl::string_view plaintext) {
  EnsureSodium();
  Digest id{};
  crypto_generichash(id.data(), id.size(), U(plaintext), plaintext.size(), keys.chunk_id.data(), kKeyBytes);
  return id;
}

size_t PaddedSize(size_t n) { return std::max(kMinPadded, Padme(n + 1)); }

size_t SealedSize(size_t n) { return kHeaderBytes + PaddedSize(n) + kTagBytes; }

std::string SealChunk(const ContentKeys& keys, const Digest& id, absl::string_view plaintext) {
  EnsureSodium();
  const size_t padded = PaddedSize(plaintext.size());
  std::string out;
  out.reserve(kHeaderBytes + padded + kTagBytes);
  out.push_back(static_cast<char>(kVersion));
  AppendU32(&out, keys.epoch);
  out.resize(kHeaderBytes);
  randombytes_buf(out.data() + 5, kNonceBytes);
  const std::string ad = AssociatedData(id, absl::string_view(out).substr(0, 5));
  // Pad in place in the output, then encrypt it there (libsodium allows the overlap).
  out.resize(kHeaderBytes + padded + kTagBytes);
  unsigned char* body = reinterpret_cast<unsigned char*>(out.data()) + kHeaderBytes;
  memcpy(body, plaintext.data(), plaintext.size());
  size_t padded_len = 0;
  sodium_pad(&padded_len, body, plaintext.size(), padded, padded);
  crypto_aead_xchacha20poly1305_ietf_encrypt(body, nullptr, body, padded_len, U(ad), ad.size(), nullptr,
                                             U(out) + 5, keys.chunk.data());
  return out;
}

absl::StatusOr<std::string> OpenChunk(const Keyring& ring, const Digest& id, absl::string_view sealed,
                                      size_t max_bytes) {
  EnsureSodium();
  absl::string_view in = sealed, version, nonce;
  uint32_t epoch = 0;
  if (!ReadBytes(&in, 1, &version) || static_cast<uint8_t>(version[0]) != kVersion || !ReadU32(&in, &epoch) ||
      !ReadBytes(&in, kNonceBytes, &nonce) || in.size() < kTagBytes + kMinPadded) {
    return absl::InvalidArgumentError("not a sealed chunk");
  }
  if (in.size() - kTagBytes > PaddedSize(max_bytes)) {
    return absl::InvalidArgumentError(absl::StrCat("sealed chunk of ", in.size(), " bytes: above the limit"));
  }
  absl::StatusOr<ContentKeys> keys = ring.Content(epoch);
  if (!keys.ok()) return keys.status();
  const std::string ad = AssociatedData(id, sealed.substr(0, 5));
  std::string plain(in.size() - kTagBytes, '\0');
  unsigned long long plain_len = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(reinterpret_cast<unsigned char*>(plain.data()), &plain_len, nullptr,
                                                 U(in), in.size(), U(ad), ad.size(), U(nonce),
                                                 keys->chunk.data()) != 0) {
    return absl::DataLossError("sealed chunk: does not open under its epoch's key for this id (altered or swapped)");
  }
  size_t unpadded = 0;
  if (sodium_unpad(&unpadded, reinterpret_cast<unsigned char*>(plain.data()), plain_len, plain_len) != 0 ||
      unpadded > max_bytes) {
    return absl::DataLossError("sealed chunk: bad padding");
  }
  plain.resize(unpadded);
  if (sodium_memcmp(ChunkId(*keys, plain).data(), id.data(), id.size()) != 0) {
    return absl::DataLossError("sealed chunk: its plaintext does not hash to its id");
  }
  return plain;
}

std::array<uint64_t, 256> GearTable(const ContentKeys& keys) {
  static_assert(randombytes_SEEDBYTES == kKeyBytes);
  EnsureSodium();
  std::array<uint64_t, 256> table{};
  randombytes_buf_deterministic(table.data(), sizeof(table), keys.gear.data());
  return table;
}

}  // namespace converge::crypto
