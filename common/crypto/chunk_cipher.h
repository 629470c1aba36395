// The contents of an end-to-end encrypted namespace: the ciphertext the store holds for a chunk,
// and for a version record.
//
// A chunk is padded to a bucket (Padmé: at most ~12% larger, so a size says little about the
// content) and sealed with XChaCha20-Poly1305 under the epoch's chunk key. The nonce is a keyed
// BLAKE2b of the plaintext (a synthetic IV): equal chunks of one namespace and epoch seal to
// equal bytes, so the store still deduplicates them under the SHA-256 of the sealed bytes (its
// usual chunk id, which it checks as for any chunk), while the same plaintext in another
// namespace seals to unrelated bytes (nothing is learned across namespaces). Opening checks the
// tag and that the plaintext hashes to the nonce.
//
//   std::string sealed = SealChunk(keys, plain);             // on the writing device
//   absl::StatusOr<std::string> back = OpenChunk(ring, sealed, kMaxChunkBytes);
//
// A version record (path, size, mtime, mode, kind, chunk list ...) is sealed under the record key
// with a random nonce, bound to the encrypted path it is stored under.
#ifndef CONVERGE_COMMON_CRYPTO_CHUNK_CIPHER_H_
#define CONVERGE_COMMON_CRYPTO_CHUNK_CIPHER_H_

#include <array>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/base/sha256.h"
#include "common/crypto/keyring.h"

namespace converge::crypto {

// PaddedSize: the bytes a plaintext of n bytes is padded to before sealing (at least 256, then
// Padmé's buckets of n + 1: the padding always takes a byte).
size_t PaddedSize(size_t n);
// SealedSize: the size of SealChunk's result for a plaintext of n bytes.
size_t SealedSize(size_t n);

// SealChunk: version byte, epoch, the synthetic nonce, then the padded plaintext encrypted and
// authenticated together with the version and epoch. `compressed`: the plaintext is the chunk
// compressed by the caller (another version byte, authenticated like the rest).
std::string SealChunk(const ContentKeys& keys, absl::string_view plaintext, bool compressed = false);

// OpenChunk returns the plaintext of `sealed`: DataLoss when its epoch's key does not open it or
// the plaintext does not hash to its nonce (a store that altered or invented a chunk), NotFound
// for an epoch `ring` lacks, InvalidArgument for a plaintext above `max_bytes` or something that
// is not a sealed chunk. (The caller checks the plaintext is the chunk it asked for.) With
// `compressed`, a chunk sealed compressed opens too and *compressed says so (the caller
// decompresses it, bounded); without, such a chunk is InvalidArgument.
absl::StatusOr<std::string> OpenChunk(const Keyring& ring, absl::string_view sealed, size_t max_bytes,
                                      bool* compressed = nullptr);

// SealRecord / OpenRecord: a version record under the epoch's record key, bound to `bound_to`
// (the encrypted path it is stored under). OpenRecord: DataLoss if altered or moved.
std::string SealRecord(const ContentKeys& keys, absl::string_view bound_to, absl::string_view record);
absl::StatusOr<std::string> OpenRecord(const Keyring& ring, absl::string_view bound_to, absl::string_view sealed);

// GearTable: the 256 values of the content-defined chunker's rolling hash, drawn from the
// epoch's gear key, so chunk boundaries do not fingerprint a known file.
std::array<uint64_t, 256> GearTable(const ContentKeys& keys);

}  // namespace converge::crypto

#endif  // CONVERGE_COMMON_CRYPTO_CHUNK_CIPHER_H_
