#include "services/store/registry_area.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "rocksdb/write_batch.h"

namespace converge::store {
namespace {

std::string AreaKey(const std::string& key) { return absl::StrCat("R", key); }

}  // namespace

absl::StatusOr<std::string> RegistryArea::Get(const std::string& key) {
  std::string value;
  rocksdb::Status s = db_->db()->Get(rocksdb::ReadOptions(), AreaKey(key), &value);
  if (!s.ok()) return RocksStatus(s, "read registry");
  return value;
}

absl::Status RegistryArea::Scan(const std::string& prefix,
                                const std::function<void(const std::string& key, const std::string& value)>& fn) {
  const std::string start = AreaKey(prefix);
  std::unique_ptr<rocksdb::Iterator> it(db_->db()->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(start); it->Valid() && it->key().starts_with(start); it->Next()) {
    fn(it->key().ToString().substr(1), it->value().ToString());
  }
  return RocksStatus(it->status(), "scan registry");
}

absl::Status RegistryArea::Write(const std::string& holder,
                                 const std::vector<std::pair<std::string, std::string>>& puts,
                                 const std::vector<std::string>& deletes) {
  // Checked and written under the lock's mutex: a lease cannot run out between the two.
  absl::MutexLock lock(&mu_);
  if (holder.empty() || holder != holder_ || clock_->Now() >= expires_) {
    return absl::FailedPreconditionError("registry write without holding the registry lock");
  }
  rocksdb::WriteBatch batch;
  for (const auto& [key, value] : puts) batch.Put(AreaKey(key), value);
  for (const std::string& key : deletes) batch.Delete(AreaKey(key));
  return RocksStatus(db_->WriteSynced(&batch), "write registry");
}

bool RegistryArea::Lock(const std::string& holder, absl::Duration lease) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  if (!holder_.empty() && holder_ != holder && now < expires_) return false;
  holder_ = holder;
  expires_ = now + std::min(lease, kMaxRegistryLease);
  return true;
}

void RegistryArea::Release(const std::string& holder) {
  absl::MutexLock lock(&mu_);
  if (holder_ == holder) holder_.clear();
}

}  // namespace converge::store
