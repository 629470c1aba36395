#include "common/base/metrics.h"

#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace converge {
namespace {

TEST(MetricsTest, RendersPrometheusText) {
  MetricsRegistry r;
  r.AddCounter("x_total", "things", "kind=\"a\"")->Add(3);
  r.AddCounter("x_total", "things", "kind=\"b\"")->Add();
  r.AddGauge("y", "level")->Set(-2);
  r.AddGaugeFunction("z_bytes", "size", [] { return 1.5; });
  Histogram* h = r.AddHistogram("lat_seconds", "latency", {0.01, 0.1});
  h->Observe(0.005);
  h->Observe(0.05);
  h->Observe(5);
  const std::string text = r.Text();
  EXPECT_TRUE(absl::StrContains(text, "# TYPE x_total counter\nx_total{kind=\"a\"} 3\nx_total{kind=\"b\"} 1\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "y -2\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "z_bytes 1.5\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "lat_seconds_bucket{le=\"0.01\"} 1\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "lat_seconds_bucket{le=\"0.1\"} 2\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "lat_seconds_bucket{le=\"+Inf\"} 3\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "lat_seconds_sum 5.055\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "lat_seconds_count 3\n")) << text;
  // HELP and TYPE once per name.
  EXPECT_EQ(text.find("# TYPE x_total"), text.rfind("# TYPE x_total"));
}

TEST(MetricsTest, QuantileInterpolatesInsideBucket) {
  Histogram h({0.01, 0.02, 0.05});
  for (int i = 0; i < 90; ++i) h.Observe(0.015);
  for (int i = 0; i < 10; ++i) h.Observe(0.04);
  const Histogram::Snapshot s = h.snapshot();
  EXPECT_EQ(s.count, 100u);
  EXPECT_GT(s.Quantile(0.5), 0.01);
  EXPECT_LE(s.Quantile(0.5), 0.02);
  EXPECT_GT(s.Quantile(0.99), 0.02);
  EXPECT_LE(s.Quantile(0.99), 0.05);
  EXPECT_EQ(Histogram({1}).snapshot().Quantile(0.5), 0);
}

TEST(MetricsTest, CountsFromManyThreads) {
  MetricsRegistry r;
  Counter* c = r.AddCounter("c_total", "c");
  Histogram* h = r.AddHistogram("h", "h", LatencyBuckets());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        c->Add();
        h->Observe(0.001);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c->value(), 40000u);
  EXPECT_EQ(h->snapshot().count, 40000u);
}

}  // namespace
}  // namespace converge
