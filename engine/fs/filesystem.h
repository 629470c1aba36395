// Filesystem: everything the engine does to a synced folder, behind one interface so engine
// logic can run against a fake (simulation, fault injection) as well as the real folder.
// Paths are relative to the folder root and already validated (common/model/path.h).
#ifndef CONVERGE_ENGINE_FS_FILESYSTEM_H_
#define CONVERGE_ENGINE_FS_FILESYSTEM_H_

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model/model.h"

namespace converge::engine {

// What the engine remembers of a local entry to tell whether it changed.
struct LocalStat {
  bool exists = false;
  FileKind kind = FileKind::kFile;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  uint64_t inode = 0;
  uint32_t mode = 0;
  // A device, fifo or socket: never synced (Walk skips them; Stat reports them). Symlinks are
  // kind kSymlink (synced as links, never followed); size is the target's length.
  bool special = false;

  // Same reports whether two stats describe the same unchanged entry.
  bool Same(const LocalStat& o) const {
    return exists == o.exists && (!exists || (kind == o.kind && size == o.size &&
                                              mtime_ns == o.mtime_ns && ctime_ns == o.ctime_ns &&
                                              inode == o.inode));
  }
};

// A range of a file: [offset, offset + length).
struct Extent {
  uint64_t offset = 0;
  uint64_t length = 0;
  bool operator==(const Extent& o) const { return offset == o.offset && length == o.length; }
};

class ReadableFile {
 public:
  virtual ~ReadableFile() = default;
  // Holes returns the file's holes of at least `min_bytes` (ranges that hold no data and read as
  // zeros), in order, as the filesystem reports them now (SEEK_HOLE/SEEK_DATA); none where the
  // filesystem keeps no holes.
  virtual absl::StatusOr<std::vector<Extent>> Holes(uint64_t min_bytes) { return std::vector<Extent>(); }
  // UserXattrs returns the file's "user." extended attributes, sorted by name; those past the
  // model's bounds (a value over kMaxXattrValueBytes, more than kMaxXattrBytes in all, in name
  // order) are left out. None where the filesystem keeps none.
  virtual absl::StatusOr<std::vector<Xattr>> UserXattrs() { return std::vector<Xattr>(); }
  // Read reads up to n bytes at offset into *out (fewer only at end of file).
  virtual absl::Status Read(uint64_t offset, size_t n, std::string* out) = 0;
  // ReadInto reads up to n bytes at offset into dst and returns how many (fewer only at end of
  // file): big sequential reads into the caller's buffer, with no copy on the way.
  virtual absl::StatusOr<size_t> ReadInto(uint64_t offset, size_t n, char* dst) {
    std::string bytes;
    absl::Status s = Read(offset, n, &bytes);
    if (!s.ok()) return s;
    std::copy(bytes.begin(), bytes.end(), dst);
    return bytes.size();
  }
  // NativeHandle is the open file descriptor of a local file (-1: none), from which a local temp
  // file copies in the kernel (TempFile::AppendFrom).
  virtual int NativeHandle() const { return -1; }
};

// A temp file in the engine's own area. Install makes it durable and renames it into place;
// a temp file destroyed without Install is removed.
class TempFile {
 public:
  virtual ~TempFile() = default;
  virtual absl::Status Append(absl::string_view data) = 0;
  // AppendHole appends `n` bytes that read as zeros without writing them (a hole where the
  // filesystem keeps holes).
  virtual absl::Status AppendHole(uint64_t n) {
    const std::string zeros(static_cast<size_t>(std::min<uint64_t>(n, 1 << 20)), '\0');
    for (uint64_t left = n; left > 0; left -= std::min<uint64_t>(left, zeros.size())) {
      absl::Status s = Append(absl::string_view(zeros).substr(0, std::min<uint64_t>(left, zeros.size())));
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }
  // AppendFrom appends `length` bytes of `src` from `offset`: bytes the caller trusts as they are
  // (nothing checks them on the way). Aborted if `src` ends first. A local temp file copies them
  // from a local source in the kernel, without reading them into memory.
  virtual absl::Status AppendFrom(ReadableFile* src, uint64_t offset, uint64_t length) {
    std::string piece;
    for (uint64_t done = 0; done < length;) {
      const size_t want = static_cast<size_t>(std::min<uint64_t>(length - done, 4 << 20));
      absl::Status read = src->Read(offset + done, want, &piece);
      if (!read.ok()) return read;
      if (piece.size() != want) return absl::AbortedError("the source file shrank while it was copied");
      absl::Status appended = Append(piece);
      if (!appended.ok()) return appended;
      done += want;
    }
    return absl::OkStatus();
  }
  // SetXattrs gives the file these "user." extended attributes (validated), before Finish: they
  // are installed with the content, atomically.
  virtual absl::Status SetXattrs(const std::vector<Xattr>& xattrs) {
    if (xattrs.empty()) return absl::OkStatus();
    return absl::UnimplementedError("extended attributes are not supported here");
  }
  // Finish sets mode and mtime, and fsyncs the file when `sync` (a caller that makes many temp
  // files durable at once with Filesystem::SyncAll passes false).
  virtual absl::Status Finish(uint32_t mode, int64_t mtime_ns, bool sync) = 0;
  // Rename moves the finished file over `path` (replacing a file there), fsyncing the parent
  // directory when `sync_dir`. Returns the installed file's stat.
  virtual absl::StatusOr<LocalStat> Rename(const std::string& path, bool sync_dir) = 0;
  // RenameIfAbsent moves it to `path` only if nothing is there (the parent not synced):
  // AlreadyExists, moving nothing, if something is; Unimplemented where the filesystem cannot
  // tell in the same step (the caller looks, then uses Rename).
  virtual absl::StatusOr<LocalStat> RenameIfAbsent(const std::string& path) {
    return absl::UnimplementedError(path + ": no rename without replacing here");
  }
  // ReadBack reads what was appended (a resumed partial file checks its prefix); Truncate drops
  // everything after `bytes`.
  virtual absl::Status ReadBack(uint64_t offset, size_t n, std::string* out) = 0;
  virtual absl::Status Truncate(uint64_t bytes) = 0;
  // Install is Finish + Rename, both synced: the one-file durable replace.
  absl::StatusOr<LocalStat> Install(const std::string& path, uint32_t mode, int64_t mtime_ns) {
    absl::Status finished = Finish(mode, mtime_ns, /*sync=*/true);
    if (!finished.ok()) return finished;
    return Rename(path, /*sync_dir=*/true);
  }
};

class Filesystem {
 public:
  virtual ~Filesystem() = default;

