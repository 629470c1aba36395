// EtcdRegistryKv: the registry's records in etcd (under /converge/registry/), so that management
// replicas keep no state only they know. Changes are serialised across replicas by an etcd lock:
// a key created only if absent (one transaction), under a 30 s lease, holding a token of this
// change; every write of the change is a transaction that succeeds only while that key still
// holds the token, so a replica that stalled past its lease (or lost etcd meanwhile) cannot write.
#ifndef CONVERGE_SERVICES_MANAGEMENT_ETCD_REGISTRY_KV_H_
#define CONVERGE_SERVICES_MANAGEMENT_ETCD_REGISTRY_KV_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "services/coord/etcd_client.h"
#include "services/management/registry_kv.h"

namespace converge::management {

class EtcdRegistryKv : public RegistryKv {
 public:
  explicit EtcdRegistryKv(std::shared_ptr<coord::EtcdClient> etcd);

  absl::StatusOr<std::string> Get(const std::string& key) override;
  absl::Status Put(const std::string& key, const std::string& value) override;
  absl::Status Delete(const std::string& key) override;
  absl::Status Scan(const std::string& prefix, const ScanFn& fn) override;
  absl::StatusOr<Lease> Lock() override;

 private:
  // The lock this replica holds now, if any: its writes are guarded by it.
  std::optional<coord::EtcdClient::Guard> Held();
  void Release(const std::string& token, int64_t lease);

  const std::shared_ptr<coord::EtcdClient> etcd_;
  const std::string holder_;  // this replica, in the tokens it writes
  absl::Mutex mu_;
  std::string token_ ABSL_GUARDED_BY(mu_);  // of the change in progress ("" if none)
  uint64_t changes_ ABSL_GUARDED_BY(mu_) = 0;
};

// ImportRegistry copies every record of `from` (a registry kept under --data_dir before it moved
// to etcd) into `to`, under the registry lock, if `to` holds no record yet: an upgrade that turns
// on --registry_in_etcd keeps its users, devices and namespaces. Returns how many it copied (0
// when etcd had records already: nothing there is overwritten). `from` is left as it was.
absl::StatusOr<size_t> ImportRegistry(RegistryKv* from, EtcdRegistryKv* to);

}  // namespace converge::management

#endif  // CONVERGE_SERVICES_MANAGEMENT_ETCD_REGISTRY_KV_H_
