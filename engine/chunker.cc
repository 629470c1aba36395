#include "engine/chunker.h"

#include <algorithm>
#include <deque>
#include <memory>
#include <thread>
#include <random>
#include <string>

#include "absl/synchronization/mutex.h"
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

// WholeHasher computes the whole-file SHA-256 on a second core while the caller cuts and hashes
// chunks: the file's reads are handed over in order.
class WholeHasher {
 public:
  WholeHasher() : thread_([this] { Run(); }) {}
  ~WholeHasher() {
    if (thread_.joinable()) Finish();
  }
  void Push(std::shared_ptr<const std::string> block) {
    absl::MutexLock lock(&mu_);
    auto room = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return queue_.size() < 4; };
    mu_.Await(absl::Condition(&room));
    queue_.push_back(std::move(block));
  }
  Digest Finish() {
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
    }
    thread_.join();
    return sha_.Finish();
  }

 private:
  void Run() {
    while (true) {
      std::shared_ptr<const std::string> block;
      {
        absl::MutexLock lock(&mu_);
        auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_ || !queue_.empty(); };
        mu_.Await(absl::Condition(&ready));
        if (queue_.empty()) return;
        block = std::move(queue_.front());
        queue_.pop_front();
      }
      sha_.Update(*block);
    }
  }

  absl::Mutex mu_;
  std::deque<std::shared_ptr<const std::string>> queue_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  Sha256 sha_;  // touched by the thread only, then by Finish after join
  std::thread thread_;
};

absl::StatusOr<FileContent> ChunkFile(ReadableFile* file, const ChunkParams& params, const ChunkVisitor& visit) {
  const FastCdc cdc(params);
  FileContent content;
  Sha256 whole;                          // small files: here
  std::unique_ptr<WholeHasher> hasher;   // large files: on the other core
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
      if (read_offset == 0 && more.size() == kReadBytes) hasher = std::make_unique<WholeHasher>();
      read_offset += more.size();
      if (more.size() < kReadBytes) eof = true;
      buf.append(more);
      if (hasher != nullptr) {
        hasher->Push(std::make_shared<const std::string>(std::move(more)));
        more = std::string();
      }
      continue;
    }
    if (pos == buf.size()) break;
    const size_t len = cdc.Cut(reinterpret_cast<const uint8_t*>(buf.data()) + pos, buf.size() - pos);
    const absl::string_view piece(buf.data() + pos, len);
    if (hasher == nullptr) whole.Update(piece);
    const ChunkRef ref{HashOf(piece), static_cast<uint32_t>(len)};
    content.chunks.push_back(ref);
    if (visit) visit(ref, content.size, std::string(piece));
    content.size += len;
    pos += len;
  }
  content.sha256 = hasher != nullptr ? hasher->Finish() : whole.Finish();
  return content;
}

}  // namespace converge::engine
