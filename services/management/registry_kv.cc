#include "services/management/registry_kv.h"

#include "common/base/rocksdb_status.h"
#include "common/base/status_macros.h"

namespace converge::management {

absl::StatusOr<std::unique_ptr<LocalRegistryKv>> LocalRegistryKv::Open(const std::string& dir) {
  rocksdb::Options options;
  options.create_if_missing = true;
  rocksdb::DB* raw = nullptr;
  CONVERGE_RETURN_IF_ERROR(FromRocksStatus(rocksdb::DB::Open(options, dir, &raw), "open registry"));
  return std::unique_ptr<LocalRegistryKv>(new LocalRegistryKv(std::unique_ptr<rocksdb::DB>(raw)));
}

absl::StatusOr<std::string> LocalRegistryKv::Get(const std::string& key) {
  std::string value;
  CONVERGE_RETURN_IF_ERROR(FromRocksStatus(db_->Get(rocksdb::ReadOptions(), key, &value), "read registry"));
  return value;
}

absl::Status LocalRegistryKv::Put(const std::string& key, const std::string& value) {
  rocksdb::WriteOptions sync;
  sync.sync = true;
  return FromRocksStatus(db_->Put(sync, key, value), "write registry");
}

absl::Status LocalRegistryKv::Delete(const std::string& key) {
  rocksdb::WriteOptions sync;
  sync.sync = true;
  return FromRocksStatus(db_->Delete(sync, key), "write registry");
}

absl::Status LocalRegistryKv::Scan(const std::string& prefix, const ScanFn& fn) {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    CONVERGE_RETURN_IF_ERROR(fn(View(it->key()).substr(prefix.size()), View(it->value())));
  }
  return FromRocksStatus(it->status(), "scan registry");
}

}  // namespace converge::management
