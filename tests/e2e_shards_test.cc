// Two store shards on loopback: management places each user (and so each namespace the user
// owns) on the shard with the fewest users and tells engines, per namespace, which store to use.
// Engines of two users sync through different shards; each shard holds only its namespaces;
// operator views reach both.
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "converge/store/v1/store.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/cluster.h"

namespace converge::testing {
namespace {

bool WaitForContent(const std::string& path, const std::string& want, absl::Duration timeout) {
  for (absl::Time end = absl::Now() + timeout; absl::Now() < end; absl::SleepFor(absl::Milliseconds(50))) {
    if (ReadFile(path) == want) return true;
  }
  return false;
}

// A member device of `ns` (from convergectl members list --json).
std::string MemberOf(Cluster& cluster, const std::string& ns) {
  const std::string out = cluster.Convergectl({"members", "list", ns, "--json"}).out;
  const size_t at = out.find("\"dev-");
  return at == std::string::npos ? "" : out.substr(at + 1, out.find('"', at + 1) - at - 1);
}

// ListFiles of `ns` on one shard, as a member device of it (a token minted with the cluster's key).
grpc::Status ListOnShard(Cluster& cluster, int shard, const std::string& user, const std::string& ns) {
  auto token = cluster.SignDeviceToken(MemberOf(cluster, ns), user, {ns});
  if (!token.ok()) return grpc::Status(grpc::StatusCode::INTERNAL, "token");
  auto stub = store::v1::StoreService::NewStub(grpc::CreateChannel(cluster.store_address(shard), cluster.DeviceCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  ctx.AddMetadata("authorization", "Bearer " + *token);
  store::v1::ListFilesRequest req;
  req.set_namespace_id(ns);
  auto reader = stub->ListFiles(&ctx, req);
  store::v1::ListFilesResponse resp;
  while (reader->Read(&resp)) {
  }
  return reader->Finish();
}

TEST(E2eShardsTest, NamespacesSpreadOverTwoStoreShardsAndSyncThroughEach) {
  ClusterOptions options;
  options.dir = std::string(getenv("TEST_TMPDIR")) + "/shards";
  options.store_shards = 2;
  std::filesystem::remove_all(options.dir);
  auto started = Cluster::Start(options);
  ASSERT_TRUE(started.ok()) << started.status();
  Cluster& cluster = **started;

  // The cluster's user "e2e" came first (shard 0); "zoe" goes to the emptier shard 1.
  ASSERT_EQ(cluster.Convergectl({"users", "create", "zoe"}).exit_code, 0);
  ASSERT_EQ(cluster.Convergectl({"namespaces", "create", "zoes", "--owner=zoe"}).exit_code, 0);
  CommandResult enroll = cluster.Convergectl({"users", "enroll", "zoe", "--uses=10"});
  ASSERT_EQ(enroll.exit_code, 0) << enroll.err;
  std::string zoe_token = enroll.out;
  while (!zoe_token.empty() && (zoe_token.back() == '\n' || zoe_token.back() == '\r')) zoe_token.pop_back();

  ASSERT_TRUE(cluster.AddEngine("alpha").ok());
  ASSERT_TRUE(cluster.AddEngine("beta").ok());
  auto gamma = cluster.AddEngine("gamma", {"zoe", "zoes", zoe_token});
  auto delta = cluster.AddEngine("delta", {"zoe", "zoes", zoe_token});
  ASSERT_TRUE(gamma.ok() && delta.ok());

  WriteFile(cluster.folder(0) + "/docs/e2e.txt", "on shard 0");
  WriteFile(cluster.folder(*gamma) + "/docs/zoe.txt", "on shard 1");
  WriteFile(cluster.folder(*delta) + "/back.txt", "zoe's other device");
  EXPECT_TRUE(WaitForContent(cluster.folder(1) + "/docs/e2e.txt", "on shard 0", absl::Seconds(30)))
      << "logs in " << cluster.logs_dir();
  EXPECT_TRUE(WaitForContent(cluster.folder(*delta) + "/docs/zoe.txt", "on shard 1", absl::Seconds(30)))
      << "logs in " << cluster.logs_dir();
  EXPECT_TRUE(WaitForContent(cluster.folder(*gamma) + "/back.txt", "zoe's other device", absl::Seconds(30)));
  // Namespaces do not leak into each other's folders.
  EXPECT_FALSE(std::filesystem::exists(cluster.folder(0) + "/docs/zoe.txt"));
  EXPECT_FALSE(std::filesystem::exists(cluster.folder(*gamma) + "/docs/e2e.txt"));

  // Each shard holds only its own namespace.
  EXPECT_TRUE(ListOnShard(cluster, 0, "e2e", "shared").ok());
  EXPECT_EQ(ListOnShard(cluster, 1, "e2e", "shared").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(ListOnShard(cluster, 1, "zoe", "zoes").ok());
  EXPECT_EQ(ListOnShard(cluster, 0, "zoe", "zoes").error_code(), grpc::StatusCode::NOT_FOUND);

  // Engines were told their namespace's shard; operators see both through management.
  std::ifstream log(cluster.logs_dir() + "/engine-gamma.log");
  const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(absl::StrContains(text, "(store " + cluster.store_address(1) + ",")) << text.substr(0, 2000);
  CommandResult status = cluster.Convergectl({"namespaces", "status", "zoes", "--json"});
  EXPECT_EQ(status.exit_code, 0) << status.err;
  CommandResult endpoints = cluster.Convergectl({"endpoints", "zoes"});
  EXPECT_EQ(endpoints.exit_code, 0) << endpoints.err;
  EXPECT_TRUE(absl::StrContains(endpoints.out, cluster.store_address(1))) << endpoints.out;
  CommandResult users = cluster.Convergectl({"users", "list"});
  EXPECT_TRUE(absl::StrContains(users.out, "SHARD")) << users.out;
}

}  // namespace
}  // namespace converge::testing
