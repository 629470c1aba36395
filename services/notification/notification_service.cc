#include "services/notification/notification_service.h"

#include <deque>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "common/bearer_token.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/path.h"

namespace converge::notification {
namespace {

// One subscriber stream. Events queue per namespace (a newer seq replaces a queued older one)
// and are written one at a time; the reactor never blocks.
class SubscribeReactor final : public grpc::ServerWriteReactor<v1::Event>, public Subscriber {
 public:
  explicit SubscribeReactor(Hub* hub) : hub_(hub) {}

  // Start validates the request and subscribes; a bad request finishes the stream.
  void Start(const std::string& device_id, const std::vector<std::string>& namespaces) {
    absl::Status s = ValidateId("device id", device_id);
    if (s.ok()) s = hub_->Subscribe(this, namespaces);
    if (!s.ok()) FinishOnce(ToGrpcStatus(s));
  }

  void Deliver(const std::string& ns, uint64_t seq) override {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    for (auto& queued : queue_) {
      if (queued.first == ns) {
        if (seq > queued.second) queued.second = seq;
        return;
      }
    }
    queue_.emplace_back(ns, seq);
    MaybeWriteLocked();
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
    delete this;
  }

 private:
  void MaybeWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || finished_ || queue_.empty()) return;
    event_.set_namespace_id(queue_.front().first);
    event_.set_seq(queue_.front().second);
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
  absl::Mutex mu_;
  std::deque<std::pair<std::string, uint64_t>> queue_ ABSL_GUARDED_BY(mu_);
  v1::Event event_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

grpc::ServerWriteReactor<v1::Event>* NotificationService::Subscribe(
    grpc::CallbackServerContext*, const v1::SubscribeRequest* req) {
  auto* reactor = new SubscribeReactor(hub_);
  reactor->Start(req->device_id(), {req->namespace_ids().begin(), req->namespace_ids().end()});
  return reactor;
}

grpc::ServerUnaryReactor* NotificationService::Publish(grpc::CallbackServerContext* ctx,
                                                       const v1::PublishRequest* req,
                                                       v1::PublishResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  absl::Status s = CheckBearerToken(*ctx, service_token_);
  if (s.ok()) s = ValidateId("namespace id", req->namespace_id());
  if (s.ok()) {
    resp->set_subscribers_notified(static_cast<uint32_t>(hub_->Publish(req->namespace_id(), req->seq())));
  }
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

}  // namespace converge::notification
