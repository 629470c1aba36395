// OnDemandView: a namespace's files as an on-demand folder shows them, every file listed with
// its real size, mode and mtime, its bytes fetched from the store only when read: chunk by chunk
// for the range asked (and a few chunks ahead of a sequential reader), each checked against its digest before any byte
// of it is returned, kept in a ChunkCache. Knows nothing of FUSE (engine/ondemand/fuse_mount.h
// serves it to the kernel).
//
//   OnDemandView view(store_client, cache.get());
//   view.Replace(live_versions, seq);               // after each listing of the namespace
//   absl::StatusOr<std::string> bytes = view.Read("docs/a.txt", 4096, 65536);
//
// Thread-safe: each path's node is immutable and readers hold it while they use it; a change
// swaps nodes under a lock that lookups take shared and nothing holds across a fetch, so a read
// never waits for a fetch of another and a change never waits for a read.
#ifndef CONVERGE_ENGINE_ONDEMAND_ON_DEMAND_VIEW_H_
#define CONVERGE_ENGINE_ONDEMAND_ON_DEMAND_VIEW_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/model/model.h"
#include "engine/ondemand/chunk_cache.h"
#include "engine/sync/applier.h"

namespace converge::engine {

class OnDemandView {
 public:
  // A read that misses the cache right after a chunk it has (a sequential reader) fetches up to
  // this many chunks of the file from that point on in one call to the store.
  static constexpr size_t kReadAheadChunks = 8;

  // `source` may be null until SetSource (a folder mounted before its device could enroll):
  // reads of chunks not cached fail as offline ones do.
  OnDemandView(ChunkSource* source, ChunkCache* cache) : source_(source), cache_(cache) {}
  void SetSource(ChunkSource* source) { source_ = source; }

  // Replace shows `versions` (tombstones are skipped; a path's parent directories are shown
  // even where the listing has no entry for them) as of namespace seq `seq`.
  void Replace(const std::vector<FileVersion>& versions, uint64_t seq);
  // Apply shows the changes of commits up to `seq` (a tombstone removes its path), touching only
  // those paths and their parents: a commit costs what it changed, not the namespace's size.
  void Apply(const std::vector<FileVersion>& changes, uint64_t seq);
  // Snapshot returns the namespace's versions shown (not the directories only implied, nor local
  // changes: the namespace's versions under them), in no order.
  std::vector<FileVersion> Snapshot() const;

  // Local changes (engine/ondemand/local_edits.h) are shown over the namespace's version of
  // their path until Settle; the namespace's changes of that path meanwhile go underneath.
  // ShowLocal shows `v`; a file written here has its bytes in the file `data` ("" otherwise),
  // whose size and mtime are the file's.
  void ShowLocal(const FileVersion& v, const std::string& data);
  // HideLocal shows `path` deleted (what lies below it stays shown).
  void HideLocal(const std::string& path);
  // Settle ends the local change of `path`: shows `committed` (the store's version of it now,
  // a tombstone hides it) or, if null, the namespace's version underneath.
  void Settle(const std::string& path, const FileVersion* committed);
  // Remote returns the namespace's version of `path`, under a local change too; nullopt if
  // none (or only a directory implied).
  std::optional<FileVersion> Remote(const std::string& path) const;
  uint64_t seq() const { return seq_.load(); }

  // Stat returns the version shown at `path` ("" is the folder itself, a directory);
  // NotFound if none.
  absl::StatusOr<FileVersion> Stat(const std::string& path) const;
  // List returns the names of a directory's entries, sorted.
  absl::StatusOr<std::vector<std::string>> List(const std::string& dir) const;
  // ListFrom calls fn with a directory's entries from the `from`th on (sorted by name), until fn
  // returns false; nothing is copied (a listing served in many pieces, as FUSE asks for it).
  absl::Status ListFrom(const std::string& dir, size_t from,
                        const std::function<bool(const std::string& name, const FileVersion& v)>& fn) const;
  // Read returns up to `size` bytes of a file from `offset` (fewer at its end). Unavailable,
  // naming the file, when a chunk it needs is not cached and the store cannot be reached.
  absl::StatusOr<std::string> Read(const std::string& path, uint64_t offset, uint64_t size);

  // SetPins keeps the files under these paths ("" for all) from eviction, as the tree shown
  // now and after each Replace has them; HydratePins fetches what of them is not cached yet.
  // The set is the caller's to keep across restarts.
  void SetPins(std::vector<std::string> paths);
  absl::Status HydratePins();

  struct Stats {
    uint64_t files = 0;
    uint64_t bytes_shown = 0;    // the files' sizes, summed
    uint64_t bytes_fetched = 0;  // since start
    uint64_t chunks_fetched = 0;
    uint64_t reads_failed = 0;   // reads refused because a chunk could not be had
    std::string last_failure;    // "path: why" of the latest
    uint64_t hydrating = 0;      // fetches in progress
  };
  Stats stats() const;

