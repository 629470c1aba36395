#include "services/store/store_db.h"

#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "common/base/coding.h"
#include "common/base/logging.h"
#include "common/base/metrics.h"

namespace converge::store {

absl::StatusOr<std::unique_ptr<StoreDb>> StoreDb::Open(const std::string& dir, rocksdb::Env* env) {
  rocksdb::Options options;
  if (env != nullptr) options.env = env;
  options.create_if_missing = true;
  options.IncreaseParallelism(2);
  // Chunks stored inline (small uploads) go to blob files so compaction does not rewrite them;
  // large uploads go to pack files (pack_files.h).
  options.enable_blob_files = true;
  options.min_blob_size = 4096;
  options.compression = rocksdb::kLZ4Compression;
  options.blob_compression_type = rocksdb::kNoCompression;
  // Blob and table files are written back as they grow: the sync at the end of a flush then
  // waits for the last MiB, not for a whole memtable of chunks.
  options.bytes_per_sync = 1 << 20;
  // Most lookups ask for one key that is often absent (a chunk not stored yet, a path new to a
  // namespace): a Bloom filter answers those without searching the memtable or reading a block.
  rocksdb::BlockBasedTableOptions table;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  options.memtable_whole_key_filtering = true;
  options.memtable_prefix_bloom_size_ratio = 0.02;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, dir, &raw);
  if (!s.ok() && options.compression != rocksdb::kNoCompression) {
    options.compression = rocksdb::kNoCompression;
    s = rocksdb::DB::Open(options, dir, &raw);
  }
  if (!s.ok()) return RocksStatus(s, absl::StrCat("open store database at ", dir));
  std::unique_ptr<rocksdb::DB> db(raw);
  absl::StatusOr<std::unique_ptr<PackFiles>> packs = PackFiles::Open(env, dir + "/packs");
  if (!packs.ok()) return packs.status();
  std::unique_ptr<StoreDb> store(new StoreDb(std::move(db), std::move(*packs)));
  if (absl::Status dropped = store->DropUnindexedPacks(); !dropped.ok()) return dropped;
  return store;
}

absl::Status StoreDb::DropUnindexedPacks() {
  absl::StatusOr<std::vector<uint64_t>> ids = packs_->Packs();
  if (!ids.ok()) return ids.status();
  rocksdb::WriteBatch gone;
  for (uint64_t id : *ids) {
    std::string live;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), PackKey(id), &live);
    if (!s.ok() && !s.IsNotFound()) return RocksStatus(s, "read pack record");
    // No record: written, then a crash came before its chunks were indexed. Zero: every chunk
    // in it was dropped while an upload still wrote it.
    if (s.IsNotFound() || (live.size() == 8 && DecodeFixed64BE(live) == 0)) {
      GetLogger("store")->info("pack {} holds no live chunk: deleted", id);
      packs_->Delete(id);
      if (s.ok()) gone.Delete(PackKey(id));
    }
  }
  return gone.Count() > 0 ? RocksStatus(WriteSynced(&gone), "drop empty packs") : absl::OkStatus();
}

rocksdb::Status StoreDb::Checked(const rocksdb::Status& s) {
  if (s.ok() || s.IsInvalidArgument() || s.IsNotFound() || s.IsBusy() || s.IsTimedOut()) return s;
  // A full disk: RocksDB recovers by itself once there is room again.
  if (s.IsNoSpace()) return s;
  const rocksdb::Status resumed = db_->Resume();
  if (resumed.ok() || resumed.IsBusy()) return s;  // recovered, or recovering
  if (on_unrecoverable_) {
    on_unrecoverable_();
    return s;
  }
  GetLogger("store")->critical("the database refuses writes after an I/O error ({}; recovery: {}): exiting, to be "
                               "restarted on what is durable", s.ToString(), resumed.ToString());
  spdlog::shutdown();
  _exit(75);
}

rocksdb::Status StoreDb::WriteSynced(rocksdb::WriteBatch* batch) {
  rocksdb::WriteOptions sync;
  sync.sync = true;
  return Checked(db_->Write(sync, batch));
}

rocksdb::Status StoreDb::PutSynced(const rocksdb::Slice& key, const rocksdb::Slice& value) {
  rocksdb::WriteBatch batch;
  batch.Put(key, value);
  return WriteSynced(&batch);
}

std::string StoreDb::ChunkKey(const Digest& d) {
  std::string k = "c";
  k.append(reinterpret_cast<const char*>(d.data()), d.size());
  return k;
}

std::string StoreDb::NamespaceKey(absl::string_view ns) { return absl::StrCat("n", ns); }

std::string StoreDb::LogPrefix(absl::string_view ns) {
  return absl::StrCat("l", ns, absl::string_view("\0", 1));
}

std::string StoreDb::LogKey(absl::string_view ns, uint64_t seq) {
  std::string k = LogPrefix(ns);
  PutFixed64BE(&k, seq);
  return k;
}

std::string StoreDb::FilePrefix(absl::string_view ns) {
  return absl::StrCat("f", ns, absl::string_view("\0", 1));
}

