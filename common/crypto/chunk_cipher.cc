#include "common/crypto/chunk_cipher.h"

#include <sodium.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

namespace converge::crypto {
namespace {

constexpr uint8_t kVersion = 1;             // version records (and chunks of earlier builds: one sealed whole)
constexpr uint8_t kVersionCompressed = 2;  // chunks of earlier builds: sealed whole, zstd-compressed
constexpr uint8_t kVersionFramed = 3;      // chunks: framed
constexpr size_t kNonceBytes = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr size_t kTagBytes = crypto_aead_xchacha20poly1305_ietf_ABYTES;
constexpr size_t kHeaderBytes = 1 + 4 + kNonceBytes;
constexpr size_t kMinPadded = 256;
// A frame: its length (of what follows), its nonce, its sealed flag and payload.
constexpr size_t kFrameOverhead = 4 + kNonceBytes + kTagBytes;
constexpr uint8_t kFrameRaw = 0;
constexpr uint8_t kFrameZstd = 1;
// How a chunk is cut into frames: the gear hash cuts where its top bits are zero, past a minimum.
struct FrameCut {
  size_t min_bytes;
  size_t max_bytes;
  uint64_t mask;
};
// 13 bits: a cut about every 8 KiB past the first 4 KiB.
constexpr FrameCut kSmallFrames{kMinFrameBytes, 64 << 10, uint64_t{0x1FFF} << 51};
// Compressed frames: 15 bits, about every 32 KiB past the first 16 KiB.
constexpr FrameCut kLargeFrames{16 << 10, kMaxFrameBytes, uint64_t{0x7FFF} << 49};

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

// SyntheticNonce: the keyed BLAKE2b of what a frame (or an earlier build's chunk) seals.
std::array<uint8_t, kNonceBytes> SyntheticNonce(const ContentKeys& keys, absl::string_view plaintext) {
  std::array<uint8_t, kNonceBytes> nonce{};
  crypto_generichash(nonce.data(), nonce.size(), U(plaintext), plaintext.size(), keys.chunk_id.data(), kKeyBytes);
  return nonce;
}

// FramesTag: the keyed BLAKE2b of a chunk's frame nonces in order ('T' first: no frame's sealed
// bytes start with it, so the two never meet).
std::array<uint8_t, kNonceBytes> FramesTag(const ContentKeys& keys, absl::string_view nonces) {
  std::array<uint8_t, kNonceBytes> tag{};
  crypto_generichash_state state;
  crypto_generichash_init(&state, keys.chunk_id.data(), kKeyBytes, tag.size());
  const unsigned char t = 'T';
  crypto_generichash_update(&state, &t, 1);
  crypto_generichash_update(&state, U(nonces), nonces.size());
  crypto_generichash_final(&state, tag.data(), tag.size());
  return tag;
}

// Header: version byte, epoch, nonce (or tag).
void AppendHeader(std::string* out, uint32_t epoch, const uint8_t* nonce, uint8_t version = kVersion) {
  out->push_back(static_cast<char>(version));
  AppendU32(out, epoch);
  out->append(reinterpret_cast<const char*>(nonce), kNonceBytes);
}

// ReadHeader: the version, epoch and nonce of `sealed`, and the bytes after them in *rest.
bool ReadHeader(absl::string_view sealed, uint8_t* version, uint32_t* epoch, absl::string_view* nonce,
                absl::string_view* rest) {
  absl::string_view v;
  *rest = sealed;
  if (!ReadBytes(rest, 1, &v)) return false;
  *version = static_cast<uint8_t>(v[0]);
  return ReadU32(rest, epoch) && ReadBytes(rest, kNonceBytes, nonce) && rest->size() >= kTagBytes;
}

// FrameEnds: where the gear hash cuts `data` into frames (each end offset, the last data.size()).
std::vector<size_t> FrameEnds(const std::array<uint64_t, 256>& gear, absl::string_view data, const FrameCut& cut) {
  std::vector<size_t> ends;
  size_t start = 0;
  while (data.size() - start > cut.min_bytes) {
    const size_t limit = std::min(data.size(), start + cut.max_bytes);
    size_t end = limit;
    uint64_t h = 0;
    for (size_t i = start + cut.min_bytes; i < limit; ++i) {
      h = (h << 1) + gear[static_cast<uint8_t>(data[i])];
      if ((h & cut.mask) == 0) {
        end = i + 1;
        break;
      }
    }
    ends.push_back(end);
    start = end;
  }
  if (start < data.size() || ends.empty()) ends.push_back(data.size());
  return ends;
}

// Unpad: the length of a frame padded ISO/IEC 7816-4 style (0x80, then zeros), as libsodium's
// sodium_unpad reads it, but without its constant-time loop over the whole frame (a third of
// an engine's time): a frame's padded size is what the store sees anyway, and only the
// padding's own bytes are looked at here.
bool Unpad(const std::string& frame, size_t* n) {
  size_t end = frame.size();
  while (end > 0 && frame[end - 1] == 0) --end;
  if (end == 0 || static_cast<uint8_t>(frame[end - 1]) != 0x80) return false;
  *n = end - 1;
  return true;
}

// FrameNonce: a frame's synthetic nonce, the keyed BLAKE2b of the SHA-256 of what it seals
// (SHA-256 runs on the CPU's SHA extensions, faster than BLAKE2b over the whole frame).
std::array<uint8_t, kNonceBytes> FrameNonce(const ContentKeys& keys, absl::string_view sealed_bytes) {
  const Digest d = HashOf(sealed_bytes);
  std::array<uint8_t, kNonceBytes> nonce{};
  crypto_generichash(nonce.data(), nonce.size(), d.data(), d.size(), keys.chunk_id.data(), kKeyBytes);
  return nonce;
}

// SealFrame appends one frame sealing `flag` and `payload` (appended, not zero-filled first:
// `out` has room reserved); its nonce goes to *nonces.
void SealFrame(const ContentKeys& keys, uint8_t flag, absl::string_view payload, std::string* out,
               std::string* nonces) {
  const size_t n = 1 + payload.size();
  const size_t padded = PaddedSize(n);
  const size_t at = out->size();
  AppendU32(out, static_cast<uint32_t>(kNonceBytes + padded + kTagBytes));
  out->append(kNonceBytes, '\0');
  const size_t body_at = out->size();
  out->push_back(static_cast<char>(flag));
  out->append(payload.data(), payload.size());
  const std::array<uint8_t, kNonceBytes> nonce = FrameNonce(keys, absl::string_view(*out).substr(body_at, n));
  out->push_back(static_cast<char>(0x80));  // ISO/IEC 7816-4 padding, as Unpad reads it
  out->append(padded - n - 1, '\0');
  out->append(kTagBytes, '\0');
  memcpy(out->data() + at + 4, nonce.data(), kNonceBytes);
  nonces->append(reinterpret_cast<const char*>(nonce.data()), kNonceBytes);
  unsigned char* body = reinterpret_cast<unsigned char*>(out->data()) + body_at;
  // The version byte and epoch, the chunk's first five bytes, are the associated data.
  crypto_aead_xchacha20poly1305_ietf_encrypt(body, nullptr, body, padded, U(*out), 5, nullptr, nonce.data(),
                                             keys.chunk.data());
}

// OpenWhole opens a chunk an earlier build sealed whole (one nonce, one padded body).
absl::StatusOr<std::string> OpenWhole(const ContentKeys& keys, absl::string_view sealed, absl::string_view nonce,
                                      absl::string_view in, size_t max_bytes, bool compressed,
                                      const Decompressor& decompress) {
  if (in.size() < kTagBytes + kMinPadded) return absl::InvalidArgumentError("not a sealed chunk");
  std::string plain(in.size() - kTagBytes, '\0');
  unsigned long long plain_len = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(reinterpret_cast<unsigned char*>(plain.data()), &plain_len, nullptr,
                                                 U(in), in.size(), U(sealed), 5, U(nonce), keys.chunk.data()) != 0) {
    return absl::DataLossError("sealed chunk: does not open under its epoch's key (altered or not this namespace's)");
  }
  size_t unpadded = 0;
  if (sodium_unpad(&unpadded, reinterpret_cast<unsigned char*>(plain.data()), plain_len, plain_len) != 0 ||
      unpadded > max_bytes) {
    return absl::DataLossError("sealed chunk: bad padding");
  }
  plain.resize(unpadded);
  const std::array<uint8_t, kNonceBytes> expected = SyntheticNonce(keys, plain);
  if (sodium_memcmp(expected.data(), nonce.data(), kNonceBytes) != 0) {
    return absl::DataLossError("sealed chunk: its plaintext does not hash to its nonce");
  }
  if (!compressed) return plain;
  if (decompress == nullptr) return absl::InvalidArgumentError("a compressed chunk, and nothing to decompress it");
  absl::StatusOr<std::string> raw = decompress(plain, max_bytes);
  if (!raw.ok()) return absl::DataLossError(absl::StrCat("sealed chunk: ", raw.status().message()));
  return raw;
}

// OpenFrame opens the next frame of `*in` (advancing it), appends its bytes to *plain (at most
// max_bytes in all) and its nonce to *nonces.
absl::Status OpenFrame(const ContentKeys& keys, absl::string_view sealed, absl::string_view* in, size_t max_bytes,
                       const Decompressor& decompress, std::string* plain, std::string* nonces) {
  uint32_t length = 0;
  absl::string_view nonce, body;
  if (!ReadU32(in, &length) || length < kNonceBytes + kTagBytes + kMinPadded ||
      length > kNonceBytes + kTagBytes + PaddedSize(kMaxFrameBytes + kMaxFrameBytes / 8 + 64) ||
      !ReadBytes(in, kNonceBytes, &nonce) || !ReadBytes(in, length - kNonceBytes, &body)) {
    return absl::InvalidArgumentError("not a sealed chunk: a frame's length");
  }
  std::string frame(body.size() - kTagBytes, '\0');
  unsigned long long frame_len = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(reinterpret_cast<unsigned char*>(frame.data()), &frame_len, nullptr,
                                                 U(body), body.size(), U(sealed), 5, U(nonce), keys.chunk.data()) != 0) {
    return absl::DataLossError("sealed chunk: a frame does not open under its epoch's key (altered or not this namespace's)");
  }
  frame.resize(frame_len);
  size_t n = 0;
  if (!Unpad(frame, &n) || n < 1) return absl::DataLossError("sealed chunk: a frame's padding");
  // The frame's nonce is not hashed again: its tag authenticates it, the header's hash of the
  // nonces its place, and the engine checks the chunk's SHA-256.
  frame.resize(n);
  nonces->append(nonce.data(), nonce.size());
  const absl::string_view payload = absl::string_view(frame).substr(1);
  const size_t room = max_bytes - plain->size();
  if (static_cast<uint8_t>(frame[0]) == kFrameRaw) {
    if (payload.size() > room) return absl::InvalidArgumentError("sealed chunk: above the limit");
    plain->append(payload.data(), payload.size());
    return absl::OkStatus();
  }
  if (static_cast<uint8_t>(frame[0]) != kFrameZstd) return absl::DataLossError("sealed chunk: a frame's flag");
  if (decompress == nullptr) return absl::InvalidArgumentError("a compressed frame, and nothing to decompress it");
  absl::StatusOr<std::string> raw = decompress(payload, std::min(room, kMaxFrameBytes));
  if (!raw.ok()) return absl::DataLossError(absl::StrCat("sealed chunk: a frame: ", raw.status().message()));
  plain->append(*raw);
  return absl::OkStatus();
}

}  // namespace

