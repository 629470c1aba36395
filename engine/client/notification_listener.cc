#include "engine/client/notification_listener.h"

#include <grpcpp/grpcpp.h>

#include <random>

#include "absl/time/clock.h"
#include "common/base/logging.h"
#include "common/base/metrics.h"

namespace converge::engine {
namespace {

std::shared_ptr<spdlog::logger> Log() {
  static auto log = GetLogger("notify-listener");
  return log;
}

Counter* Reconnects() {
  static Counter* c = DefaultMetrics().AddCounter("converge_engine_notify_reconnects_total",
                                                  "notification stream reconnects");
  return c;
}

}  // namespace

NotificationListener::NotificationListener(std::shared_ptr<grpc::Channel> channel,
                                           std::string device_id, std::string namespace_id,
                                           absl::Duration heartbeat, Callbacks callbacks)
    : stub_(notification::v1::NotificationService::NewStub(channel)),
      device_id_(std::move(device_id)),
      namespace_id_(std::move(namespace_id)),
      heartbeat_(heartbeat),
      callbacks_(std::move(callbacks)),
      announce_channel_(channel) {}

NotificationListener::NotificationListener(std::function<std::shared_ptr<grpc::Channel>()> connect,
                                           std::string device_id, std::string namespace_id,
                                           absl::Duration heartbeat, Callbacks callbacks)
    : NotificationListener(connect(), std::move(device_id), std::move(namespace_id), heartbeat,
                           std::move(callbacks)) {
  connect_ = std::move(connect);
}

NotificationListener::~NotificationListener() { Stop(); }

void NotificationListener::Start() {
  thread_ = std::thread([this] { Run(); });
  watchdog_ = std::thread([this] { Watchdog(); });
  announcer_ = std::thread([this] { SendAnnouncements(); });
}

void NotificationListener::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (current_ != nullptr) current_->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
  if (watchdog_.joinable()) watchdog_.join();
  if (announcer_.joinable()) announcer_.join();
}

void NotificationListener::Announce(Announced head) {
  absl::MutexLock lock(&mu_);
  if (!newest_announced_.has_value() || newest_announced_->seq <= head.seq) newest_announced_ = head;
  if (!to_announce_.has_value() || to_announce_->seq <= head.seq) to_announce_ = std::move(head);
}

void NotificationListener::SendAnnouncements() {
  auto stub = notification::v1::NotificationService::NewStub(announce_channel_);
  int failures = 0;
  while (true) {
    Announced head;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || to_announce_.has_value(); };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
      head = *std::move(to_announce_);
      to_announce_.reset();
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    notification::v1::AnnounceHeadRequest req;
    req.set_namespace_id(namespace_id_);
    req.mutable_head()->set_device_id(device_id_);
    req.mutable_head()->set_seq(head.seq);
    req.mutable_head()->set_hash(head.hash);
    req.mutable_head()->set_signature(head.signature);
    notification::v1::AnnounceHeadResponse resp;
    grpc::Status s = stub->AnnounceHead(&ctx, req, &resp);
    if (s.ok()) {
      failures = 0;
      continue;
    }
    Log()->debug("announcing head {}: {}", head.seq, s.error_message());
    if (++failures >= 2 && connect_) stub = notification::v1::NotificationService::NewStub(connect_());
    absl::MutexLock lock(&mu_);
    if (!to_announce_.has_value()) to_announce_ = std::move(head);  // again, unless a newer one waits
    auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
    mu_.AwaitWithTimeout(absl::Condition(&stop), absl::Seconds(1));
  }
}

int NotificationListener::silent_reconnects() const {
  absl::MutexLock lock(&mu_);
  return silent_reconnects_;
}

void NotificationListener::Watchdog() {
  const absl::Duration limit = heartbeat_ * kMissedHeartbeats;
  const absl::Duration tick = std::max(heartbeat_ / 4, absl::Milliseconds(10));
  absl::MutexLock lock(&mu_);
  auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
  while (!mu_.AwaitWithTimeout(absl::Condition(&stop), tick)) {
    if (current_ == nullptr || absl::Now() - last_heard_ < limit) continue;
    Log()->warn("notification stream silent for {}: reconnecting", absl::FormatDuration(absl::Now() - last_heard_));
    ++silent_reconnects_;
    current_->TryCancel();
    last_heard_ = absl::Now();
  }
}

void NotificationListener::Run() {
  std::mt19937_64 rng(std::random_device{}());
  absl::Duration backoff = absl::Milliseconds(100);
  bool first = true;
  int failures = 0;  // consecutive attempts that heard nothing
  while (true) {
    if (failures >= 2 && connect_) {
      stub_ = notification::v1::NotificationService::NewStub(connect_());
      failures = 0;
    }
    grpc::ClientContext ctx;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      current_ = &ctx;
      last_heard_ = absl::Now();
    }
    notification::v1::SubscribeRequest req;
    req.set_device_id(device_id_);
    req.add_namespace_ids(namespace_id_);
    req.set_heartbeat_interval_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(heartbeat_)));
    auto reader = stub_->Subscribe(&ctx, req);
    notification::v1::Event event;
    bool got_any = false;
    while (reader->Read(&event)) {
      {
        absl::MutexLock lock(&mu_);
        last_heard_ = absl::Now();
      }
      if (!got_any) {
        // A reconnect: a stream that hears something after an earlier one ended (whether or not
        // that one heard anything: a stream cut before its first heartbeat is lost all the same).
        Log()->log(first ? spdlog::level::debug : spdlog::level::info, "subscribed to {}{}", namespace_id_,
                   first ? "" : " again");
        if (!first) {
          Reconnects()->Add();
          absl::MutexLock lock(&mu_);
          if (!to_announce_.has_value()) to_announce_ = newest_announced_;
        }
        if (callbacks_.on_connected) callbacks_.on_connected();
      }
      got_any = true;
      if (event.namespace_id() != namespace_id_) continue;
      if (event.has_announced()) {
        if (callbacks_.on_announced) {
          const auto& a = event.announced();
          callbacks_.on_announced(Announced{a.device_id(), a.seq(), a.hash(), a.signature()});
        }
        continue;
      }
      callbacks_.on_head(event.seq());
    }
    grpc::Status s = reader->Finish();
    first = false;
    {
      absl::MutexLock lock(&mu_);
      current_ = nullptr;
      if (stopping_) return;
    }
    if (got_any) backoff = absl::Milliseconds(100);
    failures = got_any ? 0 : failures + 1;
    Log()->debug("notification stream ended ({}); reconnecting", s.error_message());
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