std::string StoreDb::FileKey(absl::string_view ns, absl::string_view path) {
  return absl::StrCat(FilePrefix(ns), path);
}

std::string StoreDb::CursorPrefix(absl::string_view ns) {
  return absl::StrCat("a", ns, absl::string_view("\0", 1));
}

std::string StoreDb::CursorKey(absl::string_view ns, absl::string_view device) {
  return absl::StrCat(CursorPrefix(ns), device);
}

std::string StoreDb::HeldPrefix(absl::string_view ns) {
  return absl::StrCat("h", ns, absl::string_view("\0", 1));
}

std::string StoreDb::HeldKey(absl::string_view ns, absl::string_view id) {
  return absl::StrCat(HeldPrefix(ns), id);
}

std::string StoreDb::HeldPathPrefix(absl::string_view ns, absl::string_view id) {
  return absl::StrCat("H", ns, absl::string_view("\0", 1), id, absl::string_view("\0", 1));
}

std::string StoreDb::HeldPathKey(absl::string_view ns, absl::string_view id, absl::string_view path) {
  return absl::StrCat(HeldPathPrefix(ns, id), path);
}

std::string StoreDb::OwnedKey(absl::string_view owner, const Digest& d) {
  std::string k = absl::StrCat("o", owner, absl::string_view("\0", 1));
  k.append(reinterpret_cast<const char*>(d.data()), d.size());
  return k;
}

std::string StoreDb::QuotaKey(absl::string_view owner) { return absl::StrCat("q", owner); }
std::string StoreDb::UsageKey(absl::string_view owner) { return absl::StrCat("u", owner); }
std::string StoreDb::CaseKey(absl::string_view ns, absl::string_view folded) {
  return absl::StrCat("k", ns, absl::string_view("\0", 1), folded);
}
std::string StoreDb::NamespaceOwnerKey(absl::string_view ns) { return absl::StrCat("w", ns); }
std::string StoreDb::CompactionKey(absl::string_view ns) { return absl::StrCat("C", ns); }
std::string StoreDb::GateKey(absl::string_view ns) { return absl::StrCat("M", ns); }
std::string StoreDb::PackKey(uint64_t id) {
  std::string k = "P";
  PutFixed64BE(&k, id);
  return k;
}

void StoreDb::ExportMetrics() {
  rocksdb::DB* db = db_.get();
  auto property = [db](const char* name) {
    return [db, name]() -> double {
      uint64_t v = 0;
      return db->GetIntProperty(name, &v) ? static_cast<double>(v) : -1;
    };
  };
  MetricsRegistry& m = DefaultMetrics();
  m.AddGaugeFunction("converge_store_rocksdb_live_bytes", "live SST files (metadata, logs, small chunks)",
                     property("rocksdb.live-sst-files-size"), "kind=\"sst\"");
  m.AddGaugeFunction("converge_store_rocksdb_live_bytes", "live blob files (chunk bytes)",
                     property("rocksdb.live-blob-file-size"), "kind=\"blob\"");
  m.AddGaugeFunction("converge_store_rocksdb_live_bytes", "live SST and blob files", [db]() -> double {
    uint64_t sst = 0, blob = 0;
    db->GetIntProperty("rocksdb.live-sst-files-size", &sst);
    db->GetIntProperty("rocksdb.live-blob-file-size", &blob);
    return static_cast<double>(sst + blob);
  });
  PackFiles* packs = packs_.get();
  m.AddGaugeFunction("converge_store_pack_bytes", "pack files (large chunks' bytes, dead space included)",
                     [packs]() -> double { return static_cast<double>(packs->Bytes()); });
  m.AddGaugeFunction("converge_store_rocksdb_memtable_bytes", "memtables", property("rocksdb.cur-size-all-mem-tables"));
  m.AddGaugeFunction("converge_store_rocksdb_write_stopped", "1 while RocksDB stops writes",
                     property("rocksdb.is-write-stopped"));
  m.AddGaugeFunction("converge_store_rocksdb_delayed_write_rate", "bytes/s RocksDB slows writes to (0: no stall)",
                     property("rocksdb.actual-delayed-write-rate"));
  m.AddGaugeFunction("converge_store_rocksdb_pending_compaction_bytes", "estimated bytes compaction still has to do",
                     property("rocksdb.estimate-pending-compaction-bytes"));
}

PrefixIterator::PrefixIterator(rocksdb::DB* db, std::string prefix) : prefix_(std::move(prefix)), bound_(prefix_) {
  // The bound: the prefix with its last byte below 0xff raised by one, what follows it dropped.
  while (!bound_.empty() && static_cast<unsigned char>(bound_.back()) == 0xff) bound_.pop_back();
  rocksdb::ReadOptions options;
  if (!bound_.empty()) {
    bound_.back() = static_cast<char>(static_cast<unsigned char>(bound_.back()) + 1);
    bound_slice_ = rocksdb::Slice(bound_);
    options.iterate_upper_bound = &bound_slice_;
  }
  it_.reset(db->NewIterator(options));
  it_->Seek(prefix_);
}

}  // namespace converge::store
