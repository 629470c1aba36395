// RegistryArea: management's registry records kept in the store's RocksDB (keys "R" + key), and
// the lease that serialises changes across management replicas: one holder at a time, for a
// bounded time; a write must come from the current holder (a replica whose lease ran out cannot
// write stale decisions).
//
// Thread-safe.
#ifndef CONVERGE_SERVICES_STORE_REGISTRY_AREA_H_
#define CONVERGE_SERVICES_STORE_REGISTRY_AREA_H_

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/base/clock.h"
#include "services/store/store_db.h"

namespace converge::store {

inline constexpr absl::Duration kMaxRegistryLease = absl::Seconds(60);

class RegistryArea {
 public:
  RegistryArea(StoreDb* db, Clock* clock) : db_(db), clock_(clock) {}

  absl::StatusOr<std::string> Get(const std::string& key);  // NotFound if absent
  absl::Status Scan(const std::string& prefix,
                    const std::function<void(const std::string& key, const std::string& value)>& fn);
  // Write applies puts and deletes in one synced batch. FailedPrecondition unless `holder` holds
  // the lock.
  absl::Status Write(const std::string& holder, const std::vector<std::pair<std::string, std::string>>& puts,
                     const std::vector<std::string>& deletes);
  // Lock grants (or renews) the lease to `holder` unless another holder's lease is running.
  bool Lock(const std::string& holder, absl::Duration lease);
  void Release(const std::string& holder);

 private:
  StoreDb* const db_;
  Clock* const clock_;
  absl::Mutex mu_;
  std::string holder_ ABSL_GUARDED_BY(mu_);
  absl::Time expires_ ABSL_GUARDED_BY(mu_);
};

}  // namespace converge::store

#endif  // CONVERGE_SERVICES_STORE_REGISTRY_AREA_H_
