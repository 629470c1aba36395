#include "engine/control/status_file.h"

#include <algorithm>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <functional>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/base/files.h"
#include "common/base/status_macros.h"
#include "common/base/human_format.h"
#include "common/base/logging.h"
#include "common/base/version.h"
#include "common/model/conflict_name.h"
#include "common/rpc/server_runner.h"
#include "engine/fs/local_filesystem.h"
#include "google/protobuf/util/json_util.h"

namespace converge::engine {
namespace {


int64_t Millis(absl::Time t) { return t == absl::Time() ? 0 : absl::ToUnixMillis(t); }

}  // namespace

std::string StatusPath(const std::string& folder) { return absl::StrCat(folder, "/", kStateDirName, "/status.json"); }

// StatusJson prints a status as the status file holds it.
absl::StatusOr<std::string> StatusJson(const engine::v1::EngineStatusFile& s) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  if (!google::protobuf::util::MessageToJsonString(s, &json, options).ok()) {
    return absl::InternalError("cannot print the status as JSON");
  }
  return json;
}
std::string PauseFlagPath(const std::string& folder) { return absl::StrCat(folder, "/", kStateDirName, "/paused"); }
std::string SelectionPath(const std::string& folder) { return absl::StrCat(folder, "/", kStateDirName, "/selection"); }

absl::StatusOr<Selection> ReadSelection(const std::string& folder) {
  std::ifstream in(SelectionPath(folder));
  if (!in) return Selection();
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  absl::StatusOr<Selection> s = Selection::Parse(text);
  if (!s.ok()) return absl::Status(s.status().code(), absl::StrCat(SelectionPath(folder), ": ", s.status().message()));
  return s;
}

std::string RevertFlagPath(const std::string& folder) { return absl::StrCat(folder, "/", kStateDirName, "/revert"); }

std::string OverrideFlagPath(const std::string& folder) {
  return absl::StrCat(folder, "/", kStateDirName, "/override");
}

void StatusWriter::FollowFlags(const EngineStatus& s) {
  struct Flag {
    std::string path;
    bool allowed;  // the folder's type has this to do
    bool pending;  // the engine has not done it yet
    bool* asked;
    std::function<void()> ask;
  };
  const std::string& folder = identity_.folder();
  for (const Flag& f : {Flag{RevertFlagPath(folder), s.receive_only, s.revert_pending, &revert_asked_,
                             [this] { engine_->RequestRevert(); }},
                        Flag{OverrideFlagPath(folder), s.send_only, s.override_pending, &override_asked_,
                             [this] { engine_->RequestOverride(); }}}) {
    std::error_code ec;
    if (*f.asked) {
      // Done: the flag goes once the status file says so (the command reads it then).
      if (!f.pending) done_flags_.emplace_back(f.path, f.asked);
    } else if (std::filesystem::exists(f.path, ec)) {
      if (!f.allowed) {
        GetLogger("engine")->error("{}: this folder's type has nothing of the kind to do", f.path);
        std::filesystem::remove(f.path, ec);
        continue;
      }
      f.ask();
      *f.asked = true;
    }
  }
}

void StatusWriter::FollowSelection() {
  std::ifstream in(SelectionPath(identity_.folder()));
  const std::string text = in ? std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()) : "";
  if (selection_seen_ == text) return;
  selection_seen_ = text;
  absl::StatusOr<Selection> s = Selection::Parse(text);
  if (!s.ok()) {
    GetLogger("engine")->error("{}: {} (the selection stays as it was)", SelectionPath(identity_.folder()),
                               s.status().message());
    return;
  }
  engine_->SetSelection(*std::move(s));
}

StatusWriter::StatusWriter(SyncEngine* engine, engine::v1::EngineStatusFile identity, absl::Duration period)
    : engine_(engine), identity_(std::move(identity)) {
  thread_ = std::thread([this, period] {
    do {
      WriteOnce(/*force=*/false);
    } while (!stop_.WaitForNotificationWithTimeout(period));
    WriteOnce(/*force=*/true);
  });
}

