// MemFilesystem: a folder in memory that can lose power. It keeps two views of the folder:
// what processes see, and what is durable (file data as of its last fsync, directory entries as
// of their directory's last fsync, everything at syncfs). PowerCut() throws away the difference,
// as a machine that lost power would. It backs the deterministic simulation and power-cut tests
// of the engine; the User* calls are what a person (or an application that fsyncs) does to the
// folder, and are durable at once.
//
// Mirrors LocalFilesystem: Walk order and filtering, the reserved state directory, partial
// downloads that survive the engine (not a power cut, unless synced), RENAME_NOREPLACE renames.
// Deterministic: inode numbers and temp names come from counters, times from the clock.
//
// Thread-safe.
#ifndef CONVERGE_TESTS_TESTING_MEM_FILESYSTEM_H_
#define CONVERGE_TESTS_TESTING_MEM_FILESYSTEM_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "common/base/clock.h"
#include "engine/fs/filesystem.h"

namespace converge::engine {

class MemFilesystem : public Filesystem {
 public:
  struct Inode {
    bool dir = false;
    std::string data;          // what readers see
    std::string durable_data;  // what survives a power cut
    uint32_t mode = 0644;
    int64_t mtime_ns = 0;
    int64_t ctime_ns = 0;
    uint64_t ino = 0;
  };

  explicit MemFilesystem(Clock* clock);

  // Filesystem.
  absl::Status Walk(const std::string& under,
                    const std::function<void(const std::string&, const LocalStat&)>& fn) override;
  using Filesystem::Walk;
  absl::StatusOr<LocalStat> Stat(const std::string& path) override;
  absl::StatusOr<std::unique_ptr<ReadableFile>> OpenRead(const std::string& path) override;
  absl::StatusOr<std::unique_ptr<TempFile>> CreateTemp() override;
  absl::StatusOr<std::unique_ptr<TempFile>> OpenPartial(const std::string& key, uint64_t* existing_bytes) override;
  absl::Status MakeDirs(const std::string& path) override;
  absl::Status Remove(const std::string& path) override;
  absl::Status Rename(const std::string& from, const std::string& to) override;
  absl::StatusOr<std::string> SetAside(const std::string& path, const std::string& bin) override;
  absl::StatusOr<LocalStat> SetMetadata(const std::string& path, uint32_t mode, int64_t mtime_ns,
                                        const std::vector<Xattr>* xattrs = nullptr) override;
  absl::Status SyncAll() override;
  absl::Status SyncDir(const std::string& path) override;
  absl::Status RootIntact() override;

  // What a user does (durable at once). Parents are created as needed.
  absl::Status UserWrite(const std::string& path, const std::string& content);
  absl::Status UserMkdir(const std::string& path);
  // UserRemove removes a file or a whole directory tree.
  absl::Status UserRemove(const std::string& path);
  absl::Status UserRename(const std::string& from, const std::string& to);
  // UserTouch sets a file's mtime (touch -d).
  absl::Status UserTouch(const std::string& path, int64_t mtime_ns);
  // Forget the folder's marker (an unmounted disk): RootIntact fails until restored.
  void SetMarkerPresent(bool present);

  // The visible folder (the engine's state area left out): path -> content, "/" for directories.
  std::map<std::string, std::string> Snapshot();
  // What SetAside moved out: "BIN/PATH" -> content, "/" for directories.
  std::map<std::string, std::string> SetAsideSnapshot();

  // PowerCut drops everything not durable; temp files not installed vanish (partial downloads
  // keep what was synced).
  void PowerCut();
  // A disk that lies: fsync and syncfs do nothing (to prove a test would notice).
  void set_ignore_fsync(bool ignore);
  // A full disk: appends and directory creation fail with ResourceExhausted.
  void set_full(bool full);
  // FailAfter: the machine dies after `mutations` more changes (appends, syncs, renames,
  // removals, directory creations): every later change fails with Unavailable until PowerCut.
  // Negative: never.
  void FailAfter(int64_t mutations);

 private:
  friend class MemTempFile;
  using Names = std::map<std::string, std::shared_ptr<Inode>>;

  std::shared_ptr<Inode> NewInode(bool dir) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Lookup returns the inode at a path of the visible folder, or null (also when a component on
  // the way is not a directory).
  std::shared_ptr<Inode> Lookup(const std::string& path) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status MakeDirsLocked(const std::string& path, bool durable) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SyncDirLocked(const std::string& dir) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  LocalStat StatOf(const Inode& inode) const;
  int64_t NowNs() const { return absl::ToUnixNanos(clock_->Now()); }

  Clock* const clock_;
  absl::Mutex mu_;
  Names names_ ABSL_GUARDED_BY(mu_);          // visible: folder paths and "\x01tmp/NAME" temp files
  Names durable_names_ ABSL_GUARDED_BY(mu_);  // after a power cut
  Names aside_ ABSL_GUARDED_BY(mu_);          // what SetAside moved out, by "BIN/PATH" (durable)
  uint64_t next_ino_ ABSL_GUARDED_BY(mu_) = 100;
  uint64_t next_temp_ ABSL_GUARDED_BY(mu_) = 0;
  bool marker_ ABSL_GUARDED_BY(mu_) = true;
  bool ignore_fsync_ ABSL_GUARDED_BY(mu_) = false;
  bool full_ ABSL_GUARDED_BY(mu_) = false;
  int64_t mutations_left_ ABSL_GUARDED_BY(mu_) = -1;
  // Dead counts one mutation and reports whether the machine is already dead.
  bool Dead() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (mutations_left_ < 0) return false;
    if (mutations_left_ == 0) return true;
    --mutations_left_;
    return false;
  }
};

}  // namespace converge::engine

#endif  // CONVERGE_TESTS_TESTING_MEM_FILESYSTEM_H_
