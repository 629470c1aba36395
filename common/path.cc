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

}  // namespace

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
    if (first && part == kReservedName) {
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
