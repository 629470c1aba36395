// The engine's commands for a folder whose engine runs (or ran) on this machine:
//   converge-engine status --folder=F [--watch_status] [--json]
//   converge-engine pause --folder=F; converge-engine resume --folder=F
//   converge-engine select --folder=F [--exclude=PATH] [--include=PATH]   (selective sync)
//   converge-engine revert --folder=F     (a receive-only folder: its local changes set aside)
//   converge-engine override --folder=F   (a send-only folder: its state pushed over others')
// and the control-socket commands of control_cli.h (history, restore, conflicts, resolve).
#ifndef CONVERGE_ENGINE_CONTROL_LOCAL_COMMANDS_H_
#define CONVERGE_ENGINE_CONTROL_LOCAL_COMMANDS_H_

#include <string>
#include <vector>

#include "engine/control/control_cli.h"

namespace converge::engine {

struct LocalCommand {
  std::string name;    // status, pause, resume, select, revert, override, history, restore, conflicts, resolve
  ControlArgs control;  // the folder, the arguments after the name, the commands' flags
  bool watch = false;  // status: refresh every half second until interrupted
  bool json = false;   // status: the status file's JSON
  std::string exclude;  // select: a subtree to keep out of this device
  std::string include;  // select: a subtree to bring back
};

// RunLocalCommand returns the exit code: 0 done, 1 failed, 2 usage.
int RunLocalCommand(const LocalCommand& command);

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_CONTROL_LOCAL_COMMANDS_H_
