#include "common/codec/chunk_codec.h"

#include <zstd.h>

#include "absl/strings/str_cat.h"

namespace converge {
namespace {

constexpr int kLevel = 3;
constexpr size_t kSampleBytes = 32 << 10;
constexpr int kDeltaWindowLog = 23;  // 8 MiB: base and target of up to 4 MiB each
constexpr int kStreamWindowLog = 23;  // 8 MiB of earlier chunks as context
constexpr size_t kStreamSampleBytes = 16 << 10;

bool Saves(size_t compressed, size_t raw) { return compressed * 10 < raw * 9; }

struct CCtx {
  CCtx() : ctx(ZSTD_createCCtx()) {}
  ~CCtx() { ZSTD_freeCCtx(ctx); }
  ZSTD_CCtx* ctx;
};

struct DCtx {
  DCtx() : ctx(ZSTD_createDCtx()) {}
  ~DCtx() { ZSTD_freeDCtx(ctx); }
  ZSTD_DCtx* ctx;
};

// One context per thread, reused.
ZSTD_CCtx* ThreadCCtx() {
  thread_local CCtx c;
  ZSTD_CCtx_reset(c.ctx, ZSTD_reset_session_and_parameters);
  return c.ctx;
}

ZSTD_DCtx* ThreadDCtx() {
  thread_local DCtx d;
  ZSTD_DCtx_reset(d.ctx, ZSTD_reset_session_and_parameters);
  return d.ctx;
}

// DecompressWith decodes exactly one zstd frame that is all of `in`: skippable frames and bytes
// after the frame are refused (they would be stored and counted as something they are not).
absl::StatusOr<std::string> DecompressWith(ZSTD_DCtx* ctx, absl::string_view in, size_t max_bytes) {
  if (in.size() < 4 || static_cast<uint8_t>(in[0]) != (ZSTD_MAGICNUMBER & 0xFF) ||
      static_cast<uint8_t>(in[1]) != ((ZSTD_MAGICNUMBER >> 8) & 0xFF) ||
      static_cast<uint8_t>(in[2]) != ((ZSTD_MAGICNUMBER >> 16) & 0xFF) ||
      static_cast<uint8_t>(in[3]) != ((ZSTD_MAGICNUMBER >> 24) & 0xFF)) {
    return absl::InvalidArgumentError("not a zstd frame (or a skippable one)");
  }
  const size_t frame = ZSTD_findFrameCompressedSize(in.data(), in.size());
  if (ZSTD_isError(frame)) return absl::InvalidArgumentError("not a whole zstd frame");
  if (frame != in.size()) {
    return absl::InvalidArgumentError(absl::StrCat(in.size() - frame, " bytes after the zstd frame: one frame only"));
  }
  const unsigned long long size = ZSTD_getFrameContentSize(in.data(), in.size());
  if (size == ZSTD_CONTENTSIZE_ERROR) return absl::InvalidArgumentError("not a zstd frame");
  if (size == ZSTD_CONTENTSIZE_UNKNOWN || size > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("zstd frame of unknown or excessive size (limit ", max_bytes, ")"));
  }
  std::string out(static_cast<size_t>(size), '\0');
  const size_t n = ZSTD_decompressDCtx(ctx, out.data(), out.size(), in.data(), in.size());
  if (ZSTD_isError(n) || n != size) {
    return absl::InvalidArgumentError(absl::StrCat("corrupt zstd frame: ", ZSTD_isError(n) ? ZSTD_getErrorName(n) : "short"));
  }
  return out;
}

}  // namespace

