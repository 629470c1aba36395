#include "common/rpc/call_limiter.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace converge {

CallLimiter::Slot& CallLimiter::Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    if (limiter_ != nullptr) limiter_->Release(caller_);
    limiter_ = other.limiter_;
    caller_ = std::move(other.caller_);
    other.limiter_ = nullptr;
  }
  return *this;
}

CallLimiter::Slot::~Slot() {
  if (limiter_ != nullptr) limiter_->Release(caller_);
}

absl::StatusOr<CallLimiter::Slot> CallLimiter::Acquire(absl::string_view caller, absl::string_view what) {
  const bool limit_flight = limits_.max_in_flight > 0, limit_rate = limits_.calls_per_second > 0;
  if (!limit_flight && !limit_rate) return Slot();
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = state_.try_emplace(caller);
  State& s = it->second;
  if (limit_rate) {
    const double burst = std::max(1.0, limits_.burst);
    if (inserted) {
      s.tokens = burst;
    } else {
      s.tokens = std::min(burst, s.tokens + absl::ToDoubleSeconds(now - s.refilled) * limits_.calls_per_second);
    }
    s.refilled = now;
  }
  if (limit_flight && s.in_flight >= limits_.max_in_flight) {
    ++refused_;
    return absl::ResourceExhaustedError(absl::StrCat("'", caller, "' has ", s.in_flight, " ", what,
                                                     " open already (the limit per device); retry later"));
  }
  if (limit_rate && s.tokens < 1) {
    ++refused_;
    return absl::ResourceExhaustedError(absl::StrCat("'", caller, "' starts more than ", limits_.calls_per_second, " ",
                                                     what, " a second (the limit per device); retry later"));
  }
  if (limit_rate) s.tokens -= 1;
  ++s.in_flight;
  return Slot(this, std::string(caller));
}

absl::Status CallLimiter::Charge(absl::string_view caller, double cost) {
  if (limits_.calls_per_second <= 0 || cost <= 0) return absl::OkStatus();
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  auto it = state_.find(caller);
  if (it == state_.end()) return absl::OkStatus();  // only calls in flight are charged
  State& s = it->second;
  s.tokens = std::min(std::max(1.0, limits_.burst),
                      s.tokens + absl::ToDoubleSeconds(now - s.refilled) * limits_.calls_per_second);
  s.refilled = now;
  if (s.tokens < cost) {
    ++refused_;
    return absl::ResourceExhaustedError(absl::StrCat("'", caller, "' asked for more work than its rate allows (",
                                                     static_cast<int64_t>(cost), " calls' worth); retry later"));
  }
  s.tokens -= cost;
  return absl::OkStatus();
}

void CallLimiter::Release(const std::string& caller) {
  absl::MutexLock lock(&mu_);
  auto it = state_.find(caller);
  if (it == state_.end()) return;
  --it->second.in_flight;
  // Forget an idle caller whose bucket is full again (the map stays the size of the active set).
  if (it->second.in_flight <= 0 &&
      (limits_.calls_per_second <= 0 ||
       it->second.tokens + absl::ToDoubleSeconds(absl::Now() - it->second.refilled) * limits_.calls_per_second >=
           std::max(1.0, limits_.burst))) {
    state_.erase(it);
  }
}

int CallLimiter::in_flight(absl::string_view caller) const {
  absl::MutexLock lock(&mu_);
  auto it = state_.find(caller);
  return it == state_.end() ? 0 : it->second.in_flight;
}

uint64_t CallLimiter::refused() const {
  absl::MutexLock lock(&mu_);
  return refused_;
}

}  // namespace converge
