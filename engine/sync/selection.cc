#include "engine/sync/selection.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/base/status_macros.h"
#include "common/model/path.h"

namespace converge::engine {

absl::StatusOr<std::string> NormalizeSelectionPath(absl::string_view path) {
  std::vector<absl::string_view> parts;
  for (absl::string_view part : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    if (part != ".") parts.push_back(part);
  }
  std::string normal = absl::StrJoin(parts, "/");
  if (normal.empty()) return absl::InvalidArgumentError("name a subtree of the folder, not the folder itself");
  if (absl::Status s = ValidateRelativePath(normal); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("\"", path, "\" names no synced path: ", s.message()));
  }
  return normal;
}

absl::StatusOr<Selection> Selection::Parse(absl::string_view text) {
  Selection out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipWhitespace())) {
    line = absl::StripTrailingAsciiWhitespace(line);
    const bool excluded = absl::ConsumePrefix(&line, "-");
    if (!excluded && !absl::ConsumePrefix(&line, "+")) {
      return absl::InvalidArgumentError(absl::StrCat("selection rule \"", line, "\" starts with neither - nor +"));
    }
    CONVERGE_RETURN_IF_ERROR(ValidateRelativePath(line));
    if (out.rules_.size() >= kMaxRules) return absl::ResourceExhaustedError("more than 1000 selection rules");
    out.rules_[std::string(line)] = excluded;
  }
  return out;
}

std::string Selection::ToText() const {
  std::string out;
  for (const auto& [path, excluded] : rules_) absl::StrAppend(&out, excluded ? "-" : "+", path, "\n");
  return out;
}

bool Selection::Excluded(absl::string_view path) const {
  if (rules_.empty()) return false;
  // The deepest ruled ancestor (or the path itself) decides.
  for (absl::string_view at = path; !at.empty(); at = ParentPath(at)) {
    auto it = rules_.find(at);
    if (it != rules_.end()) return it->second;
  }
  return false;
}

std::vector<std::string> Selection::Rules() const {
  std::vector<std::string> out;
  for (const auto& [path, excluded] : rules_) out.push_back(excluded ? path : absl::StrCat(path, " (included)"));
  return out;
}

std::vector<std::string> Selection::Paths() const {
  std::vector<std::string> out;
  for (const auto& [path, excluded] : rules_) out.push_back(path);
  return out;
}

absl::Status Selection::Set(absl::string_view path, bool excluded) {
  CONVERGE_RETURN_IF_ERROR(ValidateRelativePath(path));
  // Rules below `path` are replaced by this one.
  const std::string below = absl::StrCat(path, "/");
  for (auto it = rules_.lower_bound(below); it != rules_.end() && absl::StartsWith(it->first, below);) {
    it = rules_.erase(it);
  }
  rules_.erase(std::string(path));
  // A rule saying what the ancestors say already is left out.
  if (Excluded(path) == excluded) return absl::OkStatus();
  if (rules_.size() >= kMaxRules) return absl::ResourceExhaustedError("more than 1000 selection rules");
  rules_[std::string(path)] = excluded;
  return absl::OkStatus();
}

}  // namespace converge::engine
