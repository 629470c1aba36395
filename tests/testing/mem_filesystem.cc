#include "tests/testing/mem_filesystem.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/model/path.h"

namespace converge::engine {
namespace {

// Temp files live outside the folder's name space: keys starting with \x01 sort first and are
// never walked.
constexpr char kTempPrefix[] = "\x01tmp/";
constexpr char kPartialPrefix[] = "\x01tmp/partial-";

bool IsTemp(const std::string& key) { return !key.empty() && key[0] == '\x01'; }

std::string Parent(const std::string& path) { return std::string(ParentPath(path)); }

// Under: the keys of `names` strictly below directory `dir` ("" = the root).
template <typename Map, typename Fn>
void ForEachBelow(Map& names, const std::string& dir, Fn fn) {
  const std::string prefix = dir.empty() ? "" : dir + "/";
  for (auto it = names.lower_bound(prefix); it != names.end() && absl::StartsWith(it->first, prefix); ++it) {
    if (IsTemp(it->first) || it->first == dir) continue;
    fn(it);
  }
}

}  // namespace

class MemReadableFile : public ReadableFile {
 public:
  MemReadableFile(absl::Mutex* mu, std::shared_ptr<MemFilesystem::Inode> inode) : mu_(mu), inode_(std::move(inode)) {}
  absl::Status Read(uint64_t offset, size_t n, std::string* out) override {
    absl::MutexLock l(mu_);
    if (offset >= inode_->data.size()) {
      out->clear();
    } else {
      *out = inode_->data.substr(offset, n);
    }
    return absl::OkStatus();
  }

 private:
  absl::Mutex* const mu_;
  const std::shared_ptr<MemFilesystem::Inode> inode_;
};

class MemTempFile : public TempFile {
 public:
  MemTempFile(MemFilesystem* fs, std::string key, std::shared_ptr<MemFilesystem::Inode> inode, bool keep)
      : fs_(fs), key_(std::move(key)), inode_(std::move(inode)), keep_(keep) {}
  ~MemTempFile() override {
    if (installed_ || keep_) return;
    absl::MutexLock l(&fs_->mu_);
    auto it = fs_->names_.find(key_);
    if (it != fs_->names_.end() && it->second == inode_) fs_->names_.erase(it);
    auto d = fs_->durable_names_.find(key_);
    if (d != fs_->durable_names_.end() && d->second == inode_) fs_->durable_names_.erase(d);
  }

  absl::Status Append(absl::string_view data) override {
    absl::MutexLock l(&fs_->mu_);
    if (fs_->Dead()) return absl::UnavailableError("power cut");
    if (fs_->full_) return absl::ResourceExhaustedError(absl::StrCat("write temp ", key_.substr(1), ": No space left on device"));
    inode_->data.append(data.data(), data.size());
    inode_->mtime_ns = inode_->ctime_ns = fs_->NowNs();
    return absl::OkStatus();
  }
  absl::Status Finish(uint32_t mode, int64_t mtime_ns, bool sync) override {
    absl::MutexLock l(&fs_->mu_);
    if (fs_->Dead()) return absl::UnavailableError("power cut");
    inode_->mode = mode & 07777;
    inode_->mtime_ns = mtime_ns;
    inode_->ctime_ns = fs_->NowNs();
    if (sync && !fs_->ignore_fsync_) inode_->durable_data = inode_->data;
    return absl::OkStatus();
  }
  absl::StatusOr<LocalStat> Rename(const std::string& path, bool sync_dir) override {
    absl::MutexLock l(&fs_->mu_);
    if (fs_->Dead()) return absl::UnavailableError("power cut");
    const std::string parent = Parent(path);
    if (!parent.empty()) {
      std::shared_ptr<MemFilesystem::Inode> p = fs_->Lookup(parent);
      if (p == nullptr) return absl::NotFoundError(absl::StrCat("rename into place ", path, ": no directory"));
      if (!p->dir) return absl::FailedPreconditionError(absl::StrCat("rename into place ", path, ": not a directory"));
    }
    std::shared_ptr<MemFilesystem::Inode> old = fs_->Lookup(path);
    if (old != nullptr && old->dir) return absl::FailedPreconditionError(absl::StrCat("rename into place ", path, ": is a directory"));
    fs_->names_.erase(key_);
    fs_->names_[path] = inode_;
    inode_->ctime_ns = fs_->NowNs();
    installed_ = true;
    if (sync_dir && !fs_->ignore_fsync_) {
      fs_->durable_names_.erase(key_);
      fs_->durable_names_[path] = inode_;
    }
    return fs_->StatOf(*inode_);
  }
  absl::Status ReadBack(uint64_t offset, size_t n, std::string* out) override {
    absl::MutexLock l(&fs_->mu_);
    *out = offset >= inode_->data.size() ? std::string() : inode_->data.substr(offset, n);
    return absl::OkStatus();
  }
  absl::Status Truncate(uint64_t bytes) override {
    absl::MutexLock l(&fs_->mu_);
    if (fs_->Dead()) return absl::UnavailableError("power cut");
    if (bytes < inode_->data.size()) inode_->data.resize(bytes);
    return absl::OkStatus();
  }

