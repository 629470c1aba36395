// Chunker: cuts file content into content-defined chunks (FastCDC: a gear rolling hash with
// normalized chunking and cut-point skipping) and hashes each chunk (SHA-256), in one sequential
// pass of big reads; for a large file the chunks are hashed on a second core while the next
// ones are cut. The file's content hash is named from its chunk list (ContentDigest). An insert or delete moves the boundaries only
// near the edit, so the rest of the file keeps its chunks (and the store and other devices
// already have them).
//
//   FastCdc cdc(ChunkParams{});
//   size_t cut = cdc.Cut(data, size);   // length of the next chunk at the start of data
//
// Thread-safe (const after construction).
#ifndef CONVERGE_ENGINE_SYNC_CHUNKER_H_
#define CONVERGE_ENGINE_SYNC_CHUNKER_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/model/model.h"
#include "engine/fs/filesystem.h"

namespace converge::engine {

// Chunk size bounds. The defaults were chosen by measurement (docs/architecture.md): the mean
// chunk is large enough that a 100 MiB file lists ~400 chunks (the metadata every version
// carries), small enough that an edit costs a fraction of a MiB before deltas.
// GearTable: the rolling hash's 256 values, and each shifted left by one. An end-to-end
// encrypted namespace has its own (drawn from its keys: crypto::GearTable), so chunk boundaries do
// not tell which known file a device holds; a plain namespace uses a fixed one.
struct GearTable {
  uint64_t gear[256];
  uint64_t shifted[256];
};
std::shared_ptr<const GearTable> MakeGearTable(const std::array<uint64_t, 256>& values);

struct ChunkParams {
  uint32_t min_bytes = 64 << 10;
  uint32_t avg_bytes = 256 << 10;  // a power of two
  uint32_t max_bytes = 1 << 20;    // <= kMaxChunkBytes
  std::shared_ptr<const GearTable> gear;  // null: the fixed table
};

class FastCdc {
 public:
  explicit FastCdc(ChunkParams params);
  // Cut returns the length of the chunk that starts at data[0]: a content-defined boundary, or
  // max_bytes, or n when n <= min_bytes (the rest of the input). `last` says data ends there.
  size_t Cut(const uint8_t* data, size_t n) const;
  // CutOneByteAStep is the definition Cut computes faster (FastCDC's loop, one byte a step):
  // every device must cut the same content at the same places, so tests hold Cut to it.
  size_t CutOneByteAStep(const uint8_t* data, size_t n) const;

 private:
  const ChunkParams params_;
  uint64_t mask_small_;  // before avg_bytes: more bits, boundaries less likely
  uint64_t mask_large_;  // after avg_bytes: fewer bits, boundaries more likely
};

// Holes shorter than this are read as zeros (data): one is not worth an entry of its own.
inline constexpr uint64_t kMinHoleBytes = 64 << 10;

struct FileContent {
  uint64_t size = 0;
  Digest sha256{};
  std::vector<ChunkRef> chunks;  // empty for an empty file
};

// ChunkVisitor sees every chunk's bytes once hashed, in file order (the engine uploads what the
// store lacks without reading the file again). For a large file it runs on the hashing thread,
// while ChunkFile's caller waits in ChunkFile.
using ChunkVisitor = std::function<void(const ChunkRef& ref, uint64_t offset, absl::string_view bytes)>;

// ChunkFile reads `file` to its end and returns its chunks and hashes; calls `visit` (if set)
// for each chunk. The file's holes (of kMinHoleBytes or more) are not read: they are listed as
// hole entries (ChunkRef::Hole), and each data range between them is chunked on its own.
absl::StatusOr<FileContent> ChunkFile(ReadableFile* file, const ChunkParams& params = ChunkParams{},
                                      const ChunkVisitor& visit = nullptr);

// ChunkBytes chunks bytes in memory as ChunkFile chunks a file with the same content.
FileContent ChunkBytes(absl::string_view data, const ChunkParams& params = ChunkParams{});

// ChunkLayout: where the chunks of a file's previous version lay, to choose the old chunk a
// changed chunk is best sent as a delta against.
class ChunkLayout {
 public:
  ChunkLayout() = default;
  explicit ChunkLayout(const std::vector<ChunkRef>& chunks);

  // BasesFor returns the old chunks that overlap [offset, offset + length), in order (at most
  // kMaxDeltaBases: the run of them that overlaps most; a neighbour sharing under 16 KiB is left
  // out unless it is the only one). A chunk cut anew after an edit often spans two old ones
  // until the cut points fall back onto the old boundaries: a delta against both carries only
  // the edit.
  std::vector<Digest> BasesFor(uint64_t offset, uint64_t length) const;

 private:
  std::vector<uint64_t> starts_;  // ascending
  std::vector<ChunkRef> chunks_;
};

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_SYNC_CHUNKER_H_