  // Walk calls fn for every regular file, directory and symlink below directory `under` ("" =
  // the root; not `under` itself), in byte order of their paths (the index's order: a directory
  // comes before what it holds, which comes where "dir/" sorts among its siblings, after
  // "dir-x" and "dir.txt"); symlinks are not followed. Skips the engine's reserved folder, special files
  // and names no other device could take. NotFound if `under` is not a directory. Walk and
  // RootIntact may run on another thread beside the engine's (its verifying scan).
  virtual absl::Status Walk(const std::string& under,
                            const std::function<void(const std::string&, const LocalStat&)>& fn) = 0;
  absl::Status Walk(const std::function<void(const std::string&, const LocalStat&)>& fn) {
    return Walk("", fn);
  }
  // Stat returns exists=false when nothing is at path.
  virtual absl::StatusOr<LocalStat> Stat(const std::string& path) = 0;
  virtual absl::StatusOr<std::unique_ptr<ReadableFile>> OpenRead(const std::string& path) = 0;
  virtual absl::StatusOr<std::unique_ptr<TempFile>> CreateTemp() = 0;
  // CreateTempFor makes a temp file that is to be renamed over `path` (whose directory exists).
  // Where the filesystem can, it is made in that directory without a name: its inode is placed
  // beside its directory's, as a file created there would be, and a crash leaves nothing. Such a
  // file can be made with the permission bits it will have (`mode`): Finish then needs no chmod.
  virtual absl::StatusOr<std::unique_ptr<TempFile>> CreateTempFor(const std::string& path, uint32_t mode) {
    (void)path;
    (void)mode;
    return CreateTemp();
  }
  absl::StatusOr<std::unique_ptr<TempFile>> CreateTempFor(const std::string& path) { return CreateTempFor(path, 0600); }
  // OpenPartial opens (or creates) the partial download named `key` (64 hex digits: the content
  // hash) and says how many bytes it already holds; appends go after them. Unlike a temp file,
  // it survives its TempFile's destruction (and the engine's restart, for a week) until
  // installed, so an interrupted download resumes.
  virtual absl::StatusOr<std::unique_ptr<TempFile>> OpenPartial(const std::string& key, uint64_t* existing_bytes) = 0;
  // MakeDirs creates path and missing parents. FailedPrecondition if a component is a file or a
  // symlink.
  virtual absl::Status MakeDirs(const std::string& path) = 0;
  // Remove deletes a file or an empty directory; FailedPrecondition if the directory is not
  // empty; OK if nothing is there.
  virtual absl::Status Remove(const std::string& path) = 0;
  // Rename moves an entry within the folder; AlreadyExists if `to` exists.
  virtual absl::Status Rename(const std::string& from, const std::string& to) = 0;
  // SetAside moves an entry (a directory with all it holds) out of the synced tree into the
  // engine's state directory, to `bin`/`path` there (kept for the user: local changes a
  // receive-only folder reverted), and returns where that is for people. NotFound if nothing
  // is at `path`.
  virtual absl::StatusOr<std::string> SetAside(const std::string& path, const std::string& bin) {
    return absl::UnimplementedError("setting entries aside is not supported here");
  }
  // ReadLink returns the target of the symlink at `path` (InvalidArgument if it is not one).
  virtual absl::StatusOr<std::string> ReadLink(const std::string& path) {
    return absl::UnimplementedError("symlinks are not supported here");
  }
  // MakeSymlink atomically puts a symlink to `target` at `path` (replacing a file or symlink
  // there) and makes it durable. The target is stored as given, never resolved.
  virtual absl::Status MakeSymlink(const std::string& path, const std::string& target) {
    return absl::UnimplementedError("symlinks are not supported here");
  }
  // SetMetadata sets the permission bits and mtime of the regular file at `path` (never through
  // a symlink) and, when `xattrs` is given, makes its "user." extended attributes exactly those;
  // makes them durable and returns the file's stat. FailedPrecondition if it is not a regular
  // file.
  virtual absl::StatusOr<LocalStat> SetMetadata(const std::string& path, uint32_t mode, int64_t mtime_ns,
                                                const std::vector<Xattr>* xattrs = nullptr) = 0;
  // SyncAll makes everything written to the folder's filesystem durable (syncfs).
  virtual absl::Status SyncAll() = 0;
  // SyncDir fsyncs directory `path` ("" = root), making renames in it durable.
  virtual absl::Status SyncDir(const std::string& path) = 0;
  // RootIntact reports whether the folder root is still the folder the engine opened and its
  // marker file is there (an unmounted disk or a deleted root is never "everything deleted").
  virtual absl::Status RootIntact() = 0;
  // BeginBatch and EndBatch bracket the operations of one engine pass (a scan, a commit's
  // application). Meanwhile the filesystem may keep the directories it opens (so a Stat sees the
  // directory it saw first, wherever it was moved since) and check that a directory is still where
  // its path says once before the first rename into it and once after the last (at its SyncDir,
  // or at EndBatch) rather than around each rename: what was renamed into a directory found moved
  // is taken back, and that SyncDir or EndBatch fails. Batches nest; the outermost EndBatch ends
  // it.
  virtual void BeginBatch() {}
  virtual absl::Status EndBatch() { return absl::OkStatus(); }
};

// FilesystemBatch holds a batch open for its scope; End reports what the batch's last checks
// found (the destructor ends it too, when End was not called, and drops that report).
class FilesystemBatch {
 public:
  explicit FilesystemBatch(Filesystem* fs) : fs_(fs) { fs_->BeginBatch(); }
  ~FilesystemBatch() {
    if (fs_ != nullptr) fs_->EndBatch().IgnoreError();
  }
  FilesystemBatch(const FilesystemBatch&) = delete;
  FilesystemBatch& operator=(const FilesystemBatch&) = delete;
  absl::Status End() {
    Filesystem* fs = fs_;
    fs_ = nullptr;
    return fs == nullptr ? absl::OkStatus() : fs->EndBatch();
  }

 private:
  Filesystem* fs_;
};

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_FS_FILESYSTEM_H_
