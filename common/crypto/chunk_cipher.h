// The contents of an end-to-end encrypted namespace: what a chunk is called in the store, and
// the ciphertext the store holds for it.
//
// A chunk's id is a keyed BLAKE2b-256 of its plaintext (ContentKeys::chunk_id): equal chunks of
// one namespace and epoch share an id (the store still deduplicates), while the same bytes in
// another namespace get an unrelated id (nothing is learned across namespaces). Its bytes are
// padded to a bucket (Padmé: at most ~12% larger, so a size says little about the content) and
// sealed with XChaCha20-Poly1305 under the epoch's chunk key, bound to the id.
//
//   Digest id = ChunkId(keys, plain);
//   std::string sealed = SealChunk(keys, id, plain);            // on the writing device
//   absl::StatusOr<std::string> back = OpenChunk(ring, id, sealed, kMaxChunkBytes);
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

// ChunkId: the keyed BLAKE2b-256 of a chunk's plaintext.
Digest ChunkId(const ContentKeys& keys, absl::string_view plaintext);

// PaddedSize: the bytes a plaintext of n bytes is padded to before sealing (at least 256, then
// Padmé's buckets of n + 1: the padding always takes a byte).
size_t PaddedSize(size_t n);
// SealedSize: the size of SealChunk's result for a plaintext of n bytes.
size_t SealedSize(size_t n);

// SealChunk: version byte, epoch, random nonce, then the padded plaintext encrypted and
// authenticated together with `id` and the epoch.
std::string SealChunk(const ContentKeys& keys, const Digest& id, absl::string_view plaintext);

// OpenChunk returns the plaintext of `sealed`, checked three ways: its epoch's key opens it,
// it was sealed for `id`, and the plaintext's keyed hash is `id`. DataLoss when any check fails
// (a store that altered, swapped or invented a chunk), NotFound for an epoch `ring` lacks,
// InvalidArgument for a plaintext above `max_bytes` or something that is not a sealed chunk.
absl::StatusOr<std::string> OpenChunk(const Keyring& ring, const Digest& id, absl::string_view sealed,
                                      size_t max_bytes);

// GearTable: the 256 values of the content-defined chunker's rolling hash, drawn from the
// epoch's gear key, so chunk boundaries do not fingerprint a known file.
std::array<uint64_t, 256> GearTable(const ContentKeys& keys);

}  // namespace converge::crypto

#endif  // CONVERGE_COMMON_CRYPTO_CHUNK_CIPHER_H_
