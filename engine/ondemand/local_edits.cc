#include "engine/ondemand/local_edits.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/logging.h"
#include "common/base/random_id.h"
#include "common/base/sha256.h"
#include "common/base/status_macros.h"
#include "common/model/conflict_name.h"
#include "common/model/path.h"

namespace converge::engine {
namespace {

constexpr char kErrnoPayload[] = "converge.errno";

absl::Status PosixError(int err, const std::string& what) {
  absl::Status s = absl::UnknownError(absl::StrCat(what, ": ", std::strerror(err)));
  switch (err) {
    case ENOENT: s = absl::NotFoundError(s.message()); break;
    case EEXIST: s = absl::AlreadyExistsError(s.message()); break;
    case EINVAL: s = absl::InvalidArgumentError(s.message()); break;
    default: s = absl::FailedPreconditionError(s.message()); break;
  }
  s.SetPayload(kErrnoPayload, absl::Cord(std::to_string(err)));
  return s;
}

std::string ParentOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "" : path.substr(0, slash);
}

bool IsUnder(const std::string& path, const std::string& dir) {
  return absl::StartsWith(path, dir) && path.size() > dir.size() && path[dir.size()] == '/';
}

}  // namespace

int ErrnoOf(const absl::Status& s) {
  if (auto p = s.GetPayload(kErrnoPayload); p.has_value()) {
    int err = 0;
    if (absl::SimpleAtoi(std::string(*p), &err) && err > 0) return err;
  }
  if (absl::IsNotFound(s)) return ENOENT;
  if (absl::IsAlreadyExists(s)) return EEXIST;
  if (absl::IsInvalidArgument(s)) return EINVAL;
  if (absl::IsResourceExhausted(s)) return ENOSPC;  // the journal could not write its record
  return EIO;
}

LocalEdits::LocalEdits(OnDemandView* view, ChangeJournal* journal, std::string dir, std::string device_id,
                       std::string device_name)
    : view_(view),
      journal_(journal),
      dir_(std::move(dir)),
      device_name_(std::move(device_name)),
      device_id_(std::move(device_id)) {}

void LocalEdits::SetDevice(const std::string& device_id) {
  absl::MutexLock lock(&mu_);
  device_id_ = device_id;
}

LocalEdits::~LocalEdits() = default;

std::string LocalEdits::DataPath(uint64_t id) const { return absl::StrCat(dir_, "/", id, ".data"); }

absl::Status LocalEdits::Load() {
  if (mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST) return PosixError(errno, absl::StrCat("mkdir ", dir_));
  CONVERGE_ASSIGN_OR_RETURN(std::vector<PendingChange> saved, journal_->LoadAll());
  absl::MutexLock lock(&mu_);
  absl::flat_hash_map<uint64_t, bool> named;
  for (PendingChange& c : saved) {
    named[c.id] = c.has_data;
    next_id_ = std::max(next_id_, c.id + 1);
    const std::string path = c.version.path;
    if (auto it = pending_.find(path); it != pending_.end() && it->second.change.id > c.id) continue;
    Entry& e = pending_[path];
    e.change = std::move(c);
    e.generation = next_generation_++;
    by_id_[e.change.id] = path;
  }
  // A data file without a record: its change was never recorded (a crash between the two).
  if (DIR* d = opendir(dir_.c_str()); d != nullptr) {
    while (struct dirent* ent = readdir(d)) {
      uint64_t id = 0;
      const std::string name = ent->d_name;
      if (!absl::EndsWith(name, ".data") || !absl::SimpleAtoi(name.substr(0, name.size() - 5), &id)) continue;
      if (auto it = named.find(id); it == named.end() || !it->second) unlink(DataPath(id).c_str());
    }
    closedir(d);
  }
  for (const auto& [path, e] : pending_) {
    if (e.change.version.deleted) {
      view_->HideLocal(path);
    } else {
      view_->ShowLocal(e.change.version, e.change.has_data ? DataPath(e.change.id) : "");
    }
  }
  if (!pending_.empty()) GetLogger("engine")->info("{} local change(s) from before the restart to upload", pending_.size());
  return absl::OkStatus();
}

