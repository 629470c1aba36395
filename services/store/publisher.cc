#include "services/store/publisher.h"

#include <grpcpp/grpcpp.h>

#include "common/bearer_token.h"
#include "common/logging.h"

namespace converge::store {

GrpcPublisher::GrpcPublisher(const std::string& address, std::string service_token)
    : service_token_(std::move(service_token)) {
  if (address.empty()) return;
  stub_ = notification::v1::NotificationService::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  thread_ = std::thread([this] { Run(); });
}

GrpcPublisher::~GrpcPublisher() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void GrpcPublisher::Publish(const std::string& ns, uint64_t seq) {
  if (stub_ == nullptr) return;
  absl::MutexLock lock(&mu_);
  uint64_t& pending = pending_[ns];
  if (seq > pending) pending = seq;
}

void GrpcPublisher::Run() {
  static auto log = GetLogger("store.publish");
  while (true) {
    absl::flat_hash_map<std::string, uint64_t> batch;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !pending_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
      batch.swap(pending_);
    }
    for (const auto& [ns, seq] : batch) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
      AddBearerToken(&ctx, service_token_);
      notification::v1::PublishRequest req;
      req.set_namespace_id(ns);
      req.set_seq(seq);
      notification::v1::PublishResponse resp;
      grpc::Status s = stub_->Publish(&ctx, req, &resp);
      if (!s.ok()) {
        // Engines also pull on reconnect and on a quiet stream, so a lost event delays, never
        // loses, a change.
        log->warn("publish {}@{} failed: {}", ns, seq, s.error_message());
      }
    }
  }
}

}  // namespace converge::store