size_t PaddedSize(size_t n) { return std::max(kMinPadded, Padme(n + 1)); }

size_t SealedBound(size_t n) {
  const size_t frames = n / kMinFrameBytes + 1;
  return kHeaderBytes + frames * (kFrameOverhead + kMinPadded) + n + n / 8 + frames * 64;
}

std::string SealChunk(const ContentKeys& keys, absl::string_view plaintext, const Compressor& compress) {
  EnsureSodium();
  const std::array<uint64_t, 256> gear = GearTable(keys);
  std::string out;
  out.reserve(SealedBound(plaintext.size()));
  const std::array<uint8_t, kNonceBytes> unset{};
  AppendHeader(&out, keys.epoch, unset.data(), kVersionFramed);
  std::string nonces;
  size_t start = 0;
  for (size_t end : FrameEnds(gear, plaintext, compress ? kLargeFrames : kSmallFrames)) {
    const absl::string_view piece = plaintext.substr(start, end - start);
    start = end;
    std::string z = compress ? compress(piece) : std::string();
    if (!z.empty() && z.size() < piece.size()) {
      SealFrame(keys, kFrameZstd, z, &out, &nonces);
    } else {
      SealFrame(keys, kFrameRaw, piece, &out, &nonces);
    }
  }
  const std::array<uint8_t, kNonceBytes> tag = FramesTag(keys, nonces);
  memcpy(out.data() + 5, tag.data(), kNonceBytes);
  return out;
}

