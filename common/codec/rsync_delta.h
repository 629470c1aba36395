// RsyncDelta: how a device uploads an edited chunk when it no longer has the old one but the
// store does (the rsync algorithm, one chunk at a time). The store sends a signature of the old
// chunk (a weak rolling checksum and a short strong hash per block); the device finds those
// blocks in its new chunk and sends only what is not in them; the store rebuilds the chunk and
// checks it against its SHA-256 before keeping it.
//
//   Signature sig = MakeSignature(old_chunk, 2048);          // store
//   std::string delta = MakeDelta(new_chunk, sig);            // device
//   absl::StatusOr<std::string> rebuilt = ApplyDelta(delta, old_chunk, 4 << 20);  // store
#ifndef CONVERGE_COMMON_CODEC_RSYNC_DELTA_H_
#define CONVERGE_COMMON_CODEC_RSYNC_DELTA_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace converge {

// A delta's base is one chunk or a sequence of at most this many (their bytes one after another:
// a chunk cut anew after an edit can span two or three old ones).
inline constexpr size_t kMaxDeltaBases = 4;

struct Signature {
  uint32_t block_bytes = 0;
  uint32_t length = 0;          // of the base
  std::vector<uint32_t> weak;   // per block (the last may be short)
  std::vector<uint64_t> strong;  // first 8 bytes of each block's SHA-256
};

// BlockBytesFor picks a block size for a base of `length` bytes (~sqrt, 512..8192).
uint32_t BlockBytesFor(size_t length);

Signature MakeSignature(absl::string_view base, uint32_t block_bytes);

// MakeDelta encodes `target` as copies of the signature's blocks and literal bytes.
std::string MakeDelta(absl::string_view target, const Signature& sig);

// ApplyDelta rebuilds the target from the base; InvalidArgument for a malformed delta, one that
// references blocks the base does not have, or that would exceed max_bytes.
absl::StatusOr<std::string> ApplyDelta(absl::string_view delta, absl::string_view base, uint32_t block_bytes,
                                       size_t max_bytes);

}  // namespace converge

#endif  // CONVERGE_COMMON_CODEC_RSYNC_DELTA_H_
