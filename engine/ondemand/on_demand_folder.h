// OnDemandFolder: a folder in on-demand mode (`converge-engine --on_demand`). It shows the
// namespace through an OnDemandView mounted over the folder with FUSE, follows the store's log
// (Pull, as a syncing engine does; the file table when there is no log to follow) when a new
// head is announced and every `follow_interval`, acknowledges what it shows, keeps its latest
// listing across restarts (ListingStore), keeps pinned subtrees fetched, and reports what it
// holds. Knows no gRPC: the daemon hands it a StoreClient and the heads its notification
// listener hears.
//
//   OnDemandFolder folder(store_client, options, report);
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
#include <map>
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
#include "engine/ondemand/local_edits.h"
#include "engine/ondemand/on_demand_view.h"
#include "engine/sync/store_client.h"

namespace converge::engine {

// A namespace as listed: its live versions as of `seq`.
struct Listing {
  std::vector<FileVersion> versions;
  uint64_t seq = 0;
};

// ListingStore keeps an on-demand folder's latest listing across restarts, so an engine started
// while the store is out of reach shows the folder as it last saw it (its cached and pinned
// files readable). The daemon keeps it in the state directory.
class ListingStore {
 public:
  virtual ~ListingStore() = default;
  virtual absl::Status Save(const Listing& listing) = 0;
  // NotFound when none was saved.
  virtual absl::StatusOr<Listing> Load() = 0;
};

struct OnDemandOptions {
  std::string folder;      // the mount point: empty but for the state directory
  // The state directory as the engine reaches it once the folder is mounted over (a path
  // through /proc/self/fd), and that directory's descriptor (shown at .converge).
  std::string state_path;
  int state_fd = -1;
  uint64_t cache_budget_bytes = uint64_t{1} << 30;
  absl::Duration follow_interval = absl::Seconds(10);  // asks the store for news even unprompted
  ListingStore* listings = nullptr;                   // null: nothing kept across restarts
  absl::Duration save_interval = absl::Seconds(30);   // the listing is saved at most this often
  absl::Duration report_interval = absl::Milliseconds(250);
  bool mount = true;  // false: the view is followed but not mounted (tests without FUSE)
  // Local changes (writes through the mount) are kept here until the store has them; null:
  // the folder is read-only.
  ChangeJournal* journal = nullptr;
  absl::Duration upload_quiet = absl::Milliseconds(50);  // a change untouched this long goes up
  std::string device_id;    // known before enrolling if it enrolled before (else from Connect)
  std::string device_name;  // conflict copies made here carry it
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
  LocalEdits::Stats edits;        // changes made here, not yet in the store
  uint64_t held_deletes = 0;      // of them, deletions the store holds for an operator
  std::string held_message;
  std::string upload_error;       // why the latest upload failed ("" if it did not)
};

class OnDemandFolder {
 public:
  // `report` is called every report_interval with the folder's status (the daemon writes it to
  // the status file). `store` may be null until Connect: the folder then shows what was saved.
  OnDemandFolder(StoreClient* store, OnDemandOptions options, std::function<void(const OnDemandStatus&)> report);
  // Connect hands over the store once the device could enroll (before that, nothing is fetched,
  // followed or uploaded), and the device's id; the store must outlive Stop.
  void Connect(StoreClient* store, const std::string& device_id = "");
  ~OnDemandFolder();

  // Start opens the cache, shows the listing saved last time (if any) brought up to date from
  // the store's log, or else the store's file table (an unreachable store leaves the folder as
  // saved, or empty, until it answers), mounts the folder and starts following the store.
  absl::Status Start();
  void NotifyRemoteHead(uint64_t seq);
  void Stop();
  // The view the mount serves (valid from Start until destruction).
  OnDemandView* view() { return view_.get(); }
  // The local changes (null if the folder is read-only).
  LocalEdits* edits() { return edits_.get(); }

  // The pins file: one path per line, kept in the state directory (`converge-engine pin`).
  static constexpr char kPinsFile[] = "pins";

 private:
  void Run();
  // Follow brings the view up to the store's head: the log after the seq shown (Pull; the view
  // applies each batch's changes), or the whole file table when there is none yet or the log was
  // compacted past it. Then Shown: the store hears this device has them (Ack), and the listing
  // is saved.
  absl::Status Follow();
  absl::Status ListWhole();
  void Shown();
  // Upload sends the local changes that settled (engine/ondemand/upload.h).
  void Upload();
  void Save(bool now);
  // FollowPins reads the pins file when it changed and fetches what pinned files lack.
  void FollowPins();
  OnDemandStatus StatusNow();

  // The store, from Connect on; store() fails until then.
  absl::StatusOr<StoreClient*> store() const;
  std::atomic<StoreClient*> store_;
  const OnDemandOptions options_;
  const std::function<void(const OnDemandStatus&)> report_;
  std::unique_ptr<ChunkCache> cache_;
  std::unique_ptr<OnDemandView> view_;
  std::unique_ptr<LocalEdits> edits_;
  std::unique_ptr<FuseMount> mount_;
  absl::Time upload_retry_at_ = absl::InfinitePast();  // the runner's thread only
  std::atomic<uint64_t> remote_head_{0};
  // What is followed (the runner's thread, and Start before it runs).
  uint64_t seq_ = 0;
  bool have_listing_ = false;
  uint64_t shown_seq_ = 0;  // what the view shows
  uint64_t saved_seq_ = 0;
  absl::Time saved_at_ = absl::InfinitePast();
  std::atomic<bool> listed_ok_{false};  // the latest listing succeeded
  absl::Mutex mu_;
  std::string error_ ABSL_GUARDED_BY(mu_);
  int64_t listed_at_unix_ms_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t held_deletes_ ABSL_GUARDED_BY(mu_) = 0;
  std::string held_message_ ABSL_GUARDED_BY(mu_);
  std::string upload_error_ ABSL_GUARDED_BY(mu_);
  std::string pins_text_;  // the pins file as last read (the runner's thread only)
  std::vector<std::string> pins_;  // as parsed from it
  bool pins_hydrated_ = true;
  absl::Time pins_retry_at_ = absl::InfinitePast();
  absl::Notification stop_;
  std::thread runner_;
};

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_ONDEMAND_ON_DEMAND_FOLDER_H_
