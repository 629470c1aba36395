#include "services/store/pack_files.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/base/rocksdb_status.h"

namespace converge::store {
namespace {

constexpr absl::string_view kSuffix = ".pack";

rocksdb::EnvOptions WriteOptions() {
  rocksdb::EnvOptions o;
  o.use_mmap_writes = false;  // write(2) from the caller's bytes; no mapping to fault in
  o.use_direct_writes = false;
  return o;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PackFiles>> PackFiles::Open(rocksdb::Env* env, const std::string& dir) {
  if (env == nullptr) env = rocksdb::Env::Default();
  absl::Status made = FromRocksStatus(env->CreateDirIfMissing(dir), absl::StrCat("make pack folder ", dir));
  if (!made.ok()) return made;
  std::unique_ptr<PackFiles> packs(new PackFiles(env, dir, 1));
  absl::StatusOr<std::vector<uint64_t>> ids = packs->Packs();
  if (!ids.ok()) return ids.status();
  uint64_t next = 1;
  for (uint64_t id : *ids) next = std::max(next, id + 1);
  absl::MutexLock lock(&packs->mu_);
  packs->next_id_ = next;
  return packs;
}

PackFiles::~PackFiles() {
  absl::MutexLock lock(&mu_);
  for (std::unique_ptr<Writer>& w : idle_) w->file->Close().PermitUncheckedError();
}

std::string PackFiles::PathOf(uint64_t id) const { return absl::StrCat(dir_, "/", id, kSuffix); }

absl::StatusOr<std::vector<uint64_t>> PackFiles::Packs() {
  std::vector<std::string> names;
  absl::Status listed = FromRocksStatus(env_->GetChildren(dir_, &names), absl::StrCat("list packs in ", dir_));
  if (!listed.ok()) return listed;
  std::vector<uint64_t> ids;
  for (absl::string_view name : names) {
    uint64_t id = 0;
    if (absl::ConsumeSuffix(&name, kSuffix) && absl::SimpleAtoi(name, &id) && id > 0) ids.push_back(id);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

uint64_t PackFiles::Bytes() {
  absl::StatusOr<std::vector<uint64_t>> ids = Packs();
  if (!ids.ok()) return 0;
  uint64_t total = 0;
  for (uint64_t id : *ids) {
    uint64_t size = 0;
    if (env_->GetFileSize(PathOf(id), &size).ok()) total += size;
  }
  return total;
}

absl::StatusOr<std::unique_ptr<PackFiles::Writer>> PackFiles::TakeWriter() {
  auto w = std::make_unique<Writer>();
  {
    absl::MutexLock lock(&mu_);
    if (!idle_.empty()) {
      std::unique_ptr<Writer> idle = std::move(idle_.back());
      idle_.pop_back();
      return idle;
    }
    w->id = next_id_++;
    writing_.insert(w->id);
  }
  rocksdb::Status s = env_->NewWritableFile(PathOf(w->id), &w->file, WriteOptions());
  if (!s.ok()) {
    absl::MutexLock lock(&mu_);
    writing_.erase(w->id);
    return FromRocksStatus(s, absl::StrCat("create pack ", PathOf(w->id)));
  }
  return w;
}

void PackFiles::GiveBack(std::unique_ptr<Writer> w) {
  if (w->size >= kPackBytes) {
    w->file->Close().PermitUncheckedError();  // sealed: its bytes are already durable
    absl::MutexLock lock(&mu_);
    writing_.erase(w->id);
    return;
  }
  absl::MutexLock lock(&mu_);
  idle_.push_back(std::move(w));
}

absl::StatusOr<std::vector<PackPlace>> PackFiles::Append(const std::vector<absl::string_view>& pieces) {
  absl::StatusOr<std::unique_ptr<Writer>> taken = TakeWriter();
  if (!taken.ok()) return taken.status();
  std::unique_ptr<Writer> w = std::move(*taken);
  std::vector<PackPlace> places;
  places.reserve(pieces.size());
  rocksdb::Status s;
  for (absl::string_view piece : pieces) {
    s = w->file->Append(rocksdb::Slice(piece.data(), piece.size()));
    if (!s.ok()) break;
    places.push_back(PackPlace{w->id, w->size, piece.size()});
    w->size += piece.size();
  }
  if (s.ok()) s = w->file->Sync();
  if (s.ok() && w->fresh) {
    std::unique_ptr<rocksdb::Directory> folder;
    s = env_->NewDirectory(dir_, &folder);
    if (s.ok()) s = folder->Fsync();
    if (s.ok()) w->fresh = false;
  }
  if (!s.ok()) {
    // Where the file ends is now unknown: the writer is dropped, and its pack written no more.
    w->file->Close().PermitUncheckedError();
    absl::MutexLock lock(&mu_);
    writing_.erase(w->id);
    return FromRocksStatus(s, absl::StrCat("write pack ", PathOf(w->id)));
  }
  {
    absl::MutexLock lock(&mu_);
    ++pinned_[w->id];
  }
  GiveBack(std::move(w));
  return places;
}

void PackFiles::Unpin(uint64_t id) {
  absl::MutexLock lock(&mu_);
  auto it = pinned_.find(id);
  if (it != pinned_.end() && --it->second <= 0) pinned_.erase(it);
}

absl::StatusOr<std::shared_ptr<rocksdb::RandomAccessFile>> PackFiles::Reader(uint64_t id) {
  {
    absl::MutexLock lock(&mu_);
    auto it = readers_.find(id);
    if (it != readers_.end()) return it->second;
  }
  std::unique_ptr<rocksdb::RandomAccessFile> file;
  rocksdb::Status s = env_->NewRandomAccessFile(PathOf(id), &file, rocksdb::EnvOptions());
  if (!s.ok()) return absl::DataLossError(absl::StrCat("pack ", PathOf(id), " cannot be opened: ", s.ToString()));
  std::shared_ptr<rocksdb::RandomAccessFile> shared(std::move(file));
  absl::MutexLock lock(&mu_);
  return readers_.emplace(id, std::move(shared)).first->second;
}

absl::StatusOr<std::string> PackFiles::Read(const PackPlace& at) {
  absl::StatusOr<std::shared_ptr<rocksdb::RandomAccessFile>> file = Reader(at.pack);
  if (!file.ok()) return file.status();
  std::string out;
  out.resize(at.length);
  rocksdb::Slice got;
  rocksdb::Status s = (*file)->Read(at.offset, at.length, &got, out.data());
  if (!s.ok()) return FromRocksStatus(s, absl::StrCat("read pack ", PathOf(at.pack)));
  if (got.size() != at.length) {
    return absl::DataLossError(absl::StrCat("pack ", PathOf(at.pack), " ends before ", at.offset + at.length));
  }
  if (got.data() != out.data()) memcpy(out.data(), got.data(), got.size());
  return out;
}

void PackFiles::Release(const PackPlace& at) {
  if (env_ != rocksdb::Env::Default() || at.length == 0) return;
  const int fd = open(PathOf(at.pack).c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return;
  // Best effort: a filesystem without hole punching keeps the space until the pack goes.
  (void)fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(at.offset),
                  static_cast<off_t>(at.length));
  close(fd);
}

bool PackFiles::Delete(uint64_t id) {
  {
    absl::MutexLock lock(&mu_);
    if (writing_.contains(id) || pinned_.contains(id)) return false;
    readers_.erase(id);
  }
  env_->DeleteFile(PathOf(id)).PermitUncheckedError();  // already gone after a crash: fine
  return true;
}

}  // namespace converge::store