 private:
  MemFilesystem* const fs_;
  const std::string key_;
  const std::shared_ptr<MemFilesystem::Inode> inode_;
  const bool keep_;
  bool installed_ = false;
};

MemFilesystem::MemFilesystem(Clock* clock) : clock_(clock) {}

std::shared_ptr<MemFilesystem::Inode> MemFilesystem::NewInode(bool dir) {
  auto inode = std::make_shared<Inode>();
  inode->dir = dir;
  inode->mode = dir ? 0755 : 0644;
  inode->ino = next_ino_++;
  inode->mtime_ns = inode->ctime_ns = NowNs();
  return inode;
}

std::shared_ptr<MemFilesystem::Inode> MemFilesystem::Lookup(const std::string& path) {
  if (path.empty()) return nullptr;
  // Every directory on the way must be a directory.
  for (size_t slash = path.find('/'); slash != std::string::npos; slash = path.find('/', slash + 1)) {
    auto it = names_.find(path.substr(0, slash));
    if (it == names_.end() || !it->second->dir) return nullptr;
  }
  auto it = names_.find(path);
  return it == names_.end() ? nullptr : it->second;
}

LocalStat MemFilesystem::StatOf(const Inode& inode) const {
  LocalStat s;
  s.exists = true;
  s.kind = inode.dir ? FileKind::kDirectory : FileKind::kFile;
  s.size = inode.dir ? 0 : inode.data.size();
  s.mtime_ns = inode.mtime_ns;
  s.ctime_ns = inode.ctime_ns;
  s.inode = inode.ino;
  s.mode = inode.mode;
  return s;
}

absl::Status MemFilesystem::Walk(const std::string& under,
                                 const std::function<void(const std::string&, const LocalStat&)>& fn) {
  std::vector<std::pair<std::string, LocalStat>> found;
  {
    absl::MutexLock l(&mu_);
    if (!under.empty()) {
      std::shared_ptr<Inode> top = Lookup(under);
      if (top == nullptr || !top->dir) return absl::NotFoundError(absl::StrCat("no directory ", under));
    }
    // As LocalFilesystem: every path below `under` in byte order (the map's).
    ForEachBelow(names_, under, [&](Names::iterator it) {
      if (ValidateRelativePath(it->first).ok()) found.emplace_back(it->first, StatOf(*it->second));
    });
  }
  for (const auto& [path, st] : found) fn(path, st);
  return absl::OkStatus();
}

absl::StatusOr<LocalStat> MemFilesystem::Stat(const std::string& path) {
  absl::MutexLock l(&mu_);
  std::shared_ptr<Inode> inode = Lookup(path);
  if (inode == nullptr) return LocalStat{};
  return StatOf(*inode);
}

absl::StatusOr<std::unique_ptr<ReadableFile>> MemFilesystem::OpenRead(const std::string& path) {
  absl::MutexLock l(&mu_);
  std::shared_ptr<Inode> inode = Lookup(path);
  if (inode == nullptr) return absl::NotFoundError(absl::StrCat("open ", path, ": No such file or directory"));
  if (inode->dir) return absl::FailedPreconditionError(absl::StrCat("open ", path, ": Is a directory"));
  return std::unique_ptr<ReadableFile>(new MemReadableFile(&mu_, inode));
}

absl::StatusOr<std::unique_ptr<TempFile>> MemFilesystem::CreateTemp() {
  absl::MutexLock l(&mu_);
  const std::string key = absl::StrCat(kTempPrefix, "t-", next_temp_++);
  std::shared_ptr<Inode> inode = NewInode(false);
  inode->mode = 0600;
  names_[key] = inode;
  return std::unique_ptr<TempFile>(new MemTempFile(this, key, inode, /*keep=*/false));
}

absl::StatusOr<std::unique_ptr<TempFile>> MemFilesystem::OpenPartial(const std::string& key, uint64_t* existing_bytes) {
  if (key.size() != 64 || key.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return absl::InvalidArgumentError("a partial download is named by 64 hex digits");
  }
  absl::MutexLock l(&mu_);
  const std::string name = kPartialPrefix + key;
  std::shared_ptr<Inode>& inode = names_[name];
  if (inode == nullptr) {
    inode = NewInode(false);
    inode->mode = 0600;
  }
  *existing_bytes = inode->data.size();
  return std::unique_ptr<TempFile>(new MemTempFile(this, name, inode, /*keep=*/true));
}

absl::Status MemFilesystem::MakeDirsLocked(const std::string& path, bool durable) {
  std::string so_far;
  for (absl::string_view part : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    so_far = so_far.empty() ? std::string(part) : absl::StrCat(so_far, "/", part);
    auto it = names_.find(so_far);
    if (it != names_.end()) {
      if (!it->second->dir) {
        return absl::FailedPreconditionError(
            absl::StrCat("cannot create directory ", path, ": '", part, "' is a file or symlink"));
      }
      continue;
    }
    if (full_) return absl::ResourceExhaustedError(absl::StrCat("create directory ", path, ": No space left on device"));
    std::shared_ptr<Inode> dir = NewInode(true);
    names_[so_far] = dir;
    if (durable) durable_names_[so_far] = dir;
  }
  return absl::OkStatus();
}

absl::Status MemFilesystem::MakeDirs(const std::string& path) {
  absl::MutexLock l(&mu_);
  if (Dead()) return absl::UnavailableError("power cut");
  // LocalFilesystem fsyncs the parent of each directory it creates.
  return MakeDirsLocked(path, !ignore_fsync_);
}

absl::Status MemFilesystem::Remove(const std::string& path) {
  absl::MutexLock l(&mu_);
  if (Dead()) return absl::UnavailableError("power cut");
  std::shared_ptr<Inode> inode = Lookup(path);
  if (inode == nullptr) return absl::OkStatus();
  if (inode->dir) {
    bool empty = true;
    ForEachBelow(names_, path, [&](Names::iterator) { empty = false; });
    if (!empty) return absl::FailedPreconditionError(absl::StrCat("remove directory ", path, ": Directory not empty"));
  }
  names_.erase(path);
  return absl::OkStatus();
}

absl::Status MemFilesystem::Rename(const std::string& from, const std::string& to) {
  absl::MutexLock l(&mu_);
  if (Dead()) return absl::UnavailableError("power cut");
  std::shared_ptr<Inode> inode = Lookup(from);
  if (inode == nullptr) return absl::NotFoundError(absl::StrCat("rename ", from, " to ", to, ": No such file or directory"));
  if (Lookup(to) != nullptr) return absl::AlreadyExistsError(absl::StrCat("rename ", from, " to ", to, ": File exists"));
  const std::string parent = Parent(to);
  if (!parent.empty()) {
    std::shared_ptr<Inode> p = Lookup(parent);
    if (p == nullptr || !p->dir) return absl::NotFoundError(absl::StrCat("rename ", from, " to ", to, ": no directory"));
  }
  // Renames are atomic, and durable with the target directory's fsync (as LocalFilesystem does).
  for (Names* names : {&names_, ignore_fsync_ ? nullptr : &durable_names_}) {
    if (names == nullptr) continue;
    std::vector<std::pair<std::string, std::shared_ptr<Inode>>> moved;
    auto it = names->find(from);
    if (it == names->end()) continue;
    moved.emplace_back(to, it->second);
    names->erase(it);
    std::vector<std::string> below;
    ForEachBelow(*names, from, [&](Names::iterator b) { below.push_back(b->first); });
    for (const std::string& b : below) {
      moved.emplace_back(to + b.substr(from.size()), (*names)[b]);
      names->erase(b);
    }
    for (auto& [k, v] : moved) (*names)[k] = v;
  }
  inode->ctime_ns = NowNs();
  return absl::OkStatus();
}

absl::StatusOr<LocalStat> MemFilesystem::SetMetadata(const std::string& path, uint32_t mode, int64_t mtime_ns,
                                                     const std::vector<Xattr>* xattrs) {
  if (xattrs != nullptr && !xattrs->empty()) return absl::UnimplementedError("no extended attributes here");
  absl::MutexLock l(&mu_);
  if (Dead()) return absl::UnavailableError("power cut");
  std::shared_ptr<Inode> inode = Lookup(path);
  if (inode == nullptr) return absl::NotFoundError(absl::StrCat("set metadata of ", path, ": No such file"));
  if (inode->dir) return absl::FailedPreconditionError(absl::StrCat(path, " is not a regular file"));
  inode->mode = mode & 0777;
  inode->mtime_ns = mtime_ns;
  inode->ctime_ns = NowNs();
  return StatOf(*inode);
}

absl::Status MemFilesystem::SyncAll() {
  absl::MutexLock l(&mu_);
  if (Dead()) return absl::UnavailableError("power cut");
  if (ignore_fsync_) return absl::OkStatus();
  durable_names_ = names_;
  for (auto& [name, inode] : names_) inode->durable_data = inode->data;
  return absl::OkStatus();
}

void MemFilesystem::SyncDirLocked(const std::string& dir) {
  auto direct = [&](const std::string& key) {
    const std::string rest = dir.empty() ? key : key.substr(dir.size() + 1);
    return rest.find('/') == std::string::npos;
  };
  std::vector<std::string> gone;
  ForEachBelow(durable_names_, dir, [&](Names::iterator it) {
    if (direct(it->first) && names_.find(it->first) == names_.end()) gone.push_back(it->first);
  });
  for (const std::string& g : gone) durable_names_.erase(g);
  ForEachBelow(names_, dir, [&](Names::iterator it) {
    if (direct(it->first)) durable_names_[it->first] = it->second;
  });
}

absl::Status MemFilesystem::SyncDir(const std::string& path) {
  absl::MutexLock l(&mu_);
  if (Dead()) return absl::UnavailableError("power cut");
  if (!path.empty() && (Lookup(path) == nullptr || !Lookup(path)->dir)) {
    return absl::NotFoundError(absl::StrCat("fsync directory ", path, ": no directory"));
  }
  if (!ignore_fsync_) SyncDirLocked(path);
  return absl::OkStatus();
}

absl::Status MemFilesystem::RootIntact() {
  absl::MutexLock l(&mu_);
  if (!marker_) return absl::FailedPreconditionError("marker is missing (unmounted disk?): not syncing the folder");
  return absl::OkStatus();
}

absl::Status MemFilesystem::UserWrite(const std::string& path, const std::string& content) {
  absl::MutexLock l(&mu_);
  absl::Status made = MakeDirsLocked(Parent(path), /*durable=*/true);
  if (!made.ok()) return made;
  std::shared_ptr<Inode> inode = Lookup(path);
  if (inode != nullptr && inode->dir) return absl::FailedPreconditionError(absl::StrCat(path, " is a directory"));
  if (inode == nullptr) inode = NewInode(false);
  inode->data = inode->durable_data = content;
  inode->mtime_ns = inode->ctime_ns = NowNs();
  names_[path] = durable_names_[path] = inode;
  return absl::OkStatus();
}

absl::Status MemFilesystem::UserTouch(const std::string& path, int64_t mtime_ns) {
  absl::MutexLock l(&mu_);
  std::shared_ptr<Inode> inode = Lookup(path);
  if (inode == nullptr || inode->dir) return absl::NotFoundError(absl::StrCat(path, " is not a file"));
  inode->mtime_ns = mtime_ns;
  inode->ctime_ns = NowNs();
  return absl::OkStatus();
}

absl::Status MemFilesystem::UserMkdir(const std::string& path) {
  absl::MutexLock l(&mu_);
  return MakeDirsLocked(path, /*durable=*/true);
}

absl::Status MemFilesystem::UserRemove(const std::string& path) {
  absl::MutexLock l(&mu_);
  for (Names* names : {&names_, &durable_names_}) {
    std::vector<std::string> below = {path};
    ForEachBelow(*names, path, [&](Names::iterator it) { below.push_back(it->first); });
    for (const std::string& b : below) names->erase(b);
  }
  return absl::OkStatus();
}

absl::Status MemFilesystem::UserRename(const std::string& from, const std::string& to) {
  {
    absl::MutexLock l(&mu_);
    const std::string parent = Parent(to);
    if (!parent.empty()) {
      absl::Status made = MakeDirsLocked(parent, /*durable=*/true);
      if (!made.ok()) return made;
    }
  }
  absl::Status s = Rename(from, to);
  if (!s.ok()) return s;
  absl::MutexLock l(&mu_);
  // Durable at once, wherever it was.
  for (auto& [k, v] : names_) {
    if (k == to || absl::StartsWith(k, to + "/")) durable_names_[k] = v;
  }
  durable_names_.erase(from);
  std::vector<std::string> below;
  ForEachBelow(durable_names_, from, [&](Names::iterator it) { below.push_back(it->first); });
  for (const std::string& b : below) durable_names_.erase(b);
  return absl::OkStatus();
}

void MemFilesystem::SetMarkerPresent(bool present) {
  absl::MutexLock l(&mu_);
  marker_ = present;
}

absl::StatusOr<std::string> MemFilesystem::SetAside(const std::string& path, const std::string& bin) {
  absl::MutexLock l(&mu_);
  if (Dead()) return absl::UnavailableError("power cut");
  if (Lookup(path) == nullptr) return absl::NotFoundError(absl::StrCat(path, ": nothing there to set aside"));
  std::vector<std::string> moved = {path};
  ForEachBelow(names_, path, [&](Names::iterator it) { moved.push_back(it->first); });
  for (const std::string& k : moved) {
    aside_[absl::StrCat(bin, "/", k)] = names_[k];
    names_.erase(k);
    durable_names_.erase(k);
  }
  return absl::StrCat("aside/", bin, "/", path);
}

std::map<std::string, std::string> MemFilesystem::SetAsideSnapshot() {
  absl::MutexLock l(&mu_);
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : aside_) out[k] = v->dir ? "/" : v->data;
  return out;
}

