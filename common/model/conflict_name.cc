#include "common/model/conflict_name.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/model/path.h"

namespace converge {

std::string ConflictLabel(absl::string_view device_name) {
  std::string label;
  for (char c : device_name) {
    if (label.size() == kMaxConflictLabelBytes) break;
    const bool kept = absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
    if (kept) {
      label.push_back(c);
    } else if (!label.empty() && label.back() != '-') {
      label.push_back('-');
    }
  }
  while (!label.empty() && (label.back() == '-' || label.back() == '.')) label.pop_back();
  if (label.empty() || label.front() == '.') return "";  // nothing left, or a would-be dot name
  return label;
}

std::string MakeConflictName(absl::string_view path, absl::string_view device, absl::Time when,
                             absl::string_view device_name) {
  const absl::string_view dir = ParentPath(path);
  const absl::string_view base = BaseName(path);
  size_t dot = base.rfind('.');
  if (dot == 0 || dot == absl::string_view::npos) dot = base.size();
  const std::string stamp = absl::FormatTime("%Y%m%dT%H%M%SZ", when, absl::UTCTimeZone());
  const std::string label = ConflictLabel(device_name);
  std::string name = absl::StrCat(base.substr(0, dot), " (conflict ", label, label.empty() ? "" : " ", device, " ",
                                  stamp, ")", base.substr(dot));
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
  // "<id> <time>" or "<name> <id> <time>", each part non-empty.
  const std::vector<absl::string_view> parts = absl::StrSplit(inside, ' ');
  if (parts.size() < 2 || parts.size() > 3) return std::nullopt;
  for (absl::string_view part : parts) {
    if (part.empty()) return std::nullopt;
  }
  ConflictCopyName c;
  if (parts.size() == 3) c.device_label = std::string(parts[0]);
  c.device = std::string(parts[parts.size() - 2]);
  c.detected_at = std::string(parts.back());
  if (c.detected_at.back() != 'Z') return std::nullopt;
  const std::string original = absl::StrCat(base.substr(0, open), base.substr(close + 1));
  c.original_path = dir.empty() ? original : absl::StrCat(dir, "/", original);
  return c;
}

}  // namespace converge
