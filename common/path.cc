#include "common/path.h"

#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace converge {
namespace {

bool IsValidUtf8(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const uint8_t c = static_cast<uint8_t>(s[i]);
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // truncated sequence
    for (size_t k = 1; k <= n; ++k) {
      const uint8_t cc = static_cast<uint8_t>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, surrogates and out-of-range code points.
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

// FoldCodePoint lowers the capitals of the scripts CaseFold covers.
uint32_t FoldCodePoint(uint32_t cp) {
  if (cp >= 'A' && cp <= 'Z') return cp + 0x20;
  if (cp < 0xC0) return cp;
  if (cp <= 0xDE) return cp == 0xD7 ? cp : cp + 0x20;                       // Latin-1
  if (cp >= 0x100 && cp <= 0x137) return cp | 1;                            // Latin Extended-A pairs
  if (cp >= 0x139 && cp <= 0x148) return (cp & 1) ? cp + 1 : cp;
  if (cp >= 0x14A && cp <= 0x177) return cp | 1;
  if (cp == 0x178) return 0xFF;
  if (cp >= 0x179 && cp <= 0x17E) return (cp & 1) ? cp + 1 : cp;
  if (cp >= 0x391 && cp <= 0x3A9 && cp != 0x3A2) return cp + 0x20;          // Greek
  if (cp >= 0x410 && cp <= 0x42F) return cp + 0x20;                         // Cyrillic
  if (cp >= 0x400 && cp <= 0x40F) return cp + 0x50;
  return cp;
}

void AppendUtf8(std::string* out, uint32_t cp) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace

std::string CaseFold(absl::string_view path) {
  std::string out;
  out.reserve(path.size());
  size_t i = 0;
  while (i < path.size()) {
    const uint8_t c = static_cast<uint8_t>(path[i]);
    if (c < 0x80) {
      out.push_back(static_cast<char>(FoldCodePoint(c)));
      ++i;
    } else if ((c & 0xE0) == 0xC0 && i + 1 < path.size()) {
      // Every code point CaseFold changes is below U+0800: two bytes in, two bytes out.
      const uint32_t cp = ((c & 0x1Fu) << 6) | (static_cast<uint8_t>(path[i + 1]) & 0x3Fu);
      AppendUtf8(&out, FoldCodePoint(cp));
      i += 2;
    } else {
      out.push_back(path[i]);
      ++i;
    }
  }
  return out;
}

absl::Status ValidateRelativePath(absl::string_view path) {
  if (path.empty()) return absl::InvalidArgumentError("path is empty");
  if (path.size() > kMaxPathBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("path is ", path.size(), " bytes, over the limit of ", kMaxPathBytes));
  }
  if (path.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError("path contains NUL");
  }
  if (!IsValidUtf8(path)) return absl::InvalidArgumentError("path is not valid UTF-8");
  if (path.front() == '/') {
    return absl::InvalidArgumentError(absl::StrCat("path is absolute: ", path));
  }
  if (path.find('\\') != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("path contains a backslash: ", path));
  }
  bool first = true;
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("path has an empty component: ", path));
    }
    if (part == "." || part == "..") {
      return absl::InvalidArgumentError(absl::StrCat("path has a '", part, "' component: ", path));
    }
    if (part.size() > kMaxNameBytes) {
      return absl::InvalidArgumentError(absl::StrCat("path component over ", kMaxNameBytes,
                                                     " bytes: ", part.substr(0, 32), "..."));
    }
    // In any case: on a case-insensitive filesystem ".Converge" is the engine's state directory.
    if (first && CaseFold(part) == kReservedName) {
      return absl::InvalidArgumentError(absl::StrCat("path uses the reserved name ", kReservedName));
    }
    first = false;
  }
  return absl::OkStatus();
}

absl::Status ValidateId(absl::string_view what, absl::string_view id) {
  bool ok = !id.empty() && id.size() <= 64;
  for (size_t i = 0; ok && i < id.size(); ++i) {
    const char c = id[i];
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    ok = alnum || (i > 0 && (c == '.' || c == '_' || c == '-'));
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " must match [a-z0-9][a-z0-9._-]{0,63}, got '",
                     id.substr(0, 80), "'"));
  }
  return absl::OkStatus();
}

absl::string_view ParentPath(absl::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == absl::string_view::npos ? absl::string_view() : path.substr(0, slash);
}

absl::string_view BaseName(absl::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == absl::string_view::npos ? path : path.substr(slash + 1);
}

}  // namespace converge
