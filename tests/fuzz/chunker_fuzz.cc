// Fuzz target: content-defined chunking. The cuts of any input cover it exactly, every chunk is
// within [min, max] except a short tail, and boundaries are content-defined: chunking what
// follows a boundary gives the same boundaries (so an insert before it cannot move them).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "engine/sync/chunker.h"

#define FUZZ_CHECK(cond) \
  if (!(cond)) abort()

namespace {

std::vector<size_t> Cuts(const converge::engine::FastCdc& cdc, const uint8_t* data, size_t size) {
  std::vector<size_t> cuts;
  for (size_t at = 0; at < size;) {
    const size_t n = cdc.Cut(data + at, size - at);
    FUZZ_CHECK(n > 0 && n <= size - at);
    at += n;
    cuts.push_back(at);
  }
  return cuts;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const converge::engine::ChunkParams params{64, 256, 1024};  // small, so short inputs have many chunks
  const converge::engine::FastCdc cdc(params);
  const std::vector<size_t> cuts = Cuts(cdc, data, size);
  size_t previous = 0;
  for (size_t i = 0; i < cuts.size(); ++i) {
    const size_t len = cuts[i] - previous;
    FUZZ_CHECK(len <= params.max_bytes);
    FUZZ_CHECK(len >= params.min_bytes || i + 1 == cuts.size());
    previous = cuts[i];
  }
  FUZZ_CHECK(cuts.empty() || cuts.back() == size);
  if (cuts.size() >= 2) {
    const std::vector<size_t> rest = Cuts(cdc, data + cuts[0], size - cuts[0]);
    FUZZ_CHECK(rest.size() == cuts.size() - 1);
    for (size_t i = 0; i < rest.size(); ++i) FUZZ_CHECK(rest[i] + cuts[0] == cuts[i + 1]);
  }
  return 0;
}
