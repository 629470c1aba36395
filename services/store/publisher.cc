#include "services/store/publisher.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>

#include "common/bearer_token.h"
#include "common/logging.h"
#include "common/metrics.h"

namespace converge::store {
namespace {

struct Metrics {
  Counter* sent = DefaultMetrics().AddCounter("converge_store_publishes_total", "publishes to converge-notify",
                                              "result=\"ok\"");
  Counter* failed = DefaultMetrics().AddCounter("converge_store_publishes_total",
                                                "publishes to converge-notify", "result=\"failed\"");
  Histogram* latency = DefaultMetrics().AddHistogram(
      "converge_store_commit_to_published_seconds",
      "from a commit becoming durable to converge-notify accepting its event", LatencyBuckets());
};

Metrics& M() {
  static Metrics* m = new Metrics();
  return *m;
}

}  // namespace

GrpcPublisher::GrpcPublisher(const std::string& address, std::string service_token,
                             std::shared_ptr<grpc::ChannelCredentials> credentials)
    : service_token_(std::move(service_token)) {
  M();
  if (address.empty()) return;
  stub_ = notification::v1::NotificationService::NewStub(grpc::CreateChannel(
      address, credentials != nullptr ? credentials : grpc::InsecureChannelCredentials()));
  thread_ = std::thread([this] { Run(); });
}

GrpcPublisher::~GrpcPublisher() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void GrpcPublisher::Publish(const std::string& ns, uint64_t seq, int64_t committed_at_unix_micros) {
  if (stub_ == nullptr) return;
  absl::MutexLock lock(&mu_);
  Pending& pending = pending_[ns];
  if (seq > pending.seq) pending = Pending{seq, committed_at_unix_micros};
}

void GrpcPublisher::Run() {
  static auto log = GetLogger("store.publish");
  absl::Duration backoff = absl::ZeroDuration();
  bool warned = false;
  while (true) {
    absl::flat_hash_map<std::string, Pending> batch;
    {
      absl::MutexLock lock(&mu_);
      auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
      if (backoff > absl::ZeroDuration()) mu_.AwaitWithTimeout(absl::Condition(&stop), backoff);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !pending_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
      batch.swap(pending_);
    }
    absl::flat_hash_map<std::string, Pending> failed;
    for (const auto& [ns, p] : batch) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
      AddBearerToken(&ctx, service_token_);
      notification::v1::PublishRequest req;
      req.set_namespace_id(ns);
      req.set_seq(p.seq);
      req.set_committed_at_unix_micros(p.committed_at_unix_micros);
      notification::v1::PublishResponse resp;
      grpc::Status s = stub_->Publish(&ctx, req, &resp);
      if (s.ok()) {
        M().sent->Add();
        if (p.committed_at_unix_micros > 0) {
          M().latency->Observe(absl::ToDoubleSeconds(absl::Now() - absl::FromUnixMicros(p.committed_at_unix_micros)));
        }
        continue;
      }
      M().failed->Add();
      failed.emplace(ns, p);
      // Engines also pull on reconnect and on heartbeats, so a lost event delays, never loses,
      // a change; retrying makes the delay short once converge-notify is back.
      if (!warned) log->warn("publish {}@{} failed: {}; retrying", ns, p.seq, s.error_message());
      warned = true;
    }
    if (failed.empty()) {
      if (warned) log->info("publishing to converge-notify again");
      warned = false;
      backoff = absl::ZeroDuration();
      continue;
    }
    {
      absl::MutexLock lock(&mu_);
      for (const auto& [ns, p] : failed) {
        Pending& pending = pending_[ns];
        if (p.seq > pending.seq) pending = p;
      }
    }
    backoff = std::clamp(backoff * 2, absl::Milliseconds(50), absl::Seconds(2));
  }
}

}  // namespace converge::store