StatusWriter::~StatusWriter() {
  stop_.Notify();
  thread_.join();
}

void StatusWriter::WriteOnce(bool force) {
  std::error_code ec;
  engine_->SetPaused(std::filesystem::exists(PauseFlagPath(identity_.folder()), ec));
  FollowSelection();
  const EngineStatus s = engine_->status();
  done_flags_.clear();
  FollowFlags(s);
  force = force || !done_flags_.empty();
  engine::v1::EngineStatusFile out = identity_;
  out.set_pid(getpid());
  out.set_version(kVersion);
  out.set_state(StateName(s.state));
  out.set_error(s.error);
  out.set_cursor(s.cursor);
  out.set_remote_head(s.remote_head);
  out.set_pending_uploads(s.pending_uploads);
  out.set_transfer(s.transfer);
  out.set_transfer_done_bytes(s.transfer_done);
  out.set_transfer_total_bytes(s.transfer_total);
  out.set_transfer_started_unix_ms(Millis(s.transfer_started));
  out.set_last_synced_unix_ms(Millis(s.last_synced));
  if (s.catchup_started != absl::InfinitePast()) {
    out.set_catchup_started_unix_ms(Millis(s.catchup_started));
    out.set_catchup_from_seq(s.catchup_from);
    out.set_catchup_files(s.catchup_files);
  }
  out.set_held_deletes(s.held_deletes);
  out.set_held(s.held_message);
  for (const std::string& p : s.case_collisions) out.add_case_collisions(p);
  for (const std::string& p : s.blocked) out.add_blocked(p);
  for (const std::string& p : s.excluded) out.add_excluded(p);
  out.set_selection_pending(s.selection_pending);
  out.set_excluded_kept(s.excluded_kept);
  out.set_receive_only(s.receive_only);
  out.set_local_differences(s.local_differences);
  for (const std::string& d : s.differences_shown) out.add_differences_shown(d);
  out.set_revert_pending(s.revert_pending || revert_asked_);
  out.set_reverted_to(s.reverted_to);
  out.set_send_only(s.send_only);
  out.set_not_applied(s.not_applied);
  for (const std::string& p : s.not_applied_shown) out.add_not_applied_shown(p);
  out.set_override_pending(s.override_pending || override_asked_);
  const absl::Time now = absl::Now();
  std::string unchanged;
  if (!out.SerializeToString(&unchanged)) return;
  if (!force && unchanged == last_ && now - last_written_ < kStatusHeartbeat) return;
  out.set_updated_at_unix_ms(absl::ToUnixMillis(now));
  absl::StatusOr<std::string> json = StatusJson(out);
  if (!json.ok()) return;
  absl::Status written = WriteFileAtomically(StatusPath(identity_.folder()), *json);
  if (written.ok()) {
    last_ = std::move(unchanged);
    last_written_ = now;
    for (const auto& [flag, asked] : done_flags_) {
      std::error_code ec;
      std::filesystem::remove(flag, ec);
      *asked = false;
    }
  } else {
    static auto log = GetLogger("engine");
    log->warn("status file: {}", written.ToString());
  }
}

