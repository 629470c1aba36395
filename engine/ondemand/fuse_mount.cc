#define FUSE_USE_VERSION 31
#include "engine/ondemand/fuse_mount.h"

#include <dirent.h>
#include <fcntl.h>
#include <fuse3/fuse.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"

namespace converge::engine {

struct FuseMount::Context {
  OnDemandView* view = nullptr;
  LocalEdits* edits = nullptr;  // null: the view takes no writes
  int state_fd = -1;
  uid_t uid = 0;
  gid_t gid = 0;
};

namespace {

constexpr char kStateName[] = ".converge";

FuseMount::Context* Ctx() { return static_cast<FuseMount::Context*>(fuse_get_context()->private_data); }

// Rel turns the kernel's "/a/b" into the namespace's "a/b" ("" for the root).
std::string Rel(const char* path) { return path[0] == '/' ? std::string(path + 1) : std::string(path); }

// InState: a path under .converge, as relative to the state directory ("." for itself).
bool InState(const std::string& rel, std::string* inside) {
  if (rel == kStateName) {
    *inside = ".";
    return Ctx()->state_fd >= 0;
  }
  if (!absl::StartsWith(rel, absl::StrCat(kStateName, "/"))) return false;
  *inside = rel.substr(sizeof(kStateName));
  return Ctx()->state_fd >= 0;
}

int ReadError(const absl::Status& s) {
  if (absl::IsNotFound(s)) return -ENOENT;
  if (absl::IsFailedPrecondition(s)) return -ENOTDIR;
  return -EIO;
}

// An edit's answer: 0, or the errno it failed with (EROFS where the view takes no writes).
int Edit(const std::function<absl::Status(LocalEdits*)>& edit) {
  LocalEdits* edits = Ctx()->edits;
  if (edits == nullptr) return -EROFS;
  absl::Status s = edit(edits);
  return s.ok() ? 0 : -ErrnoOf(s);
}

// An open file other than a view file opened for reading (fh 0): one of the state directory's,
// or one being written through LocalEdits.
struct OpenFile {
  int fd = -1;
  bool edit = false;
  LocalEdits::Handle handle;
};

OpenFile* Opened(struct fuse_file_info* fi) {
  return fi == nullptr || fi->fh == 0 ? nullptr : reinterpret_cast<OpenFile*>(fi->fh);
}

void SetOpened(struct fuse_file_info* fi, OpenFile file) { fi->fh = reinterpret_cast<uint64_t>(new OpenFile(file)); }

void FillStat(const FileVersion& v, struct stat* st) {
  std::memset(st, 0, sizeof(*st));
  switch (v.kind) {
    case FileKind::kDirectory:
      st->st_mode = S_IFDIR | (v.mode & 0777);  // no set-id or sticky bit from the network
      st->st_nlink = 2;
      break;
    case FileKind::kSymlink:
      st->st_mode = S_IFLNK | 0777;
      st->st_nlink = 1;
      st->st_size = v.symlink_target.size();
      break;
    case FileKind::kFile:
      st->st_mode = S_IFREG | (v.mode & 0777);
      st->st_nlink = 1;
      st->st_size = v.size;
      st->st_blocks = (v.size + 511) / 512;
      break;
  }
  st->st_uid = Ctx()->uid;
  st->st_gid = Ctx()->gid;
  st->st_mtim.tv_sec = v.mtime_ns / 1000000000;
  st->st_mtim.tv_nsec = v.mtime_ns % 1000000000;
  st->st_ctim = st->st_mtim;
  st->st_atim = st->st_mtim;
  st->st_blksize = 128 << 10;
}

void* Init(struct fuse_conn_info* conn, struct fuse_config* cfg) {
  (void)conn;
  cfg->entry_timeout = 1.0;  // the tree changes only when the namespace does (a new listing)
  cfg->attr_timeout = 1.0;
  cfg->negative_timeout = 1.0;
  cfg->kernel_cache = 0;  // a file's pages are dropped on open: a new version shows at once
  cfg->hard_remove = 1;   // a file deleted while open goes at once (no .fuse_hidden rename)
  return fuse_get_context()->private_data;
}

int GetAttr(const char* path, struct stat* st, struct fuse_file_info* fi) {
  (void)fi;
  const std::string rel = Rel(path);
  std::string inside;
  if (InState(rel, &inside)) {
    return fstatat(Ctx()->state_fd, inside.c_str(), st, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
  }
  absl::StatusOr<FileVersion> v = Ctx()->view->Stat(rel);
  if (!v.ok()) return ReadError(v.status());
  FillStat(*v, st);
  return 0;
}

int ReadLink(const char* path, char* buf, size_t size) {
  absl::StatusOr<FileVersion> v = Ctx()->view->Stat(Rel(path));
  if (!v.ok()) return ReadError(v.status());
  if (v->kind != FileKind::kSymlink) return -EINVAL;
  if (size == 0) return -EINVAL;
  const size_t n = std::min(size - 1, v->symlink_target.size());
  std::memcpy(buf, v->symlink_target.data(), n);
  buf[n] = '\0';
  return 0;
}

int ReadStateDir(const std::string& inside, void* buf, fuse_fill_dir_t filler) {
  const int fd = openat(Ctx()->state_fd, inside.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -errno;
  DIR* dir = fdopendir(fd);
  if (dir == nullptr) {
    close(fd);
    return -errno;
  }
  while (struct dirent* e = readdir(dir)) filler(buf, e->d_name, nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
  closedir(dir);
  return 0;
}

// ReadDir serves a directory in pieces, each entry with its offset (the next one's index), so
// the kernel may ask for the rest from there; with readdirplus each entry carries its attributes
// and `ls -l` costs no lookup per entry (libfuse passes them on only in this offset mode).
int ReadDir(const char* path, void* buf, fuse_fill_dir_t filler, off_t offset, struct fuse_file_info* fi,
            enum fuse_readdir_flags flags) {
  (void)fi;
  const std::string rel = Rel(path);
  std::string inside;
  if (InState(rel, &inside)) return offset == 0 ? ReadStateDir(inside, buf, filler) : 0;
  const auto plus = (flags & FUSE_READDIR_PLUS) != 0 ? FUSE_FILL_DIR_PLUS : static_cast<fuse_fill_dir_flags>(0);
  // Offsets: 1 ".", 2 "..", 3 ".converge" (the root only), then the view's entries.
  const off_t own = rel.empty() && Ctx()->state_fd >= 0 ? 3 : 2;
  struct stat st {};
  st.st_mode = S_IFDIR;
  for (off_t i = offset; i < own; ++i) {
    const char* name = i == 0 ? "." : i == 1 ? ".." : kStateName;
    if (filler(buf, name, &st, i + 1, static_cast<fuse_fill_dir_flags>(0)) != 0) return 0;
  }
  off_t next = std::max(offset, own);
  absl::Status listed = Ctx()->view->ListFrom(rel, next - own, [&](const std::string& name, const FileVersion& v) {
    ++next;
    if (rel.empty() && name == kStateName) return true;  // never synced; the engine's own
    FillStat(v, &st);
    return filler(buf, name.c_str(), &st, next, plus) == 0;
  });
  return listed.ok() ? 0 : ReadError(listed);
}

int Open(const char* path, struct fuse_file_info* fi) {
  const std::string rel = Rel(path);
  std::string inside;
  if (InState(rel, &inside)) {
    const int flags = fi->flags & (O_ACCMODE | O_TRUNC | O_APPEND);
    const int fd = openat(Ctx()->state_fd, inside.c_str(), flags | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return -errno;
    SetOpened(fi, OpenFile{fd, false, {}});
    return 0;
  }
  if ((fi->flags & O_ACCMODE) != O_RDONLY) {
    LocalEdits::Handle h;
    const int rc = Edit([&](LocalEdits* edits) {
      absl::StatusOr<LocalEdits::Handle> opened = edits->OpenForWrite(rel, (fi->flags & O_TRUNC) != 0);
      if (opened.ok()) h = *opened;
      return opened.status();
    });
    if (rc == 0) SetOpened(fi, OpenFile{h.fd, true, h});
    return rc;
  }
  absl::StatusOr<FileVersion> v = Ctx()->view->Stat(rel);
  if (!v.ok()) return ReadError(v.status());
  if (v->kind == FileKind::kDirectory) return -EISDIR;
  fi->fh = 0;
  return 0;
}

int Read(const char* path, char* buf, size_t size, off_t offset, struct fuse_file_info* fi) {
  if (OpenFile* f = Opened(fi); f != nullptr) {
    const ssize_t n = pread(f->fd, buf, size, offset);
    return n < 0 ? -errno : static_cast<int>(n);
  }
  const std::string rel = Rel(path);
  absl::StatusOr<std::string> bytes = Ctx()->view->Read(rel, offset, size);
  if (!bytes.ok()) {
    static auto log = GetLogger("engine");
    log->warn("read of {}: {}", rel, bytes.status().message());
    return ReadError(bytes.status());
  }
  std::memcpy(buf, bytes->data(), bytes->size());
  return static_cast<int>(bytes->size());
}

int Release(const char* path, struct fuse_file_info* fi) {
  (void)path;
  std::unique_ptr<OpenFile> f(Opened(fi));
  if (f == nullptr) return 0;
  if (f->edit) {
    Ctx()->edits->Release(f->handle);
  } else {
    close(f->fd);
  }
  return 0;
}

// The state directory takes the CLI's writes (flags, the pins file); the view takes programs'
// writes as LocalEdits.
int Create(const char* path, mode_t mode, struct fuse_file_info* fi) {
  const std::string rel = Rel(path);
  std::string inside;
  if (!InState(rel, &inside)) {
    LocalEdits::Handle h;
    const int rc = Edit([&](LocalEdits* edits) {
      absl::StatusOr<LocalEdits::Handle> made = edits->Create(rel, mode);
      if (made.ok()) h = *made;
      return made.status();
    });
    if (rc == 0) SetOpened(fi, OpenFile{h.fd, true, h});
    return rc;
  }
  const int flags = fi->flags & (O_ACCMODE | O_TRUNC | O_APPEND | O_EXCL);
  const int fd = openat(Ctx()->state_fd, inside.c_str(), flags | O_CREAT | O_CLOEXEC | O_NOFOLLOW, mode & 0777);
  if (fd < 0) return -errno;
  SetOpened(fi, OpenFile{fd, false, {}});
  return 0;
}

int Write(const char* path, const char* buf, size_t size, off_t offset, struct fuse_file_info* fi) {
  (void)path;
  OpenFile* f = Opened(fi);
  if (f == nullptr) return -EBADF;
  const ssize_t n = pwrite(f->fd, buf, size, offset);
  if (n < 0) return -errno;
  if (f->edit) Ctx()->edits->Wrote(f->handle.id);
  return static_cast<int>(n);
}

int Truncate(const char* path, off_t size, struct fuse_file_info* fi) {
  if (OpenFile* f = Opened(fi); f != nullptr) {
    if (ftruncate(f->fd, size) != 0) return -errno;
    if (f->edit) Ctx()->edits->Wrote(f->handle.id);
    return 0;
  }
  const std::string rel = Rel(path);
  std::string inside;
  if (!InState(rel, &inside)) return Edit([&](LocalEdits* edits) { return edits->Truncate(rel, size); });
  const int fd = openat(Ctx()->state_fd, inside.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return -errno;
  const int rc = ftruncate(fd, size) == 0 ? 0 : -errno;
  close(fd);
  return rc;
}

int Rename(const char* from, const char* to, unsigned int flags) {
  std::string a, b;
  const bool from_state = InState(Rel(from), &a), to_state = InState(Rel(to), &b);
  if (from_state != to_state) return -EXDEV;
  if ((flags & ~RENAME_NOREPLACE) != 0) return -EINVAL;  // RENAME_EXCHANGE, RENAME_WHITEOUT
  if (!from_state) {
    return Edit([&](LocalEdits* edits) { return edits->Rename(Rel(from), Rel(to), (flags & RENAME_NOREPLACE) != 0); });
  }
  if (flags != 0) return -EINVAL;
  return renameat(Ctx()->state_fd, a.c_str(), Ctx()->state_fd, b.c_str()) == 0 ? 0 : -errno;
}

int Unlink(const char* path) {
  const std::string rel = Rel(path);
  std::string inside;
  if (!InState(rel, &inside)) return Edit([&](LocalEdits* edits) { return edits->Unlink(rel); });
  return unlinkat(Ctx()->state_fd, inside.c_str(), 0) == 0 ? 0 : -errno;
}

int MkDir(const char* path, mode_t mode) {
  const std::string rel = Rel(path);
  std::string inside;
  if (!InState(rel, &inside)) return Edit([&](LocalEdits* edits) { return edits->MkDir(rel, mode); });
  return mkdirat(Ctx()->state_fd, inside.c_str(), mode & 0777) == 0 ? 0 : -errno;
}

int RmDir(const char* path) {
  const std::string rel = Rel(path);
  std::string inside;
  if (!InState(rel, &inside)) return Edit([&](LocalEdits* edits) { return edits->RmDir(rel); });
  return unlinkat(Ctx()->state_fd, inside.c_str(), AT_REMOVEDIR) == 0 ? 0 : -errno;
}

int Symlink(const char* target, const char* path) {
  const std::string rel = Rel(path);
  std::string inside;
  if (InState(rel, &inside)) return -EPERM;
  return Edit([&](LocalEdits* edits) { return edits->Symlink(target, rel); });
}

int ChMod(const char* path, mode_t mode, struct fuse_file_info* fi) {
  (void)fi;
  const std::string rel = Rel(path);
  std::string inside;
  if (InState(rel, &inside)) return fchmodat(Ctx()->state_fd, inside.c_str(), mode & 0777, 0) == 0 ? 0 : -errno;
  return Edit([&](LocalEdits* edits) { return edits->SetMode(rel, mode); });
}

// Files show this user as their owner; giving them another is refused.
int ChOwn(const char* path, uid_t uid, gid_t gid, struct fuse_file_info* fi) {
  (void)path;
  (void)fi;
  const bool same = (uid == static_cast<uid_t>(-1) || uid == Ctx()->uid) && (gid == static_cast<gid_t>(-1) || gid == Ctx()->gid);
  return same ? 0 : -EPERM;
}

int UTimens(const char* path, const struct timespec tv[2], struct fuse_file_info* fi) {
  (void)fi;
  const std::string rel = Rel(path);
  std::string inside;
  if (InState(rel, &inside)) return utimensat(Ctx()->state_fd, inside.c_str(), tv, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
  if (tv != nullptr && tv[1].tv_nsec == UTIME_OMIT) return 0;  // only the access time, which is not kept
  const int64_t mtime_ns = tv == nullptr || tv[1].tv_nsec == UTIME_NOW
                               ? absl::ToUnixNanos(absl::Now())
                               : int64_t{tv[1].tv_sec} * 1000000000 + tv[1].tv_nsec;
  return Edit([&](LocalEdits* edits) { return edits->SetMtime(rel, mtime_ns); });
}

int FSync(const char* path, int datasync, struct fuse_file_info* fi) {
  (void)path;
  (void)datasync;
  OpenFile* f = Opened(fi);
  if (f == nullptr) return 0;
  if (f->edit) {
    absl::Status synced = Ctx()->edits->Sync(f->handle);
    return synced.ok() ? 0 : -ErrnoOf(synced);
  }
  return fsync(f->fd) == 0 ? 0 : -errno;
}

struct fuse_operations Operations() {
  struct fuse_operations ops {};
  ops.init = Init;
  ops.getattr = GetAttr;
  ops.readlink = ReadLink;
  ops.readdir = ReadDir;
  ops.open = Open;
  ops.read = Read;
  ops.release = Release;
  ops.create = Create;
  ops.write = Write;
  ops.truncate = Truncate;
  ops.rename = Rename;
  ops.unlink = Unlink;
  ops.mkdir = MkDir;
  ops.rmdir = RmDir;
  ops.fsync = FSync;
  ops.symlink = Symlink;
  ops.link = [](const char*, const char*) { return -EPERM; };  // hard links are not synced
  ops.chmod = ChMod;
  ops.chown = ChOwn;
  ops.utimens = UTimens;
  return ops;
}

}  // namespace

absl::Status FuseMount::DetachStale(const std::string& mountpoint) {
  // The kernel may answer stat from its cache for a moment; a dead connection fails the rest.
  struct stat st {};
  struct statfs fs {};
  bool dead = (stat(mountpoint.c_str(), &st) != 0 && errno == ENOTCONN) ||
              (statfs(mountpoint.c_str(), &fs) != 0 && errno == ENOTCONN);
  if (DIR* dir = dead ? nullptr : opendir(mountpoint.c_str()); dir != nullptr) {
    errno = 0;
    dead = readdir(dir) == nullptr && errno == ENOTCONN;
    closedir(dir);
  } else if (!dead && errno == ENOTCONN) {
    dead = true;
  }
  if (!dead) return absl::OkStatus();
  GetLogger("engine")->warn("{}: a mount left by an engine that died; detaching it", mountpoint);
  if (umount2(mountpoint.c_str(), MNT_DETACH) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot detach the stale mount at ", mountpoint, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<FuseMount>> FuseMount::Mount(OnDemandView* view, LocalEdits* edits,
                                                             const std::string& mountpoint, int state_fd) {
  CONVERGE_RETURN_IF_ERROR(DetachStale(mountpoint));
  std::unique_ptr<FuseMount> m(new FuseMount());
  m->context_ = std::make_unique<Context>();
  m->context_->view = view;
  m->context_->edits = edits;
  m->context_->state_fd = state_fd;
  m->context_->uid = getuid();
  m->context_->gid = getgid();
  std::vector<std::string> argv_strings = {"converge-engine", "-o", "default_permissions,nosuid,nodev,fsname=converge,subtype=converge"};
  std::vector<char*> argv;
  for (std::string& s : argv_strings) argv.push_back(s.data());
  struct fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  const struct fuse_operations ops = Operations();
  m->fuse_ = fuse_new(&args, &ops, sizeof(ops), m->context_.get());
  if (m->fuse_ == nullptr) return absl::InternalError("fuse_new failed (see the log above)");
  if (fuse_mount(m->fuse_, mountpoint.c_str()) != 0) {
    fuse_destroy(m->fuse_);
    m->fuse_ = nullptr;
    return absl::FailedPreconditionError(absl::StrCat("cannot mount the on-demand folder at ", mountpoint,
                                                      " (is /dev/fuse there, and are we root?)"));
  }
  struct fuse* f = m->fuse_;
  m->loop_ = std::thread([f] { fuse_loop_mt(f, 0); });
  return m;
}

FuseMount::~FuseMount() {
  if (fuse_ == nullptr) return;
  fuse_exit(fuse_);
  fuse_unmount(fuse_);  // wakes the loop's threads
  if (loop_.joinable()) loop_.join();
  fuse_destroy(fuse_);
}

}  // namespace converge::engine
