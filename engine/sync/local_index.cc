#include "engine/sync/local_index.h"

#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include "absl/strings/str_cat.h"
#include "common/base/coding.h"
#include "common/base/logging.h"
#include "common/base/rocksdb_status.h"
#include "common/base/status_macros.h"

namespace converge::engine {
namespace {

constexpr char kCursorKey[] = "m:cursor";
constexpr uint64_t kCompactAfterDeletions = 20000;

// Live entries under "p:", tombstones under "t:", chunk locations under "k:" + digest.
std::string PathKey(absl::string_view path) { return absl::StrCat("p:", path); }
std::string ChunkKey(const Digest& d) { return absl::StrCat("k:", DigestToBytes(d)); }
std::string TombstoneKey(absl::string_view path) { return absl::StrCat("t:", path); }
std::string SettingKey(absl::string_view name) { return absl::StrCat("s:", name); }
std::string IntentKey(absl::string_view path) { return absl::StrCat("n:", path); }
// A marker per entry recorded as not applied (its value empty).
std::string NotAppliedKey(absl::string_view path) { return absl::StrCat("x:", path); }
std::string InodeKey(uint64_t inode) {
  std::string k = "i:";
  PutFixed64BE(&k, inode);
  return k;
}

absl::Status Rocks(const rocksdb::Status& s, absl::string_view what) { return FromRocksStatus(s, what); }

// An entry's flags.
constexpr uint64_t kNotApplied = 1;

std::string EncodeEntry(const IndexEntry& e) {
  std::string out;
  PutLengthPrefixed(&out, EncodeFileVersion(e.version));
  PutVarint64(&out, e.local.exists ? 1 : 0);
  PutVarint64(&out, static_cast<uint64_t>(e.local.kind));
  PutVarint64(&out, e.local.size);
  PutVarint64(&out, static_cast<uint64_t>(e.local.mtime_ns));
  PutVarint64(&out, static_cast<uint64_t>(e.local.ctime_ns));
  PutVarint64(&out, e.local.inode);
  PutVarint64(&out, e.local.mode);
  PutVarint64(&out, static_cast<uint64_t>(e.recorded_at_ns));
  if (e.not_applied) PutVarint64(&out, kNotApplied);  // flags: absent in entries written before them
  return out;
}

absl::StatusOr<IndexEntry> DecodeEntry(absl::string_view bytes) {
  Decoder d(bytes);
  absl::string_view version;
  uint64_t exists, kind, mtime, ctime, mode, at;
  IndexEntry e;
  if (!d.GetLengthPrefixed(&version) || !d.GetVarint64(&exists) || !d.GetVarint64(&kind) ||
      !d.GetVarint64(&e.local.size) || !d.GetVarint64(&mtime) || !d.GetVarint64(&ctime) ||
      !d.GetVarint64(&e.local.inode) || !d.GetVarint64(&mode) || !d.GetVarint64(&at)) {
    return absl::DataLossError("corrupt index entry");
  }
  uint64_t flags = 0;
  if (!d.done() && (!d.GetVarint64(&flags) || !d.done() || (flags & ~kNotApplied) != 0)) {
    return absl::DataLossError("corrupt index entry");
  }
  e.not_applied = (flags & kNotApplied) != 0;
  CONVERGE_ASSIGN_OR_RETURN(e.version, DecodeFileVersion(version));
  e.local.exists = exists != 0;
  e.local.kind = static_cast<FileKind>(kind);
  e.local.mtime_ns = static_cast<int64_t>(mtime);
  e.local.ctime_ns = static_cast<int64_t>(ctime);
  e.local.mode = static_cast<uint32_t>(mode);
  e.recorded_at_ns = static_cast<int64_t>(at);
  return e;
}

}  // namespace

absl::StatusOr<std::unique_ptr<LocalIndex>> LocalIndex::Open(const std::string& dir, rocksdb::Env* env) {
  rocksdb::Options options;
  if (env != nullptr) options.env = env;
  options.create_if_missing = true;
  options.max_open_files = 64;
  // Memory a folder's size does not change: two memtables of 16 MiB (RocksDB's default, 64 MiB
  // each, held 128 MiB of an engine's memory while a large folder was indexed).
  options.write_buffer_size = 16 << 20;
  options.max_write_buffer_number = 2;
  // Most lookups are of one path (every file a scan or a pull touches), many of them of paths the
  // index does not have yet (new files): a Bloom filter answers those without reading a block,
  // in the memtable as in the tables.
  rocksdb::BlockBasedTableOptions table;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  options.memtable_whole_key_filtering = true;
  options.memtable_prefix_bloom_size_ratio = 0.02;
  std::unique_ptr<LocalIndex> index(new LocalIndex(dir, options));
  CONVERGE_RETURN_IF_ERROR(index->Reopen());
  return index;
}

absl::Status LocalIndex::Reopen() {
  absl::WriterMutexLock lock(&db_mu_);
  if (db_ != nullptr) return absl::OkStatus();  // another thread reopened it first
  rocksdb::DB* raw = nullptr;
  CONVERGE_RETURN_IF_ERROR(Rocks(rocksdb::DB::Open(options_, dir_, &raw), "open index " + dir_));
  db_.reset(raw);
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), kCursorKey, &value);
  cursor_ = 0;
  if (s.ok()) {
    Decoder d(value);
    uint64_t cursor = 0;
    if (!d.GetVarint64(&cursor)) return absl::DataLossError("corrupt index cursor");
    cursor_ = cursor;
  } else if (!s.IsNotFound()) {
    return Rocks(s, "read index cursor");
  }
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  it->Seek("x:");
  any_not_applied_ = it->Valid() && it->key().starts_with("x:");
  return Rocks(it->status(), "read index");
}