absl::StatusOr<engine::v1::EngineStatusFile> ReadStatus(const std::string& folder) {
  std::ifstream in(StatusPath(folder));
  if (!in) return absl::NotFoundError(absl::StrCat("no engine status in ", folder, " (has an engine run there?)"));
  const std::string json((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  engine::v1::EngineStatusFile s;
  if (!google::protobuf::util::JsonStringToMessage(json, &s).ok()) {
    return absl::DataLossError(absl::StrCat("unreadable ", StatusPath(folder)));
  }
  return s;
}

bool EngineRunning(const engine::v1::EngineStatusFile& s, absl::Time now) {
  if (s.pid() <= 0 || (kill(static_cast<pid_t>(s.pid()), 0) != 0 && errno == ESRCH)) return false;
  return now - absl::FromUnixMillis(s.updated_at_unix_ms()) < absl::Seconds(5);
}

std::vector<std::string> ConflictCopiesIn(const std::string& folder) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(folder, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    const std::string rel = it->path().string().substr(folder.size() + 1);
    if (rel == kStateDirName) {
      it.disable_recursion_pending();
      continue;
    }
    if (IsConflictCopy(rel)) out.push_back(rel);
  }
  std::sort(out.begin(), out.end());
  return out;
}

namespace {

// OneWayLine: a one-way folder's line: what it keeps from the namespace (`count`, the first of
// them `shown`), what it does about them, and whether that is under way.
std::string OneWayLine(absl::string_view label, uint64_t count, const google::protobuf::RepeatedPtrField<std::string>& shown,
                       absl::string_view none, absl::string_view what, absl::string_view action, bool pending) {
  return absl::StrCat(label, count == 0 ? none
                                        : absl::StrCat(count, what, absl::StrJoin(shown, ", "),
                                                       count > static_cast<uint64_t>(shown.size()) ? ", ..." : "", "; ",
                                                       action),
                      pending ? " (under way)" : "", "\n");
}

// AppendSelectionAndFolderType adds what this device keeps out (selective sync) and, for a
// one-way folder, what it keeps apart from the namespace.
void AppendSelectionAndFolderType(const engine::v1::EngineStatusFile& s, std::string* out) {
  if (s.excluded_size() > 0 || s.selection_pending()) {
    absl::StrAppend(out, "excluded   ", s.excluded_size() == 0 ? "nothing" : absl::StrJoin(s.excluded(), ", "),
                    " (kept out of this device only)", s.selection_pending() ? "; a change is being carried out" : "",
                    s.excluded_kept() > 0 ? absl::StrCat("; ", s.excluded_kept(), " changed here left in place") : "",
                    "\n");
  }
  if (s.receive_only()) {
    absl::StrAppend(out, OneWayLine("receive-only ", s.local_differences(), s.differences_shown(),
                                    "(local changes are not uploaded): none here", " local change(s) not uploaded: ",
                                    "converge-engine revert sets them aside and brings the namespace's versions back",
                                    s.revert_pending()));
    if (!s.reverted_to().empty()) absl::StrAppend(out, "reverted   last set aside in ", s.reverted_to(), "\n");
  }
  if (s.send_only()) {
    absl::StrAppend(out, OneWayLine("send-only  ", s.not_applied(), s.not_applied_shown(),
                                    "(others' changes are not applied here): none waiting",
                                    " change(s) made elsewhere not applied here: ",
                                    "converge-engine override pushes this folder's state over them", s.override_pending()));
  }
}

}  // namespace

namespace {

// AppendCatchUp: a long catch-up's progress, with its rate and when it ends at that rate.
void AppendCatchUp(const engine::v1::EngineStatusFile& s, uint64_t behind, absl::Time now, std::string* out) {
  if (s.catchup_started_unix_ms() == 0 || behind == 0) return;
  const double secs = absl::ToDoubleSeconds(now - absl::FromUnixMillis(s.catchup_started_unix_ms()));
  const uint64_t done = s.cursor() > s.catchup_from_seq() ? s.cursor() - s.catchup_from_seq() : 0;
  const double rate = secs > 0 ? static_cast<double>(done) / secs : 0;
  const std::string eta = rate > 0 ? absl::StrFormat("%.0fs", static_cast<double>(behind) / rate) : "?";
  absl::StrAppend(out, "catch-up   ", done, " of ", done + behind,
                  absl::StrFormat(" commits (%.0f%%), ", 100.0 * static_cast<double>(done) / static_cast<double>(done + behind)),
                  s.catchup_files(), " files in ", absl::StrFormat("%.0fs", secs),
                  absl::StrFormat(", %.1f commits/s, ETA %s", rate, eta), "\n");
}

void AppendOnDemand(const engine::v1::EngineStatusFile& s, std::string* out) {
  if (!s.on_demand()) return;
  absl::StrAppend(out, "on demand  ", s.files_shown(), " files (", HumanBytes(s.bytes_shown()), ") shown, ",
                  HumanBytes(s.cached_bytes()), " cached of a ", HumanBytes(s.cache_budget_bytes()), " budget",
                  s.hydrating() > 0 ? absl::StrCat(", ", s.hydrating(), " fetch(es) in progress") : "", ", ",
                  HumanBytes(s.fetched_bytes()), " fetched since start\n");
  if (s.pinned_size() > 0) {
    std::vector<std::string> pins;
    for (const std::string& p : s.pinned()) pins.push_back(p.empty() ? "(the whole folder)" : p);
    absl::StrAppend(out, "pinned     ", absl::StrJoin(pins, ", "), " (", HumanBytes(s.pinned_bytes()), " cached)\n");
  }
  if (s.refused_changes() > 0) {
    absl::StrAppend(out, "refused    ", s.refused_changes(),
                    " change(s) made here that the store will not take (kept here; change them to try again); first: ",
                    s.first_refused(), "\n");
  }
  if (s.reads_failed() > 0) {
    absl::StrAppend(out, "unreadable ", s.reads_failed(), " read(s) refused with EIO; latest: ", s.last_read_failure(),
                    "\n");
  }
}

}  // namespace

void OnDemandStatusFile::set_device_id(const std::string& id) {
  absl::MutexLock lock(&mu_);
  identity_.set_device_id(id);
}

absl::Status OnDemandStatusFile::Write(const OnDemandStatus& s) {
  absl::MutexLock lock(&mu_);
  engine::v1::EngineStatusFile out = identity_;
  out.set_pid(getpid());
  out.set_version(kVersion);
  out.set_state(s.state);
  out.set_error(s.error.empty() ? s.upload_error : s.error);
  out.set_pending_uploads(s.edits.pending);
  out.set_held_deletes(s.held_deletes);
  out.set_held(s.held_message);
  out.set_cursor(s.seq);
  out.set_remote_head(s.remote_head);
  out.set_last_synced_unix_ms(s.listed_at_unix_ms);
  out.set_on_demand(true);
  out.set_files_shown(s.view.files);
  out.set_bytes_shown(s.view.bytes_shown);
  out.set_cache_budget_bytes(s.cache.budget_bytes);
  out.set_cached_bytes(s.cache.cached_bytes);
  out.set_pinned_bytes(s.cache.pinned_bytes);
  for (const std::string& p : s.pins) out.add_pinned(p);
  out.set_hydrating(s.view.hydrating);
  out.set_fetched_bytes(s.view.bytes_fetched);
  out.set_reads_failed(s.view.reads_failed);
  out.set_last_read_failure(s.view.last_failure);
  out.set_refused_changes(s.edits.refused);
  out.set_first_refused(s.edits.first_refused);
  const absl::Time now = absl::Now();
  std::string unchanged;
  if (!out.SerializeToString(&unchanged)) return absl::InternalError("cannot encode the status");
  if (unchanged == last_ && now - last_written_ < kStatusHeartbeat) return absl::OkStatus();
  out.set_updated_at_unix_ms(absl::ToUnixMillis(now));
  CONVERGE_ASSIGN_OR_RETURN(std::string json, StatusJson(out));
  CONVERGE_RETURN_IF_ERROR(WriteFileAtomically(state_path_ + "/status.json", json));
  last_ = std::move(unchanged);
  last_written_ = now;
  return absl::OkStatus();
}

std::string FormatStatus(const engine::v1::EngineStatusFile& s, bool running,
                         const std::vector<std::string>& conflicts, absl::Time now) {
  std::string out;
  absl::StrAppend(&out, "folder     ", s.folder(), "\n");
  absl::StrAppend(&out, "device     ", s.device_id(), " in namespace ", s.namespace_id(), "\n");
  if (running) {
    absl::StrAppend(&out, "state      ", s.state(), s.error().empty() ? "" : absl::StrCat(": ", s.error()),
                    " (engine pid ", s.pid(), ", version ", s.version(), ")\n");
  } else {
    absl::StrAppend(&out, "state      not running (last seen ", s.state(), " at ",
                    absl::FormatTime("%Y-%m-%d %H:%M:%SZ", absl::FromUnixMillis(s.updated_at_unix_ms()), absl::UTCTimeZone()),
                    ")\n");
  }
  const uint64_t behind = s.remote_head() > s.cursor() ? s.remote_head() - s.cursor() : 0;
  absl::StrAppend(&out, "cursor     ", s.cursor(), behind > 0 ? absl::StrCat(" (", behind, " commits to download)") : "",
                  "\n");
  AppendCatchUp(s, behind, now, &out);
  if (!s.watcher().empty()) absl::StrAppend(&out, "watching   ", s.watcher(), "\n");
  absl::StrAppend(&out, "uploads    ",
                  s.pending_uploads() == 0 ? "none waiting" : absl::StrCat(s.pending_uploads(), " changed paths waiting"),
                  "\n");
  if (s.held_deletes() > 0) {
    absl::StrAppend(&out, "deletes    ", s.held_deletes(), " local deletions held by the store (", s.held(),
                    "); an operator approves or rejects them with convergectl deletes\n");
  }
  if (s.case_collisions_size() > 0) {
    absl::StrAppend(&out, "not synced ", s.case_collisions_size(),
                    " local name(s) differing only in case from synced ones (rename to sync): ",
                    absl::StrJoin(s.case_collisions(), ", "), "\n");
  }
  if (s.blocked_size() > 0) {
    absl::StrAppend(&out, "blocked    ", s.blocked_size(),
                    " remote change(s) not applied here (the rest were; tried again every round): ",
                    absl::StrJoin(s.blocked().begin(), s.blocked().begin() + std::min(s.blocked_size(), 5), "; "),
                    s.blocked_size() > 5 ? "; ..." : "", "\n");
  }
  AppendSelectionAndFolderType(s, &out);
  AppendOnDemand(s, &out);
  if (!s.transfer().empty()) {
    const double secs = absl::ToDoubleSeconds(now - absl::FromUnixMillis(s.transfer_started_unix_ms()));
    const double rate = secs > 0 ? static_cast<double>(s.transfer_done_bytes()) / secs : 0;
    std::string eta = "?";
    if (rate > 0 && s.transfer_total_bytes() >= s.transfer_done_bytes()) {
      eta = absl::StrFormat("%.0fs", static_cast<double>(s.transfer_total_bytes() - s.transfer_done_bytes()) / rate);
    }
    const double pct = s.transfer_total_bytes() == 0
                           ? 100.0
                           : 100.0 * static_cast<double>(s.transfer_done_bytes()) / static_cast<double>(s.transfer_total_bytes());
    absl::StrAppend(&out, "transfer   ", s.transfer() == "upload" ? "uploading " : "downloading ",
                    HumanBytes(s.transfer_done_bytes()), " of ", HumanBytes(s.transfer_total_bytes()),
                    absl::StrFormat(" (%.0f%%), %s/s, ETA %s", pct, HumanBytes(static_cast<uint64_t>(rate)), eta), "\n");
  }
  if (s.last_synced_unix_ms() > 0) {
    absl::StrAppend(&out, "synced     ",
                    absl::FormatTime("%Y-%m-%d %H:%M:%SZ", absl::FromUnixMillis(s.last_synced_unix_ms()), absl::UTCTimeZone()),
                    "\n");
  }
  absl::StrAppend(&out, "conflicts  ", conflicts.empty() ? "none" : absl::StrCat(conflicts.size()), "\n");
  for (const std::string& c : conflicts) absl::StrAppend(&out, "           ", c, "\n");
  return out;
}

}  // namespace converge::engine
