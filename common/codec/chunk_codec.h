// ChunkCodec: how chunk bytes travel and rest. Chunks are named by the SHA-256 of their raw
// bytes whatever the encoding; every receiver decodes and checks the hash before trusting them.
//
//   raw         the bytes
//   zstd        zstd-compressed, used only when it saves at least 10% (incompressible data is
//               detected on a sample and not compressed at all)
//   zstd delta  zstd with another chunk (the "base", which the receiver already has) as a
//               prefix: an edited chunk costs about the size of the edit
//   zstd stream on the wire only: the compressible chunks of one call form one zstd stream,
//               each chunk a flushed piece of it, so that a chunk is compressed with the ones
//               before it as context (text repeats across chunks: licences, logs, sources)
#ifndef CONVERGE_COMMON_CODEC_CHUNK_CODEC_H_
#define CONVERGE_COMMON_CODEC_CHUNK_CODEC_H_

#include <cstddef>
#include <memory>
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

// LooksCompressible: whether zstd is worth trying on `raw` (samples of a large chunk, at its
// start, middle and end, compress by 10%; small chunks are tried whole).
bool LooksCompressible(absl::string_view raw);
// Compresses: whether zstd's fastest level saves 10% of `sample` (meant for up to 64 KiB).
bool Compresses(absl::string_view sample);

// StreamEncoder: the sender's side of a zstd stream (one per call). Encode returns the next
// piece: `raw` compressed with every earlier piece as context (an 8 MiB window).
class StreamEncoder {
 public:
  StreamEncoder();
  ~StreamEncoder();
  StreamEncoder(const StreamEncoder&) = delete;
  StreamEncoder& operator=(const StreamEncoder&) = delete;
  absl::StatusOr<std::string> Encode(absl::string_view raw);
  // Worth: whether to put `raw` into the stream: yes if it looks compressible on its own, or
  // while the stream so far pays (saves 3%): a chunk that does not compress alone may repeat
  // one sent before it. The first chunk is judged by its samples alone (LooksCompressible), so a
  // stream of random data never compresses a whole chunk.
  bool Worth(absl::string_view raw) const;

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
  uint64_t bytes_in_ = 0;
  uint64_t bytes_out_ = 0;
};

// StreamDecoder: the receiver's side. Decode returns the raw bytes of the next piece, pieces
// taken in the order they were encoded. InvalidArgument (and the stream is unusable) for bytes
// that are not the next piece, a piece of more than max_bytes, or a window above 8 MiB (memory
// a hostile sender could make the receiver hold).
class StreamDecoder {
 public:
  StreamDecoder();
  ~StreamDecoder();
  StreamDecoder(const StreamDecoder&) = delete;
  StreamDecoder& operator=(const StreamDecoder&) = delete;
  absl::StatusOr<std::string> Decode(absl::string_view piece, size_t max_bytes);

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
  bool broken_ = false;
};

}  // namespace converge

#endif  // CONVERGE_COMMON_CODEC_CHUNK_CODEC_H_
