#include "services/notification/notification_service.h"

#include <algorithm>
#include <deque>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/base/logging.h"
#include "common/base/metrics.h"
#include "common/model/path.h"
#include "common/rpc/grpc_status.h"

namespace converge::notification {
namespace {

constexpr absl::Duration kHeartbeatTick = absl::Milliseconds(50);

struct Metrics {
  Gauge* streams = DefaultMetrics().AddGauge("converge_notify_streams", "open Subscribe streams");
  Counter* publishes = DefaultMetrics().AddCounter("converge_notify_publishes_total", "Publish calls accepted");
  Counter* events = DefaultMetrics().AddCounter("converge_notify_events_sent_total", "events written to streams",
                                                "kind=\"event\"");
  Counter* heartbeats = DefaultMetrics().AddCounter("converge_notify_events_sent_total",
                                                    "events written to streams", "kind=\"heartbeat\"");
  Histogram* propagation = DefaultMetrics().AddHistogram(
      "converge_notify_commit_to_sent_seconds",
      "from the store making a commit durable to its event being written to a stream", LatencyBuckets());
};

Metrics& M() {
  static Metrics* m = new Metrics();
  return *m;
}

// One subscriber stream. Events queue per namespace (a newer seq replaces a queued older one)
// and are written one at a time; the reactor never blocks.
class SubscribeReactor final : public grpc::ServerWriteReactor<v1::Event>, public Subscriber {
 public:
  SubscribeReactor(Hub* hub, absl::Duration heartbeat) : hub_(hub), heartbeat_(heartbeat) {
    M().streams->Add(1);
  }

  // Start subscribes, or finishes the stream with `denied` (a failed authorization) or a bad
  // request's error.
  void Start(const std::string& device_id, const std::vector<std::string>& namespaces, absl::Status denied,
             CallLimiter::Slot slot) {
    device_id_ = device_id;
    slot_ = std::move(slot);
    absl::Status s = denied;
    if (s.ok()) s = ValidateId("device id", device_id);
    if (s.ok()) s = hub_->Subscribe(this, namespaces);
    if (!s.ok()) FinishOnce(ToGrpcStatus(s));
  }

  std::string device_id() const override { return device_id_; }

  void Close() override {
    absl::MutexLock lock(&mu_);
    FinishLocked(grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "device revoked"));
  }

  void Deliver(const HeadEvent& event) override {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    for (HeadEvent& queued : queue_) {
      if (queued.namespace_id == event.namespace_id) {
        if (event.seq > queued.seq) {
          queued.seq = event.seq;
          queued.committed_at_unix_micros = event.committed_at_unix_micros;
        }
        queued.heartbeat = queued.heartbeat && event.heartbeat;
        return;
      }
    }
    queue_.push_back(event);
    MaybeWriteLocked();
  }

  void Announce(const Announcement& a) override {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    Announcement& queued = announcements_[{a.namespace_id, a.device_id}];
    if (queued.seq <= a.seq) queued = a;
    MaybeWriteLocked();
  }

  bool HeartbeatDue(absl::Time now) override {
    absl::MutexLock lock(&mu_);
    return !finished_ && !writing_ && queue_.empty() && now - last_write_ >= heartbeat_;
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      FinishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "stream broken"));
      return;
    }
    MaybeWriteLocked();
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    FinishLocked(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    hub_->Unsubscribe(this);  // after this no Deliver runs
    M().streams->Add(-1);
    delete this;
  }

 private:
  void MaybeWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || finished_) return;
    if (queue_.empty() && !announcements_.empty()) {
      // Heads first; then another device's announcement (one per device, the newest).
      const auto first = announcements_.begin();
      event_.Clear();
      event_.set_namespace_id(first->second.namespace_id);
      v1::AnnouncedHead* a = event_.mutable_announced();
      a->set_device_id(first->second.device_id);
      a->set_seq(first->second.seq);
      a->set_hash(first->second.hash);
      a->set_signature(first->second.signature);
      announcements_.erase(first);
      last_write_ = absl::Now();
      writing_ = true;
      StartWrite(&event_);
      return;
    }
    if (queue_.empty()) return;
    event_.clear_announced();
    const HeadEvent& next = queue_.front();
    event_.set_namespace_id(next.namespace_id);
    event_.set_seq(next.seq);
    event_.set_heartbeat(next.heartbeat);
    event_.set_committed_at_unix_micros(next.committed_at_unix_micros);
    last_write_ = absl::Now();
    if (next.heartbeat) {
      M().heartbeats->Add();
    } else {
      M().events->Add();
      if (next.committed_at_unix_micros > 0) {
        M().propagation->Observe(absl::ToDoubleSeconds(
            last_write_ - absl::FromUnixMicros(next.committed_at_unix_micros)));
      }
    }
    queue_.pop_front();
    writing_ = true;
    StartWrite(&event_);
  }

  void FinishOnce(const grpc::Status& status) {
    absl::MutexLock lock(&mu_);
    FinishLocked(status);
  }

  void FinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  Hub* const hub_;
  const absl::Duration heartbeat_;
  std::string device_id_;  // set before the hub knows the reactor
  CallLimiter::Slot slot_;  // the device's place among its open streams
  absl::Mutex mu_;
  std::deque<HeadEvent> queue_ ABSL_GUARDED_BY(mu_);
  // (namespace, device) -> its newest announcement not yet written.
  std::map<std::pair<std::string, std::string>, Announcement> announcements_ ABSL_GUARDED_BY(mu_);
  v1::Event event_ ABSL_GUARDED_BY(mu_);
  absl::Time last_write_ ABSL_GUARDED_BY(mu_) = absl::Now();
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

