// Metrics: counters, gauges and histograms kept in process and rendered in the Prometheus text
// format (served by common/rpc/metrics_http.h). Metrics are created once at start-up and live as
// long as their registry; updating one is a few atomic operations, never a lock.
//
//   static Counter* commits = DefaultMetrics().AddCounter(
//       "converge_store_commits_total", "commits accepted");
//   commits->Add();
//   static Histogram* latency = DefaultMetrics().AddHistogram(
//       "converge_store_commit_seconds", "Commit RPC latency", LatencyBuckets());
//   latency->Observe(0.004);
//
// Thread-safe.
#ifndef CONVERGE_COMMON_BASE_METRICS_H_
#define CONVERGE_COMMON_BASE_METRICS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace converge {

class Counter {
 public:
  void Add(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void Set(int64_t v) { value_.store(v, std::memory_order_relaxed); }
  void Add(int64_t n) { value_.fetch_add(n, std::memory_order_relaxed); }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

// Histogram counts observations into fixed buckets (upper bounds, ascending; +Inf is implied).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);

  void Observe(double v);

  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> counts;  // per bucket, not cumulative; one more than bounds (+Inf)
    uint64_t count = 0;
    double sum = 0;
    // Quantile estimates the q-quantile (0..1) by linear interpolation inside its bucket, as
    // Prometheus' histogram_quantile does. 0 when empty.
    double Quantile(double q) const;
  };
  Snapshot snapshot() const;

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_micro_{0};  // sum in millionths, so it can be atomic
};

// LatencyBuckets: seconds, 0.5 ms to 60 s.
std::vector<double> LatencyBuckets();

class MetricsRegistry {
 public:
  // Each Add returns a metric owned by the registry. `labels` is a Prometheus label set without
  // braces (`method="Commit"`); several metrics may share a name with different labels. Adding
  // a name and labels again returns the metric already there (so Add is also "find or add").
  Counter* AddCounter(const std::string& name, const std::string& help, const std::string& labels = "");
  Gauge* AddGauge(const std::string& name, const std::string& help, const std::string& labels = "");
  Histogram* AddHistogram(const std::string& name, const std::string& help, std::vector<double> bounds,
                          const std::string& labels = "");
  // AddGaugeFunction reports fn() at every render (sizes read from elsewhere).
  void AddGaugeFunction(const std::string& name, const std::string& help, std::function<double()> fn,
                        const std::string& labels = "");

  // Text renders every metric in the Prometheus text exposition format 0.0.4.
  std::string Text() const;

  // Find returns the histogram registered as name{labels}, or nullptr (tests, status output).
  const Histogram* FindHistogram(const std::string& name, const std::string& labels = "") const;
  const Counter* FindCounter(const std::string& name, const std::string& labels = "") const;

 private:
  enum class Type { kCounter, kGauge, kHistogram, kGaugeFunction };
  struct Entry {
    std::string name, help, labels;
    Type type;
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
    std::function<double()> fn;
  };
  // Add returns the entry for name{labels}, creating it with make_metric (under the lock) if new.
  Entry* Add(const std::string& name, const std::string& help, const std::string& labels, Type type,
             const std::function<void(Entry*)>& make_metric);

  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<Entry>> entries_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Entry*> by_key_ ABSL_GUARDED_BY(mu_);  // name{labels}
};

// DefaultMetrics is the process-wide registry the services and the engine report to.
MetricsRegistry& DefaultMetrics();

}  // namespace converge

#endif  // CONVERGE_COMMON_BASE_METRICS_H_
