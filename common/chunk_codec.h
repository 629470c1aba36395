// ChunkCodec: how chunk bytes travel and rest. Chunks are named by the SHA-256 of their raw
// bytes whatever the encoding; every receiver decodes and checks the hash before trusting them.
//
//   raw         the bytes
//   zstd        zstd-compressed, used only when it saves at least 10% (incompressible data is
//               detected on a sample and not compressed at all)
//   zstd delta  zstd with another chunk (the "base", which the receiver already has) as a
//               prefix: an edited chunk costs about the size of the edit
#ifndef CONVERGE_COMMON_CHUNK_CODEC_H_
#define CONVERGE_COMMON_CHUNK_CODEC_H_

#include <cstddef>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace converge {

enum class ChunkEncoding { kRaw = 0, kZstd = 1, kZstdDelta = 2 };

// Compress returns the zstd form of `raw` if it is at least 10% smaller, else nullopt.
std::optional<std::string> CompressIfWorthIt(absl::string_view raw);

// Compress returns the zstd frame of `raw` whatever it saves.
std::string Compress(absl::string_view raw);

// Decompress returns the raw bytes of a zstd frame; InvalidArgument if it is not one, or if it
// would exceed max_bytes (a decompression bomb is refused before it is expanded).
absl::StatusOr<std::string> Decompress(absl::string_view compressed, size_t max_bytes);

// DeltaEncode compresses `target` with `base` as a zstd prefix; the result decodes only with the
// same base. Returns nullopt unless it is at least 10% smaller than `max_useful` bytes.
std::optional<std::string> DeltaEncode(absl::string_view target, absl::string_view base, size_t max_useful);
absl::StatusOr<std::string> DeltaDecode(absl::string_view delta, absl::string_view base, size_t max_bytes);

}  // namespace converge

#endif  // CONVERGE_COMMON_CHUNK_CODEC_H_
