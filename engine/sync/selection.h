// Selection: which subtrees of the namespace this device keeps out of its folder (selective
// sync). Each rule names a path and says excluded or included; a path takes the rule of its
// deepest ruled ancestor (or itself), so `--exclude Photos` then `--include Photos/2026` keeps
// only that year of the photos here. With no rule a path is included.
//
// An excluded path is neither uploaded (a file made there stays local) nor taken as deleted
// when its local copy goes; remote versions there are recorded in the index but not written
// (SyncEngine removes the local copies when a path becomes excluded and writes them back when
// it is included again). It is this device's alone: other devices are not told.
//
// The text form, one rule a line: "-PATH" excluded, "+PATH" included.
#ifndef CONVERGE_ENGINE_SYNC_SELECTION_H_
#define CONVERGE_ENGINE_SYNC_SELECTION_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace converge::engine {

class Selection {
 public:
  // At most this many rules (a selection is made by hand).
  static constexpr size_t kMaxRules = 1000;

  // Parse reads the text form; a rule whose path is not a valid relative path is an error.
  static absl::StatusOr<Selection> Parse(absl::string_view text);
  std::string ToText() const;

  // Exclude keeps `path` and everything below it out; Include brings it back (rules below it go).
  absl::Status Exclude(absl::string_view path) { return Set(path, /*excluded=*/true); }
  absl::Status Include(absl::string_view path) { return Set(path, /*excluded=*/false); }

  bool Excluded(absl::string_view path) const;
  bool empty() const { return rules_.empty(); }
  // Rules lists the rules as "PATH" (excluded) or "PATH (included)", in path order.
  std::vector<std::string> Rules() const;
  // Paths: the ruled paths alone.
  std::vector<std::string> Paths() const;

  bool operator==(const Selection& other) const { return rules_ == other.rules_; }
  bool operator!=(const Selection& other) const { return !(*this == other); }

 private:
  absl::Status Set(absl::string_view path, bool excluded);
  std::map<std::string, bool, std::less<>> rules_;  // path -> excluded
};

// NormalizeSelectionPath takes a path as a user types it ("./Photos/", "Photos//2026") to the
// form rules use ("Photos", "Photos/2026"), or says why it cannot name a synced path.
absl::StatusOr<std::string> NormalizeSelectionPath(absl::string_view path);

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_SYNC_SELECTION_H_
