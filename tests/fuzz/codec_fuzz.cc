// Fuzz target: the decoders that take bytes from the network (zstd frames, zstd deltas against a
// base, rsync deltas against a base's blocks). Whatever the bytes, a decoder returns an error or
// at most max_bytes, never crashes; and what the encoders make of the same bytes decodes back.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/codec/chunk_codec.h"
#include "common/codec/rsync_delta.h"

#define FUZZ_CHECK(cond) \
  if (!(cond)) abort()

namespace {

constexpr size_t kLimit = 1 << 20;

std::string Base() {
  std::string base;
  for (int i = 0; i < 6000; ++i) base += static_cast<char>((i * 131 + (i >> 7)) & 0xff);
  return base;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string base = Base();
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);

  // Hostile input to every decoder.
  auto raw = converge::Decompress(bytes, kLimit);
  FUZZ_CHECK(!raw.ok() || raw->size() <= kLimit);
  auto delta = converge::DeltaDecode(bytes, base, kLimit);
  FUZZ_CHECK(!delta.ok() || delta->size() <= kLimit);
  auto rsync = converge::ApplyDelta(bytes, base, 512, kLimit);
  FUZZ_CHECK(!rsync.ok() || rsync->size() <= kLimit);
  {
    // As the first piece of a stream, and as a piece after a real one.
    converge::StreamDecoder fresh;
    auto piece = fresh.Decode(bytes, kLimit);
    FUZZ_CHECK(!piece.ok() || piece->size() <= kLimit);
    converge::StreamEncoder enc;
    converge::StreamDecoder dec;
    auto first = dec.Decode(*enc.Encode(base), kLimit);
    FUZZ_CHECK(first.ok() && *first == base);
    auto next = dec.Decode(bytes, kLimit);
    FUZZ_CHECK(!next.ok() || next->size() <= kLimit);
  }

  // Round trips of the same bytes as content.
  auto back = converge::Decompress(converge::Compress(bytes), kLimit);
  FUZZ_CHECK(back.ok() && *back == bytes);
  {
    converge::StreamEncoder enc;
    converge::StreamDecoder dec;
    for (int i = 0; i < 2; ++i) {  // the second time with the first as context
      auto piece = enc.Encode(bytes);
      FUZZ_CHECK(piece.ok());
      auto decoded = dec.Decode(*piece, kLimit);
      FUZZ_CHECK(decoded.ok() && *decoded == bytes);
    }
  }
  if (auto encoded = converge::DeltaEncode(bytes, base, kLimit); encoded.has_value()) {
    auto decoded = converge::DeltaDecode(*encoded, base, kLimit);
    FUZZ_CHECK(decoded.ok() && *decoded == bytes);
  }
  const converge::Signature sig = converge::MakeSignature(base, 512);
  auto rebuilt = converge::ApplyDelta(converge::MakeDelta(bytes, sig), base, 512, kLimit);
  FUZZ_CHECK(rebuilt.ok() && *rebuilt == bytes);
  return 0;
}
