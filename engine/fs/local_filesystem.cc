#include "engine/fs/local_filesystem.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <ctime>
#include <cstdio>
#include <cstring>
#include <optional>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/base/logging.h"
#include "common/base/random_id.h"
#include "common/base/status_macros.h"
#include "common/model/path.h"

namespace converge::engine {
namespace {

absl::Status Errno(absl::string_view what, absl::string_view path, int err = errno) {
  std::string message = absl::StrCat(what, " ", path, ": ", strerror(err));
  switch (err) {
    case ENOENT:
      return absl::NotFoundError(message);
    case EEXIST:
      return absl::AlreadyExistsError(message);
    case ELOOP:
    case EXDEV:
    case ENOTDIR:
    case EISDIR:
    case ENOTEMPTY:
      return absl::FailedPreconditionError(message);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(message);
    default:
      return absl::UnavailableError(message);
  }
}

// ReadUserXattrs returns an open file's "user." extended attributes, sorted, within the model's
// bounds (in name order: what does not fit is left out). None on a filesystem without them.
absl::StatusOr<std::vector<Xattr>> ReadUserXattrs(int fd, const std::string& path) {
  std::string names(4096, '\0');
  ssize_t n;
  while ((n = flistxattr(fd, names.data(), names.size())) < 0 && errno == ERANGE && names.size() < (1 << 20)) {
    names.resize(names.size() * 4);
  }
  if (n < 0 && (errno == ENOTSUP || errno == ERANGE)) return std::vector<Xattr>();
  if (n < 0) return Errno("list extended attributes of", path);
  std::vector<std::string> user;
  for (absl::string_view name : absl::StrSplit(absl::string_view(names.data(), static_cast<size_t>(n)), '\0')) {
    if (absl::StartsWith(name, kUserXattrPrefix) && name.size() > kUserXattrPrefix.size() &&
        name.size() <= kMaxXattrNameBytes) {
      user.emplace_back(name);
    }
  }
  std::sort(user.begin(), user.end());
  std::vector<Xattr> out;
  size_t total = 0;
  std::string value(kMaxXattrValueBytes, '\0');
  for (const std::string& name : user) {
    const ssize_t len = fgetxattr(fd, name.c_str(), value.data(), value.size());
    if (len < 0 && (errno == ENODATA || errno == ERANGE)) continue;  // gone meanwhile, or too big
    if (len < 0) return Errno("read extended attribute of", path);
    if (total + name.size() + static_cast<size_t>(len) > kMaxXattrBytes) break;
    total += name.size() + static_cast<size_t>(len);
    out.push_back(Xattr{name, value.substr(0, static_cast<size_t>(len))});
  }
  return out;
}

// ReplaceUserXattrs makes an open file's "user." extended attributes exactly `xattrs`. A
// filesystem without them keeps none (the content still installs).
absl::Status ReplaceUserXattrs(int fd, const std::vector<Xattr>& xattrs, const std::string& path) {
  CONVERGE_RETURN_IF_ERROR(ValidateXattrs(path, xattrs));
  CONVERGE_ASSIGN_OR_RETURN(std::vector<Xattr> now, ReadUserXattrs(fd, path));
  for (const Xattr& x : now) {
    const bool kept = std::any_of(xattrs.begin(), xattrs.end(), [&](const Xattr& w) { return w.name == x.name; });
    if (!kept && fremovexattr(fd, x.name.c_str()) != 0 && errno != ENODATA) {
      return Errno("remove extended attribute of", path);
    }
  }
  for (const Xattr& x : xattrs) {
    if (std::find(now.begin(), now.end(), x) != now.end()) continue;
    if (fsetxattr(fd, x.name.c_str(), x.value.data(), x.value.size(), 0) == 0) continue;
    if (errno == ENOTSUP) {
      GetLogger("engine")->warn("{}: this filesystem keeps no extended attributes; {} left out", path, x.name);
      return absl::OkStatus();
    }
    return Errno("set extended attribute of", path);
  }
  return absl::OkStatus();
}

// SetMtime sets an open file's mtime; the atime is set as `atime_nsec` says (UTIME_NOW or
// UTIME_OMIT). SetModeAndMtime sets its permission bits too.
absl::Status SetMtime(int fd, int64_t mtime_ns, long atime_nsec, const std::string& path) {
  struct timespec times[2];
  times[0].tv_sec = 0;
  times[0].tv_nsec = atime_nsec;
  times[1].tv_sec = mtime_ns / 1000000000;
  times[1].tv_nsec = mtime_ns % 1000000000;
  if (futimens(fd, times) != 0) return Errno("set mtime of", path);
  return absl::OkStatus();
}

absl::Status SetModeAndMtime(int fd, mode_t mode, int64_t mtime_ns, long atime_nsec, const std::string& path) {
  if (fchmod(fd, mode) != 0) return Errno("chmod", path);
  return SetMtime(fd, mtime_ns, atime_nsec, path);
}

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void reset(int fd) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
  }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

LocalStat FromStat(const struct stat& st) {
  LocalStat s;
  s.exists = true;
  s.kind = S_ISDIR(st.st_mode) ? FileKind::kDirectory : S_ISLNK(st.st_mode) ? FileKind::kSymlink : FileKind::kFile;
  s.size = S_ISDIR(st.st_mode) ? 0 : static_cast<uint64_t>(st.st_size);
  s.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  s.ctime_ns = static_cast<int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
  s.inode = st.st_ino;
  s.mode = st.st_mode & 07777;
  s.special = !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode);
  return s;
}

