// LocalEdits: what programs change in an on-demand folder (through the mount) until the store has
// it. Each changed path is one pending change, kept durable by a ChangeJournal (a record a
// crash of the engine cannot lose: written before the call that made it returns) and shown by
// the OnDemandView over the namespace's version. A file written here has its bytes in a data
// file beside its record: an existing file is copied there (its chunks fetched) when first
// opened for writing, unless truncated. Moves keep the file's id and need no bytes; deletions
// are tombstones of the version they delete.
//
// The folder uploads what has settled (no writer holds it open, untouched for a moment) and
// calls Committed, or Conflicted for the changes the store refused as stale: a deletion then
// gives way to the other device's edit, an edit moves to a conflict copy beside the winner.
//
//   LocalEdits edits(&view, &journal, state_path + "/local", device_id, device_name);
//   CONVERGE_RETURN_IF_ERROR(edits.Load());        // shows what a previous run left pending
//   absl::StatusOr<LocalEdits::Handle> h = edits.Create("notes/a.txt", 0644);
//   pwrite(h->fd, ...);  edits.Wrote(h->id);  edits.Release(*h);
//
// Errors carry the errno the filesystem should answer (ErrnoOf). Thread-safe.
#ifndef CONVERGE_ENGINE_ONDEMAND_LOCAL_EDITS_H_
#define CONVERGE_ENGINE_ONDEMAND_LOCAL_EDITS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/model/model.h"
#include "engine/ondemand/on_demand_view.h"

namespace converge::engine {

// A change made here and not yet in the store.
struct PendingChange {
  uint64_t id = 0;
  FileVersion version;    // as it will be committed (a data file's size and mtime are filled then)
  bool has_data = false;  // its bytes are in the data file <dir>/<id>.data
};

// ChangeJournal keeps pending changes across restarts (the daemon keeps them in the state
// directory). Put is durable against a crash of the process once it returns; Sync makes what
// was put durable against a power cut.
class ChangeJournal {
 public:
  virtual ~ChangeJournal() = default;
  virtual absl::Status Put(const PendingChange& change) = 0;
  virtual absl::Status Drop(uint64_t id) = 0;
  virtual absl::StatusOr<std::vector<PendingChange>> LoadAll() = 0;
  virtual absl::Status Sync() = 0;
};

// ErrnoOf: the errno a failed edit answers (EIO if it names none).
int ErrnoOf(const absl::Status& s);

class LocalEdits {
 public:
  // `dir` holds the data files (created if missing); `device_id` and `device_name` name this
  // device in conflict copies.
  LocalEdits(OnDemandView* view, ChangeJournal* journal, std::string dir, std::string device_id,
             std::string device_name);
  ~LocalEdits();
  // SetDevice names this device once it enrolled (its changes and conflict copies carry it).
  void SetDevice(const std::string& device_id);

  // Load shows the changes the journal holds (a previous run's) on the view; data files no
  // record names are removed. Call once, after the view shows its first listing.
  absl::Status Load();

  // An open file being written: its data file's descriptor (owned: closed by Release).
  struct Handle {
    uint64_t id = 0;
    int fd = -1;
  };
  absl::StatusOr<Handle> Create(const std::string& path, uint32_t mode);
  // OpenForWrite copies a file shown into its data file first (unless `truncate`: then it starts
  // empty); Unavailable when its chunks cannot be fetched.
  absl::StatusOr<Handle> OpenForWrite(const std::string& path, bool truncate);
  void Wrote(uint64_t id);  // after each write through a handle
  absl::Status Sync(const Handle& h);
  void Release(const Handle& h);

  absl::Status Truncate(const std::string& path, uint64_t size);
  absl::Status MkDir(const std::string& path, uint32_t mode);
  absl::Status Symlink(const std::string& target, const std::string& path);
  absl::Status Unlink(const std::string& path);
  absl::Status RmDir(const std::string& path);
  // Rename moves a file, link or directory (with all below it); `no_replace`: EEXIST if `to` is.
  absl::Status Rename(const std::string& from, const std::string& to, bool no_replace);
  absl::Status SetMode(const std::string& path, uint32_t mode);
  absl::Status SetMtime(const std::string& path, int64_t mtime_ns);

