// OnDemandFolder: a folder in on-demand mode (`converge-engine --on_demand`). It lists the
// namespace into an OnDemandView, mounts it over the folder with FUSE, lists it again when the
// store announces a new head (and every `relist_interval`), keeps pinned subtrees fetched, and
// reports what it holds. Knows no gRPC: the daemon hands it a StoreClient and the heads its
// notification listener hears.
//
//   OnDemandFolder folder(store_client, options);
//   CONVERGE_RETURN_IF_ERROR(folder.Start());   // mounted once this returns
//   listener.on_head = [&](uint64_t seq) { folder.NotifyRemoteHead(seq); };
//   ...
//   folder.Stop();                                // unmounts
//
// Thread-safe.
#ifndef CONVERGE_ENGINE_ONDEMAND_ON_DEMAND_FOLDER_H_
#define CONVERGE_ENGINE_ONDEMAND_ON_DEMAND_FOLDER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "engine/ondemand/chunk_cache.h"
#include "engine/ondemand/fuse_mount.h"
#include "engine/ondemand/on_demand_view.h"
#include "engine/sync/store_client.h"

namespace converge::engine {

struct OnDemandOptions {
  std::string folder;      // the mount point: empty but for the state directory
  // The state directory as the engine reaches it once the folder is mounted over (a path
  // through /proc/self/fd), and that directory's descriptor (shown at .converge).
  std::string state_path;
  int state_fd = -1;
  uint64_t cache_budget_bytes = uint64_t{1} << 30;
  absl::Duration relist_interval = absl::Seconds(10);
  absl::Duration report_interval = absl::Milliseconds(250);
};

struct OnDemandStatus {
  std::string state;  // "listing", "up to date", "offline"
  std::string error;
  uint64_t seq = 0;   // the namespace seq shown
  uint64_t remote_head = 0;
  OnDemandView::Stats view;
  ChunkCache::Stats cache;
  std::vector<std::string> pins;
  int64_t listed_at_unix_ms = 0;
};

class OnDemandFolder {
 public:
  // `report` is called every report_interval with the folder's status (the daemon writes it to
  // the status file).
  OnDemandFolder(StoreClient* store, OnDemandOptions options, std::function<void(const OnDemandStatus&)> report);
  ~OnDemandFolder();

  // Start opens the cache, lists the namespace (an unreachable store leaves the folder empty
  // until a listing succeeds), mounts the folder and starts following the store.
  absl::Status Start();
  void NotifyRemoteHead(uint64_t seq);
  void Stop();

  // The pins file: one path per line, kept in the state directory (`converge-engine pin`).
  static constexpr char kPinsFile[] = "pins";

 private:
  void Run();
  absl::Status Relist();
  // FollowPins reads the pins file when it changed and fetches what pinned files lack.
  void FollowPins();
  OnDemandStatus StatusNow();

  StoreClient* const store_;
  const OnDemandOptions options_;
  const std::function<void(const OnDemandStatus&)> report_;
  std::unique_ptr<ChunkCache> cache_;
  std::unique_ptr<OnDemandView> view_;
  std::unique_ptr<FuseMount> mount_;
  std::atomic<uint64_t> remote_head_{0};
  std::atomic<bool> listed_ok_{false};  // the latest listing succeeded
  absl::Mutex mu_;
  std::string error_ ABSL_GUARDED_BY(mu_);
  int64_t listed_at_unix_ms_ ABSL_GUARDED_BY(mu_) = 0;
  std::string pins_text_;  // the pins file as last read (the runner's thread only)
  bool pins_hydrated_ = true;
  absl::Notification stop_;
  std::thread runner_;
};

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_ONDEMAND_ON_DEMAND_FOLDER_H_
