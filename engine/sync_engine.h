// SyncEngine: keeps one folder in step with one namespace. Each round pulls and applies what
// other devices committed, then scans the folder and commits local changes (uploading only the
// chunks the store lacks). A stale base_seq (another device got there first) means: pull, apply
// (which keeps conflicting local edits as conflict copies) and scan again.
//
// Run() loops until stopped; it wakes early when NotifyRemoteHead reports a seq past the cursor
// and when NotifyLocalChange (the watcher) reports a local change.
// Thread-safe: NotifyRemoteHead and Stop may be called from any thread; the rest from the thread
// that calls Run (or directly, in tests).
#ifndef CONVERGE_ENGINE_SYNC_ENGINE_H_
#define CONVERGE_ENGINE_SYNC_ENGINE_H_

#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "engine/applier.h"
#include "engine/chunker.h"
#include "engine/filesystem.h"
#include "engine/local_index.h"
#include "engine/scanner.h"
#include "engine/store_client.h"

namespace converge::engine {

struct EngineOptions {
  // The verifying full scan; with a watcher it is only the backstop.
  absl::Duration rescan_interval = absl::Seconds(10);
  // How long a burst of local change events is let settle before the scan (an editor's save is
  // several events).
  absl::Duration coalesce_delay = absl::Milliseconds(3);
  uint32_t chunk_bytes = kDefaultChunkBytes;
  size_t max_files_per_commit = 1000;
};

struct ScanStats {
  uint64_t scans = 0;
  uint64_t last_entries = 0;
  uint64_t last_files_hashed = 0;
  uint64_t last_changes = 0;
  absl::Duration last_duration;
};

struct UploadStats {
  uint64_t commits = 0;
  uint64_t files_committed = 0;
  uint64_t chunks_uploaded = 0;
  uint64_t bytes_uploaded = 0;
};

class SyncEngine {
 public:
  SyncEngine(Filesystem* fs, LocalIndex* index, StoreClient* store, Clock* clock,
             std::string device_id, EngineOptions options);

  // PullAndApply applies every commit after the cursor and acks the new cursor.
  absl::Status PullAndApply();
  // ScanAndUpload commits local changes. Aborted if another device changed one of the paths
  // first (call PullAndApply, then scan again).
  absl::Status ScanAndUpload();
  // SyncOnce: pull, scan and upload, retrying a stale commit a few times.
  absl::Status SyncOnce();

  void Run();
  void Stop();
  void NotifyRemoteHead(uint64_t seq);
  // NotifyLocalChange: the watcher saw the folder change; scan after the coalescing delay.
  void NotifyLocalChange();

  const ApplyStats& apply_stats() const { return applier_.stats(); }
  const UploadStats& upload_stats() const { return upload_stats_; }
  const ScanStats& scan_stats() const { return scan_stats_; }

 private:
  Filesystem* const fs_;
  LocalIndex* const index_;
  StoreClient* const store_;
  Clock* const clock_;
  const std::string device_id_;
  const EngineOptions options_;
  Scanner scanner_;
  Applier applier_;
  UploadStats upload_stats_;
  ScanStats scan_stats_;

  absl::Mutex mu_;
  uint64_t remote_head_ ABSL_GUARDED_BY(mu_) = 0;
  bool local_dirty_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_SYNC_ENGINE_H_
