#include "services/store/notify_client.h"

#include <grpcpp/grpcpp.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

#include "common/base/logging.h"
#include "common/base/metrics.h"
#include "common/security/bearer_token.h"

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
                             std::shared_ptr<grpc::ChannelCredentials> credentials, const grpc::ChannelArguments& args)
    : service_token_(std::move(service_token)) {
  M();
  if (address.empty()) return;
  stub_ = notification::v1::NotificationService::NewStub(grpc::CreateCustomChannel(
      address, credentials != nullptr ? credentials : grpc::InsecureChannelCredentials(), args));
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

FanoutPublisher::FanoutPublisher(const std::string& targets, std::string service_token,
                                 std::shared_ptr<grpc::ChannelCredentials> credentials, std::string tls_name,
                                 absl::Duration resolve_every)
    : service_token_(std::move(service_token)), credentials_(std::move(credentials)), tls_name_(std::move(tls_name)) {
  {
    absl::MutexLock lock(&mu_);
    for (absl::string_view target : absl::StrSplit(targets, ',', absl::SkipEmpty())) {
      if (absl::ConsumePrefix(&target, "all:")) {
        resolved_names_.emplace_back(target);
      } else {
        publishers_[std::string(target)] = std::make_unique<GrpcPublisher>(std::string(target), service_token_, credentials_);
      }
    }
  }
  if (resolved_names_.empty()) return;
  Resolve();
  resolver_ = std::thread([this, resolve_every] {
    while (!stop_.WaitForNotificationWithTimeout(resolve_every)) Resolve();
  });
}

FanoutPublisher::~FanoutPublisher() {
  stop_.Notify();
  if (resolver_.joinable()) resolver_.join();
}

void FanoutPublisher::Publish(const std::string& ns, uint64_t seq, int64_t committed_at_unix_micros) {
  absl::MutexLock lock(&mu_);
  for (auto& [address, publisher] : publishers_) publisher->Publish(ns, seq, committed_at_unix_micros);
}

std::vector<std::string> FanoutPublisher::addresses() {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  for (const auto& [address, publisher] : publishers_) out.push_back(address);
  std::sort(out.begin(), out.end());
  return out;
}

void FanoutPublisher::Resolve() {
  static auto log = GetLogger("store.publish");
  for (const std::string& name : resolved_names_) {
    const size_t colon = name.rfind(':');
    if (colon == std::string::npos) continue;
    const std::string host = name.substr(0, colon), port = name.substr(colon + 1);
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
      log->warn("resolve {}: {}", name, gai_strerror(rc));
      continue;  // keep the replicas known so far
    }
    absl::flat_hash_set<std::string> now;
    for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
      char ip[INET6_ADDRSTRLEN] = {};
      const void* raw = a->ai_family == AF_INET6 ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr)
                                                 : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr);
      if (inet_ntop(a->ai_family, raw, ip, sizeof(ip)) == nullptr) continue;
      now.insert(a->ai_family == AF_INET6 ? absl::StrCat("[", ip, "]:", port) : absl::StrCat(ip, ":", port));
    }
    freeaddrinfo(found);
    absl::MutexLock lock(&mu_);
    Reconcile(now, name);
  }
}

void FanoutPublisher::Follow(const std::vector<std::string>& addresses) {
  absl::flat_hash_set<std::string> now(addresses.begin(), addresses.end());
  absl::MutexLock lock(&mu_);
  Reconcile(now, "etcd");
}

void FanoutPublisher::Reconcile(const absl::flat_hash_set<std::string>& now, const std::string& from) {
  static auto log = GetLogger("store.publish");
  for (const std::string& address : now) {
    if (publishers_.contains(address)) continue;
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride(tls_name_);  // the certificate names the service, not the pod
    publishers_[address] = std::make_unique<GrpcPublisher>(address, service_token_, credentials_, args);
    resolved_from_[address] = from;
    log->info("publishing to notification replica {} ({})", address, from);
  }
  // Replicas found this way that went away.
  for (auto it = resolved_from_.begin(); it != resolved_from_.end();) {
    if (it->second == from && !now.contains(it->first)) {
      log->info("notification replica {} is gone ({})", it->first, from);
      publishers_.erase(it->first);
      resolved_from_.erase(it++);
    } else {
      ++it;
    }
  }
}

}  // namespace converge::store