absl::Status LocalIndex::Usable() {
  {
    absl::ReaderMutexLock lock(&db_mu_);
    if (db_ != nullptr) return absl::OkStatus();
  }
  return Reopen();
}

absl::Status LocalIndex::WriteSynced(rocksdb::WriteBatch* batch, absl::string_view what) {
  CONVERGE_RETURN_IF_ERROR(Usable());
  rocksdb::WriteOptions sync;
  sync.sync = true;
  const rocksdb::Status s = db_->Write(sync, batch);
  if (!s.ok() && !s.IsInvalidArgument() && !db_->Resume().ok()) {
    // RocksDB refuses every write after a failed WAL sync, for good: close it now and reopen it
    // (recovering what is durable) at the next use, as a restart would. The failed write was
    // not acknowledged to anyone.
    GetLogger("index")->warn("index write failed ({}): reopening the index", s.ToString());
    if (compactor_.joinable()) compactor_.join();
    absl::WriterMutexLock lock(&db_mu_);  // after any listing on another thread
    if (open_cursors_ > 0) {
      close_pending_ = true;  // their snapshots are of this database: the last one closes it
    } else {
      db_.reset();
    }
  }
  return Rocks(s, what);
}

absl::StatusOr<std::optional<IndexEntry>> LocalIndex::Get(const std::string& path) {
  CONVERGE_RETURN_IF_ERROR(Usable());
  for (const std::string& key : {PathKey(path), TombstoneKey(path)}) {
    std::string value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), key, &value);
    if (s.IsNotFound()) continue;
    CONVERGE_RETURN_IF_ERROR(Rocks(s, "read index"));
    CONVERGE_ASSIGN_OR_RETURN(IndexEntry e, DecodeEntry(value));
    return std::optional<IndexEntry>(std::move(e));
  }
  return std::optional<IndexEntry>();
}

absl::Status LocalIndex::ForEachLive(const std::function<void(const IndexEntry&)>& fn) {
  return ForEachLiveWithPrefix("p:", fn);
}

absl::Status LocalIndex::ForEachNotApplied(const std::function<void(const IndexEntry&)>& fn) {
  CONVERGE_RETURN_IF_ERROR(Usable());
  std::vector<std::string> paths;
  {
    std::string upper = "x;";
    rocksdb::Slice bound(upper);
    rocksdb::ReadOptions options;
    options.iterate_upper_bound = &bound;
    absl::ReaderMutexLock lock(&db_mu_);
    if (db_ == nullptr) return absl::UnavailableError("the index is being reopened after a write error");
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(options));
    for (it->Seek("x:"); it->Valid(); it->Next()) paths.emplace_back(View(it->key()).substr(2));
    CONVERGE_RETURN_IF_ERROR(Rocks(it->status(), "scan index"));
  }
  for (const std::string& path : paths) {
    CONVERGE_ASSIGN_OR_RETURN(std::optional<IndexEntry> e, Get(path));
    if (e.has_value() && e->not_applied) fn(*e);
  }
  return absl::OkStatus();
}

