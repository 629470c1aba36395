#include "services/management/lag_history.h"

#include <algorithm>

namespace converge::management {

LagHistory::~LagHistory() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void LagHistory::Start(absl::Duration every) {
  thread_ = std::thread([this, every] {
    while (true) {
      Sample();
      absl::MutexLock lock(&mu_);
      auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping), every)) return;
    }
  });
}

void LagHistory::Sample() {
  absl::StatusOr<std::vector<Namespace>> all = registry_->ListNamespaces("");
  if (!all.ok() || all->empty()) return;
  size_t start = 0;
  {
    absl::MutexLock lock(&mu_);
    start = next_ % all->size();
    next_ = start + kMaxNamespaces;
  }
  const size_t n = std::min(all->size(), kMaxNamespaces);
  for (size_t i = 0; i < n; ++i) {
    const std::string& ns = (*all)[(start + i) % all->size()].namespace_id;
    absl::StatusOr<NamespaceStats> usage = store_->Usage(ns);  // no lock held while the store answers
    if (!usage.ok()) continue;
    LagPoint p;
    p.at_unix_ms = absl::ToUnixMillis(registry_->clock()->Now());
    for (const DeviceCursor& c : usage->devices) {
      if (c.evicted) continue;
      ++p.devices;
      p.max_lag_seconds = std::max(p.max_lag_seconds, c.lag_seconds);
      p.lag_commits += c.lag_commits;
      if (c.lag_commits > 0) ++p.devices_behind;
    }
    absl::MutexLock lock(&mu_);
    std::deque<LagPoint>& points = series_[ns];
    points.push_back(p);
    while (points.size() > kPoints) points.pop_front();
  }
  // Namespaces that are gone go with their points.
  absl::MutexLock lock(&mu_);
  for (auto it = series_.begin(); it != series_.end();) {
    const bool exists = std::any_of(all->begin(), all->end(),
                                    [&](const Namespace& n) { return n.namespace_id == it->first; });
    if (exists) {
      ++it;
    } else {
      series_.erase(it++);
    }
  }
}

std::map<std::string, std::vector<LagPoint>> LagHistory::Series(const std::string& ns) {
  absl::MutexLock lock(&mu_);
  std::map<std::string, std::vector<LagPoint>> out;
  for (const auto& [name, points] : series_) {
    if (!ns.empty() && name != ns) continue;
    out[name] = std::vector<LagPoint>(points.begin(), points.end());
  }
  return out;
}

}  // namespace converge::management
