// LocalFilesystem: Filesystem over a real folder. Every access below the root goes through
// openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) from a directory descriptor of the root, so a
// symlink planted in the folder (or a hostile path) cannot make the engine read or write outside
// it. Temp files live in <root>/.converge/tmp (same filesystem, so rename is atomic), or, for a
// file written to a known path, unnamed in that path's directory until it is installed.
//
// Thread-compatible: one engine thread uses it (Walk and RootIntact may run beside it).
#ifndef CONVERGE_ENGINE_FS_LOCAL_FILESYSTEM_H_
#define CONVERGE_ENGINE_FS_LOCAL_FILESYSTEM_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/fs/filesystem.h"

namespace converge::engine {

inline constexpr char kStateDirName[] = ".converge";
inline constexpr char kMarkerName[] = "folder-marker";

class LocalFilesystem : public Filesystem {
 public:
  // Open opens an existing folder, creates its state dir (0700) and marker if missing, and
  // removes temp files a crash left behind. FailedPrecondition if the folder does not exist.
  static absl::StatusOr<std::unique_ptr<LocalFilesystem>> Open(const std::string& root);
  ~LocalFilesystem() override;

  const std::string& root() const { return root_; }
  std::string state_dir() const { return root_ + "/" + kStateDirName; }

  using Filesystem::Walk;
  absl::Status Walk(const std::string& under,
                    const std::function<void(const std::string&, const LocalStat&)>& fn) override;
  absl::StatusOr<LocalStat> Stat(const std::string& path) override;
  absl::StatusOr<std::unique_ptr<ReadableFile>> OpenRead(const std::string& path) override;
  absl::StatusOr<std::unique_ptr<TempFile>> CreateTemp() override;
  // An unnamed file (O_TMPFILE) in `path`'s directory, which Rename links into the temp dir and
  // renames into place from there; a named temp file in the temp dir where the filesystem has
  // no O_TMPFILE or /proc is not mounted.
  using Filesystem::CreateTempFor;
  absl::StatusOr<std::unique_ptr<TempFile>> CreateTempFor(const std::string& path, uint32_t mode) override;
  absl::StatusOr<std::unique_ptr<TempFile>> OpenPartial(const std::string& key, uint64_t* existing_bytes) override;
  absl::Status MakeDirs(const std::string& path) override;
  absl::Status Remove(const std::string& path) override;
  // SetAside: into <folder>/.converge/reverted/<bin>/<path>.
  absl::StatusOr<std::string> SetAside(const std::string& path, const std::string& bin) override;
  absl::Status Rename(const std::string& from, const std::string& to) override;
  absl::StatusOr<std::string> ReadLink(const std::string& path) override;
  absl::Status MakeSymlink(const std::string& path, const std::string& target) override;
  absl::StatusOr<LocalStat> SetMetadata(const std::string& path, uint32_t mode, int64_t mtime_ns,
                                        const std::vector<Xattr>* xattrs = nullptr) override;
  absl::Status SyncAll() override;
  absl::Status SyncDir(const std::string& path) override;
  absl::Status RootIntact() override;
  // In a batch, the directories opened below the root stay open (at most kMaxHeldDirs); renames
  // of a temp file into place (without sync_dir) are checked at the directory's SyncDir.
  void BeginBatch() override;
  absl::Status EndBatch() override;
  static constexpr size_t kMaxHeldDirs = 256;

  // DirRef is a descriptor of a directory below the root for one operation: the batch's own
  // (left open) or one opened for it (closed with it).
  class DirRef {
   public:
    DirRef(int fd, bool owned) : fd_(fd), owned_(owned) {}
    DirRef(DirRef&& o) noexcept : fd_(o.fd_), owned_(o.owned_) { o.owned_ = false; }
    DirRef& operator=(DirRef&&) = delete;
    ~DirRef();
    int get() const { return fd_; }