// OpenBeneath opens `path` relative to `dirfd` without following any symlink and without
// leaving `dirfd`: openat2 where the kernel has it, a component-by-component O_NOFOLLOW walk
// otherwise.
int OpenBeneath(int dirfd, const std::string& path, int flags, mode_t mode = 0) {
  static bool have_openat2 = true;
  if (have_openat2) {
    struct open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
    how.mode = (flags & O_CREAT) ? mode : 0;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    int fd = static_cast<int>(syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof(how)));
    if (fd >= 0 || errno != ENOSYS) return fd;
    have_openat2 = false;
  }
  std::vector<std::string> parts = absl::StrSplit(path, '/', absl::SkipEmpty());
  if (parts.empty()) return openat(dirfd, ".", flags | O_CLOEXEC);
  int cur = dirfd;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    if (parts[i] == "..") {
      errno = EXDEV;
      return -1;
    }
    int next = openat(cur, parts[i].c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (cur != dirfd) close(cur);
    if (next < 0) return -1;
    cur = next;
  }
  if (parts.back() == "..") {
    errno = EXDEV;
    return -1;
  }
  int fd = openat(cur, parts.back().c_str(), flags | O_NOFOLLOW | O_CLOEXEC, mode);
  const int saved = errno;
  if (cur != dirfd) close(cur);
  errno = saved;
  return fd;
}

