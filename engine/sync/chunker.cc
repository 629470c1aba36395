#include "engine/sync/chunker.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <limits>
#include <memory>
#include <optional>
#include <thread>
#include <random>
#include <string>

#include "absl/synchronization/mutex.h"
#include "common/base/status_macros.h"
#include "common/codec/rsync_delta.h"

namespace converge::engine {
namespace {

constexpr size_t kReadBytes = 8 << 20;  // big sequential reads
constexpr uint64_t kMinExtraBaseOverlap = 16 << 10;  // ChunkLayout::BasesFor

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

// The gear table shifted left by one (the first byte of a two-byte step).
const uint64_t* GearShifted() {
  static const std::vector<uint64_t> table = [] {
    std::vector<uint64_t> t(Gear(), Gear() + 256);
    for (uint64_t& v : t) v <<= 1;
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

std::shared_ptr<const GearTable> MakeGearTable(const std::array<uint64_t, 256>& values) {
  auto table = std::make_shared<GearTable>();
  for (int i = 0; i < 256; ++i) {
    table->gear[i] = values[i];
    table->shifted[i] = values[i] << 1;
  }
  return table;
}

FastCdc::FastCdc(ChunkParams params) : params_(params) {
  const int bits = Log2(params_.avg_bytes);
  mask_small_ = Mask(bits + 2);
  mask_large_ = Mask(bits - 2);
}

size_t FastCdc::Cut(const uint8_t* data, size_t n) const {
  if (n <= params_.min_bytes) return n;
  const size_t end = std::min<size_t>(n, params_.max_bytes);
  const size_t normal = std::min<size_t>(end, params_.avg_bytes);
  const uint64_t* gear = params_.gear ? params_.gear->gear : Gear();
  const uint64_t* gear2 = params_.gear ? params_.gear->shifted : GearShifted();
  uint64_t fp = 0;
  size_t i = params_.min_bytes;  // cut-point skipping: no boundary before min_bytes
  // Two bytes a step: fp after both is (fp << 2) + (gear[a] << 1) + gear[b], whose second term
  // does not depend on fp, so the chain through fp is one shift and one add per two bytes. The
  // fingerprint after the first byte is checked too: the cuts are those of one byte a step.
  auto scan = [&](size_t limit, uint64_t mask) -> bool {
    for (; i + 1 < limit; i += 2) {
      const uint64_t first = (fp << 1) + gear[data[i]];
      fp = (fp << 2) + (gear2[data[i]] + gear[data[i + 1]]);
      if ((first & mask) == 0) {
        i += 1;
        return true;
      }
      if ((fp & mask) == 0) {
        i += 2;
        return true;
      }
    }
    for (; i < limit; ++i) {
      fp = (fp << 1) + gear[data[i]];
      if ((fp & mask) == 0) {
        i += 1;
        return true;
      }
    }
    return false;
  };
  if (scan(normal, mask_small_)) return i;
  if (scan(end, mask_large_)) return i;
  return end;
}

size_t FastCdc::CutOneByteAStep(const uint8_t* data, size_t n) const {
  if (n <= params_.min_bytes) return n;
  const size_t end = std::min<size_t>(n, params_.max_bytes);
  const size_t normal = std::min<size_t>(end, params_.avg_bytes);
  const uint64_t* gear = params_.gear ? params_.gear->gear : Gear();
  uint64_t fp = 0;
  size_t i = params_.min_bytes;
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

namespace {

// A read buffer; chunks cut from it are hashed (and visited) in place.
struct Block {
  std::unique_ptr<char[]> data;
  size_t size = 0;
};

struct Piece {
  std::shared_ptr<const Block> block;  // null for a hole
  size_t start = 0;
  size_t length = 0;
  uint64_t offset = 0;  // in the file
  std::optional<Digest> sha256;  // hashed already, by the thread that cut it
};

// BlockPool recycles read buffers (a fresh one costs page faults and zeroing by the kernel).
class BlockPool {
 public:
  std::shared_ptr<Block> Get(size_t capacity) {
    std::unique_ptr<Block> b;
    {
      absl::MutexLock lock(&mu_);
      if (!free_.empty()) {
        b = std::move(free_.back());
        free_.pop_back();
      }
    }
    if (b == nullptr) {
      b = std::make_unique<Block>();
      b->data.reset(new char[capacity]);
    }
    b->size = 0;
    return std::shared_ptr<Block>(b.release(), [this](Block* done) {
      absl::MutexLock lock(&mu_);
      free_.emplace_back(done);
    });
  }

 private:
  absl::Mutex mu_;
  std::vector<std::unique_ptr<Block>> free_ ABSL_GUARDED_BY(mu_);
};

// ChunkHasher hashes chunks on a second core while the caller reads and cuts the next ones;
// chunks are hashed and visited in the order they were cut. Cutting is about twice as fast as
// hashing, so the caller hashes a chunk itself whenever the hasher is behind (Behind): both
// cores then hash, and the two threads finish together.
class ChunkHasher {
 public:
  ChunkHasher(FileContent* content, const ChunkVisitor* visit)
      : content_(content), visit_(visit), thread_([this] { Run(); }) {}
  ~ChunkHasher() {
    if (thread_.joinable()) Finish();
  }
  void Push(Piece piece) {
    absl::MutexLock lock(&mu_);
    auto room = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return queue_.size() < kQueueChunks; };
    mu_.Await(absl::Condition(&room));
    if (!piece.sha256.has_value()) ++unhashed_;
    queue_.push_back(std::move(piece));
  }
  // Behind says enough chunks wait for the hasher that the next one is better hashed by the
  // caller.
  bool Behind() {
    absl::MutexLock lock(&mu_);
    return unhashed_ >= kBehindChunks;
  }
  void Finish() {
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
    }
    thread_.join();
  }

 private:
  static constexpr size_t kQueueChunks = 32;
  static constexpr size_t kBehindChunks = 2;

  void Run() {
    while (true) {
      Piece piece;
      {
        absl::MutexLock lock(&mu_);
        auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_ || !queue_.empty(); };
        mu_.Await(absl::Condition(&ready));
        if (queue_.empty()) return;
        piece = std::move(queue_.front());
        queue_.pop_front();
        if (!piece.sha256.has_value()) --unhashed_;
      }
      if (piece.block == nullptr) {
        content_->chunks.push_back(ChunkRef::Hole(static_cast<uint32_t>(piece.length)));
        continue;
      }
      const absl::string_view bytes(piece.block->data.get() + piece.start, piece.length);
      const ChunkRef ref{piece.sha256.has_value() ? *piece.sha256 : HashOf(bytes), static_cast<uint32_t>(piece.length)};
      content_->chunks.push_back(ref);  // the caller reads it only after Finish
      if (*visit_) (*visit_)(ref, piece.offset, bytes);
    }
  }

  FileContent* const content_;
  const ChunkVisitor* const visit_;
  absl::Mutex mu_;
  std::deque<Piece> queue_ ABSL_GUARDED_BY(mu_);
  size_t unhashed_ ABSL_GUARDED_BY(mu_) = 0;  // pieces in queue_ without sha256
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// Cutter cuts a file's data ranges into chunks and records its holes, in file order: chunks
// are hashed on the caller's thread until a read fills a whole buffer (a large file), then on a
// ChunkHasher (holes queue behind the chunks before them).
class Cutter {
 public:
  Cutter(const ChunkParams& params, FileContent* content, const ChunkVisitor* visit)
      : params_(params), cdc_(params), content_(content), visit_(visit) {}
  ~Cutter() { Finish(); }

  // Data chunks [begin, end) of the file (or to its end, if sooner); returns whether the file
  // ended first. The last chunk ends at `end`: each data range is cut on its own.
  absl::StatusOr<bool> Data(ReadableFile* file, uint64_t begin, uint64_t end) {
    std::shared_ptr<Block> block = std::make_shared<Block>();
    size_t pos = 0;  // start of the next chunk in block
    uint64_t read_offset = begin;
    bool eof = false;
    while (true) {
      // Keep at least max_bytes ahead of pos, unless the range ended: the uncut rest moves to
      // the front of a new block and the next read lands right after it.
      if (!eof && block->size - pos < params_.max_bytes) {
        const size_t rest = block->size - pos;
        std::shared_ptr<Block> next = pool_.Get(params_.max_bytes + kReadBytes);  // rest < max_bytes
        if (rest > 0) memcpy(next->data.get(), block->data.get() + pos, rest);
        const size_t want = static_cast<size_t>(std::min<uint64_t>(kReadBytes, end - read_offset));
        CONVERGE_ASSIGN_OR_RETURN(size_t got, file->ReadInto(read_offset, want, next->data.get() + rest));
        if (hasher_ == nullptr && got == kReadBytes) hasher_ = std::make_unique<ChunkHasher>(content_, visit_);
        read_offset += got;
        eof = got < want || read_offset == end;
        if (got < want) ended_ = true;
        next->size = rest + got;
        block = std::move(next);
        pos = 0;
        continue;
      }
      if (pos == block->size) return ended_;
      const size_t len = cdc_.Cut(reinterpret_cast<const uint8_t*>(block->data.get()) + pos, block->size - pos);
      if (hasher_ != nullptr) {
        Piece piece{block, pos, len, content_->size};
        if (hasher_->Behind()) piece.sha256 = HashOf(absl::string_view(block->data.get() + pos, len));
        hasher_->Push(std::move(piece));
      } else {
        const absl::string_view piece(block->data.get() + pos, len);
        const ChunkRef ref{HashOf(piece), static_cast<uint32_t>(len)};
        content_->chunks.push_back(ref);
        if (*visit_) (*visit_)(ref, content_->size, piece);
      }
      content_->size += len;
      pos += len;
    }
  }

  // Hole records `length` bytes of hole, in entries of at most kMaxHoleBytes.
  void Hole(uint64_t length) {
    while (length > 0) {
      const uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(length, kMaxHoleBytes));
      if (hasher_ != nullptr) {
        hasher_->Push(Piece{nullptr, 0, n, content_->size});
      } else {
        content_->chunks.push_back(ChunkRef::Hole(n));
      }
      content_->size += n;
      length -= n;
    }
  }

  // Finish waits for the hasher: content_ is complete after it.
  void Finish() {
    if (hasher_ != nullptr) hasher_->Finish();
    hasher_.reset();
  }

 private:
  const ChunkParams params_;
  const FastCdc cdc_;
  FileContent* const content_;
  const ChunkVisitor* const visit_;
  BlockPool pool_;  // outlives every block: the hasher is gone before it
  std::unique_ptr<ChunkHasher> hasher_;  // large files: chunks hashed on the other core
  bool ended_ = false;
};

}  // namespace

absl::StatusOr<FileContent> ChunkFile(ReadableFile* file, const ChunkParams& params, const ChunkVisitor& visit) {
  CONVERGE_ASSIGN_OR_RETURN(std::vector<Extent> holes, file->Holes(kMinHoleBytes));
  FileContent content;
  absl::Status status;
  {
    Cutter cutter(params, &content, &visit);
    uint64_t at = 0;
    bool ended = false;
    for (const Extent& hole : holes) {
      absl::StatusOr<bool> data = cutter.Data(file, at, hole.offset);
      if (!data.ok() || *data) {  // failed, or shrank since its holes were listed
        status = data.status();
        ended = true;
        break;
      }
      cutter.Hole(hole.length);
      at = hole.offset + hole.length;
    }
    if (!ended) status = cutter.Data(file, at, std::numeric_limits<uint64_t>::max()).status();
  }
  CONVERGE_RETURN_IF_ERROR(status);
  content.sha256 = ContentDigest(content.chunks);
  return content;
}

FileContent ChunkBytes(absl::string_view data, const ChunkParams& params) {
  class Bytes : public ReadableFile {
   public:
    explicit Bytes(absl::string_view d) : d_(d) {}
    absl::Status Read(uint64_t offset, size_t n, std::string* out) override {
      const absl::string_view part = offset >= d_.size() ? absl::string_view() : d_.substr(offset, n);
      out->assign(part.data(), part.size());
      return absl::OkStatus();
    }
    absl::StatusOr<size_t> ReadInto(uint64_t offset, size_t n, char* dst) override {
      const absl::string_view part = offset >= d_.size() ? absl::string_view() : d_.substr(offset, n);
      if (!part.empty()) memcpy(dst, part.data(), part.size());
      return part.size();
    }

   private:
    const absl::string_view d_;
  } file(data);
  absl::StatusOr<FileContent> content = ChunkFile(&file, params);
  return content.ok() ? *std::move(content) : FileContent{};  // reading memory cannot fail
}

ChunkLayout::ChunkLayout(const std::vector<ChunkRef>& chunks) : chunks_(chunks) {
  uint64_t at = 0;
  for (const ChunkRef& c : chunks_) {
    starts_.push_back(at);
    at += c.length;
  }
}

std::vector<Digest> ChunkLayout::BasesFor(uint64_t offset, uint64_t length) const {
  const uint64_t end = offset + std::max<uint64_t>(length, 1);
  // The old chunks overlapping [offset, end): index, bytes shared. The first is the last one
  // that starts at or before `offset`.
  std::vector<std::pair<size_t, uint64_t>> overlapping;
  size_t i = std::upper_bound(starts_.begin(), starts_.end(), offset) - starts_.begin();
  if (i > 0) --i;
  for (; i < chunks_.size() && starts_[i] < end; ++i) {
    if (chunks_[i].hole()) continue;  // no bytes to send a delta against
    const uint64_t from = std::max(starts_[i], offset);
    const uint64_t to = std::min(starts_[i] + chunks_[i].length, end);
    if (to > from) overlapping.emplace_back(i, to - from);
  }
  // One that shares only a few KiB costs more in signature bytes (and a coarser block size
  // for the rest) than its bytes would as literals: only the one overlapping most stays then.
  uint64_t most = 0;
  for (const auto& [index, shared] : overlapping) most = std::max(most, shared);
  overlapping.erase(std::remove_if(overlapping.begin(), overlapping.end(),
                                   [&](const auto& o) { return o.second < kMinExtraBaseOverlap && o.second != most; }),
                    overlapping.end());
  // The run of at most kMaxDeltaBases of them that overlaps most.
  size_t best = 0;
  uint64_t best_sum = 0;
  for (size_t first = 0; first < overlapping.size(); ++first) {
    uint64_t sum = 0;
    for (size_t k = first; k < overlapping.size() && k < first + kMaxDeltaBases; ++k) sum += overlapping[k].second;
    if (sum > best_sum) {
      best_sum = sum;
      best = first;
    }
  }
  std::vector<Digest> out;
  for (size_t k = best; k < overlapping.size() && k < best + kMaxDeltaBases; ++k) {
    out.push_back(chunks_[overlapping[k].first].sha256);
  }
  return out;
}

}  // namespace converge::engine
