// The engine's status file, <folder>/.converge/status.json: the running engine writes it
// (StatusWriter) and `converge-engine status|pause|resume` read it or leave a pause flag
// (<folder>/.converge/paused) that the running engine obeys.
#ifndef CONVERGE_ENGINE_CONTROL_STATUS_FILE_H_
#define CONVERGE_ENGINE_CONTROL_STATUS_FILE_H_

#include <string>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "engine/ondemand/on_demand_folder.h"
#include "converge/engine/v1/status.pb.h"
#include "engine/sync/selection.h"
#include "engine/sync/sync_engine.h"

namespace converge::engine {

std::string StatusPath(const std::string& folder);
std::string PauseFlagPath(const std::string& folder);
// SelectionPath: the subtrees this device keeps out (Selection's text form), written by
// `converge-engine select` and followed by the running engine within a second.
std::string SelectionPath(const std::string& folder);
// ReadSelection reads it (no file: nothing excluded).
absl::StatusOr<Selection> ReadSelection(const std::string& folder);
// RevertFlagPath and OverrideFlagPath: `converge-engine revert` (a receive-only folder) and
// `override` (a send-only one) leave them; the running engine does it and removes the flag.
std::string RevertFlagPath(const std::string& folder);
std::string OverrideFlagPath(const std::string& folder);

// StatusWriter looks at the engine's status every `period` and applies the pause flag and the
// selection file (when it changed), on its own thread, until destroyed. It writes the status file when the status changed, and every
// kStatusHeartbeat when it did not (readers take a file older than 5 s for a stopped engine):
// an idle engine does not rewrite the file four times a second.
class StatusWriter {
 public:
  StatusWriter(SyncEngine* engine, engine::v1::EngineStatusFile identity, absl::Duration period);
  ~StatusWriter();

 private:
  void WriteOnce(bool force);
  // FollowSelection hands the engine the selection file's rules when the file changed.
  void FollowSelection();
  // FollowFlags asks the engine to revert or override when that flag appears, and notes in
  // done_flags_ the flags whose work the engine has done.
  void FollowFlags(const EngineStatus& s);

  SyncEngine* const engine_;
  const engine::v1::EngineStatusFile identity_;
  absl::Notification stop_;
  std::string last_;  // the last status written, its time left out (used by the thread only)
  absl::Time last_written_ = absl::InfinitePast();
  std::optional<std::string> selection_seen_;  // the selection file's text last handed over
  bool revert_asked_ = false;
  bool override_asked_ = false;
  // Flags whose work the engine has done, removed once the status file written says so.
  std::vector<std::pair<std::string, bool*>> done_flags_;
  std::thread thread_;
};

inline constexpr absl::Duration kStatusHeartbeat = absl::Seconds(2);

absl::StatusOr<engine::v1::EngineStatusFile> ReadStatus(const std::string& folder);

// OnDemandStatusFile writes an on-demand folder's status to status.json in its state directory,
// reached at `state_path` (the folder is mounted over), as StatusWriter does a syncing one's:
// when it changed, or kStatusHeartbeat after the last write. Thread-safe.
class OnDemandStatusFile {
 public:
  OnDemandStatusFile(engine::v1::EngineStatusFile identity, std::string state_path)
      : identity_(std::move(identity)), state_path_(std::move(state_path)) {}
  // set_device_id: the device's id, once enrollment says it.
  void set_device_id(const std::string& id);
  absl::Status Write(const OnDemandStatus& s);

 private:
  absl::Mutex mu_;
  engine::v1::EngineStatusFile identity_ ABSL_GUARDED_BY(mu_);
  const std::string state_path_;
  std::string last_ ABSL_GUARDED_BY(mu_);  // the last status written, serialized without its time
  absl::Time last_written_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

// FormatStatus renders a status for people: state, cursor, pending work, the transfer with its
// rate and ETA, conflict copies found in the folder. `now` judges whether the engine runs.
std::string FormatStatus(const engine::v1::EngineStatusFile& s, bool running,
                         const std::vector<std::string>& conflicts, absl::Time now);

// ConflictCopiesIn lists the conflict copies in a folder (read only; skips the state dir).
std::vector<std::string> ConflictCopiesIn(const std::string& folder);

// EngineRunning: the status names a live process and was written in the last few seconds.
bool EngineRunning(const engine::v1::EngineStatusFile& s, absl::Time now);

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_CONTROL_STATUS_FILE_H_