class LocalReadableFile : public ReadableFile {
 public:
  explicit LocalReadableFile(int fd) : fd_(fd) {}
  absl::Status Read(uint64_t offset, size_t n, std::string* out) override {
    out->resize(n);
    absl::StatusOr<size_t> done = ReadInto(offset, n, out->data());
    if (!done.ok()) return done.status();
    out->resize(*done);
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<Xattr>> UserXattrs() override { return ReadUserXattrs(fd_.get(), "file"); }

  absl::StatusOr<std::vector<Extent>> Holes(uint64_t min_bytes) override {
    struct stat st;
    if (fstat(fd_.get(), &st) != 0) return Errno("stat", "file");
    std::vector<Extent> holes;
    const off_t size = st.st_size;
    for (off_t at = 0; at < size;) {
      const off_t hole = lseek(fd_.get(), at, SEEK_HOLE);
      if (hole < 0 && errno == ENXIO) break;  // shrank meanwhile
      if (hole < 0) return Errno("seek a hole in", "file");
      if (hole >= size) break;
      off_t data = lseek(fd_.get(), hole, SEEK_DATA);
      if (data < 0 && errno != ENXIO) return Errno("seek data in", "file");
      if (data < 0 || data > size) data = size;  // the file ends in the hole
      if (data - hole >= static_cast<off_t>(min_bytes)) {
        holes.push_back(Extent{static_cast<uint64_t>(hole), static_cast<uint64_t>(data - hole)});
      }
      at = data;
    }
    return holes;
  }

  absl::StatusOr<size_t> ReadInto(uint64_t offset, size_t n, char* dst) override {
    size_t done = 0;
    while (done < n) {
      ssize_t r = pread(fd_.get(), dst + done, n - done, static_cast<off_t>(offset + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        return Errno("read", "file");
      }
      if (r == 0) break;
      done += static_cast<size_t>(r);
    }
    return done;
  }

  int NativeHandle() const override { return fd_.get(); }

 private:
  Fd fd_;
};

class LocalTempFile : public TempFile {
 public:
  // A temp file named `name` in the temp dir; `keep` leaves it there when dropped (a partial
  // download).
  LocalTempFile(LocalFilesystem* fs, int tmp_dir_fd, std::string name, int fd, bool keep = false)
      : fs_(fs), tmp_dir_fd_(tmp_dir_fd), name_(std::move(name)), fd_(fd), keep_(keep) {}
  // An unnamed file (O_TMPFILE); `label` names it in errors.
  // It was made with permission bits `mode` (umask applied).
  static std::unique_ptr<LocalTempFile> Unnamed(LocalFilesystem* fs, int tmp_dir_fd, std::string label, int fd,
                                                uint32_t mode) {
    auto t = std::make_unique<LocalTempFile>(fs, tmp_dir_fd, std::move(label), fd);
    t->unnamed_ = true;
    t->created_mode_ = mode;
    return t;
  }
  ~LocalTempFile() override {
    if (installed_ || keep_) return;
    if (!unnamed_) unlinkat(tmp_dir_fd_, name_.c_str(), 0);
    if (!link_name_.empty()) unlinkat(tmp_dir_fd_, link_name_.c_str(), 0);
  }

  absl::Status ReadBack(uint64_t offset, size_t n, std::string* out) override {
    out->resize(n);
    size_t done = 0;
    while (done < n) {
      const ssize_t r = pread(fd_.get(), out->data() + done, n - done, static_cast<off_t>(offset + done));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return Errno("read back", name_);
      if (r == 0) break;
      done += static_cast<size_t>(r);
    }
    out->resize(done);
    return absl::OkStatus();
  }

  absl::Status Truncate(uint64_t bytes) override {
    unflushed_ = 0;
    if (ftruncate(fd_.get(), static_cast<off_t>(bytes)) != 0) return Errno("truncate", name_);
    if (lseek(fd_.get(), static_cast<off_t>(bytes), SEEK_SET) < 0) return Errno("seek", name_);
    return absl::OkStatus();
  }

  absl::Status Append(absl::string_view data) override {
    size_t done = 0;
    while (done < data.size()) {
      ssize_t w = write(fd_.get(), data.data() + done, data.size() - done);
      if (w < 0) {
        if (errno == EINTR) continue;
        return Errno("write temp", name_);
      }
      done += static_cast<size_t>(w);
    }
    Appended(data.size());
    return absl::OkStatus();
  }

  absl::Status AppendFrom(ReadableFile* src, uint64_t offset, uint64_t length) override {
    const int in = src->NativeHandle();
    if (in < 0 || !kernel_copy_) return TempFile::AppendFrom(src, offset, length);
    loff_t from = static_cast<loff_t>(offset);
    for (uint64_t left = length; left > 0;) {
      // To this file's position, which it moves on, as write(2) does.
      const ssize_t n = copy_file_range(in, &from, fd_.get(), nullptr, static_cast<size_t>(left), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
        kernel_copy_ = false;  // not between these two: read and write the rest
        Appended(length - left);
        return TempFile::AppendFrom(src, static_cast<uint64_t>(from), left);
      }
      if (n < 0) return Errno("copy into temp", name_);
      if (n == 0) return absl::AbortedError(absl::StrCat("the source of ", name_, " shrank while it was copied"));
      left -= static_cast<uint64_t>(n);
    }
    Appended(length);
    return absl::OkStatus();
  }

  absl::Status SetXattrs(const std::vector<Xattr>& xattrs) override {
    return ReplaceUserXattrs(fd_.get(), xattrs, name_);
  }

  absl::Status AppendHole(uint64_t n) override {
    // Seeking past the end and setting the size leaves the range unallocated.
    const off_t end = lseek(fd_.get(), static_cast<off_t>(n), SEEK_CUR);
    if (end < 0) return Errno("seek temp", name_);
    if (ftruncate(fd_.get(), end) != 0) return Errno("extend temp", name_);
    return absl::OkStatus();
  }

  absl::Status Finish(uint32_t mode, int64_t mtime_ns, bool sync) override {
    if (created_mode_ == fs_->Mode(mode)) {
      CONVERGE_RETURN_IF_ERROR(SetMtime(fd_.get(), mtime_ns, UTIME_NOW, "temp " + name_));
    } else {
      CONVERGE_RETURN_IF_ERROR(SetModeAndMtime(fd_.get(), fs_->Mode(mode), mtime_ns, UTIME_NOW, "temp " + name_));
    }
    if (sync && fsync(fd_.get()) != 0) return Errno("fsync temp", name_);
    return absl::OkStatus();
  }

  absl::StatusOr<LocalStat> Rename(const std::string& path, bool sync_dir) override {
    return MoveIntoPlace(path, sync_dir, /*flags=*/0);
  }

  absl::StatusOr<LocalStat> RenameIfAbsent(const std::string& path) override {
    if (!noreplace_works_) return absl::UnimplementedError("this filesystem cannot rename without replacing");
    return MoveIntoPlace(path, /*sync_dir=*/false, RENAME_NOREPLACE);
  }

 private:
  // MoveIntoPlace renames the file to `path`; `flags` as renameat2's.
  absl::StatusOr<LocalStat> MoveIntoPlace(const std::string& path, bool sync_dir, unsigned int flags) {
    const std::string dir(ParentPath(path));
    CONVERGE_ASSIGN_OR_RETURN(LocalFilesystem::DirRef parent, fs_->Dir(dir));
    const std::string base(BaseName(path));
    fs_->BeforeInstall();
    CONVERGE_RETURN_IF_ERROR(fs_->CheckBeforeInstall(parent, dir));
    if (unnamed_) CONVERGE_RETURN_IF_ERROR(NameUnnamed(path));
    const std::string& temp_name = unnamed_ ? link_name_ : name_;
    if (renameat2(tmp_dir_fd_, temp_name.c_str(), parent.get(), base.c_str(), flags) != 0) {
      if ((flags & RENAME_NOREPLACE) && errno == EEXIST) return absl::AlreadyExistsError(path + " exists");
      if ((flags & RENAME_NOREPLACE) && errno == EINVAL) {
        noreplace_works_ = false;
        return absl::UnimplementedError("this filesystem cannot rename without replacing");
      }
      return Errno("rename into place", path);
    }
    struct stat st;
    const bool stated = fstat(fd_.get(), &st) == 0;
    if (stated && !sync_dir && fs_->DeferInstallCheck(dir, base, temp_name, st.st_ino)) {
      installed_ = true;  // the batch checks the directory, and takes the file back if it moved
      return FromStat(st);
    }
    if (absl::Status moved = fs_->StillBeneath(parent.get(), dir); !moved.ok()) {
      // Swapped out between the check and the rename: take the file back.
      if (renameat(parent.get(), base.c_str(), tmp_dir_fd_, temp_name.c_str()) != 0) installed_ = true;
      return moved;
    }
    installed_ = true;
    if (sync_dir && fsync(parent.get()) != 0) return Errno("fsync directory of", path);
    if (!stated) return Errno("stat", path);
    return FromStat(st);
  }

  // NameUnnamed links the unnamed file into the temp dir (link_name_), to be renamed into place
  // from there: a rename, not a link, is what the watcher knows as a finished file arriving (a
  // new link reads as a file just created, still being written).
  absl::Status NameUnnamed(const std::string& path) {
    if (!link_name_.empty()) return absl::OkStatus();
    // Random once per process, then counted (no system call per file for randomness).
    static const std::string prefix = "t-" + RandomHex(8) + "-";
    static std::atomic<uint64_t> next{0};
    std::string name = absl::StrCat(prefix, next++);
    // By the descriptor itself where this process may (CAP_DAC_READ_SEARCH), else through /proc.
    if (!link_by_fd_ || linkat(fd_.get(), "", tmp_dir_fd_, name.c_str(), AT_EMPTY_PATH) != 0) {
      if (link_by_fd_ && errno != ENOENT && errno != EPERM && errno != EINVAL) return Errno("link temp for", path);
      link_by_fd_ = false;
      const std::string self = absl::StrCat("/proc/self/fd/", fd_.get());
      if (linkat(AT_FDCWD, self.c_str(), tmp_dir_fd_, name.c_str(), AT_SYMLINK_FOLLOW) != 0) {
        return Errno("link temp for", path);
      }
    }
    link_name_ = std::move(name);
    return absl::OkStatus();
  }

  // Appended starts writing back what has piled up (no waiting): the fsync before the file is
  // installed then waits for the last few MiB, not for the whole file.
  void Appended(uint64_t bytes) {
    unflushed_ += bytes;
    if (unflushed_ < kWritebackBytes) return;
    const off_t end = lseek(fd_.get(), 0, SEEK_CUR);
    if (end >= static_cast<off_t>(unflushed_)) {
      (void)sync_file_range(fd_.get(), end - static_cast<off_t>(unflushed_), static_cast<off_t>(unflushed_),
                            SYNC_FILE_RANGE_WRITE);
    }
    unflushed_ = 0;
  }

  LocalFilesystem* const fs_;
  const int tmp_dir_fd_;
  const std::string name_;
  Fd fd_;
  const bool keep_;
  bool unnamed_ = false;
  std::optional<uint32_t> created_mode_;  // the permission bits it was made with, where known
  std::string link_name_;  // an unnamed file's name in the temp dir, once it has one
  bool installed_ = false;
  static constexpr size_t kWritebackBytes = 8 << 20;
  size_t unflushed_ = 0;  // appended since writeback was last started
  bool kernel_copy_ = true;  // copy_file_range works between the sources seen and this file
  // linkat(AT_EMPTY_PATH) works for this process (not known to fail yet: shared by all temps).
  static inline std::atomic<bool> link_by_fd_{true};
  // renameat2(RENAME_NOREPLACE) works on this filesystem (not known to fail yet).
  static inline std::atomic<bool> noreplace_works_{true};
};

constexpr char kPartialPrefix[] = "partial-";
constexpr int64_t kPartialMaxAgeSeconds = 7 * 24 * 3600;

}  // namespace

absl::StatusOr<std::unique_ptr<LocalFilesystem>> LocalFilesystem::Open(const std::string& root) {
  Fd root_fd(open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (root_fd.get() < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("folder ", root, " cannot be opened: ", strerror(errno)));
  }
  struct stat st;
  if (fstat(root_fd.get(), &st) != 0) return Errno("stat", root);
  if (mkdirat(root_fd.get(), kStateDirName, 0700) != 0 && errno != EEXIST) {
    return Errno("create state dir in", root);
  }
  Fd state(OpenBeneath(root_fd.get(), kStateDirName, O_RDONLY | O_DIRECTORY));
  if (state.get() < 0) return Errno("open state dir in", root);
  Fd marker(openat(state.get(), kMarkerName, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (marker.get() < 0) return Errno("create marker in", root);
  if (mkdirat(state.get(), "tmp", 0700) != 0 && errno != EEXIST) return Errno("create tmp in", root);
  Fd tmp(OpenBeneath(state.get(), "tmp", O_RDONLY | O_DIRECTORY));
  if (tmp.get() < 0) return Errno("open tmp in", root);
  // Temp files of an interrupted run are never installed: drop them. Partial downloads stay
  // (a week) so the download resumes.
  if (DIR* dir = fdopendir(openat(tmp.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC))) {
    const time_t now = time(nullptr);
    while (struct dirent* e = readdir(dir)) {
      if (e->d_name[0] == '.') continue;
      struct stat pst;
      if (absl::StartsWith(e->d_name, kPartialPrefix) && fstatat(tmp.get(), e->d_name, &pst, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISREG(pst.st_mode) && now - pst.st_mtime < kPartialMaxAgeSeconds) {
        continue;
      }
      unlinkat(tmp.get(), e->d_name, 0);
    }
    closedir(dir);
  }
  return std::unique_ptr<LocalFilesystem>(
      new LocalFilesystem(root, root_fd.release(), tmp.release(), st.st_ino));
}

LocalFilesystem::~LocalFilesystem() {
  for (auto& [rel, held] : held_) close(held.fd);
  close(root_fd_);
  close(tmp_fd_);
}

LocalFilesystem::DirRef::~DirRef() {
  if (owned_ && fd_ >= 0) close(fd_);
}

absl::StatusOr<LocalFilesystem::DirRef> LocalFilesystem::Dir(const std::string& rel) {
  if (auto it = held_.find(rel); it != held_.end()) return DirRef(it->second.fd, /*owned=*/false);
  CONVERGE_ASSIGN_OR_RETURN(const int fd, OpenDirBeneath(rel));
  return DirRef(fd, /*owned=*/!Hold(rel, fd));
}

bool LocalFilesystem::Hold(const std::string& rel, int fd) {
  if (batch_depth_ == 0 || held_.size() >= kMaxHeldDirs) return false;
  held_[rel].fd = fd;
  return true;
}

void LocalFilesystem::BeginBatch() { ++batch_depth_; }

absl::Status LocalFilesystem::EndBatch() {
  if (batch_depth_ == 0) return absl::FailedPreconditionError("no batch to end");
  if (--batch_depth_ > 0) return absl::OkStatus();
  return Release("");
}

absl::Status LocalFilesystem::CheckBeforeInstall(const DirRef& dir, const std::string& rel) {
  auto it = held_.find(rel);
  const bool held = it != held_.end() && it->second.fd == dir.get();
  if (held && it->second.checked) return absl::OkStatus();  // the next check covers the rename
  CONVERGE_RETURN_IF_ERROR(StillBeneath(dir.get(), rel));
  if (held) it->second.checked = true;
  return absl::OkStatus();
}

bool LocalFilesystem::DeferInstallCheck(const std::string& rel, const std::string& base, const std::string& temp_name,
                                        uint64_t inode) {
  auto it = held_.find(rel);
  if (it == held_.end()) return false;
  it->second.unchecked.push_back(Unchecked{base, temp_name, inode});
  return true;
}

absl::Status LocalFilesystem::CheckHeld(const std::string& rel, HeldDir* held) {
  if (held->unchecked.empty()) return absl::OkStatus();
  std::vector<Unchecked> files;
  files.swap(held->unchecked);
  absl::Status moved = StillBeneath(held->fd, rel);
  if (moved.ok()) return absl::OkStatus();
  held->checked = false;
  // Each file renamed into it since it was last found in place goes back to the temp dir and
  // away; one replaced there meanwhile (another inode) is not ours any more and stays.
  for (const Unchecked& f : files) {
    struct stat st;
    if (fstatat(held->fd, f.base.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || st.st_ino != f.inode) continue;
    if (renameat2(held->fd, f.base.c_str(), tmp_fd_, f.temp_name.c_str(), RENAME_NOREPLACE) != 0) continue;
    if (fstatat(tmp_fd_, f.temp_name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_ino == f.inode) {
      unlinkat(tmp_fd_, f.temp_name.c_str(), 0);
    } else {
      (void)renameat2(tmp_fd_, f.temp_name.c_str(), held->fd, f.base.c_str(), RENAME_NOREPLACE);
    }
  }
  return moved;
}

absl::Status LocalFilesystem::Release(const std::string& path) {
  absl::Status status;
  const std::string below = absl::StrCat(path, "/");
  for (auto it = held_.begin(); it != held_.end();) {
    if (!path.empty() && it->first != path && !absl::StartsWith(it->first, below)) {
      ++it;
      continue;
    }
    absl::Status checked = CheckHeld(it->first, &it->second);
    if (status.ok()) status = checked;
    close(it->second.fd);
    it = held_.erase(it);
  }
  return status;
}

uint32_t LocalFilesystem::ReadUmask() {
  // /proc says it without changing it (umask() would, for a moment, for every thread).
  if (FILE* f = fopen("/proc/self/status", "re")) {
    char line[256];
    unsigned int mask = 0;
    bool found = false;
    while (!found && fgets(line, sizeof(line), f) != nullptr) found = sscanf(line, "Umask: %o", &mask) == 1;
    fclose(f);
    if (found) return mask & 0777;
  }
  const mode_t mask = umask(022);
  umask(mask);
  return mask & 0777;
}

absl::Status LocalFilesystem::StillBeneath(int dirfd, const std::string& rel) {
  struct stat held, now;
  Fd again(rel.empty() ? ReopenRoot() : OpenBeneath(root_fd_, rel, O_RDONLY | O_DIRECTORY));
  if (fstat(dirfd, &held) != 0 || again.get() < 0 || fstat(again.get(), &now) != 0 || held.st_dev != now.st_dev ||
      held.st_ino != now.st_ino) {
    return absl::FailedPreconditionError(
        absl::StrCat("directory '", rel, "' was moved or replaced while installing into it: not writing there"));
  }
  return absl::OkStatus();
}

int LocalFilesystem::ReopenRoot() const {
  return openat(root_fd_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

absl::StatusOr<int> LocalFilesystem::OpenDirBeneath(const std::string& rel) {
  int fd = rel.empty() ? ReopenRoot() : OpenBeneath(root_fd_, rel, O_RDONLY | O_DIRECTORY);
  if (fd < 0) return Errno("open directory", rel);
  return fd;
}

absl::Status LocalFilesystem::Walk(
    const std::string& under, const std::function<void(const std::string&, const LocalStat&)>& fn) {
  // Paths come out in byte order: a directory's entries sorted, each subdirectory's contents
  // where "name/" sorts among them (after "name-x" and "name.txt"). One open directory and one
  // sorted listing per level of the path being walked.
  struct Item {
    std::string key;  // the name, or "name/" for what the directory holds
    LocalStat st;
  };
  struct Level {
    std::string rel;
    DIR* dir;
    std::vector<Item> items;
    size_t next = 0;
  };
  std::vector<Level> stack;
  absl::Status status;
  auto descend = [&](const std::string& rel, int fd) {
    DIR* d = fdopendir(fd);
    if (d == nullptr) {
      close(fd);
      if (status.ok()) status = Errno("list", rel);
      return;
    }
    Level level{rel, d, {}, 0};
    while (struct dirent* e = readdir(d)) {
      const absl::string_view name = e->d_name;
      if (name == "." || name == ".." || (rel.empty() && name == kStateDirName)) continue;
      struct stat st;
      const std::string n(name);
      if (fstatat(dirfd(d), n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // raced
      if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode)) continue;  // devices, fifos
      if (!ValidateRelativePath(rel.empty() ? n : absl::StrCat(rel, "/", n)).ok()) continue;  // no other device could take it
      level.items.push_back(Item{n, FromStat(st)});
      if (S_ISDIR(st.st_mode)) level.items.push_back(Item{n + "/", LocalStat{}});
    }
    std::sort(level.items.begin(), level.items.end(), [](const Item& a, const Item& b) { return a.key < b.key; });
    stack.push_back(std::move(level));
  };
  // A fresh open file description: a dup() would share the directory offset of the last walk.
  const int top = under.empty() ? ReopenRoot() : OpenBeneath(root_fd_, under, O_RDONLY | O_DIRECTORY);
  if (top < 0) {
    if (errno == ENOENT || errno == ENOTDIR) return absl::NotFoundError(absl::StrCat("no directory ", under));
    return Errno("open directory", under);
  }
  descend(under, top);
  while (!stack.empty()) {
    Level& level = stack.back();
    if (level.next == level.items.size()) {
      closedir(level.dir);
      stack.pop_back();
      continue;
    }
    const Item& item = level.items[level.next++];
    const bool holds = item.key.back() == '/';
    const std::string name = holds ? item.key.substr(0, item.key.size() - 1) : item.key;
    std::string rel = level.rel.empty() ? name : absl::StrCat(level.rel, "/", name);
    if (!holds) {
      fn(rel, item.st);
      continue;
    }
    const int child = openat(dirfd(level.dir), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (child >= 0) descend(rel, child);  // `level` may move: not used after this
  }
  return status;
}

absl::StatusOr<LocalStat> LocalFilesystem::Stat(const std::string& path) {
  absl::StatusOr<DirRef> dir = Dir(std::string(ParentPath(path)));
  if (!dir.ok()) {
    // Nothing syncable is there: no parent, a file as parent, or a symlink on the way.
    if (absl::IsNotFound(dir.status()) || absl::IsFailedPrecondition(dir.status())) return LocalStat{};
    return dir.status();
  }
  struct stat st;
  if (fstatat(dir->get(), std::string(BaseName(path)).c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return LocalStat{};
    return Errno("stat", path);
  }
  return FromStat(st);
}

absl::StatusOr<std::unique_ptr<ReadableFile>> LocalFilesystem::OpenRead(const std::string& path) {
  int fd = OpenBeneath(root_fd_, path, O_RDONLY);
  if (fd < 0) return Errno("open", path);
  return std::unique_ptr<ReadableFile>(new LocalReadableFile(fd));
}

absl::StatusOr<std::unique_ptr<TempFile>> LocalFilesystem::CreateTemp() {
  const std::string name = "t-" + RandomHex(8);
  int fd = openat(tmp_fd_, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Errno("create temp", name);
  return std::unique_ptr<TempFile>(new LocalTempFile(this, tmp_fd_, name, fd));
}

bool LocalFilesystem::ProcFdMounted() { return access("/proc/self/fd", F_OK) == 0; }

absl::StatusOr<std::unique_ptr<TempFile>> LocalFilesystem::CreateTempFor(const std::string& path, uint32_t mode) {
  // A file made in the temp dir has its inode placed by that directory: every file this device
  // receives would crowd one block group, and on ext4 without a journal each new inode there
  // then steps over every inode deleted there in the last minutes.
  if (!unnamed_temps_) return CreateTemp();
  absl::StatusOr<DirRef> parent = Dir(std::string(ParentPath(path)));
  if (!parent.ok()) return CreateTemp();
  // The kernel applies the umask, which Mode() has as this process started.
  const int fd = openat(parent->get(), ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, Mode(mode));
  const int open_errno = errno;
  if (fd < 0) {
    // This filesystem has none: named temps from now on. Any other refusal (a directory not
    // writable here) is left for the rename into place to report, as for a named temp.
    if (open_errno == EOPNOTSUPP || open_errno == EISDIR || open_errno == EINVAL) unnamed_temps_ = false;
    return CreateTemp();
  }
  return std::unique_ptr<TempFile>(LocalTempFile::Unnamed(this, tmp_fd_, "temp for " + path, fd, Mode(mode)));
}

absl::StatusOr<std::unique_ptr<TempFile>> LocalFilesystem::OpenPartial(const std::string& key,
                                                                      uint64_t* existing_bytes) {
  if (key.size() != 64 || key.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return absl::InvalidArgumentError("a partial download is named by 64 hex digits");
  }
  const std::string name = kPartialPrefix + key;
  int fd = openat(tmp_fd_, name.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Errno("open partial", name);
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return absl::FailedPreconditionError(absl::StrCat(name, " is not a regular file"));
  }
  *existing_bytes = static_cast<uint64_t>(st.st_size);
  if (lseek(fd, 0, SEEK_END) < 0) {
    close(fd);
    return Errno("seek", name);
  }
  return std::unique_ptr<TempFile>(new LocalTempFile(this, tmp_fd_, name, fd, /*keep=*/true));
}

absl::Status LocalFilesystem::MakeDirs(const std::string& path) {
  if (held_.count(path) > 0) return absl::OkStatus();  // found there in this batch
  Fd cur(ReopenRoot());
  for (absl::string_view part : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    const std::string name(part);
    if (mkdirat(cur.get(), name.c_str(), Mode(0755)) == 0) {
      // The new directory's name is durable before anything is installed in it.
      if (fsync(cur.get()) != 0) return Errno("fsync directory above", path);
    } else if (errno != EEXIST) {
      return Errno("create directory", path);
    }
    int next = openat(cur.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot create directory ", path, ": '", name, "' is a file or symlink"));
    }
    cur.reset(next);
  }
  if (Hold(path, cur.get())) cur.release();
  return absl::OkStatus();
}

absl::Status LocalFilesystem::Remove(const std::string& path) {
  CONVERGE_RETURN_IF_ERROR(Release(path));  // a directory the batch holds is not held past its removal
  const std::string parent(ParentPath(path));
  int raw = parent.empty() ? ReopenRoot() : OpenBeneath(root_fd_, parent, O_RDONLY | O_DIRECTORY);
  if (raw < 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return Errno("open parent of", path);
  }
  Fd dir(raw);
  const std::string base(BaseName(path));
  if (unlinkat(dir.get(), base.c_str(), 0) == 0) return absl::OkStatus();
  if (errno == ENOENT) return absl::OkStatus();
  if (errno != EISDIR) return Errno("remove", path);
  if (unlinkat(dir.get(), base.c_str(), AT_REMOVEDIR) == 0) return absl::OkStatus();
  return Errno("remove directory", path);
}

absl::StatusOr<std::string> LocalFilesystem::SetAside(const std::string& path, const std::string& bin) {
  CONVERGE_RETURN_IF_ERROR(ValidateRelativePath(path));
  CONVERGE_RETURN_IF_ERROR(ValidateRelativePath(bin));
  CONVERGE_RETURN_IF_ERROR(Release(path));
  CONVERGE_ASSIGN_OR_RETURN(int from_raw, OpenDirBeneath(std::string(ParentPath(path))));
  Fd from_dir(from_raw);
  // The directories on the way in the state dir: made as needed, never through a symlink.
  const std::string rel = absl::StrCat(kStateDirName, "/reverted/", bin, "/", ParentPath(path));
  Fd to_dir(ReopenRoot());
  for (absl::string_view part : absl::StrSplit(rel, '/', absl::SkipEmpty())) {
    const std::string name(part);
    if (mkdirat(to_dir.get(), name.c_str(), 0700) != 0 && errno != EEXIST) return Errno("create", rel);
    Fd next(openat(to_dir.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (next.get() < 0) return Errno("open", rel);
    to_dir.reset(next.release());
  }
  CONVERGE_RETURN_IF_ERROR(StillBeneath(from_dir.get(), std::string(ParentPath(path))));
  const std::string base(BaseName(path));
  if (renameat2(from_dir.get(), base.c_str(), to_dir.get(), base.c_str(), RENAME_NOREPLACE) != 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat(path, ": nothing there to set aside"));
    return Errno("set aside", path);
  }
  if (fsync(to_dir.get()) != 0 || fsync(from_dir.get()) != 0) return Errno("fsync directories of", path);
  return absl::StrCat(root_, "/", kStateDirName, "/reverted/", bin, "/", path);
}

absl::StatusOr<std::string> LocalFilesystem::ReadLink(const std::string& path) {
  const std::string parent(ParentPath(path));
  int raw = parent.empty() ? ReopenRoot() : OpenBeneath(root_fd_, parent, O_RDONLY | O_DIRECTORY);
  if (raw < 0) return Errno("open parent of", path);
  Fd dir(raw);
  std::string target(kMaxSymlinkTarget + 1, '\0');
  ssize_t n = readlinkat(dir.get(), std::string(BaseName(path)).c_str(), target.data(), target.size());
  if (n < 0) {
    if (errno == EINVAL) return absl::InvalidArgumentError(absl::StrCat(path, " is not a symlink"));
    return Errno("read link", path);
  }
  if (static_cast<size_t>(n) > kMaxSymlinkTarget) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": symlink target longer than ", kMaxSymlinkTarget));
  }
  target.resize(static_cast<size_t>(n));
  return target;
}

absl::Status LocalFilesystem::MakeSymlink(const std::string& path, const std::string& target) {
  const std::string parent(ParentPath(path));
  int raw = parent.empty() ? ReopenRoot() : OpenBeneath(root_fd_, parent, O_RDONLY | O_DIRECTORY);
  if (raw < 0) return Errno("open parent of", path);
  Fd dir(raw);
  const std::string name = "l-" + RandomHex(8);
  if (symlinkat(target.c_str(), tmp_fd_, name.c_str()) != 0) return Errno("create symlink", path);
  BeforeInstall();
  if (absl::Status moved = StillBeneath(dir.get(), parent); !moved.ok()) {
    unlinkat(tmp_fd_, name.c_str(), 0);
    return moved;
  }
  if (renameat(tmp_fd_, name.c_str(), dir.get(), std::string(BaseName(path)).c_str()) != 0) {
    absl::Status failed = Errno("install symlink", path);
    unlinkat(tmp_fd_, name.c_str(), 0);
    return failed;
  }
  if (fsync(dir.get()) != 0) return Errno("fsync directory of", path);
  return absl::OkStatus();
}

absl::Status LocalFilesystem::Rename(const std::string& from, const std::string& to) {
  CONVERGE_RETURN_IF_ERROR(Release(from));
  CONVERGE_RETURN_IF_ERROR(Release(to));
  CONVERGE_ASSIGN_OR_RETURN(int from_raw, OpenDirBeneath(std::string(ParentPath(from))));
  Fd from_dir(from_raw);
  CONVERGE_ASSIGN_OR_RETURN(int to_raw, OpenDirBeneath(std::string(ParentPath(to))));
  Fd to_dir(to_raw);
  BeforeInstall();
  CONVERGE_RETURN_IF_ERROR(StillBeneath(from_dir.get(), std::string(ParentPath(from))));
  CONVERGE_RETURN_IF_ERROR(StillBeneath(to_dir.get(), std::string(ParentPath(to))));
  if (renameat2(from_dir.get(), std::string(BaseName(from)).c_str(), to_dir.get(),
                std::string(BaseName(to)).c_str(), RENAME_NOREPLACE) != 0) {
    return Errno("rename", absl::StrCat(from, " to ", to));
  }
  if (fsync(to_dir.get()) != 0) return Errno("fsync directory of", to);
  return absl::OkStatus();
}

absl::StatusOr<LocalStat> LocalFilesystem::SetMetadata(const std::string& path, uint32_t mode, int64_t mtime_ns,
                                                       const std::vector<Xattr>* xattrs) {
  int raw = OpenBeneath(root_fd_, path, O_RDONLY | O_NONBLOCK);
  if (raw < 0) return Errno("open", path);
  Fd fd(raw);
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return Errno("stat", path);
  if (!S_ISREG(st.st_mode)) return absl::FailedPreconditionError(absl::StrCat(path, " is not a regular file"));
  if (xattrs != nullptr) CONVERGE_RETURN_IF_ERROR(ReplaceUserXattrs(fd.get(), *xattrs, path));
  CONVERGE_RETURN_IF_ERROR(SetModeAndMtime(fd.get(), Mode(mode), mtime_ns, UTIME_OMIT, path));
  if (fsync(fd.get()) != 0) return Errno("fsync", path);
  if (fstat(fd.get(), &st) != 0) return Errno("stat", path);
  return FromStat(st);
}

absl::Status LocalFilesystem::SyncAll() {
  if (syncfs(root_fd_) != 0) return Errno("syncfs", root_);
  return absl::OkStatus();
}

absl::Status LocalFilesystem::SyncDir(const std::string& path) {
  if (auto it = held_.find(path); it != held_.end()) {
    if (absl::Status checked = CheckHeld(path, &it->second); !checked.ok()) {
      close(it->second.fd);
      held_.erase(it);
      return checked;
    }
  }
  CONVERGE_ASSIGN_OR_RETURN(DirRef dir, Dir(path));
  if (fsync(dir.get()) != 0) return Errno("fsync directory", path);
  return absl::OkStatus();
}

absl::Status LocalFilesystem::RootIntact() {
  struct stat st;
  if (stat(root_.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_ino != root_inode_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "folder ", root_, " is missing or was replaced (unmounted?): not syncing it"));
  }
  const std::string marker = absl::StrCat(root_, "/", kStateDirName, "/", kMarkerName);
  if (access(marker.c_str(), F_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("marker ", marker, " is missing (unmounted disk?): not syncing the folder"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ReadableFile>> OpenLocalFile(const std::string& absolute_path) {
  const int fd = open(absolute_path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return Errno("open", absolute_path);
  return std::unique_ptr<ReadableFile>(std::make_unique<LocalReadableFile>(fd));
}

}  // namespace converge::engine
