// Chunker: cuts file content into chunks and hashes them (SHA-256 per chunk and per file) in
// one sequential read. Fixed-size chunks for now; content-defined chunking replaces this later.
#ifndef CONVERGE_ENGINE_CHUNKER_H_
#define CONVERGE_ENGINE_CHUNKER_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model.h"
#include "engine/filesystem.h"

namespace converge::engine {

inline constexpr uint32_t kDefaultChunkBytes = 1 << 20;

struct FileContent {
  uint64_t size = 0;
  Digest sha256{};
  std::vector<ChunkRef> chunks;  // empty for an empty file
};

// ChunkFile reads `file` to its end in chunk_bytes pieces.
absl::StatusOr<FileContent> ChunkFile(ReadableFile* file, uint32_t chunk_bytes = kDefaultChunkBytes);

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_CHUNKER_H_