std::optional<std::string> CompressIfWorthIt(absl::string_view raw) {
  if (raw.size() < 64) return std::nullopt;
  ZSTD_CCtx* ctx = ThreadCCtx();
  ZSTD_CCtx_setParameter(ctx, ZSTD_c_compressionLevel, kLevel);
  std::string out(ZSTD_compressBound(raw.size()), '\0');
  if (raw.size() > 4 * kSampleBytes) {
    // Random or already-compressed data: a sample says so cheaply.
    const absl::string_view sample = raw.substr(raw.size() / 2, kSampleBytes);
    const size_t n = ZSTD_compress2(ctx, out.data(), out.size(), sample.data(), sample.size());
    if (ZSTD_isError(n) || !Saves(n, sample.size())) return std::nullopt;
    ZSTD_CCtx_reset(ctx, ZSTD_reset_session_only);
  }
  const size_t n = ZSTD_compress2(ctx, out.data(), out.size(), raw.data(), raw.size());
  if (ZSTD_isError(n) || !Saves(n, raw.size())) return std::nullopt;
  out.resize(n);
  out.shrink_to_fit();  // a compressed chunk held in a batch keeps only its own size
  return out;
}

std::string Compress(absl::string_view raw) {
  ZSTD_CCtx* ctx = ThreadCCtx();
  ZSTD_CCtx_setParameter(ctx, ZSTD_c_compressionLevel, kLevel);
  std::string out(ZSTD_compressBound(raw.size()), '\0');
  const size_t n = ZSTD_compress2(ctx, out.data(), out.size(), raw.data(), raw.size());
  out.resize(ZSTD_isError(n) ? 0 : n);
  out.shrink_to_fit();
  return out;
}

absl::StatusOr<std::string> Decompress(absl::string_view compressed, size_t max_bytes) {
  return DecompressWith(ThreadDCtx(), compressed, max_bytes);
}

std::optional<std::string> DeltaEncode(absl::string_view target, absl::string_view base, size_t max_useful) {
  if (base.empty() || target.empty()) return std::nullopt;
  ZSTD_CCtx* ctx = ThreadCCtx();
  ZSTD_CCtx_setParameter(ctx, ZSTD_c_compressionLevel, kLevel);
  ZSTD_CCtx_setParameter(ctx, ZSTD_c_windowLog, kDeltaWindowLog);
  // Long-distance matching finds the base reliably whatever the data (measured: without it, a
  // 48-byte insert into 150 KB of text cost 1,160 bytes at level 3; with it, 89).
  ZSTD_CCtx_setParameter(ctx, ZSTD_c_enableLongDistanceMatching, 1);
  if (ZSTD_isError(ZSTD_CCtx_refPrefix(ctx, base.data(), base.size()))) return std::nullopt;
  std::string out(ZSTD_compressBound(target.size()), '\0');
  const size_t n = ZSTD_compress2(ctx, out.data(), out.size(), target.data(), target.size());
  if (ZSTD_isError(n) || !Saves(n, max_useful)) return std::nullopt;
  out.resize(n);
  return out;
}

absl::StatusOr<std::string> DeltaDecode(absl::string_view delta, absl::string_view base, size_t max_bytes) {
  ZSTD_DCtx* ctx = ThreadDCtx();
  ZSTD_DCtx_setParameter(ctx, ZSTD_d_windowLogMax, kDeltaWindowLog);
  if (ZSTD_isError(ZSTD_DCtx_refPrefix(ctx, base.data(), base.size()))) {
    return absl::InternalError("cannot use the delta base");
  }
  return DecompressWith(ctx, delta, max_bytes);
}

bool LooksCompressible(absl::string_view raw) {
  if (raw.size() < 64) return false;
  if (raw.size() <= 4 * kStreamSampleBytes) return true;
  for (size_t at : {size_t{0}, (raw.size() - kStreamSampleBytes) / 2, raw.size() - kStreamSampleBytes}) {
    if (Compresses(raw.substr(at, kStreamSampleBytes))) return true;
  }
  return false;
}

