// IgnoreRules: which paths of a folder are not synced, from gitignore-style lines (the folder's
// `.convergeignore`, itself synced so every device ignores the same paths):
//
//   # a comment               blank lines and comments are skipped
//   *.tmp                     no slash: matches the name at any depth
//   build/                    a trailing slash: directories only (and all they hold)
//   /notes.txt                a leading (or inner) slash: anchored at the folder's root
//   docs/**/draft-*           ** spans directories; * and ? stay within a name; [a-z] [!0-9]
//   !keep.tmp                 a leading ! re-includes what an earlier line excluded
//
// The last matching line decides. As in git, nothing below an ignored directory can be
// re-included. An ignored path is neither uploaded nor reported deleted: a synced file that
// becomes ignored stays as it is everywhere.
#ifndef CONVERGE_COMMON_MODEL_IGNORE_H_
#define CONVERGE_COMMON_MODEL_IGNORE_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace converge {

inline constexpr char kIgnoreFileName[] = ".convergeignore";
// Bytes of an ignore file read at most (the rest is ignored, and said so).
inline constexpr size_t kMaxIgnoreFileBytes = 64 << 10;

class IgnoreRules {
 public:
  IgnoreRules() = default;
  static IgnoreRules Parse(absl::string_view text);

  // Ignored reports whether `path` (relative, '/'-separated) is ignored; `is_dir` says whether
  // it is a directory.
  bool Ignored(absl::string_view path, bool is_dir) const;
  bool empty() const { return rules_.empty(); }

 private:
  struct Rule {
    std::string pattern;  // without !, leading / and trailing /
    bool negate = false;
    bool dir_only = false;
    bool anchored = false;  // matched against the whole path, else against the last name
  };
  // Match: the last rule matching this one path (not its parents) decides; -1 none, 0 included,
  // 1 excluded.
  int Match(absl::string_view path, bool is_dir) const;
  std::vector<Rule> rules_;
};

// GlobMatch matches `text` against a glob with *, ?, [...] (never across '/') and ** (across).
bool GlobMatch(absl::string_view glob, absl::string_view text);

}  // namespace converge

#endif  // CONVERGE_COMMON_MODEL_IGNORE_H_