LocalIndex::LiveCursor::~LiveCursor() {
  if (db_ == nullptr) return;
  absl::WriterMutexLock lock(&index_->db_mu_);
  db_->ReleaseSnapshot(snapshot_);
  if (--index_->open_cursors_ == 0 && index_->close_pending_) {
    index_->close_pending_ = false;
    index_->db_.reset();
  }
}

absl::Status LocalIndex::LiveCursor::Next() {
  if (db_ == nullptr) return absl::FailedPreconditionError("the cursor is not open");
  if (++pos_ < page_.size() || done_) return absl::OkStatus();
  return Fill();
}

absl::Status LocalIndex::LiveCursor::Fill() {
  constexpr size_t kPage = 256;
  page_.clear();
  pos_ = 0;
  absl::ReaderMutexLock lock(&index_->db_mu_);
  std::string upper = "p;";  // past "p:" (':' + 1): no deletion markers beyond
  rocksdb::Slice bound(upper);
  rocksdb::ReadOptions options;
  options.iterate_upper_bound = &bound;
  options.snapshot = snapshot_;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(options));
  if (last_key_.empty()) {
    it->Seek("p:");
  } else {
    it->Seek(last_key_);
    if (it->Valid() && it->key() == rocksdb::Slice(last_key_)) it->Next();
  }
  for (; it->Valid() && page_.size() < kPage; it->Next()) {
    absl::StatusOr<IndexEntry> e = DecodeEntry(View(it->value()));
    if (!e.ok()) {
      page_.clear();
      return e.status();
    }
    page_.push_back(std::move(*e));
  }
  if (!page_.empty()) last_key_ = PathKey(page_.back().version.path);
  done_ = page_.size() < kPage;
  absl::Status s = Rocks(it->status(), "scan index");
  if (!s.ok()) page_.clear();
  return s;
}

absl::StatusOr<std::unique_ptr<LocalIndex::LiveCursor>> LocalIndex::Live() {
  CONVERGE_RETURN_IF_ERROR(Usable());
  std::unique_ptr<LiveCursor> cursor(new LiveCursor(this));
  {
    absl::WriterMutexLock lock(&db_mu_);
    if (db_ == nullptr || close_pending_) return absl::UnavailableError("the index is being reopened after a write error");
    cursor->db_ = db_.get();
    cursor->snapshot_ = db_->GetSnapshot();
    ++open_cursors_;
  }
  CONVERGE_RETURN_IF_ERROR(cursor->Fill());
  return cursor;
}

absl::Status LocalIndex::ForEachLiveUnder(const std::string& dir,
                                          const std::function<void(const IndexEntry&)>& fn) {
  return ForEachLiveWithPrefix(PathKey(absl::StrCat(dir, "/")), fn);
}

absl::Status LocalIndex::ForEachLiveWithPrefix(const std::string& prefix,
                                               const std::function<void(const IndexEntry&)>& fn) {
  CONVERGE_RETURN_IF_ERROR(Usable());
  // Bounded above, so the iterator does not wander through deletion markers past the prefix.
  std::string upper = prefix;
  upper.back() = static_cast<char>(upper.back() + 1);
  rocksdb::Slice bound(upper);
  rocksdb::ReadOptions options;
  options.iterate_upper_bound = &bound;
  absl::ReaderMutexLock lock(&db_mu_);
  if (db_ == nullptr) return absl::UnavailableError("the index is being reopened after a write error");
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(options));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    CONVERGE_ASSIGN_OR_RETURN(IndexEntry e, DecodeEntry(View(it->value())));
    fn(e);
  }
  return Rocks(it->status(), "scan index");
}

absl::Status LocalIndex::ForgetSyncState() {
  rocksdb::WriteBatch batch;
  for (const char* prefix : {"p:", "t:", "k:", "i:", "n:", "x:"}) {
    std::string end = prefix;
    end.back() = static_cast<char>(end.back() + 1);
    batch.DeleteRange(prefix, end);
  }
  std::string zero;
  PutVarint64(&zero, 0);
  batch.Put(kCursorKey, zero);
  CONVERGE_RETURN_IF_ERROR(WriteSynced(&batch, "forget sync state"));
  cursor_ = 0;
  any_not_applied_ = false;
  return absl::OkStatus();
}

