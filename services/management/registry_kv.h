// RegistryKv: where the registry keeps its records. LocalRegistryKv is a RocksDB of management's
// own (one replica); RegistryKvClient (registry_kv_client.h) keeps them on the first store shard
// so that several management replicas share one registry. Changes are serialised across
// replicas by Lock(): a lease the store grants one holder at a time, which every write presents.
#ifndef CONVERGE_SERVICES_MANAGEMENT_REGISTRY_KV_H_
#define CONVERGE_SERVICES_MANAGEMENT_REGISTRY_KV_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <rocksdb/db.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace converge::management {

class RegistryKv {
 public:
  // A held lock; released when destroyed.
  class Lease {
   public:
    Lease() = default;
    explicit Lease(std::function<void()> release) : release_(std::move(release)) {}
    Lease(Lease&& other) noexcept : release_(std::move(other.release_)) { other.release_ = nullptr; }
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    ~Lease() {
      if (release_) release_();
    }

   private:
    std::function<void()> release_;
  };
  using ScanFn = std::function<absl::Status(absl::string_view rest_of_key, absl::string_view value)>;

  virtual ~RegistryKv() = default;
  // Get: NotFound if absent.
  virtual absl::StatusOr<std::string> Get(const std::string& key) = 0;
  // Put and Delete are durable when they return.
  virtual absl::Status Put(const std::string& key, const std::string& value) = 0;
  virtual absl::Status Delete(const std::string& key) = 0;
  // Scan calls fn for every key starting with `prefix`, in key order.
  virtual absl::Status Scan(const std::string& prefix, const ScanFn& fn) = 0;
  // Lock serialises changes across management replicas (a no-op for a local registry).
  virtual absl::StatusOr<Lease> Lock() { return Lease(); }
};

class LocalRegistryKv : public RegistryKv {
 public:
  static absl::StatusOr<std::unique_ptr<LocalRegistryKv>> Open(const std::string& dir);
  absl::StatusOr<std::string> Get(const std::string& key) override;
  absl::Status Put(const std::string& key, const std::string& value) override;
  absl::Status Delete(const std::string& key) override;
  absl::Status Scan(const std::string& prefix, const ScanFn& fn) override;

 private:
  explicit LocalRegistryKv(std::unique_ptr<rocksdb::DB> db) : db_(std::move(db)) {}
  std::unique_ptr<rocksdb::DB> db_;
};

}  // namespace converge::management

#endif  // CONVERGE_SERVICES_MANAGEMENT_REGISTRY_KV_H_