absl::StatusOr<FileVersion> LocalEdits::Shown(const std::string& path) const {
  absl::StatusOr<FileVersion> v = view_->Stat(path);
  if (absl::IsNotFound(v.status())) return PosixError(ENOENT, path);
  return v;
}

absl::Status LocalEdits::CheckNewPath(const std::string& path) const {
  if (absl::Status valid = ValidateRelativePath(path); !valid.ok()) {
    return PosixError(EINVAL, absl::StrCat("'", path, "' cannot be synced (", valid.message(), ")"));
  }
  CONVERGE_ASSIGN_OR_RETURN(FileVersion parent, Shown(ParentOf(path)));
  if (parent.kind != FileKind::kDirectory) return PosixError(ENOTDIR, ParentOf(path));
  return absl::OkStatus();
}

absl::StatusOr<FileVersion> LocalEdits::NewVersion(const std::string& path, FileKind kind, uint32_t mode) const {
  CONVERGE_RETURN_IF_ERROR(CheckNewPath(path));
  if (view_->Stat(path).ok()) return PosixError(EEXIST, path);
  FileVersion v;
  v.path = path;
  v.kind = kind;
  v.mode = mode & 0777;
  v.mtime_ns = absl::ToUnixNanos(absl::Now());  // a file's is its data file's
  Base(path, &v);
  return v;
}

void LocalEdits::Base(const std::string& path, FileVersion* v) const {
  std::optional<FileVersion> remote = view_->Remote(path);
  v->base_seq = remote.has_value() ? remote->seq : 0;
  if (remote.has_value() && remote->kind == v->kind && !remote->file_id.empty()) v->file_id = remote->file_id;
  if (v->file_id.empty()) v->file_id = RandomBytes(kFileIdBytes);
}

absl::StatusOr<LocalEdits::Entry*> LocalEdits::Record(FileVersion v, bool has_data, uint64_t reuse_id) {
  const std::string path = v.path;
  auto it = pending_.find(path);
  PendingChange change;
  change.id = reuse_id != 0 ? reuse_id : it != pending_.end() ? it->second.change.id : next_id_++;
  change.version = std::move(v);
  change.version.seq = 0;
  change.version.origin_device = device_id_;
  change.has_data = has_data;
  CONVERGE_RETURN_IF_ERROR(journal_->Put(change));
  if (it != pending_.end() && it->second.change.id != change.id) {
    // Replaced by another change (a move onto it): its own record and data go.
    const uint64_t old = it->second.change.id;
    by_id_.erase(old);
    if (absl::Status dropped = journal_->Drop(old); !dropped.ok()) return dropped;
    unlink(DataPath(old).c_str());
  }
  Entry& e = pending_[path];
  const int writers = it != pending_.end() && it->second.change.id == change.id ? e.writers : 0;
  e.change = std::move(change);
  e.writers = writers;
  e.generation = next_generation_++;
  e.touched = absl::Now();
  by_id_[e.change.id] = path;
  if (e.change.version.deleted) {
    view_->HideLocal(path);
  } else {
    view_->ShowLocal(e.change.version, has_data ? DataPath(e.change.id) : "");
  }
  return &e;
}

absl::Status LocalEdits::Forget(const std::string& path, bool keep_data) {
  auto it = pending_.find(path);
  if (it == pending_.end()) return absl::OkStatus();
  const uint64_t id = it->second.change.id;
  CONVERGE_RETURN_IF_ERROR(journal_->Drop(id));
  if (!keep_data) unlink(DataPath(id).c_str());
  by_id_.erase(id);
  pending_.erase(it);
  return absl::OkStatus();
}

absl::Status LocalEdits::Delete(const std::string& path) {
  CONVERGE_RETURN_IF_ERROR(Forget(path, /*keep_data=*/false));
  return Gone(path);
}

absl::Status LocalEdits::Gone(const std::string& path) {
  std::optional<FileVersion> remote = view_->Remote(path);
  if (!remote.has_value()) {
    view_->Settle(path, nullptr);  // made here and gone before the store had it
    return absl::OkStatus();
  }
  FileVersion gone = *remote;
  gone.deleted = true;
  gone.base_seq = remote->seq;
  gone.chunks.clear();
  gone.size = 0;
  gone.xattrs.clear();
  return Record(std::move(gone), false, 0).status();
}

