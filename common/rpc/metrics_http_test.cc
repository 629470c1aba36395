#include "common/rpc/metrics_http.h"

#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "common/base/metrics.h"
#include "gtest/gtest.h"

namespace converge {
namespace {

TEST(MetricsHttpTest, ServesMetricsOverHttp) {
  MetricsRegistry r;
  r.AddCounter("served_total", "x")->Add(7);
  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> server = MetricsHttpServer::Start("127.0.0.1:0", &r);
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string addr = "127.0.0.1:" + std::to_string((*server)->port());
  absl::StatusOr<std::string> body = HttpGet(addr, "/metrics");
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_TRUE(absl::StrContains(*body, "served_total 7\n")) << *body;
  EXPECT_EQ(*HttpGet(addr, "/healthz"), "ok\n");
  absl::StatusOr<std::string> missing = HttpGet(addr, "/nope");
  EXPECT_FALSE(missing.ok());
  EXPECT_TRUE(absl::StrContains(missing.status().message(), "404")) << missing.status();
  EXPECT_FALSE(MetricsHttpServer::Start("127.0.0.1:99999", &r).ok());
}

}  // namespace
}  // namespace converge