std::map<std::string, std::string> MemFilesystem::Snapshot() {
  absl::MutexLock l(&mu_);
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : names_) {
    if (IsTemp(k) || Lookup(k) == nullptr) continue;
    out[k] = v->dir ? "/" : v->data;
  }
  return out;
}

void MemFilesystem::PowerCut() {
  absl::MutexLock l(&mu_);
  names_ = durable_names_;
  // An entry whose directory did not survive is gone with it.
  std::vector<std::string> orphans;
  for (const auto& [k, v] : names_) {
    if (IsTemp(k)) {
      // Temp files are dropped when the engine starts again; synced partial downloads stay.
      if (!absl::StartsWith(k, kPartialPrefix)) orphans.push_back(k);
      continue;
    }
    if (Lookup(k) == nullptr) orphans.push_back(k);
  }
  for (const std::string& k : orphans) names_.erase(k);
  for (auto& [k, v] : names_) v->data = v->durable_data;
  durable_names_ = names_;
  mutations_left_ = -1;
}

void MemFilesystem::FailAfter(int64_t mutations) {
  absl::MutexLock l(&mu_);
  mutations_left_ = mutations;
}

void MemFilesystem::set_ignore_fsync(bool ignore) {
  absl::MutexLock l(&mu_);
  ignore_fsync_ = ignore;
}

void MemFilesystem::set_full(bool full) {
  absl::MutexLock l(&mu_);
  full_ = full;
}

}  // namespace converge::engine