absl::StatusOr<LocalEdits::Handle> LocalEdits::Create(const std::string& path, uint32_t mode) {
  absl::MutexLock lock(&mu_);
  CONVERGE_ASSIGN_OR_RETURN(FileVersion v, NewVersion(path, FileKind::kFile, mode));
  v.content_sha256 = ContentDigest({});
  const uint64_t id = next_id_++;
  const int fd = open(DataPath(id).c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return PosixError(errno, DataPath(id));
  absl::StatusOr<Entry*> e = Record(std::move(v), true, id);
  if (!e.ok()) {
    close(fd);
    unlink(DataPath(id).c_str());
    return e.status();
  }
  (*e)->writers++;
  return Handle{id, fd};
}

absl::StatusOr<LocalEdits::Handle> LocalEdits::OpenForWrite(const std::string& path, bool truncate) {
  absl::MutexLock lock(&mu_);
  return OpenLocked(path, truncate);
}

absl::StatusOr<LocalEdits::Handle> LocalEdits::OpenLocked(const std::string& path, bool truncate) {
  if (auto it = pending_.find(path); it != pending_.end() && it->second.change.has_data) {
    const uint64_t id = it->second.change.id;
    const int fd = open(DataPath(id).c_str(), O_RDWR | O_CLOEXEC | (truncate ? O_TRUNC : 0));
    if (fd < 0) return PosixError(errno, DataPath(id));
    it->second.writers++;
    it->second.generation = next_generation_++;
    it->second.touched = absl::Now();
    return Handle{id, fd};
  }
  CONVERGE_ASSIGN_OR_RETURN(FileVersion shown, Shown(path));
  if (shown.kind == FileKind::kDirectory) return PosixError(EISDIR, path);
  if (shown.kind != FileKind::kFile) return PosixError(EINVAL, path);
  const uint64_t id = next_id_++;
  const int fd = open(DataPath(id).c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return PosixError(errno, DataPath(id));
  absl::Status copied = truncate ? absl::OkStatus() : CopyIn(shown, fd);
  if (copied.ok() && !truncate) {
    const struct timespec times[2] = {{0, UTIME_OMIT},
                                      {shown.mtime_ns / 1000000000, static_cast<long>(shown.mtime_ns % 1000000000)}};
    futimens(fd, times);  // opened and closed unwritten, it is unchanged
  }
  FileVersion v = shown;
  v.chunks.clear();
  v.size = 0;
  v.content_sha256 = ContentDigest({});  // as an empty file: its bytes are the data file's until the upload
  Base(path, &v);
  absl::StatusOr<Entry*> e = copied.ok() ? Record(std::move(v), true, id) : absl::StatusOr<Entry*>(copied);
  if (!e.ok()) {
    close(fd);
    unlink(DataPath(id).c_str());
    return e.status();
  }
  (*e)->writers++;
  return Handle{id, fd};
}

absl::Status LocalEdits::CopyIn(const FileVersion& shown, int fd) {
  constexpr uint64_t kPiece = 4 << 20;
  for (uint64_t at = 0; at < shown.size; at += kPiece) {
    absl::StatusOr<std::string> bytes = view_->Read(shown.path, at, kPiece);
    if (!bytes.ok()) return PosixError(EIO, absl::StrCat("'", shown.path, "' to write: ", bytes.status().message()));
    if (bytes->empty()) break;
    if (pwrite(fd, bytes->data(), bytes->size(), static_cast<off_t>(at)) != static_cast<ssize_t>(bytes->size())) {
      return PosixError(errno == 0 ? ENOSPC : errno, "copying in");
    }
  }
  return absl::OkStatus();
}

void LocalEdits::Wrote(uint64_t id) {
  absl::MutexLock lock(&mu_);
  auto p = by_id_.find(id);
  if (p == by_id_.end()) return;
  Entry& e = pending_.at(p->second);
  e.generation = next_generation_++;
  e.touched = absl::Now();
}

absl::Status LocalEdits::Sync(const Handle& h) {
  if (fsync(h.fd) != 0) return PosixError(errno, "fsync");
  return journal_->Sync();
}

void LocalEdits::Release(const Handle& h) {
  close(h.fd);
  absl::MutexLock lock(&mu_);
  auto p = by_id_.find(h.id);
  if (p == by_id_.end()) return;  // deleted while open
  Entry& e = pending_.at(p->second);
  if (e.writers > 0) e.writers--;
  e.touched = absl::Now();
}

absl::Status LocalEdits::Truncate(const std::string& path, uint64_t size) {
  absl::MutexLock lock(&mu_);
  CONVERGE_ASSIGN_OR_RETURN(Handle h, OpenLocked(path, size == 0));
  const int rc = ftruncate(h.fd, static_cast<off_t>(size));
  const int err = errno;
  close(h.fd);
  auto& e = pending_.at(by_id_.at(h.id));
  e.writers--;
  return rc == 0 ? absl::OkStatus() : PosixError(err, "truncate");
}

absl::Status LocalEdits::MkDir(const std::string& path, uint32_t mode) {
  absl::MutexLock lock(&mu_);
  CONVERGE_ASSIGN_OR_RETURN(FileVersion v, NewVersion(path, FileKind::kDirectory, mode));
  return Record(std::move(v), false, 0).status();
}

absl::Status LocalEdits::Symlink(const std::string& target, const std::string& path) {
  absl::MutexLock lock(&mu_);
  if (target.empty() || target.size() > kMaxSymlinkTarget || target.find('\0') != std::string::npos) {
    return PosixError(EINVAL, path);
  }
  CONVERGE_ASSIGN_OR_RETURN(FileVersion v, NewVersion(path, FileKind::kSymlink, 0777));
  v.symlink_target = target;
  v.content_sha256 = HashOf(target);
  return Record(std::move(v), false, 0).status();
}

absl::Status LocalEdits::Unlink(const std::string& path) {
  absl::MutexLock lock(&mu_);
  CONVERGE_ASSIGN_OR_RETURN(FileVersion shown, Shown(path));
  if (shown.kind == FileKind::kDirectory) return PosixError(EISDIR, path);
  return Delete(path);
}

absl::Status LocalEdits::RmDir(const std::string& path) {
  absl::MutexLock lock(&mu_);
  if (path.empty()) return PosixError(EBUSY, "the folder itself");
  CONVERGE_ASSIGN_OR_RETURN(FileVersion shown, Shown(path));
  if (shown.kind != FileKind::kDirectory) return PosixError(ENOTDIR, path);
  CONVERGE_ASSIGN_OR_RETURN(std::vector<std::string> below, view_->List(path));
  if (!below.empty()) return PosixError(ENOTEMPTY, path);
  return Delete(path);
}

absl::Status LocalEdits::MoveOne(const FileVersion& shown, const std::string& to) {
  const std::string from = shown.path;
  auto it = pending_.find(from);
  const bool has_data = it != pending_.end() && it->second.change.has_data;
  const uint64_t id = it != pending_.end() ? it->second.change.id : 0;
  FileVersion v = it != pending_.end() ? it->second.change.version : shown;
  const std::string file_id = v.file_id;
  v.path = to;
  Base(to, &v);
  if (!file_id.empty()) v.file_id = file_id;  // a move keeps the file's id: no content moves
  if (it != pending_.end()) {
    const int writers = it->second.writers;
    by_id_.erase(id);
    pending_.erase(it);  // its record is rewritten under the new path, data and all
    CONVERGE_ASSIGN_OR_RETURN(Entry * moved, Record(std::move(v), has_data, id));
    moved->writers = writers;
  } else {
    CONVERGE_RETURN_IF_ERROR(Record(std::move(v), false, 0).status());
  }
  return Gone(from);
}

absl::Status LocalEdits::Rename(const std::string& from, const std::string& to, bool no_replace) {
  absl::MutexLock lock(&mu_);
  if (from == to) return absl::OkStatus();
  CONVERGE_ASSIGN_OR_RETURN(FileVersion shown, Shown(from));
  CONVERGE_RETURN_IF_ERROR(CheckNewPath(to));
  if (IsUnder(to, from)) return PosixError(EINVAL, "a directory cannot move into itself");
  if (absl::StatusOr<FileVersion> there = view_->Stat(to); there.ok()) {
    if (no_replace) return PosixError(EEXIST, to);
    const bool dir_from = shown.kind == FileKind::kDirectory, dir_to = there->kind == FileKind::kDirectory;
    if (dir_from && !dir_to) return PosixError(ENOTDIR, to);
    if (!dir_from && dir_to) return PosixError(EISDIR, to);
    if (dir_to) {
      CONVERGE_ASSIGN_OR_RETURN(std::vector<std::string> below, view_->List(to));
      if (!below.empty()) return PosixError(ENOTEMPTY, to);
    }
    if (pending_.count(to) > 0 || view_->Remote(to).has_value()) {
      CONVERGE_RETURN_IF_ERROR(Forget(to, false));
      view_->Settle(to, nullptr);  // the move's version goes over the namespace's
    }
  }
  // A directory moves with all below it, parents first.
  std::vector<FileVersion> moving = {shown};
  for (size_t i = 0; i < moving.size(); ++i) {
    if (moving[i].kind != FileKind::kDirectory) continue;
    CONVERGE_ASSIGN_OR_RETURN(std::vector<std::string> names, view_->List(moving[i].path));
    for (const std::string& name : names) {
      CONVERGE_ASSIGN_OR_RETURN(FileVersion child, Shown(absl::StrCat(moving[i].path, "/", name)));
      moving.push_back(std::move(child));
    }
  }
  for (const FileVersion& v : moving) {
    CONVERGE_RETURN_IF_ERROR(MoveOne(v, absl::StrCat(to, v.path.substr(from.size()))));
  }
  return absl::OkStatus();
}

absl::Status LocalEdits::SetMode(const std::string& path, uint32_t mode) {
  absl::MutexLock lock(&mu_);
  if (path.empty()) return PosixError(EPERM, "the folder itself");
  CONVERGE_ASSIGN_OR_RETURN(FileVersion shown, Shown(path));
  if (shown.kind == FileKind::kSymlink) return absl::OkStatus();
  auto it = pending_.find(path);
  FileVersion v = it != pending_.end() ? it->second.change.version : shown;
  if (it == pending_.end()) Base(path, &v);
  v.mode = mode & 0777;
  return Record(std::move(v), it != pending_.end() && it->second.change.has_data, 0).status();
}

absl::Status LocalEdits::SetMtime(const std::string& path, int64_t mtime_ns) {
  absl::MutexLock lock(&mu_);
  if (path.empty()) return PosixError(EPERM, "the folder itself");
  CONVERGE_ASSIGN_OR_RETURN(FileVersion shown, Shown(path));
  auto it = pending_.find(path);
  if (it != pending_.end() && it->second.change.has_data) {
    const struct timespec times[2] = {{0, UTIME_OMIT},
                                      {mtime_ns / 1000000000, static_cast<long>(mtime_ns % 1000000000)}};
    if (utimensat(AT_FDCWD, DataPath(it->second.change.id).c_str(), times, 0) != 0) return PosixError(errno, path);
    it->second.generation = next_generation_++;
    it->second.touched = absl::Now();
    return absl::OkStatus();
  }
  FileVersion v = it != pending_.end() ? it->second.change.version : shown;
  if (it == pending_.end()) Base(path, &v);
  v.mtime_ns = mtime_ns;
  return Record(std::move(v), false, 0).status();
}

std::vector<LocalEdits::Settled> LocalEdits::TakeSettled(absl::Duration quiet) {
  const absl::Time now = absl::Now();
  std::vector<Settled> out;
  absl::MutexLock lock(&mu_);
  for (const auto& [path, e] : pending_) {
    if (e.writers > 0 || now - e.touched < quiet || e.refused_generation == e.generation) continue;
    out.push_back(Settled{e.change, e.generation, e.change.has_data ? DataPath(e.change.id) : ""});
  }
  return out;
}

void LocalEdits::Committed(const std::vector<Settled>& done, const std::vector<FileVersion>& committed) {
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < done.size() && i < committed.size(); ++i) {
    const FileVersion& c = committed[i];
    auto p = by_id_.find(done[i].change.id);
    const bool unchanged = p != by_id_.end() && p->second == c.path &&
                           pending_.at(p->second).generation == done[i].generation;
    if (unchanged) {
      // The view shows the commit before the written copy goes: a read in between finds one.
      view_->Settle(c.path, &c);
      if (absl::Status s = Forget(c.path, false); !s.ok()) GetLogger("engine")->warn("{}", s.ToString());
      continue;
    }
    // Changed again meanwhile (or another change took its path): made on top of this commit.
    if (auto it = pending_.find(c.path); it != pending_.end()) {
      it->second.change.version.base_seq = c.seq;
      if (it->second.change.version.kind == c.kind && !c.deleted) it->second.change.version.file_id = c.file_id;
      if (absl::Status s = journal_->Put(it->second.change); !s.ok()) GetLogger("engine")->warn("{}", s.ToString());
    }
  }
}

void LocalEdits::Conflicted(const absl::flat_hash_map<std::string, std::optional<FileVersion>>& current) {
  absl::MutexLock lock(&mu_);
  auto log = GetLogger("engine");
  for (const auto& [path, now] : current) {
    auto it = pending_.find(path);
    if (it == pending_.end()) continue;
    Entry& e = it->second;
    const bool live = now.has_value() && !now->deleted;
    const uint64_t seq = now.has_value() ? now->seq : 0;
    if (e.change.version.base_seq == seq) continue;
    const FileVersion* winner = now.has_value() ? &*now : nullptr;
    absl::Status s;
    if (e.change.version.deleted) {
      log->info("'{}' was changed on another device: its deletion here gives way", path);
      s = Forget(path, false);
      view_->Settle(path, winner);
    } else if (!live || (now->kind == FileKind::kDirectory && e.change.version.kind == FileKind::kDirectory)) {
      e.change.version.base_seq = seq;  // deleted there, or a directory on both: this change stands
      s = journal_->Put(e.change);
    } else {
      const std::string copy = MakeConflictName(path, device_id_, absl::Now(), device_name_);
      log->warn("'{}' was changed here and on another device: this device's version is kept as '{}'", path, copy);
      FileVersion v = e.change.version;
      v.path = copy;
      v.file_id = RandomBytes(kFileIdBytes);
      v.base_seq = 0;
      const bool has_data = e.change.has_data;
      const uint64_t id = e.change.id;
      const int writers = e.writers;
      by_id_.erase(id);
      pending_.erase(it);
      absl::StatusOr<Entry*> moved = Record(std::move(v), has_data, id);
      if (moved.ok()) (*moved)->writers = writers;
      s = moved.status();
      view_->Settle(path, winner);
      ++conflicts_;
    }
    if (!s.ok()) log->warn("settling the conflict of '{}': {}", path, s.ToString());
  }
}

void LocalEdits::Restore() {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> deletions;
  for (const auto& [path, e] : pending_) {
    if (e.change.version.deleted) deletions.push_back(path);
  }
  for (const std::string& path : deletions) {
    if (absl::Status s = Forget(path, false); !s.ok()) GetLogger("engine")->warn("{}", s.ToString());
    view_->Settle(path, nullptr);
  }
}

void LocalEdits::Refuse(const Settled& change, const std::string& why) {
  absl::MutexLock lock(&mu_);
  auto p = by_id_.find(change.change.id);
  if (p == by_id_.end()) return;
  Entry& e = pending_.at(p->second);
  if (e.generation != change.generation) return;  // changed since: tried again
  GetLogger("engine")->warn("the store will not take '{}' ({}): kept here, not uploaded until it changes", p->second,
                            why);
  e.refused_generation = e.generation;
  e.refused = why;
}

void LocalEdits::RetryRefused() {
  absl::MutexLock lock(&mu_);
  for (auto& [path, e] : pending_) e.refused_generation = 0;
}

LocalEdits::Stats LocalEdits::stats() const {
  Stats s;
  absl::MutexLock lock(&mu_);
  s.pending = pending_.size();
  for (const auto& [path, e] : pending_) {
    if (e.change.version.deleted) ++s.pending_deletes;
    s.open_writers += e.writers;
    if (e.refused_generation == e.generation) {
      if (s.refused++ == 0) s.first_refused = absl::StrCat(path, ": ", e.refused);
    }
  }
  s.conflicts = conflicts_;
  return s;
}

}  // namespace converge::engine
