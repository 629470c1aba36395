// The notification service over a real loopback socket.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <thread>

#include "common/server_runner.h"
#include "gtest/gtest.h"
#include "services/notification/notification_server.h"

namespace converge::notification {
namespace {

class NotificationServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = StartServer(ServerOptions{}, {notify_.service()});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    stub_ = v1::NotificationService::NewStub(
        grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
  }

  grpc::Status Publish(const std::string& ns, uint64_t seq, const std::string& token) {
    grpc::ClientContext ctx;
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    v1::PublishRequest req;
    req.set_namespace_id(ns);
    req.set_seq(seq);
    v1::PublishResponse resp;
    return stub_->Publish(&ctx, req, &resp);
  }

  void WaitForSubscribers(size_t n) {
    for (int i = 0; i < 2500 && notify_.hub()->subscriber_count() != n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    ASSERT_EQ(notify_.hub()->subscriber_count(), n);
  }

  NotificationServer notify_{"svc"};
  std::unique_ptr<RunningServer> server_;
  std::unique_ptr<v1::NotificationService::Stub> stub_;
};

TEST_F(NotificationServiceTest, SubscriberGetsHeadThenEvents) {
  ASSERT_TRUE(Publish("ns", 3, "svc").ok());
  grpc::ClientContext ctx;
  v1::SubscribeRequest req;
  req.set_device_id("dev1");
  req.add_namespace_ids("ns");
  auto reader = stub_->Subscribe(&ctx, req);
  v1::Event e;
  ASSERT_TRUE(reader->Read(&e));
  EXPECT_EQ(e.namespace_id(), "ns");
  EXPECT_EQ(e.seq(), 3u);
  WaitForSubscribers(1);
  ASSERT_TRUE(Publish("ns", 4, "svc").ok());
  ASSERT_TRUE(reader->Read(&e));
  EXPECT_EQ(e.seq(), 4u);
  ctx.TryCancel();
  while (reader->Read(&e)) {
  }
  reader->Finish().ok();
  WaitForSubscribers(0);
}

TEST_F(NotificationServiceTest, PublishNeedsTokenAndBadSubscribeIsRefused) {
  EXPECT_EQ(Publish("ns", 1, "").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Publish("ns", 1, "wrong").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  grpc::ClientContext ctx;
  v1::SubscribeRequest req;
  req.set_device_id("dev1");
  req.add_namespace_ids("../etc");
  auto reader = stub_->Subscribe(&ctx, req);
  v1::Event e;
  EXPECT_FALSE(reader->Read(&e));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace converge::notification
