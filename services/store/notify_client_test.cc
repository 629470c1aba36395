// FanoutPublisher against real notification services on loopback: every replica sees every
// publish, whether listed or found through a name that resolves to them.
#include "services/store/notify_client.h"

#include <grpcpp/grpcpp.h>

#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/rpc/server_runner.h"
#include "gtest/gtest.h"
#include "services/notification/notification_server.h"

namespace converge::store {
namespace {

struct Replica {
  Replica() : server(Options()) {
    auto started = StartServer(ServerOptions{}, {server.service()});
    EXPECT_TRUE(started.ok()) << started.status();
    running = std::move(*started);
    stub = notification::v1::NotificationService::NewStub(
        grpc::CreateChannel(running->address(), grpc::InsecureChannelCredentials()));
  }
  static notification::NotificationOptions Options() {
    notification::NotificationOptions o;
    o.auth.service_token = "svc";
    return o;
  }
  // The head a new subscriber of `ns` is told (0: none within 5 s).
  uint64_t HeadOf(const std::string& ns, uint64_t at_least) {
    // Bounded by time, not tries: a subscribe refused at once (the replica has not yet seen the
    // last one's cancel, and a device may hold 8 streams) must not use the tries up in no time.
    const absl::Time deadline = absl::Now() + absl::Seconds(5);
    while (absl::Now() < deadline) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(50));
      notification::v1::SubscribeRequest req;
      req.set_device_id("dev1");
      req.add_namespace_ids(ns);
      auto reader = stub->Subscribe(&ctx, req);
      notification::v1::Event e;
      uint64_t head = 0;
      if (reader->Read(&e)) head = e.seq();
      ctx.TryCancel();
      reader->Finish().ok();
      if (head >= at_least) return head;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return 0;
  }
  notification::NotificationServer server;
  std::unique_ptr<RunningServer> running;
  std::unique_ptr<notification::v1::NotificationService::Stub> stub;
};

TEST(FanoutPublisherTest, EveryListedReplicaSeesEveryPublish) {
  Replica a, b;
  FanoutPublisher publisher(absl::StrCat(a.running->address(), ",", b.running->address()), "svc", nullptr);
  EXPECT_EQ(publisher.addresses().size(), 2u);
  publisher.Publish("ns", 7, 0);
  EXPECT_EQ(a.HeadOf("ns", 7), 7u);
  EXPECT_EQ(b.HeadOf("ns", 7), 7u);
  publisher.Publish("ns", 9, 0);
  EXPECT_EQ(a.HeadOf("ns", 9), 9u);
  EXPECT_EQ(b.HeadOf("ns", 9), 9u);
}

TEST(FanoutPublisherTest, AllPrefixPublishesToEveryAddressANameResolvesTo) {
  Replica a;
  const std::string port = a.running->address().substr(a.running->address().rfind(':') + 1);
  FanoutPublisher publisher("all:localhost:" + port, "svc", nullptr, "notification", absl::Milliseconds(100));
  const std::vector<std::string> addresses = publisher.addresses();
  EXPECT_NE(std::find(addresses.begin(), addresses.end(), "127.0.0.1:" + port), addresses.end())
      << addresses.size();
  publisher.Publish("ns", 3, 0);
  EXPECT_EQ(a.HeadOf("ns", 3), 3u);
}

}  // namespace
}  // namespace converge::store
