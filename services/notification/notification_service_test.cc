// The notification service over a real loopback socket.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <thread>

#include "common/base/metrics.h"
#include "common/rpc/server_runner.h"
#include "gtest/gtest.h"
#include "services/notification/notification_server.h"

namespace converge::notification {
namespace {

NotificationOptions Options() {
  NotificationOptions o;
  o.auth.service_token = "svc";
  return o;
}

class NotificationServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = StartServer(ServerOptions{}, {notify_.service()});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    stub_ = v1::NotificationService::NewStub(
        grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
  }

  grpc::Status Publish(const std::string& ns, uint64_t seq, const std::string& token,
                       int64_t committed_at_us = 0) {
    grpc::ClientContext ctx;
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    v1::PublishRequest req;
    req.set_namespace_id(ns);
    req.set_seq(seq);
    req.set_committed_at_unix_micros(committed_at_us);
    v1::PublishResponse resp;
    return stub_->Publish(&ctx, req, &resp);
  }

  void WaitForSubscribers(size_t n) {
    for (int i = 0; i < 2500 && notify_.hub()->subscriber_count() != n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    ASSERT_EQ(notify_.hub()->subscriber_count(), n);
  }

  NotificationServer notify_{Options()};
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

TEST_F(NotificationServiceTest, QuietStreamCarriesHeartbeatsWithTheHead) {
  grpc::ClientContext ctx;
  v1::SubscribeRequest req;
  req.set_device_id("dev1");
  req.add_namespace_ids("quiet");
  req.set_heartbeat_interval_ms(100);
  auto reader = stub_->Subscribe(&ctx, req);
  v1::Event e;
  ASSERT_TRUE(reader->Read(&e));
  EXPECT_FALSE(e.heartbeat());
  WaitForSubscribers(1);
  // An event lost on the way (dropped on purpose here) is repaired by the next heartbeat.
  notify_.hub()->set_drop_ratio(1.0);
  ASSERT_TRUE(Publish("quiet", 9, "svc").ok());
  const absl::Time start = absl::Now();
  ASSERT_TRUE(reader->Read(&e));
  EXPECT_TRUE(e.heartbeat());
  EXPECT_EQ(e.seq(), 9u);
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  EXPECT_EQ(notify_.hub()->dropped(), 1u);
  ctx.TryCancel();
  while (reader->Read(&e)) {
  }
  reader->Finish().ok();
}

TEST_F(NotificationServiceTest, MeasuresCommitToSentLatency) {
  const Histogram* h = DefaultMetrics().FindHistogram("converge_notify_commit_to_sent_seconds");
  ASSERT_NE(h, nullptr);
  const uint64_t before = h->snapshot().count;
  grpc::ClientContext ctx;
  v1::SubscribeRequest req;
  req.set_device_id("dev1");
  req.add_namespace_ids("timed");
  auto reader = stub_->Subscribe(&ctx, req);
  v1::Event e;
  ASSERT_TRUE(reader->Read(&e));
  WaitForSubscribers(1);
  const int64_t committed = absl::ToUnixMicros(absl::Now() - absl::Milliseconds(20));
  ASSERT_TRUE(Publish("timed", 1, "svc", committed).ok());
  ASSERT_TRUE(reader->Read(&e));
  EXPECT_EQ(e.committed_at_unix_micros(), committed);
  const Histogram::Snapshot s = h->snapshot();
  EXPECT_EQ(s.count, before + 1);
  EXPECT_GE(s.sum, 0.02);
  ctx.TryCancel();
  while (reader->Read(&e)) {
  }
  reader->Finish().ok();
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

TEST_F(NotificationServiceTest, AnAnnouncedHeadReachesTheNamespacesOtherDevicesAndLaterOnes) {
  const auto announce = [&](const std::string& device, uint64_t seq, size_t hash_bytes) {
    grpc::ClientContext ctx;
    v1::AnnounceHeadRequest req;
    req.set_namespace_id("vault");
    req.mutable_head()->set_device_id(device);
    req.mutable_head()->set_seq(seq);
    req.mutable_head()->set_hash(std::string(hash_bytes, 'h'));
    req.mutable_head()->set_signature(std::string(64, 's'));
    v1::AnnounceHeadResponse resp;
    return stub_->AnnounceHead(&ctx, req, &resp);
  };
  const auto subscribe = [&](grpc::ClientContext* ctx, const std::string& device) {
    v1::SubscribeRequest req;
    req.set_device_id(device);
    req.add_namespace_ids("vault");
    return stub_->Subscribe(ctx, req);
  };
  grpc::ClientContext one_ctx, two_ctx;
  auto one = subscribe(&one_ctx, "dev1");
  auto two = subscribe(&two_ctx, "dev2");
  v1::Event e;
  ASSERT_TRUE(one->Read(&e));  // the heads
  ASSERT_TRUE(two->Read(&e));
  WaitForSubscribers(2);
  EXPECT_EQ(announce("dev1", 7, 31).error_code(), grpc::StatusCode::INVALID_ARGUMENT);  // not a 32-byte hash
  EXPECT_EQ(announce("../x", 7, 32).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(announce("dev1", 7, 32).ok());
  ASSERT_TRUE(two->Read(&e));
  ASSERT_TRUE(e.has_announced());
  EXPECT_EQ(e.announced().device_id(), "dev1");
  EXPECT_EQ(e.announced().seq(), 7u);
  // An older head of the same device is not passed on; a device that subscribes later gets the
  // newest of each other device at once; the announcing device never hears its own.
  ASSERT_TRUE(announce("dev1", 5, 32).ok());
  grpc::ClientContext three_ctx;
  auto three = subscribe(&three_ctx, "dev3");
  ASSERT_TRUE(three->Read(&e));
  EXPECT_FALSE(e.has_announced());
  ASSERT_TRUE(three->Read(&e));
  ASSERT_TRUE(e.has_announced());
  EXPECT_EQ(e.announced().seq(), 7u);
  ASSERT_TRUE(Publish("vault", 8, "svc").ok());
  ASSERT_TRUE(one->Read(&e));
  EXPECT_FALSE(e.has_announced());  // dev1's next event is the head, not its own announcement
  EXPECT_EQ(e.seq(), 8u);
  for (auto* ctx : {&one_ctx, &two_ctx, &three_ctx}) ctx->TryCancel();
  for (auto* reader : {one.get(), two.get(), three.get()}) {
    while (reader->Read(&e)) {
    }
    reader->Finish().ok();
  }
}

}  // namespace
}  // namespace converge::notification
