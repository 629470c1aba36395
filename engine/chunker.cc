#include "engine/chunker.h"

#include <algorithm>
#include <random>
#include <string>

#include "common/status_macros.h"

namespace converge::engine {
namespace {

constexpr size_t kReadBytes = 8 << 20;  // big sequential reads

// The gear table: 256 fixed pseudo-random 64-bit values (a fixed seed: every device must cut
// the same content at the same places).
const uint64_t* Gear() {
  static const std::vector<uint64_t> table = [] {
    std::mt19937_64 rng(0x636f6e7665726765ULL);  // "converge"
    std::vector<uint64_t> t(256);
    for (uint64_t& v : t) v = rng();
    return t;
  }();
  return table.data();
}

// A mask with `bits` one-bits spread over the high part of the word (FastCDC's padded masks).
uint64_t Mask(int bits) {
  uint64_t m = 0;
  for (int i = 0; i < bits; ++i) m |= 1ULL << (63 - 2 * i);
  return m;
}

int Log2(uint32_t v) {
  int b = 0;
  while ((1u << (b + 1)) <= v) ++b;
  return b;
}

}  // namespace

FastCdc::FastCdc(ChunkParams params) : params_(params) {
  const int bits = Log2(params_.avg_bytes);
  mask_small_ = Mask(bits + 2);
  mask_large_ = Mask(bits - 2);
}

size_t FastCdc::Cut(const uint8_t* data, size_t n) const {
  if (n <= params_.min_bytes) return n;
  const size_t end = std::min<size_t>(n, params_.max_bytes);
  const size_t normal = std::min<size_t>(end, params_.avg_bytes);
  const uint64_t* gear = Gear();
  uint64_t fp = 0;
  size_t i = params_.min_bytes;  // cut-point skipping: no boundary before min_bytes
  for (; i < normal; ++i) {
    fp = (fp << 1) + gear[data[i]];
    if ((fp & mask_small_) == 0) return i + 1;
  }
  for (; i < end; ++i) {
    fp = (fp << 1) + gear[data[i]];
    if ((fp & mask_large_) == 0) return i + 1;
  }
  return end;
}

absl::StatusOr<FileContent> ChunkFile(ReadableFile* file, const ChunkParams& params, const ChunkVisitor& visit) {
  const FastCdc cdc(params);
  FileContent content;
  Sha256 whole;
  std::string buf;    // unchunked bytes, from buf_start
  std::string more;
  uint64_t read_offset = 0;
  bool eof = false;
  size_t pos = 0;     // start of the next chunk in buf
  while (true) {
    // Keep at least max_bytes ahead of pos, unless the file ended.
    if (!eof && buf.size() - pos < params.max_bytes) {
      buf.erase(0, pos);
      pos = 0;
      CONVERGE_RETURN_IF_ERROR(file->Read(read_offset, kReadBytes, &more));
      read_offset += more.size();
      if (more.size() < kReadBytes) eof = true;
      buf.append(more);
      continue;
    }
    if (pos == buf.size()) break;
    const size_t len = cdc.Cut(reinterpret_cast<const uint8_t*>(buf.data()) + pos, buf.size() - pos);
    const absl::string_view piece(buf.data() + pos, len);
    whole.Update(piece);
    const ChunkRef ref{HashOf(piece), static_cast<uint32_t>(len)};
    content.chunks.push_back(ref);
    if (visit) visit(ref, content.size, std::string(piece));
    content.size += len;
    pos += len;
  }
  content.sha256 = whole.Finish();
  return content;
}

}  // namespace converge::engine