 private:
  // A path shown. Immutable once in the tree: readers hold it while they use it, a change
  // puts a new one in its place.
  struct Node {
    FileVersion version;
    std::vector<uint64_t> starts;  // each chunk's offset in the file
    bool whole = true;             // a file's chunks add up to its size
    bool implied = false;          // a directory shown only because paths lie below it
    std::string local;             // a file written here: the file holding its bytes
    std::vector<std::string> children;  // directories: entry names, sorted
  };
  using Tree = absl::flat_hash_map<std::string, std::shared_ptr<const Node>>;
  static std::shared_ptr<Node> MakeNode(const FileVersion& v);
  // Find returns the node at `path`.
  absl::StatusOr<std::shared_ptr<const Node>> Find(const std::string& path) const;
  // Put and Remove change tree_ (Apply's steps); `edited` holds the nodes made in this Apply,
  // which it may still change in place (no reader has seen them).
  using Edited = absl::flat_hash_map<std::string, std::shared_ptr<Node>>;
  void Put(const FileVersion& v, Edited* edited) ABSL_EXCLUSIVE_LOCKS_REQUIRED(tree_mu_) { Put(MakeNode(v), edited); }
  void Put(std::shared_ptr<Node> node, Edited* edited) ABSL_EXCLUSIVE_LOCKS_REQUIRED(tree_mu_);
  // Shadow keeps the namespace's node of `path` underneath before a local change is shown.
  void Shadow(const std::string& path) ABSL_EXCLUSIVE_LOCKS_REQUIRED(tree_mu_);
  // Shown: a node's version as shown (a local file's size and mtime are its data file's).
  static FileVersion Shown(const Node& node);
  absl::StatusOr<std::string> ReadLocal(const Node& node, uint64_t offset, uint64_t size);
  void Remove(const std::string& path, Edited* edited) ABSL_EXCLUSIVE_LOCKS_REQUIRED(tree_mu_);
  // Editable returns a node of the tree that this Apply may change (copied once).
  Node* Editable(const std::string& path, Edited* edited) ABSL_EXCLUSIVE_LOCKS_REQUIRED(tree_mu_);
  void Count(const Node& node, int sign) ABSL_EXCLUSIVE_LOCKS_REQUIRED(tree_mu_);
  // ChunkBytes returns chunk `i` of `node`, from the cache or fetched with those after it.
  absl::StatusOr<std::string> ChunkBytes(const Node& node, size_t i);
  void NoteFailure(const std::string& path, const absl::Status& why);
  // PinnedChunks: the chunks of the files shown under `pins`.
  absl::flat_hash_set<Digest> PinnedChunks(const std::vector<std::string>& pins) const;
  std::vector<std::string> pins() const;

  // Fetch reads chunks from source_, or fails when there is none yet.
  absl::Status Fetch(const std::vector<Digest>& digests, const ChunkSource::Sink& sink);
  std::atomic<ChunkSource*> source_;
  // Chunks being fetched, so that readers wanting one at once wait for one fetch.
  struct InFlight {
    absl::Notification done;
    absl::Status status;  // set before done
    std::string bytes;
  };
  absl::Mutex fetch_mu_;
  absl::flat_hash_map<Digest, std::shared_ptr<InFlight>> in_flight_ ABSL_GUARDED_BY(fetch_mu_);
  ChunkCache* const cache_;
  // Held shared by lookups, exclusively by Replace and Apply (never across a fetch).
  mutable absl::Mutex tree_mu_;
  Tree tree_ ABSL_GUARDED_BY(tree_mu_);
  bool listed_ ABSL_GUARDED_BY(tree_mu_) = false;
  // Paths with a local change shown: the namespace's node underneath (null: none).
  absl::flat_hash_map<std::string, std::shared_ptr<const Node>> shadowed_ ABSL_GUARDED_BY(tree_mu_);
  uint64_t files_ ABSL_GUARDED_BY(tree_mu_) = 0;
  uint64_t bytes_shown_ ABSL_GUARDED_BY(tree_mu_) = 0;
  mutable absl::Mutex mu_;
  std::atomic<uint64_t> seq_{0};
  std::atomic<uint64_t> bytes_fetched_{0};
  std::atomic<uint64_t> chunks_fetched_{0};
  std::atomic<uint64_t> hydrating_{0};
  std::atomic<uint64_t> reads_failed_{0};
  std::string last_failure_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> pins_ ABSL_GUARDED_BY(mu_);
};

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_ONDEMAND_ON_DEMAND_VIEW_H_