absl::Status LocalIndex::Update(const std::vector<IndexEntry>& entries,
                                std::optional<uint64_t> cursor) {
  if (entries.empty() && !cursor.has_value()) return absl::OkStatus();
  rocksdb::WriteBatch batch;
  for (const IndexEntry& e : entries) {
    const std::string& path = e.version.path;
    batch.Put(e.version.deleted ? TombstoneKey(path) : PathKey(path), EncodeEntry(e));
    batch.Delete(e.version.deleted ? PathKey(path) : TombstoneKey(path));
    batch.Delete(IntentKey(path));  // recorded: no longer only intended
    if (e.not_applied) {
      batch.Put(NotAppliedKey(path), "");
      any_not_applied_ = true;
    } else if (any_not_applied_) {
      batch.Delete(NotAppliedKey(path));
    }
    // Where each chunk can be found locally (a hint: readers check the path's entry and hash).
    if (!e.version.deleted && e.version.kind == FileKind::kFile) {
      for (const ChunkRef& c : e.version.chunks) {
        if (!c.hole()) batch.Put(ChunkKey(c.sha256), path);
      }
      // Which path a local inode was synced at (a hint: a file found under a new name with it
      // may have been moved there).
      if (e.local.exists && e.local.inode != 0) batch.Put(InodeKey(e.local.inode), path);
    }
  }
  if (cursor.has_value()) {
    std::string value;
    PutVarint64(&value, *cursor);
    batch.Put(kCursorKey, value);
  }
  CONVERGE_RETURN_IF_ERROR(WriteSynced(&batch, "write index"));
  if (cursor.has_value()) cursor_ = *cursor;
  deletions_since_compaction_ += entries.size();
  if (deletions_since_compaction_ >= kCompactAfterDeletions && !compacting_.exchange(true)) {
    // In the background: a compaction of a large index takes seconds, and syncing must not wait.
    deletions_since_compaction_ = 0;
    if (compactor_.joinable()) compactor_.join();
    compactor_ = std::thread([this] {
      rocksdb::CompactRangeOptions options;
      rocksdb::Status s = db_->CompactRange(options, nullptr, nullptr);
      if (!s.ok()) GetLogger("index")->warn("index compaction: {}", s.ToString());
      compacting_ = false;
    });
  }
  return absl::OkStatus();
}

absl::Status LocalIndex::RecordIntents(const std::vector<FileVersion>& versions) {
  if (versions.empty()) return absl::OkStatus();
  rocksdb::WriteBatch batch;
  for (const FileVersion& v : versions) batch.Put(IntentKey(v.path), EncodeEntry(IndexEntry{v, LocalStat{}, 0}));
  return WriteSynced(&batch, "write install intents");
}

absl::StatusOr<std::optional<FileVersion>> LocalIndex::GetIntent(const std::string& path) {
  CONVERGE_RETURN_IF_ERROR(Usable());
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), IntentKey(path), &value);
  if (s.IsNotFound()) return std::optional<FileVersion>();
  CONVERGE_RETURN_IF_ERROR(Rocks(s, "read install intent"));
  CONVERGE_ASSIGN_OR_RETURN(IndexEntry e, DecodeEntry(value));
  return std::optional<FileVersion>(std::move(e.version));
}

absl::StatusOr<std::optional<std::string>> LocalIndex::FindChunk(const Digest& d) {
  CONVERGE_RETURN_IF_ERROR(Usable());
  std::string path;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), ChunkKey(d), &path);
  if (s.IsNotFound()) return std::optional<std::string>();
  CONVERGE_RETURN_IF_ERROR(Rocks(s, "read chunk location"));
  return std::optional<std::string>(std::move(path));
}

absl::StatusOr<std::optional<std::string>> LocalIndex::FindInode(uint64_t inode) {
  CONVERGE_RETURN_IF_ERROR(Usable());
  std::string path;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), InodeKey(inode), &path);
  if (s.IsNotFound()) return std::optional<std::string>();
  CONVERGE_RETURN_IF_ERROR(Rocks(s, "read inode location"));
  return std::optional<std::string>(std::move(path));
}

absl::StatusOr<std::optional<std::string>> LocalIndex::GetSetting(const std::string& name) {
  CONVERGE_RETURN_IF_ERROR(Usable());
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), SettingKey(name), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  CONVERGE_RETURN_IF_ERROR(Rocks(s, "read setting"));
  return std::optional<std::string>(std::move(value));
}

absl::Status LocalIndex::SetSetting(const std::string& name, const std::string& value) {
  rocksdb::WriteBatch batch;
  batch.Put(SettingKey(name), value);
  return WriteSynced(&batch, "write setting");
}

}  // namespace converge::engine
