#include "common/base/metrics.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace converge {
namespace {

std::string Number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return absl::StrCat(static_cast<int64_t>(v));
  return absl::StrFormat("%.6g", v);
}

std::string Series(const std::string& name, const std::string& labels, const std::string& extra = "") {
  if (labels.empty() && extra.empty()) return name;
  if (labels.empty()) return absl::StrCat(name, "{", extra, "}");
  if (extra.empty()) return absl::StrCat(name, "{", labels, "}");
  return absl::StrCat(name, "{", labels, ",", extra, "}");
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0);
}

void Histogram::Observe(double v) {
  const size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_micro_.fetch_add(static_cast<uint64_t>(std::max(0.0, v) * 1e6), std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.bounds = bounds_;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    s.counts.push_back(counts_[i].load(std::memory_order_relaxed));
    s.count += s.counts.back();
  }
  s.sum = static_cast<double>(sum_micro_.load(std::memory_order_relaxed)) / 1e6;
  return s;
}

double Histogram::Snapshot::Quantile(double q) const {
  if (count == 0) return 0;
  const double rank = q * static_cast<double>(count);
  uint64_t below = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (static_cast<double>(below + counts[i]) >= rank && counts[i] > 0) {
      if (i == bounds.size()) return bounds.empty() ? 0 : bounds.back();  // in +Inf: best known bound
      const double lo = i == 0 ? 0 : bounds[i - 1];
      const double hi = bounds[i];
      return lo + (hi - lo) * (rank - static_cast<double>(below)) / static_cast<double>(counts[i]);
    }
    below += counts[i];
  }
  return bounds.empty() ? 0 : bounds.back();
}

std::vector<double> LatencyBuckets() {
  return {0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05,
          0.075,  0.1,   0.2,   0.5,   1,     2,      5,    10,    30,   60};
}

MetricsRegistry::Entry* MetricsRegistry::Add(const std::string& name, const std::string& help,
                                             const std::string& labels, Type type,
                                             const std::function<void(Entry*)>& make_metric) {
  const std::string key = absl::StrCat(name, "{", labels, "}");
  absl::MutexLock lock(&mu_);
  auto it = by_key_.find(key);
  if (it != by_key_.end()) return it->second;
  auto e = std::make_unique<Entry>();
  e->name = name;
  e->help = help;
  e->labels = labels;
  e->type = type;
  make_metric(e.get());
  entries_.push_back(std::move(e));
  by_key_[key] = entries_.back().get();
  return entries_.back().get();
}

Counter* MetricsRegistry::AddCounter(const std::string& name, const std::string& help,
                                     const std::string& labels) {
  return Add(name, help, labels, Type::kCounter, [](Entry* e) { e->counter = std::make_unique<Counter>(); })
      ->counter.get();
}

Gauge* MetricsRegistry::AddGauge(const std::string& name, const std::string& help,
                                 const std::string& labels) {
  return Add(name, help, labels, Type::kGauge, [](Entry* e) { e->gauge = std::make_unique<Gauge>(); })
      ->gauge.get();
}

Histogram* MetricsRegistry::AddHistogram(const std::string& name, const std::string& help,
                                         std::vector<double> bounds, const std::string& labels) {
  return Add(name, help, labels, Type::kHistogram,
             [&](Entry* e) { e->histogram = std::make_unique<Histogram>(std::move(bounds)); })
      ->histogram.get();
}

void MetricsRegistry::AddGaugeFunction(const std::string& name, const std::string& help,
                                       std::function<double()> fn, const std::string& labels) {
  Entry* e = Add(name, help, labels, Type::kGaugeFunction, [](Entry*) {});
  absl::MutexLock lock(&mu_);
  e->fn = std::move(fn);  // a later registration replaces the function
}

std::string MetricsRegistry::Text() const {
  absl::MutexLock lock(&mu_);
  // Group series by name (HELP and TYPE once per name), in name order.
  std::map<std::string, std::vector<const Entry*>> by_name;
  for (const auto& e : entries_) by_name[e->name].push_back(e.get());
  std::string out;
  for (const auto& [name, entries] : by_name) {
    const Entry* first = entries.front();
    const char* type = first->type == Type::kCounter     ? "counter"
                       : first->type == Type::kHistogram ? "histogram"
                                                         : "gauge";
    absl::StrAppend(&out, "# HELP ", name, " ", first->help, "\n# TYPE ", name, " ", type, "\n");
    for (const Entry* e : entries) {
      switch (e->type) {
        case Type::kCounter:
          absl::StrAppend(&out, Series(name, e->labels), " ", e->counter->value(), "\n");
          break;
        case Type::kGauge:
          absl::StrAppend(&out, Series(name, e->labels), " ", e->gauge->value(), "\n");
          break;
        case Type::kGaugeFunction:
          absl::StrAppend(&out, Series(name, e->labels), " ", Number(e->fn()), "\n");
          break;
        case Type::kHistogram: {
          const Histogram::Snapshot s = e->histogram->snapshot();
          uint64_t cumulative = 0;
          for (size_t i = 0; i <= s.bounds.size(); ++i) {
            cumulative += s.counts[i];
            const std::string le = i < s.bounds.size() ? Number(s.bounds[i]) : "+Inf";
            absl::StrAppend(&out, Series(name + "_bucket", e->labels, absl::StrCat("le=\"", le, "\"")),
                            " ", cumulative, "\n");
          }
          absl::StrAppend(&out, Series(name + "_sum", e->labels), " ", Number(s.sum), "\n");
          absl::StrAppend(&out, Series(name + "_count", e->labels), " ", s.count, "\n");
          break;
        }
      }
    }
  }
  return out;
}

const Histogram* MetricsRegistry::FindHistogram(const std::string& name, const std::string& labels) const {
  absl::MutexLock lock(&mu_);
  auto it = by_key_.find(absl::StrCat(name, "{", labels, "}"));
  return it == by_key_.end() ? nullptr : it->second->histogram.get();
}

const Counter* MetricsRegistry::FindCounter(const std::string& name, const std::string& labels) const {
  absl::MutexLock lock(&mu_);
  auto it = by_key_.find(absl::StrCat(name, "{", labels, "}"));
  return it == by_key_.end() ? nullptr : it->second->counter.get();
}

MetricsRegistry& DefaultMetrics() {
  static MetricsRegistry* registry = new MetricsRegistry();
  return *registry;
}

}  // namespace converge
