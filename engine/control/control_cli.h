// The engine's CLI commands that ask the running engine (over its control socket):
//   converge-engine history PATH --folder=F [--limit=N]
//   converge-engine restore PATH --folder=F (--seq=N | --at=TIME)
//   converge-engine restore --folder=F --at=TIME            (the whole folder)
//   converge-engine conflicts --folder=F [--all]
//   converge-engine resolve COPY_PATH --folder=F
//   converge-engine keys status|init|request|approve DEVICE|accept|recover --folder=F
//       [--fingerprint="....."] [--passphrase_file=P]   (keys_cli.cc; docs/security.md)
// TIME is RFC 3339 (2026-11-27T10:15:00Z) or a duration ago (90m, 2h, 3d is 72h).
#ifndef CONVERGE_ENGINE_CONTROL_CONTROL_CLI_H_
#define CONVERGE_ENGINE_CONTROL_CONTROL_CLI_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace converge::engine {

// ControlSocketPath: where the running engine of `folder` serves its control API: in the
// folder's state directory, or (a Unix socket path has at most 107 bytes, and an on-demand
// folder's state directory shows through its mount) in /tmp/converge-<uid>/, named by the hash
// of the folder's absolute path.
std::string ControlSocketPath(const std::string& folder);

// PrepareControlSocket returns ControlSocketPath after making sure its directory is this user's
// alone (creating /tmp/converge-<uid> 0700 if needed; refusing one that is not) and removing a
// socket left by an engine that was killed.
absl::StatusOr<std::string> PrepareControlSocket(const std::string& folder);

// ParseWhen reads TIME as above, relative to `now`.
absl::StatusOr<absl::Time> ParseWhen(const std::string& text, absl::Time now);

struct ControlArgs {
  std::string folder;
  std::vector<std::string> args;  // after the command
  uint64_t seq = 0;
  std::string at;
  bool all = false;
  uint32_t limit = 0;
  std::string fingerprint;      // keys approve / accept: the other device's, as it shows it
  std::string passphrase_file;  // keys init / recover: a file holding the recovery passphrase
};

// IsControlCommand reports whether `command` is one of the commands above.
bool IsControlCommand(const std::string& command);

// RunControlCommand runs one (but keys) and returns the exit code (0 done, 1 failed, 2 usage).
int RunControlCommand(const std::string& command, const ControlArgs& args);
// RunKeysCommand runs `keys` (args[0] is the step).
int RunKeysCommand(const ControlArgs& args);

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_CONTROL_CONTROL_CLI_H_