NotificationService::NotificationService(Hub* hub, NotificationOptions options)
    : hub_(hub), options_(options), auth_(std::move(options.auth)), streams_(CallLimiter::Limits{options.max_streams_per_device, 0, 0}) {
  M();  // register the metrics before the first scrape
  heartbeats_ = std::thread([this] {
    while (!stop_.WaitForNotificationWithTimeout(kHeartbeatTick)) hub_->Heartbeat(absl::Now());
  });
}

NotificationService::~NotificationService() {
  stop_.Notify();
  heartbeats_.join();
}

grpc::ServerWriteReactor<v1::Event>* NotificationService::Subscribe(
    grpc::CallbackServerContext* ctx, const v1::SubscribeRequest* req) {
  absl::Duration heartbeat = req->heartbeat_interval_ms() == 0
                                 ? options_.default_heartbeat
                                 : absl::Milliseconds(req->heartbeat_interval_ms());
  heartbeat = std::clamp(heartbeat, options_.min_heartbeat, options_.max_heartbeat);
  std::vector<std::string> namespaces(req->namespace_ids().begin(), req->namespace_ids().end());
  // The device and what it may hear of come from its token.
  std::string device = req->device_id();
  absl::Status denied;
  if (auth_.verifies_devices()) {
    absl::StatusOr<DeviceClaims> claims = auth_.VerifyDevice(*ctx);
    if (!claims.ok()) {
      denied = claims.status();
    } else if (!device.empty() && device != claims->device_id) {
      denied = absl::PermissionDeniedError("the device token is for another device");
    } else {
      device = claims->device_id;
      for (const std::string& ns : namespaces) {
        if (!claims->HasNamespace(ns)) {
          denied = absl::PermissionDeniedError(absl::StrCat("device '", device, "' may not subscribe to namespace '",
                                                            ns.substr(0, 64), "'"));
          break;
        }
      }
    }
  }
  CallLimiter::Slot slot;
  if (denied.ok()) {
    absl::StatusOr<CallLimiter::Slot> admitted = streams_.Acquire(device, "streams");
    if (admitted.ok()) {
      slot = std::move(*admitted);
    } else {
      denied = admitted.status();
    }
  }
  auto* reactor = new SubscribeReactor(hub_, heartbeat);
  reactor->Start(device, namespaces, denied, std::move(slot));
  return reactor;
}

size_t NotificationService::Revoke(const std::vector<std::string>& device_ids, absl::Time until) {
  static auto log = GetLogger("notify");
  size_t closed = 0;
  for (const std::string& device : device_ids) {
    auth_.Revoke(device, until);
    closed += hub_->CloseDevice(device);
  }
  log->info("revoked {} device(s), closed {} stream(s)", device_ids.size(), closed);
  return closed;
}

grpc::ServerUnaryReactor* NotificationService::RevokeDevices(grpc::CallbackServerContext* ctx,
                                                             const v1::RevokeDevicesRequest* req,
                                                             v1::RevokeDevicesResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  absl::Status s = auth_.RequireService(*ctx);
  if (s.ok() && req->device_ids_size() > 10000) s = absl::InvalidArgumentError("at most 10000 devices per call");
  for (int i = 0; s.ok() && i < req->device_ids_size(); ++i) s = ValidateId("device id", req->device_ids(i));
  if (s.ok()) {
    const absl::Time until = std::max(absl::FromUnixMillis(req->until_unix_ms()), absl::Now() + kMaxDeviceTokenTtl);
    resp->set_streams_closed(static_cast<uint32_t>(Revoke({req->device_ids().begin(), req->device_ids().end()}, until)));
  }
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

grpc::ServerUnaryReactor* NotificationService::AnnounceHead(grpc::CallbackServerContext* ctx,
                                                            const v1::AnnounceHeadRequest* req,
                                                            v1::AnnounceHeadResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  const v1::AnnouncedHead& head = req->head();
  absl::Status s = ValidateId("namespace id", req->namespace_id());
  if (s.ok()) s = ValidateId("device id", head.device_id());
  if (s.ok() && auth_.verifies_devices()) {
    absl::StatusOr<DeviceClaims> claims = auth_.VerifyDevice(*ctx);
    if (!claims.ok()) {
      s = claims.status();
    } else if (claims->device_id != head.device_id() || !claims->HasNamespace(req->namespace_id())) {
      s = absl::PermissionDeniedError("a device announces only its own head, in its own namespaces");
    }
  }
  if (s.ok() && (head.hash().size() != 32 || head.signature().size() != 64)) {
    s = absl::InvalidArgumentError("an announced head is a 32-byte hash and a 64-byte signature");
  }
  if (s.ok()) {
    // Passed on as is: the devices check the signature (the service holds no keys).
    const size_t told = hub_->Announce(
        Announcement{req->namespace_id(), head.device_id(), head.seq(), head.hash(), head.signature()});
    resp->set_subscribers_notified(static_cast<uint32_t>(told));
  }
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

grpc::ServerUnaryReactor* NotificationService::Publish(grpc::CallbackServerContext* ctx,
                                                       const v1::PublishRequest* req,
                                                       v1::PublishResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  absl::Status s = auth_.RequireService(*ctx);
  if (s.ok()) s = ValidateId("namespace id", req->namespace_id());
  if (s.ok()) {
    M().publishes->Add();
    const size_t told = hub_->Publish(HeadEvent{req->namespace_id(), req->seq(), req->committed_at_unix_micros()});
    resp->set_subscribers_notified(static_cast<uint32_t>(told));
  }
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

}  // namespace converge::notification
