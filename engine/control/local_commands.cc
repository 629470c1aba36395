#include "engine/control/local_commands.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "converge/engine/v1/status.pb.h"
#include "common/base/files.h"
#include "engine/control/status_file.h"
#include "engine/fs/local_filesystem.h"
#include "engine/ondemand/on_demand_folder.h"
#include "engine/sync/selection.h"

namespace converge::engine {
namespace {

// Status prints what the engine running on `folder` is doing.
int Status(const std::string& folder, bool watch, bool json) {
  while (true) {
    absl::StatusOr<v1::EngineStatusFile> s = ReadStatus(folder);
    if (!s.ok()) {
      std::cerr << "converge-engine: " << s.status().message() << "\n";
      return 1;
    }
    if (json) {
      std::ifstream in(StatusPath(folder));
      std::cout << in.rdbuf();
    } else {
      if (watch && isatty(STDOUT_FILENO)) std::cout << "\033[H\033[2J";
      std::cout << FormatStatus(*s, EngineRunning(*s, absl::Now()), ConflictCopiesIn(folder), absl::Now());
    }
    std::cout.flush();
    if (!watch) return 0;
    absl::SleepFor(absl::Milliseconds(500));
  }
}

// Pause leaves (or removes) the flag file the running engine obeys within half a second.
int Pause(const std::string& folder, bool pause) {
  const std::string flag = PauseFlagPath(folder);
  std::error_code ec;
  if (!std::filesystem::is_directory(std::filesystem::path(flag).parent_path(), ec)) {
    std::cerr << "converge-engine: " << folder << " is not a Converge folder\n";
    return 1;
  }
  if (pause) {
    std::ofstream(flag) << "paused\n";
  } else {
    std::filesystem::remove(flag, ec);
  }
  std::cout << (pause ? "paused " : "resumed ") << folder << "\n";
  return 0;
}

// Select changes (or shows) the subtrees this device keeps out; the running engine carries the
// change out within a second (or the next one to start does).
int Select(const std::string& folder, const std::string& exclude, const std::string& include) {
  std::error_code ec;
  if (!std::filesystem::is_directory(std::filesystem::path(SelectionPath(folder)).parent_path(), ec)) {
    std::cerr << "converge-engine: " << folder << " is not a Converge folder\n";
    return 1;
  }
  absl::StatusOr<Selection> selection = ReadSelection(folder);
  if (!selection.ok()) {
    std::cerr << "converge-engine: " << selection.status().message() << "\n";
    return 1;
  }
  for (const auto& [path, excluded] : {std::pair(exclude, true), std::pair(include, false)}) {
    if (path.empty()) continue;
    absl::StatusOr<std::string> normal = NormalizeSelectionPath(path);
    absl::Status changed = normal.ok() ? (excluded ? selection->Exclude(*normal) : selection->Include(*normal))
                                       : normal.status();
    if (!changed.ok()) {
      std::cerr << "converge-engine: " << changed.message() << "\n";
      return 2;
    }
  }
  if (!exclude.empty() || !include.empty()) {
    if (absl::Status s = WriteFileAtomically(SelectionPath(folder), selection->ToText()); !s.ok()) {
      std::cerr << "converge-engine: " << s.message() << "\n";
      return 1;
    }
  }
  const std::vector<std::string> rules = selection->Rules();
  std::cout << (rules.empty() ? "nothing excluded: every file of the namespace is kept here\n"
                              : "kept out of this device (others keep them):\n");
  for (const std::string& r : rules) std::cout << "  " << r << "\n";
  return 0;
}

// Pin adds a subtree to (or Unpin takes it from) the pins file of an on-demand folder: the
// engine fetches pinned files and keeps them from eviction (offline use).
int Pin(const std::string& folder, const std::vector<std::string>& args, bool pin) {
  absl::StatusOr<engine::v1::EngineStatusFile> s = ReadStatus(folder);
  if (!s.ok() || !s->on_demand()) {
    std::cerr << "converge-engine: " << folder << " is not an on-demand folder (--on_demand)\n";
    return 1;
  }
  if (args.size() != 1) {
    std::cerr << "converge-engine: " << (pin ? "pin" : "unpin") << " --folder=F PATH (\".\" for the whole folder)\n";
    return 2;
  }
  std::string path = args[0];
  if (path != "." && path != "/") {
    absl::StatusOr<std::string> normal = NormalizeSelectionPath(path);
    if (!normal.ok()) {
      std::cerr << "converge-engine: " << normal.status().message() << "\n";
      return 2;
    }
    path = *normal;
  } else {
    path = ".";
  }
  const std::string file = absl::StrCat(folder, "/", kStateDirName, "/", OnDemandFolder::kPinsFile);
  std::vector<std::string> pins;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line != path) pins.push_back(line);
  }
  if (pin) pins.push_back(path);
  if (absl::Status w = WriteFileAtomically(file, pins.empty() ? "" : absl::StrCat(absl::StrJoin(pins, "\n"), "\n"));
      !w.ok()) {
    std::cerr << "converge-engine: " << w.message() << "\n";
    return 1;
  }
  std::cout << (pin ? "pinned " : "unpinned ") << path
            << (pin ? ": the engine fetches it and keeps it here (status shows the pinned bytes cached)\n"
                    : ": its files may leave the cache again\n");
  return 0;
}