absl::StatusOr<std::string> OpenChunk(const Keyring& ring, absl::string_view sealed, size_t max_bytes,
                                      const Decompressor& decompress) {
  EnsureSodium();
  uint8_t version = 0;
  uint32_t epoch = 0;
  absl::string_view nonce, in;
  if (!ReadHeader(sealed, &version, &epoch, &nonce, &in) ||
      (version != kVersion && version != kVersionCompressed && version != kVersionFramed)) {
    return absl::InvalidArgumentError("not a sealed chunk");
  }
  if (sealed.size() > SealedBound(max_bytes)) {
    return absl::InvalidArgumentError(absl::StrCat("sealed chunk of ", sealed.size(), " bytes: above the limit"));
  }
  absl::StatusOr<ContentKeys> keys = ring.Content(epoch);
  if (!keys.ok()) return keys.status();
  if (version != kVersionFramed) {
    return OpenWhole(*keys, sealed, nonce, in, max_bytes, version == kVersionCompressed, decompress);
  }
  std::string plain, nonces;
  while (!in.empty()) {
    CONVERGE_RETURN_IF_ERROR(OpenFrame(*keys, sealed, &in, max_bytes, decompress, &plain, &nonces));
  }
  const std::array<uint8_t, kNonceBytes> tag = FramesTag(*keys, nonces);
  if (sodium_memcmp(tag.data(), nonce.data(), kNonceBytes) != 0) {
    return absl::DataLossError("sealed chunk: its frames are not the ones it was sealed with");
  }
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
  uint8_t version = 0;
  absl::string_view nonce, in;
  if (!ReadHeader(sealed, &version, &epoch, &nonce, &in) || version != kVersion) {
    return absl::DataLossError("not a sealed version record");
  }
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