  // The upload side. Settled returns the changes no writer holds and nothing touched for
  // `quiet` (a data file's size, mtime and chunks are the caller's to fill), each with the
  // generation it had: Committed drops those still as they were (the view shows `committed`),
  // and moves the others' base to the committed seq.
  struct Settled {
    PendingChange change;
    uint64_t generation = 0;
    std::string data_path;  // "" if none
  };
  std::vector<Settled> TakeSettled(absl::Duration quiet);
  void Committed(const std::vector<Settled>& done, const std::vector<FileVersion>& committed);
  // Conflicted settles the changes the store refused as stale, given the store's version of
  // their paths now (nullopt: none, else perhaps a tombstone): a deletion gives way to the other
  // device's edit, an edit of a path deleted there is made again on top of that, and an edit of
  // a path edited there becomes a conflict copy beside the winner.
  void Conflicted(const absl::flat_hash_map<std::string, std::optional<FileVersion>>& current);
  // Restore drops pending deletions (the store refused them: a mass delete rejected).
  void Restore();
  // Refuse keeps a change the store will not take (a name differing only in case from another,
  // a version it finds invalid) pending but out of the uploads until it changes again; status
  // names it.
  void Refuse(const Settled& change, const std::string& why);
  // RetryRefused puts the refused changes back into the uploads (after a commit went through:
  // what the store refused may depend on what it holds, as a directory deleted only once empty).
  void RetryRefused();

  struct Stats {
    uint64_t pending = 0;
    uint64_t pending_deletes = 0;
    uint64_t open_writers = 0;
    uint64_t conflicts = 0;  // conflict copies made since start
    uint64_t refused = 0;    // changes the store will not take (Refuse)
    std::string first_refused;  // "path: why"
  };
  Stats stats() const;

 private:
  struct Entry {
    PendingChange change;
    uint64_t generation = 0;
    int writers = 0;
    absl::Time touched;
    uint64_t refused_generation = 0;  // Refuse: the generation refused (0: none)
    std::string refused;
  };
  std::string DataPath(uint64_t id) const;
  // Shown: what the folder shows at `path` now; NotFound (ENOENT) if nothing.
  absl::StatusOr<FileVersion> Shown(const std::string& path) const;
  absl::Status CheckNewPath(const std::string& path) const;
  // NewVersion: the version of a path made here (valid, its parent a directory, nothing there).
  absl::StatusOr<FileVersion> NewVersion(const std::string& path, FileKind kind, uint32_t mode) const;
  // Record puts a change of `v.path` (new, or replacing the pending one) and shows it.
  absl::StatusOr<Entry*> Record(FileVersion v, bool has_data, uint64_t reuse_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Delete forgets the pending change of `path` and records that it is gone; Gone records that
  // (a tombstone of the namespace's version, if it has one; else the path just goes).
  absl::Status Delete(const std::string& path) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Gone(const std::string& path) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Forget(const std::string& path, bool keep_data) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status MoveOne(const FileVersion& shown, const std::string& to) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Handle> OpenLocked(const std::string& path, bool truncate) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CopyIn(const FileVersion& shown, int fd);
  // Base: the version a change of `path` is made on (the namespace's, if any).
  void Base(const std::string& path, FileVersion* v) const;

  OnDemandView* const view_;
  ChangeJournal* const journal_;
  const std::string dir_;
  const std::string device_name_;
  mutable absl::Mutex mu_;
  std::string device_id_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Entry> pending_ ABSL_GUARDED_BY(mu_);   // by path
  absl::flat_hash_map<uint64_t, std::string> by_id_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t next_generation_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t conflicts_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_ONDEMAND_LOCAL_EDITS_H_