// OneWay asks the running engine of a receive-only folder to revert (set its local changes
// aside and bring the namespace's versions back), or that of a send-only folder to override
// (push its state over the changes it did not apply), and waits until it has.
int OneWay(const std::string& folder, bool revert) {
  absl::StatusOr<v1::EngineStatusFile> s = ReadStatus(folder);
  if (!s.ok() || !EngineRunning(*s, absl::Now())) {
    std::cerr << "converge-engine: no engine is running on " << folder << "\n";
    return 1;
  }
  if (revert ? !s->receive_only() : !s->send_only()) {
    std::cerr << "converge-engine: " << folder << " is not a " << (revert ? "receive-only" : "send-only")
              << " folder: there is nothing to " << (revert ? "revert" : "override")
              << " (restore brings back an older version)\n";
    return 1;
  }
  const std::string flag = revert ? RevertFlagPath(folder) : OverrideFlagPath(folder);
  if (absl::Status w = WriteFileAtomically(flag, "asked\n"); !w.ok()) {
    std::cerr << "converge-engine: " << w.message() << "\n";
    return 1;
  }
  std::error_code ec;
  const absl::Time deadline = absl::Now() + absl::Minutes(10);
  while (std::filesystem::exists(flag, ec)) {
    if (absl::Now() > deadline) {
      std::cerr << "converge-engine: the engine has not done it within 10 minutes; see converge-engine status\n";
      return 1;
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  s = ReadStatus(folder);
  if (!s.ok()) return 1;
  if (revert) {
    std::cout << "reverted " << folder << ": " << s->local_differences() << " local change(s) left"
              << (s->reverted_to().empty() ? "" : absl::StrCat("; this device's own versions are in ", s->reverted_to()))
              << "\n";
  } else {
    std::cout << "overrode " << folder << ": " << s->not_applied() << " change(s) made elsewhere left not applied\n";
  }
  return 0;
}

}  // namespace

int RunLocalCommand(const LocalCommand& command) {
  const std::string& name = command.name;
  const bool control = IsControlCommand(name);
  const bool pin = name == "pin" || name == "unpin";
  if ((!command.control.args.empty() && !control && !pin) ||
      (name != "status" && name != "pause" && name != "resume" && name != "select" && name != "revert" &&
       name != "override" && !pin && !control)) {
    std::cerr << "converge-engine: unknown command; try status, pause, resume, select, revert, override, pin, unpin, "
                 "history, restore, conflicts, resolve or keys (--help for flags)\n";
    return 2;
  }
  if (command.control.folder.empty()) {
    std::cerr << "converge-engine: " << name << " needs --folder\n";
    return 2;
  }
  if (name == "keys") return RunKeysCommand(command.control);
  if (control) return RunControlCommand(name, command.control);
  if (name == "revert" || name == "override") return OneWay(command.control.folder, name == "revert");
  if (pin) return Pin(command.control.folder, command.control.args, name == "pin");
  if (name == "select") return Select(command.control.folder, command.exclude, command.include);
  if (name == "status") return Status(command.control.folder, command.watch, command.json);
  return Pause(command.control.folder, name == "pause");
}

}  // namespace converge::engine
