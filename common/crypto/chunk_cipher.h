// The contents of an end-to-end encrypted namespace: the ciphertext the store holds for a chunk,
// and for a version record.
//
// A chunk is sealed as frames: it is cut into pieces of about 12 KiB (48 KiB when it is sealed
// with a compressor) where a content-defined hash over the epoch's gear table says (so the cuts
// fingerprint nothing without the key), and each piece is compressed when that pays, padded to
// a bucket (Padmé: at most ~12% larger, so a size says little about the content) and sealed
// with XChaCha20-Poly1305 under the epoch's chunk key. A piece's nonce is a keyed BLAKE2b of the
// SHA-256 of what it seals (a synthetic IV): equal chunks of one namespace and epoch seal to
// equal bytes, so the store still deduplicates them under the SHA-256 of the sealed bytes (its
// usual chunk id, which it checks as for any chunk), while the same plaintext in another
// namespace seals to unrelated bytes (nothing is learned across namespaces).
// An edited chunk seals to the same frames as before but for those around the edit, so an rsync
// delta of the sealed bytes (the store's own delta machinery, both ways) carries only those.
// The header's tag is a keyed BLAKE2b of the frames' nonces in order: opening checks every
// frame's authentication tag and the header's, so frames dropped, repeated, reordered or taken
// from another chunk are refused.
//
//   std::string sealed = SealChunk(keys, plain, compress);             // on the writing device
//   absl::StatusOr<std::string> back = OpenChunk(ring, sealed, kMaxChunkBytes, decompress);
//
// A version record (path, size, mtime, mode, kind, chunk list ...) is sealed under the record key
// with a random nonce, bound to the encrypted path it is stored under.
#ifndef CONVERGE_COMMON_CRYPTO_CHUNK_CIPHER_H_
#define CONVERGE_COMMON_CRYPTO_CHUNK_CIPHER_H_

#include <array>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/base/sha256.h"
#include "common/crypto/keyring.h"

namespace converge::crypto {

// PaddedSize: the bytes a frame of n bytes is padded to before sealing (at least 256, then
// Padmé's buckets of n + 1: the padding always takes a byte).
size_t PaddedSize(size_t n);
// SealedBound: the most SealChunk's result may take for a plaintext of n bytes (OpenChunk
// refuses anything larger).
size_t SealedBound(size_t n);

// Frames are cut where the gear hash says, between these sizes: about 12 KiB, or about 48 KiB
// when the chunk is sealed with a compressor (zstd does better on larger pieces).
inline constexpr size_t kMinFrameBytes = 4 << 10;
inline constexpr size_t kMaxFrameBytes = 256 << 10;

// Compressor: a frame's zstd-compressed bytes when that pays, else empty. Decompressor: the
// bytes of a compressed frame, at most `max_bytes` of them (InvalidArgument past that).
using Compressor = std::function<std::string(absl::string_view)>;
using Decompressor = std::function<absl::StatusOr<std::string>(absl::string_view, size_t max_bytes)>;

// SealChunk: version byte, epoch, the frames' tag, then each frame (its length, its synthetic
// nonce, its flag byte and payload padded and encrypted, authenticated together with the
// version and epoch). Without `compress`, no frame is compressed.
std::string SealChunk(const ContentKeys& keys, absl::string_view plaintext, const Compressor& compress = nullptr);

// OpenChunk returns the plaintext of `sealed`: DataLoss when its epoch's key does not open a
// frame or the frames' nonces do not match the header's hash of them (a store
// that altered, rearranged or invented a chunk); NotFound for an epoch `ring` lacks;
// InvalidArgument for a plaintext above `max_bytes`, a compressed frame without `decompress`,
// or something that is not a sealed chunk. (The caller checks the plaintext is the chunk it
// asked for.)
absl::StatusOr<std::string> OpenChunk(const Keyring& ring, absl::string_view sealed, size_t max_bytes,
                                      const Decompressor& decompress = nullptr);

// SealRecord / OpenRecord: a version record under the epoch's record key, bound to `bound_to`
// (the encrypted path it is stored under). OpenRecord: DataLoss if altered or moved.
std::string SealRecord(const ContentKeys& keys, absl::string_view bound_to, absl::string_view record);
absl::StatusOr<std::string> OpenRecord(const Keyring& ring, absl::string_view bound_to, absl::string_view sealed);

// GearTable: the 256 values of the content-defined chunker's rolling hash, drawn from the
// epoch's gear key, so chunk boundaries do not fingerprint a known file.
std::array<uint64_t, 256> GearTable(const ContentKeys& keys);

}  // namespace converge::crypto

#endif  // CONVERGE_COMMON_CRYPTO_CHUNK_CIPHER_H_