   private:
    int fd_;
    bool owned_;
  };
  // Dir opens directory `rel` ("" = root), refusing symlinks and escapes, or gives the one the
  // batch holds. NotFound, or FailedPrecondition (a file or symlink on the way), when there is no
  // such directory.
  absl::StatusOr<DirRef> Dir(const std::string& rel);
  // CheckBeforeInstall is StillBeneath, skipped for a directory the batch holds and checked.
  absl::Status CheckBeforeInstall(const DirRef& dir, const std::string& rel);
  // DeferInstallCheck leaves the check after a rename into directory `rel` (now `base`, inode
  // `inode`; `temp_name` is free in the temp dir, to take it back to) to the batch: false when
  // the batch does not hold `rel`, and the caller checks now.
  bool DeferInstallCheck(const std::string& rel, const std::string& base, const std::string& temp_name,
                         uint64_t inode);

  // OpenDirBeneath opens directory `rel` ("" = root), refusing symlinks and escapes.
  // The caller closes the descriptor.
  absl::StatusOr<int> OpenDirBeneath(const std::string& rel);

  // StillBeneath returns OK if `dirfd` (opened as directory `rel`) is still the directory that
  // `rel` names inside the folder; FailedPrecondition if it was moved or swapped out of it
  // meanwhile (a rename into it now would land outside the folder).
  absl::Status StillBeneath(int dirfd, const std::string& rel);

  // Mode returns the permission bits a synced file or directory gets here: `mode` from the
  // network kept to 0777 (never setuid, setgid or sticky), less this process's umask (never
  // group- or world-writable where the umask says no).
  uint32_t Mode(uint32_t mode) const { return mode & 0777 & ~umask_; }

  // Tests only: called after an install opened its directory and before it checks and renames.
  void set_before_install_for_test(std::function<void()> fn) { before_install_ = std::move(fn); }
  void BeforeInstall() const {
    if (before_install_) before_install_();
  }

 private:
  LocalFilesystem(std::string root, int root_fd, int tmp_fd, uint64_t root_inode)
      : root_(std::move(root)), root_fd_(root_fd), tmp_fd_(tmp_fd), root_inode_(root_inode) {}

  // ReopenRoot opens the root again as a new open file description (own offset).
  int ReopenRoot() const;

  // A renamed temp file not yet checked (see DeferInstallCheck).
  struct Unchecked {
    std::string base;
    std::string temp_name;
    uint64_t inode;
  };
  struct HeldDir {
    int fd = -1;
    bool checked = false;  // found in place since the batch opened it
    std::vector<Unchecked> unchecked;
  };
  // CheckHeld checks a held directory that took files since its last check, taking them back
  // to the temp dir (and removing them) when it was moved.
  absl::Status CheckHeld(const std::string& rel, HeldDir* held);
  // Release checks and closes the held directories at `path` and below (before the engine
  // moves or removes it).
  absl::Status Release(const std::string& path);
  // Hold keeps `fd` (directory `rel`) for the batch when there is room; false: the caller
  // keeps it.
  bool Hold(const std::string& rel, int fd);

  const std::string root_;
  const int root_fd_;
  const int tmp_fd_;
  const uint64_t root_inode_;
  const uint32_t umask_ = ReadUmask();
  // Unnamed temp files are linked through /proc/self/fd (no privilege needed): off without it,
  // or once the filesystem refuses O_TMPFILE.
  bool unnamed_temps_ = ProcFdMounted();
  std::function<void()> before_install_;
  int batch_depth_ = 0;
  std::map<std::string, HeldDir> held_;  // by relative path, in a batch

  static uint32_t ReadUmask();
  static bool ProcFdMounted();
};

// OpenLocalFile opens the regular file at an absolute path (not through a symlink) for reading
// as the engine reads the files of its folder, holes included (tools and tests that hash files as
// the engine does).
absl::StatusOr<std::unique_ptr<ReadableFile>> OpenLocalFile(const std::string& absolute_path);

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_FS_LOCAL_FILESYSTEM_H_
