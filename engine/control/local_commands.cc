#include "engine/control/local_commands.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "converge/engine/v1/status.pb.h"
#include "engine/control/status_file.h"

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

}  // namespace

int RunLocalCommand(const LocalCommand& command) {
  const std::string& name = command.name;
  const bool control = IsControlCommand(name);
  if ((!command.control.args.empty() && !control) ||
      (name != "status" && name != "pause" && name != "resume" && !control)) {
    std::cerr << "converge-engine: unknown command; try status, pause, resume, history, restore, conflicts, "
                 "resolve or keys (--help for flags)\n";
    return 2;
  }
  if (command.control.folder.empty()) {
    std::cerr << "converge-engine: " << name << " needs --folder\n";
    return 2;
  }
  if (name == "keys") return RunKeysCommand(command.control);
  if (control) return RunControlCommand(name, command.control);
  if (name == "status") return Status(command.control.folder, command.watch, command.json);
  return Pause(command.control.folder, name == "pause");
}

}  // namespace converge::engine
