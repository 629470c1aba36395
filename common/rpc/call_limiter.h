// CallLimiter bounds how many calls one caller (a device) may have in flight at once and how
// fast it may start them (a token bucket), so a device that floods a service with calls (or
// holds many streams open) takes at most its share of the server's threads and CPU and the
// other devices are still served. Calls over a limit are refused at once with
// ResourceExhausted; a well-behaved engine has a handful in flight and far fewer calls a second.
//
// Thread-safe.
#ifndef CONVERGE_COMMON_RPC_CALL_LIMITER_H_
#define CONVERGE_COMMON_RPC_CALL_LIMITER_H_

#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace converge {

class CallLimiter {
 public:
  // A call's place: released when the Slot is destroyed (or reassigned).
  class Slot {
   public:
    Slot() = default;
    Slot(Slot&& other) noexcept : limiter_(other.limiter_), caller_(std::move(other.caller_)) {
      other.limiter_ = nullptr;
    }
    Slot& operator=(Slot&& other) noexcept;
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot();

   private:
    friend class CallLimiter;
    Slot(CallLimiter* limiter, std::string caller) : limiter_(limiter), caller_(std::move(caller)) {}
    CallLimiter* limiter_ = nullptr;
    std::string caller_;
  };

  struct Limits {
    int max_in_flight = 0;       // <= 0: no limit
    double calls_per_second = 0;  // sustained start rate; <= 0: no limit
    double burst = 0;             // calls that may start at once after a quiet spell
  };
  explicit CallLimiter(Limits limits) : limits_(limits) {}

  // Acquire admits one more call of `caller`, or returns ResourceExhausted if it has
  // max_in_flight calls open already. `what` names the calls in the message ("calls", "streams").
  absl::StatusOr<Slot> Acquire(absl::string_view caller, absl::string_view what = "calls");

  // Charge takes `cost` more calls' worth from `caller`'s rate (work a call does beyond its own
  // start: bytes decoded, bases read for deltas). ResourceExhausted, and nothing taken, if the
  // caller's bucket does not hold that much now; its later calls wait for the bucket to refill.
  absl::Status Charge(absl::string_view caller, double cost);

  int in_flight(absl::string_view caller) const;
  uint64_t refused() const;
  const Limits& limits() const { return limits_; }

 private:
  struct State {
    int in_flight = 0;
    double tokens = 0;
    absl::Time refilled;
  };
  void Release(const std::string& caller);

  const Limits limits_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, State> state_ ABSL_GUARDED_BY(mu_);
  uint64_t refused_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace converge

#endif  // CONVERGE_COMMON_RPC_CALL_LIMITER_H_
