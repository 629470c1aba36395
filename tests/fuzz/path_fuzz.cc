// Fuzz target: path validation and case folding. Every path the validator accepts stays inside
// a folder (no "..", ".", empty or absolute components, no NUL or backslash, not the engine's
// reserved name, within the length limits), and CaseFold is idempotent and keeps a valid path's
// components (the store's case index walks a path's directories in its fold).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/str_split.h"
#include "common/model/path.h"

#define FUZZ_CHECK(cond) \
  if (!(cond)) abort()

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path(reinterpret_cast<const char*>(data), size);
  const std::string folded = converge::CaseFold(path);
  FUZZ_CHECK(converge::CaseFold(folded) == folded);
  if (!converge::ValidateRelativePath(path).ok()) return 0;
  FUZZ_CHECK(!path.empty() && path.size() <= converge::kMaxPathBytes);
  FUZZ_CHECK(path.front() != '/' && path.find('\0') == std::string::npos && path.find('\\') == std::string::npos);
  bool first = true;
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    FUZZ_CHECK(!part.empty() && part != "." && part != ".." && part.size() <= converge::kMaxNameBytes);
    FUZZ_CHECK(!first || converge::CaseFold(part) != converge::kReservedName);
    first = false;
  }
  FUZZ_CHECK(std::count(folded.begin(), folded.end(), '/') == std::count(path.begin(), path.end(), '/'));
  return 0;
}
