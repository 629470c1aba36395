#include "common/model/conflict_name.h"

#include "absl/strings/str_cat.h"
#include "common/model/path.h"

namespace converge {

std::string MakeConflictName(absl::string_view path, absl::string_view device, absl::Time when) {
  const absl::string_view dir = ParentPath(path);
  const absl::string_view base = BaseName(path);
  size_t dot = base.rfind('.');
  if (dot == 0 || dot == absl::string_view::npos) dot = base.size();
  const std::string stamp = absl::FormatTime("%Y%m%dT%H%M%SZ", when, absl::UTCTimeZone());
  std::string name = absl::StrCat(base.substr(0, dot), " (conflict ", device, " ", stamp, ")", base.substr(dot));
  return dir.empty() ? name : absl::StrCat(dir, "/", name);
}

std::optional<ConflictCopyName> ParseConflictName(absl::string_view path) {
  const absl::string_view dir = ParentPath(path);
  const absl::string_view base = BaseName(path);
  constexpr absl::string_view kMark = " (conflict ";
  const size_t open = base.rfind(kMark);
  if (open == absl::string_view::npos) return std::nullopt;
  const size_t close = base.find(')', open);
  if (close == absl::string_view::npos) return std::nullopt;
  const absl::string_view inside = base.substr(open + kMark.size(), close - open - kMark.size());
  const size_t space = inside.rfind(' ');
  if (space == absl::string_view::npos || space == 0) return std::nullopt;
  ConflictCopyName c;
  c.device = std::string(inside.substr(0, space));
  c.detected_at = std::string(inside.substr(space + 1));
  if (c.detected_at.empty() || c.detected_at.back() != 'Z') return std::nullopt;
  const std::string original = absl::StrCat(base.substr(0, open), base.substr(close + 1));
  c.original_path = dir.empty() ? original : absl::StrCat(dir, "/", original);
  return c;
}

}  // namespace converge
