// Test helper: start Converge's binaries as real child processes and stop them by PID.
#ifndef CONVERGE_TESTS_PROCESS_H_
#define CONVERGE_TESTS_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace converge::testing {

// Runfile returns the path of a binary built by this workspace, e.g.
// "services/store/converge-store".
std::string Runfile(const std::string& path);

// ChildProcess is a running binary; the destructor stops it (SIGTERM, then SIGKILL).
class ChildProcess {
 public:
  // Start runs argv[0] with argv, stdout and stderr appended to `log_path`.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(const std::vector<std::string>& argv,
                                                             const std::string& log_path);
  // Adopts a child process started elsewhere.
  explicit ChildProcess(pid_t pid) : pid_(pid) {}
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  // Stop sends `signal` and waits up to `grace` before SIGKILL. Returns the wait status.
  int Stop(int signal, absl::Duration grace = absl::Seconds(10));
  // WaitExit waits up to `timeout` for the process to exit by itself and returns its exit code
  // (128 + signal if a signal ended it); DeadlineExceeded if it is still running.
  absl::StatusOr<int> WaitExit(absl::Duration timeout);
  bool running() const { return pid_ > 0; }

 private:
  pid_t pid_;
};

// RunCommand runs argv to completion (killed after `timeout`) and returns what it printed.
struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};
CommandResult RunCommand(const std::vector<std::string>& argv, const std::string& scratch_dir,
                         absl::Duration timeout = absl::Seconds(60));

// WaitForPortFile waits until a service writes its port to `path`.
absl::StatusOr<int> WaitForPortFile(const std::string& path, absl::Duration timeout);

}  // namespace converge::testing

#endif  // CONVERGE_TESTS_PROCESS_H_
