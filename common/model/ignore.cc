#include "common/model/ignore.h"

#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace converge {
namespace {

// MatchClass matches one character against the class starting at glob[0] == '['. Returns the
// class's length (0 if it is not a well-formed class: then '[' is literal) and whether c matched.
size_t MatchClass(absl::string_view glob, char c, bool* matched) {
  size_t i = 1;
  bool negate = false;
  if (i < glob.size() && (glob[i] == '!' || glob[i] == '^')) {
    negate = true;
    ++i;
  }
  bool hit = false;
  bool first = true;
  for (; i < glob.size(); ++i) {
    if (glob[i] == ']' && !first) {
      *matched = hit != negate && c != '/';
      return i + 1;
    }
    first = false;
    if (i + 2 < glob.size() && glob[i + 1] == '-' && glob[i + 2] != ']') {
      if (glob[i] <= c && c <= glob[i + 2]) hit = true;
      i += 2;
    } else if (glob[i] == c) {
      hit = true;
    }
  }
  return 0;
}

}  // namespace

bool GlobMatch(absl::string_view glob, absl::string_view text) {
  while (!glob.empty()) {
    if (glob.size() >= 2 && glob[0] == '*' && glob[1] == '*') {
      // "**/" matches zero or more whole directories; a bare "**" anything.
      absl::string_view rest = glob.substr(2);
      const bool slash = !rest.empty() && rest[0] == '/';
      if (slash) rest.remove_prefix(1);
      for (size_t i = 0; i <= text.size(); ++i) {
        if (slash && i > 0 && text[i - 1] != '/') continue;
        if (GlobMatch(rest, text.substr(i))) return true;
      }
      return false;
    }
    if (glob[0] == '*') {
      absl::string_view rest = glob.substr(1);
      for (size_t i = 0; i <= text.size(); ++i) {
        if (GlobMatch(rest, text.substr(i))) return true;
        if (i < text.size() && text[i] == '/') break;
      }
      return false;
    }
    if (text.empty()) return false;
    if (glob[0] == '?') {
      if (text[0] == '/') return false;
    } else if (glob[0] == '[') {
      bool matched = false;
      const size_t n = MatchClass(glob, text[0], &matched);
      if (n > 0) {
        if (!matched) return false;
        glob.remove_prefix(n);
        text.remove_prefix(1);
        continue;
      }
      if (text[0] != '[') return false;
    } else if (glob[0] == '\\' && glob.size() > 1) {
      if (text[0] != glob[1]) return false;
      glob.remove_prefix(1);
    } else if (glob[0] != text[0]) {
      return false;
    }
    glob.remove_prefix(1);
    text.remove_prefix(1);
  }
  return text.empty();
}

IgnoreRules IgnoreRules::Parse(absl::string_view text) {
  IgnoreRules rules;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    absl::ConsumeSuffix(&line, "\r");
    while (!line.empty() && line.back() == ' ' && !(line.size() > 1 && line[line.size() - 2] == '\\')) line.remove_suffix(1);
    if (line.empty() || line[0] == '#') continue;
    Rule r;
    if (line[0] == '!') {
      r.negate = true;
      line.remove_prefix(1);
    } else if (line[0] == '\\' && line.size() > 1 && (line[1] == '!' || line[1] == '#')) {
      line.remove_prefix(1);
    }
    if (absl::ConsumeSuffix(&line, "/")) r.dir_only = true;
    r.anchored = line.find('/') != absl::string_view::npos;
    absl::ConsumePrefix(&line, "/");
    if (line.empty()) continue;
    r.pattern = std::string(line);
    rules.rules_.push_back(std::move(r));
  }
  return rules;
}

int IgnoreRules::Match(absl::string_view path, bool is_dir) const {
  const size_t slash = path.rfind('/');
  const absl::string_view name = slash == absl::string_view::npos ? path : path.substr(slash + 1);
  for (auto it = rules_.rbegin(); it != rules_.rend(); ++it) {
    if (it->dir_only && !is_dir) continue;
    if (GlobMatch(it->pattern, it->anchored ? path : name)) return it->negate ? 0 : 1;
  }
  return -1;
}

bool IgnoreRules::Ignored(absl::string_view path, bool is_dir) const {
  if (rules_.empty()) return false;
  // An ignored directory takes everything below it along.
  for (size_t slash = path.find('/'); slash != absl::string_view::npos; slash = path.find('/', slash + 1)) {
    if (Match(path.substr(0, slash), /*is_dir=*/true) == 1) return true;
  }
  return Match(path, is_dir) == 1;
}

}  // namespace converge
