// LagHistory: how far behind each namespace's devices have been over the last hour, for the
// web console's charts. Every `every` (15 s by default) it asks the store how each namespace's
// devices stand (DataPlane::Usage) and keeps, per namespace, the slowest device's lag in
// seconds (the age of the oldest commit some device has not applied: how long a change has been
// waiting to reach everyone), the commits still to apply, and how many devices are behind.
//
// Bounded: kPoints points per namespace, at most kMaxNamespaces namespaces a round (taken in
// turn when there are more). Knows no gRPC. Thread-safe.
#ifndef CONVERGE_SERVICES_MANAGEMENT_LAG_HISTORY_H_
#define CONVERGE_SERVICES_MANAGEMENT_LAG_HISTORY_H_

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/management/registry.h"

namespace converge::management {

struct LagPoint {
  int64_t at_unix_ms = 0;
  double max_lag_seconds = 0;  // the slowest device not evicted
  uint64_t lag_commits = 0;    // summed over the devices
  uint32_t devices_behind = 0;
  uint32_t devices = 0;
};

class LagHistory {
 public:
  static constexpr size_t kPoints = 240;  // an hour at 15 s
  static constexpr size_t kMaxNamespaces = 200;

  LagHistory(Registry* registry, DataPlane* store) : registry_(registry), store_(store) {}
  ~LagHistory();

  // Start samples every `every` on a thread of its own until destroyed.
  void Start(absl::Duration every);
  // Sample takes one round now.
  void Sample();
  // Series: the points kept for `ns`, or for every namespace when empty, oldest first.
  std::map<std::string, std::vector<LagPoint>> Series(const std::string& ns);

 private:
  Registry* const registry_;
  DataPlane* const store_;
  absl::Mutex mu_;
  std::map<std::string, std::deque<LagPoint>> series_ ABSL_GUARDED_BY(mu_);
  size_t next_ ABSL_GUARDED_BY(mu_) = 0;  // where the next round starts, with many namespaces
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace converge::management

#endif  // CONVERGE_SERVICES_MANAGEMENT_LAG_HISTORY_H_
