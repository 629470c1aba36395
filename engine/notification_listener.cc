#include "engine/notification_listener.h"

#include <grpcpp/grpcpp.h>

#include <random>

#include "absl/time/clock.h"
#include "common/logging.h"

namespace converge::engine {

NotificationListener::NotificationListener(std::shared_ptr<grpc::Channel> channel,
                                           std::string device_id, std::string namespace_id,
                                           OnHead on_head)
    : stub_(notification::v1::NotificationService::NewStub(std::move(channel))),
      device_id_(std::move(device_id)),
      namespace_id_(std::move(namespace_id)),
      on_head_(std::move(on_head)) {}

NotificationListener::~NotificationListener() { Stop(); }

void NotificationListener::Start() { thread_ = std::thread([this] { Run(); }); }

void NotificationListener::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (current_ != nullptr) current_->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

void NotificationListener::Run() {
  static auto log = GetLogger("notify-listener");
  std::mt19937_64 rng(std::random_device{}());
  absl::Duration backoff = absl::Milliseconds(100);
  while (true) {
    grpc::ClientContext ctx;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      current_ = &ctx;
    }
    notification::v1::SubscribeRequest req;
    req.set_device_id(device_id_);
    req.add_namespace_ids(namespace_id_);
    auto reader = stub_->Subscribe(&ctx, req);
    notification::v1::Event event;
    bool got_any = false;
    while (reader->Read(&event)) {
      if (!got_any) log->debug("subscribed to {}", namespace_id_);
      got_any = true;
      if (event.namespace_id() == namespace_id_) on_head_(event.seq());
    }
    grpc::Status s = reader->Finish();
    {
      absl::MutexLock lock(&mu_);
      current_ = nullptr;
      if (stopping_) return;
    }
    if (got_any) backoff = absl::Milliseconds(100);
    log->debug("notification stream ended ({}); reconnecting", s.error_message());
    // Jittered exponential backoff, capped at 5 s.
    std::uniform_real_distribution<double> jitter(0.5, 1.5);
    const absl::Duration wait = backoff * jitter(rng);
    backoff = std::min(backoff * 2, absl::Seconds(5));
    absl::MutexLock lock(&mu_);
    auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
    mu_.AwaitWithTimeout(absl::Condition(&stop), wait);
  }
}

}  // namespace converge::engine
