#include "common/model/path.h"

#include <cstdint>
#include <vector>

#include <unicode/normalizer2.h>
#include <unicode/unistr.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
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

// Windows refuses these names, with or without an extension ("con.txt"), in any case.
bool IsWindowsDeviceName(absl::string_view name) {
  const absl::string_view stem = name.substr(0, name.find('.'));
  if (stem.size() == 3) {
    for (absl::string_view d : {"con", "prn", "aux", "nul"}) {
      if (absl::EqualsIgnoreCase(stem, d)) return true;
    }
    return false;
  }
  return stem.size() == 4 && (absl::StartsWithIgnoreCase(stem, "com") || absl::StartsWithIgnoreCase(stem, "lpt")) &&
         stem[3] >= '1' && stem[3] <= '9';
}

// NameProblem says why a component could not exist on one of the supported OSes ("" if it can).
std::string NameProblem(absl::string_view part) {
  for (char c : part) {
    const uint8_t u = static_cast<uint8_t>(c);
    if (u < 0x20) return "has a control character";
    if (absl::string_view("<>:\"|?*").find(c) != absl::string_view::npos) {
      return absl::StrCat("has '", std::string(1, c), "', which Windows forbids in names");
    }
  }
  if (part.back() == '.' || part.back() == ' ') return "ends in a dot or a space, which Windows drops";
  if (IsWindowsDeviceName(part)) return "is a Windows device name";
  return "";
}

bool IsAscii(absl::string_view s) {
  for (char c : s) {
    if (static_cast<uint8_t>(c) >= 0x80) return false;
  }
  return true;
}

// FoldOnce: the canonical caseless form (NFD, full case folding, NFD) composed again (NFC).
std::string FoldOnce(absl::string_view path) {
  UErrorCode err = U_ZERO_ERROR;
  const icu::Normalizer2* nfd = icu::Normalizer2::getNFDInstance(err);
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(err);
  if (U_FAILURE(err)) return std::string(path);
  // The canonical caseless form: NFD, full case folding, then composed again.
  icu::UnicodeString s = nfd->normalize(icu::UnicodeString::fromUTF8(icu::StringPiece(path.data(), path.size())), err);
  s.foldCase(U_FOLD_CASE_DEFAULT);
  s = nfc->normalize(s, err);
  if (U_FAILURE(err)) return std::string(path);
  std::string out;
  s.toUTF8String(out);
  return out;
}

}  // namespace

std::string CaseFold(absl::string_view path) {
  if (IsAscii(path)) return absl::AsciiStrToLower(path);  // ASCII is NFC; its full fold is lowering
  // A few folds leave something to fold again once decomposed (U+0345 out of a precomposed
  // letter): fold until nothing changes, so the fold of a fold is itself.
  std::string folded = FoldOnce(path);
  for (int i = 0; i < 3; ++i) {
    std::string again = FoldOnce(folded);
    if (again == folded) break;
    folded = std::move(again);
  }
  return folded;
}

absl::Status ValidateSealedPath(absl::string_view path) {
  if (path.empty()) return absl::InvalidArgumentError("sealed path is empty");
  if (path.size() > kMaxSealedPathBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("sealed path is ", path.size(), " bytes, over the limit of ", kMaxSealedPathBytes));
  }
  size_t depth = 0;
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part.empty() || part.size() > kMaxSealedNameBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("a sealed path's components have 1 to ", kMaxSealedNameBytes, " characters"));
    }
    for (char c : part) {
      if (!((c >= 'a' && c <= 'z') || (c >= '2' && c <= '7'))) {
        return absl::InvalidArgumentError("a sealed path has only lowercase base32 characters");
      }
    }
    if (++depth > kMaxPathDepth) {
      return absl::InvalidArgumentError(absl::StrCat("path has more than ", kMaxPathDepth, " components"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateStoredPath(absl::string_view path) {
  absl::Status plain = ValidateRelativePath(path);
  if (plain.ok() || ValidateSealedPath(path).ok()) return absl::OkStatus();
  return plain;
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
  size_t depth = 0;
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
    if (std::string problem = NameProblem(part); !problem.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("name '", part, "' ", problem, ": ", path));
    }
    // In any case: on a case-insensitive filesystem ".Converge" is the engine's state directory.
    if (first && CaseFold(part) == kReservedName) {
      return absl::InvalidArgumentError(absl::StrCat("path uses the reserved name ", kReservedName));
    }
    first = false;
    if (++depth > kMaxPathDepth) {
      return absl::InvalidArgumentError(absl::StrCat("path has more than ", kMaxPathDepth, " components"));
    }
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