bool Compresses(absl::string_view sample) {
  if (sample.size() < 64) return false;
  ZSTD_CCtx* ctx = ThreadCCtx();
  ZSTD_CCtx_setParameter(ctx, ZSTD_c_compressionLevel, 1);
  thread_local std::string out;
  out.resize(ZSTD_compressBound(sample.size()));
  const size_t n = ZSTD_compress2(ctx, out.data(), out.size(), sample.data(), sample.size());
  ZSTD_CCtx_reset(ctx, ZSTD_reset_session_only);
  return !ZSTD_isError(n) && Saves(n, sample.size());
}

struct StreamEncoder::Ctx : CCtx {
  std::string buffer;
};
struct StreamDecoder::Ctx : DCtx {
  std::string buffer;
};

StreamEncoder::StreamEncoder() : ctx_(std::make_unique<Ctx>()) {
  ZSTD_CCtx_setParameter(ctx_->ctx, ZSTD_c_compressionLevel, kLevel);
  ZSTD_CCtx_setParameter(ctx_->ctx, ZSTD_c_windowLog, kStreamWindowLog);
}
StreamEncoder::~StreamEncoder() = default;

absl::StatusOr<std::string> StreamEncoder::Encode(absl::string_view raw) {
  std::string& out = ctx_->buffer;  // reused: the piece returned is a right-sized copy
  out.resize(ZSTD_compressBound(raw.size()) + 64);
  ZSTD_inBuffer in{raw.data(), raw.size(), 0};
  ZSTD_outBuffer o{out.data(), out.size(), 0};
  while (true) {
    const size_t left = ZSTD_compressStream2(ctx_->ctx, &o, &in, ZSTD_e_flush);
    if (ZSTD_isError(left)) return absl::InternalError(absl::StrCat("zstd stream: ", ZSTD_getErrorName(left)));
    if (left == 0 && in.pos == in.size) break;
    if (o.pos == o.size) {  // more room for what is still to flush
      out.resize(out.size() * 2);
      o.dst = out.data();
      o.size = out.size();
    }
  }
  bytes_in_ += raw.size();
  bytes_out_ += o.pos;
  return std::string(out.data(), o.pos);
}

bool StreamEncoder::Worth(absl::string_view raw) const {
  // The first chunk has nothing before it to repeat: its samples decide (a stream that opens
  // with 4 MiB of random data does not compress them all to find out).
  if (bytes_in_ == 0) return LooksCompressible(raw);
  return bytes_out_ * 100 < bytes_in_ * 97 || LooksCompressible(raw);
}

StreamDecoder::StreamDecoder() : ctx_(std::make_unique<Ctx>()) {
  ZSTD_DCtx_setParameter(ctx_->ctx, ZSTD_d_windowLogMax, kStreamWindowLog);
}
StreamDecoder::~StreamDecoder() = default;

absl::StatusOr<std::string> StreamDecoder::Decode(absl::string_view piece, size_t max_bytes) {
  if (broken_) return absl::InvalidArgumentError("zstd stream already failed");
  // One byte more than allowed: a piece that fills it is too large. The buffer is reused; the
  // bytes returned are a right-sized copy (a small chunk must not hold a 4 MiB allocation).
  std::string& out = ctx_->buffer;
  out.resize(max_bytes + 1);
  ZSTD_inBuffer in{piece.data(), piece.size(), 0};
  ZSTD_outBuffer o{out.data(), out.size(), 0};
  while (true) {
    const size_t before = o.pos;
    const size_t ret = ZSTD_decompressStream(ctx_->ctx, &o, &in);
    if (ZSTD_isError(ret)) {
      broken_ = true;
      return absl::InvalidArgumentError(absl::StrCat("corrupt zstd stream: ", ZSTD_getErrorName(ret)));
    }
    if (o.pos > max_bytes) {
      broken_ = true;
      return absl::InvalidArgumentError(absl::StrCat("zstd stream piece over ", max_bytes, " bytes"));
    }
    if (in.pos == in.size && o.pos == before) break;  // all of it in, nothing more out
  }
  return std::string(out.data(), o.pos);
}

}  // namespace converge
