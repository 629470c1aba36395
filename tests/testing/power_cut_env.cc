#include "tests/testing/power_cut_env.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace converge {

// What the filesystem knows of one file it saw written: its length, and how much of it is
// durable. Directory entries (creates, renames, deletes) are taken as durable at once: only
// file data is dropped by a cut (RocksDB syncs its directories after creating files anyway).
struct TrackedState {
  uint64_t size = 0;
  uint64_t synced = 0;
};

class PowerCutFileSystem : public rocksdb::FileSystemWrapper {
 public:
  explicit PowerCutFileSystem(const std::shared_ptr<rocksdb::FileSystem>& base) : FileSystemWrapper(base) {}
  const char* Name() const override { return "PowerCutFileSystem"; }

  bool IsCut() {
    absl::MutexLock l(&mu_);
    return cut_;
  }
  void Cut() {
    absl::MutexLock l(&mu_);
    cut_ = true;
  }
  void Appended(const std::string& f, uint64_t end) {
    absl::MutexLock l(&mu_);
    TrackedState& s = files_[f];
    s.size = std::max(s.size, end);
  }
  void Truncated(const std::string& f, uint64_t size) {
    absl::MutexLock l(&mu_);
    TrackedState& s = files_[f];
    s.size = size;
    s.synced = std::min(s.synced, size);
  }
  void Synced(const std::string& f) {
    absl::MutexLock l(&mu_);
    TrackedState& s = files_[f];
    s.synced = s.size;
  }

  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r, rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& options,
                                       std::unique_ptr<rocksdb::FSWritableFile>* r,
                                       rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReuseWritableFile(const std::string& f, const std::string& old, const rocksdb::FileOptions& options,
                                      std::unique_ptr<rocksdb::FSWritableFile>* r,
                                      rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = RenameFile(old, f, rocksdb::IOOptions(), dbg);
    if (!s.ok()) return s;
    return NewWritableFile(f, options, r, dbg);
  }
  rocksdb::IOStatus RenameFile(const std::string& src, const std::string& dst, const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override {
    if (IsCut()) return Dead();
    rocksdb::IOStatus s = target()->RenameFile(src, dst, options, dbg);
    if (!s.ok()) return s;
    absl::MutexLock l(&mu_);
    auto it = files_.find(src);
    if (it != files_.end()) {
      files_[dst] = it->second;
      files_.erase(it);
    } else {
      files_.erase(dst);
    }
    return s;
  }
  rocksdb::IOStatus LinkFile(const std::string& src, const std::string& dst, const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override {
    if (IsCut()) return Dead();
    return target()->LinkFile(src, dst, options, dbg);
  }
  rocksdb::IOStatus DeleteFile(const std::string& f, const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override {
    if (IsCut()) return Dead();
    rocksdb::IOStatus s = target()->DeleteFile(f, options, dbg);
    absl::MutexLock l(&mu_);
    files_.erase(f);
    return s;
  }
  rocksdb::IOStatus CreateDir(const std::string& d, const rocksdb::IOOptions& options,
                              rocksdb::IODebugContext* dbg) override {
    if (IsCut()) return Dead();
    return target()->CreateDir(d, options, dbg);
  }
  rocksdb::IOStatus CreateDirIfMissing(const std::string& d, const rocksdb::IOOptions& options,
                                       rocksdb::IODebugContext* dbg) override {
    if (IsCut()) return Dead();
    return target()->CreateDirIfMissing(d, options, dbg);
  }
  rocksdb::IOStatus DeleteDir(const std::string& d, const rocksdb::IOOptions& options,
                              rocksdb::IODebugContext* dbg) override {
    if (IsCut()) return Dead();
    return target()->DeleteDir(d, options, dbg);
  }

  absl::Status Recover(uint64_t* dropped) {
    absl::MutexLock l(&mu_);
    for (auto& [name, state] : files_) {
      if (state.synced >= state.size) continue;
      std::string kept;
      {
        std::unique_ptr<rocksdb::FSSequentialFile> in;
        rocksdb::IOStatus s = target()->NewSequentialFile(name, rocksdb::FileOptions(), &in, nullptr);
        if (!s.ok()) continue;  // deleted meanwhile
        kept.resize(state.synced);
        rocksdb::Slice got;
        s = in->Read(state.synced, rocksdb::IOOptions(), &got, kept.data(), nullptr);
        if (!s.ok()) return absl::InternalError(absl::StrCat("power cut: read ", name, ": ", s.ToString()));
        kept.assign(got.data(), got.size());
      }
      std::unique_ptr<rocksdb::FSWritableFile> out;
      rocksdb::IOStatus s = target()->NewWritableFile(name, rocksdb::FileOptions(), &out, nullptr);
      if (s.ok()) s = out->Append(kept, rocksdb::IOOptions(), nullptr);
      if (s.ok()) s = out->Sync(rocksdb::IOOptions(), nullptr);
      if (s.ok()) s = out->Close(rocksdb::IOOptions(), nullptr);
      if (!s.ok()) return absl::InternalError(absl::StrCat("power cut: truncate ", name, ": ", s.ToString()));
      *dropped += state.size - kept.size();
      state.size = state.synced = kept.size();
    }
    cut_ = false;
    return absl::OkStatus();
  }

  static rocksdb::IOStatus Dead() { return rocksdb::IOStatus::IOError("power cut"); }

 private:
  absl::Mutex mu_;
  bool cut_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, TrackedState> files_ ABSL_GUARDED_BY(mu_);
};

namespace {

// A writable file that reports its appends and syncs to the filesystem, and fails after a cut.
class TrackedFile : public rocksdb::FSWritableFileWrapper {
 public:
  TrackedFile(PowerCutFileSystem* fs, std::string name, std::unique_ptr<rocksdb::FSWritableFile> file, uint64_t size)
      : FSWritableFileWrapper(file.get()), fs_(fs), name_(std::move(name)), owned_(std::move(file)), size_(size) {}

  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* dbg) override {
    if (fs_->IsCut()) return PowerCutFileSystem::Dead();
    rocksdb::IOStatus s = target()->Append(data, options, dbg);
    if (s.ok()) Grow(size_ + data.size());
    return s;
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                           const rocksdb::DataVerificationInfo& info, rocksdb::IODebugContext* dbg) override {
    if (fs_->IsCut()) return PowerCutFileSystem::Dead();
    rocksdb::IOStatus s = target()->Append(data, options, info, dbg);
    if (s.ok()) Grow(size_ + data.size());
    return s;
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset, const rocksdb::IOOptions& options,
                                     rocksdb::IODebugContext* dbg) override {
    if (fs_->IsCut()) return PowerCutFileSystem::Dead();
    rocksdb::IOStatus s = target()->PositionedAppend(data, offset, options, dbg);
    if (s.ok()) Grow(offset + data.size());
    return s;
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset, const rocksdb::IOOptions& options,
                                     const rocksdb::DataVerificationInfo& info, rocksdb::IODebugContext* dbg) override {
    if (fs_->IsCut()) return PowerCutFileSystem::Dead();
    rocksdb::IOStatus s = target()->PositionedAppend(data, offset, options, info, dbg);
    if (s.ok()) Grow(offset + data.size());
    return s;
  }
  rocksdb::IOStatus Truncate(uint64_t size, const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
    if (fs_->IsCut()) return PowerCutFileSystem::Dead();
    rocksdb::IOStatus s = target()->Truncate(size, options, dbg);
    if (s.ok()) {
      size_ = size;
      fs_->Truncated(name_, size);
    }
    return s;
  }
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
    if (fs_->IsCut()) return PowerCutFileSystem::Dead();
    rocksdb::IOStatus s = target()->Sync(options, dbg);
    if (s.ok()) fs_->Synced(name_);
    return s;
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
    if (fs_->IsCut()) return PowerCutFileSystem::Dead();
    rocksdb::IOStatus s = target()->Fsync(options, dbg);
    if (s.ok()) fs_->Synced(name_);
    return s;
  }
  rocksdb::IOStatus RangeSync(uint64_t, uint64_t, const rocksdb::IOOptions&, rocksdb::IODebugContext*) override {
    // sync_file_range makes no promise of durability: nothing is marked synced.
    if (fs_->IsCut()) return PowerCutFileSystem::Dead();
    return rocksdb::IOStatus::OK();
  }
  rocksdb::IOStatus Flush(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
    if (fs_->IsCut()) return PowerCutFileSystem::Dead();
    return target()->Flush(options, dbg);
  }
  rocksdb::IOStatus Close(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->Close(options, dbg);
    if (fs_->IsCut()) return PowerCutFileSystem::Dead();
    return s;
  }

 private:
  void Grow(uint64_t end) {
    size_ = std::max(size_, end);
    fs_->Appended(name_, end);
  }
  PowerCutFileSystem* const fs_;
  const std::string name_;
  std::unique_ptr<rocksdb::FSWritableFile> owned_;
  uint64_t size_;
};

}  // namespace

rocksdb::IOStatus PowerCutFileSystem::NewWritableFile(const std::string& f, const rocksdb::FileOptions& options,
                                                      std::unique_ptr<rocksdb::FSWritableFile>* r,
                                                      rocksdb::IODebugContext* dbg) {
  if (IsCut()) return Dead();
  std::unique_ptr<rocksdb::FSWritableFile> file;
  rocksdb::IOStatus s = target()->NewWritableFile(f, options, &file, dbg);
  if (!s.ok()) return s;
  {
    absl::MutexLock l(&mu_);
    files_[f] = TrackedState{};
  }
  *r = std::make_unique<TrackedFile>(this, f, std::move(file), 0);
  return s;
}

rocksdb::IOStatus PowerCutFileSystem::ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& options,
                                                         std::unique_ptr<rocksdb::FSWritableFile>* r,
                                                         rocksdb::IODebugContext* dbg) {
  if (IsCut()) return Dead();
  uint64_t size = 0;
  if (!target()->GetFileSize(f, rocksdb::IOOptions(), &size, dbg).ok()) size = 0;
  std::unique_ptr<rocksdb::FSWritableFile> file;
  rocksdb::IOStatus s = target()->ReopenWritableFile(f, options, &file, dbg);
  if (!s.ok()) return s;
  {
    absl::MutexLock l(&mu_);
    auto it = files_.find(f);
    if (it == files_.end()) files_[f] = TrackedState{size, size};  // older than us: durable
  }
  *r = std::make_unique<TrackedFile>(this, f, std::move(file), size);
  return s;
}

PowerCutEnv::PowerCutEnv(rocksdb::Env* base) {
  if (base == nullptr) {
    mem_.reset(rocksdb::NewMemEnv(rocksdb::Env::Default()));
    base = mem_.get();
  }
  fs_ = std::make_shared<PowerCutFileSystem>(base->GetFileSystem());
  env_ = rocksdb::NewCompositeEnv(fs_);
}

PowerCutEnv::~PowerCutEnv() = default;

void PowerCutEnv::Cut() { fs_->Cut(); }

absl::Status PowerCutEnv::Recover() {
  uint64_t dropped = 0;
  absl::Status s = fs_->Recover(&dropped);
  ++cuts_;
  bytes_dropped_ += dropped;
  return s;
}

uint64_t PowerCutEnv::cuts() const { return cuts_.load(); }
uint64_t PowerCutEnv::bytes_dropped() const { return bytes_dropped_.load(); }

}  // namespace converge
