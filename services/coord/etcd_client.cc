#include "services/coord/etcd_client.h"

#include <chrono>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/base/logging.h"

namespace converge::coord {
namespace {

constexpr absl::Duration kAttempt = absl::Seconds(2);  // one member's share of a call

std::chrono::system_clock::time_point Deadline(absl::Duration d) {
  return std::chrono::system_clock::now() + std::chrono::milliseconds(absl::ToInt64Milliseconds(d));
}

// The first key after every key that starts with `prefix` (etcd's range_end for a prefix).
std::string PrefixEnd(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    if (static_cast<unsigned char>(end.back()) < 0xff) {
      end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

// Worth trying on another member: this one is down, cut off, or has no leader right now.
bool Retryable(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAVAILABLE || s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
         absl::StrContains(s.error_message(), "no leader") || absl::StrContains(s.error_message(), "leader changed");
}

absl::Status FromGrpc(const grpc::Status& s, const std::string& what) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), absl::StrCat("etcd ", what, ": ", s.error_message()));
}

EtcdKeyValue FromProto(const mvccpb::KeyValue& kv) {
  return EtcdKeyValue{kv.key(), kv.value(), kv.create_revision(), kv.mod_revision(), kv.lease()};
}

}  // namespace

absl::StatusOr<std::unique_ptr<EtcdClient>> EtcdClient::Connect(const std::string& endpoints,
                                                                absl::Duration call_timeout,
                                                                std::shared_ptr<grpc::ChannelCredentials> tls,
                                                                const std::string& tls_server_name) {
  std::vector<std::string> list = absl::StrSplit(endpoints, ',', absl::SkipWhitespace());
  if (list.empty()) return absl::InvalidArgumentError("no etcd endpoint given");
  for (std::string& e : list) {
    absl::string_view v = e;
    const bool wants_tls = absl::ConsumePrefix(&v, "https://") || absl::StartsWith(v, "unixs:");
    absl::ConsumePrefix(&v, "http://");  // as etcdctl writes them
    std::string target(v);
    if (absl::StartsWith(target, "unixs://")) target = "unix:" + target.substr(8);
    if (absl::StartsWith(target, "unixs:")) target = "unix:" + target.substr(6);
    if (absl::StartsWith(target, "unix://")) target = "unix:" + target.substr(7);
    if (wants_tls && tls == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("etcd endpoint ", e, " is TLS: give its CA (--etcd_tls_ca)"));
    }
    e = std::move(target);
  }
  return std::unique_ptr<EtcdClient>(new EtcdClient(std::move(list), call_timeout, std::move(tls), tls_server_name));
}

EtcdClient::EtcdClient(std::vector<std::string> endpoints, absl::Duration call_timeout,
                       std::shared_ptr<grpc::ChannelCredentials> tls, const std::string& tls_server_name)
    : call_timeout_(call_timeout) {
  for (std::string& endpoint : endpoints) {
    Member m;
    m.endpoint = std::move(endpoint);
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
    const bool unix_socket = absl::StartsWith(m.endpoint, "unix:");
    if (tls != nullptr && (!tls_server_name.empty() || unix_socket)) {
      args.SetSslTargetNameOverride(tls_server_name.empty() ? "localhost" : tls_server_name);
    }
    m.channel = grpc::CreateCustomChannel(m.endpoint, tls != nullptr ? tls : grpc::InsecureChannelCredentials(), args);
    m.kv = etcdserverpb::KV::NewStub(m.channel);
    m.lease = etcdserverpb::Lease::NewStub(m.channel);
    m.watch = etcdserverpb::Watch::NewStub(m.channel);
    m.maintenance = etcdserverpb::Maintenance::NewStub(m.channel);
    members_.push_back(std::move(m));
  }
}

absl::Status EtcdClient::Call(const std::string& what,
                              const std::function<grpc::Status(Member&, grpc::ClientContext*)>& rpc) {
  const absl::Time deadline = absl::Now() + call_timeout_;
  grpc::Status last;
  for (size_t tried = 0;; ++tried) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) break;
    const size_t at = current_.load() % members_.size();
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(std::min(left, kAttempt)));
    last = rpc(members_[at], &ctx);
    if (!Retryable(last)) return FromGrpc(last, what);
    size_t expected = at;
    current_.compare_exchange_strong(expected, at + 1);  // the next member, unless another call moved on
    if ((tried + 1) % members_.size() == 0) absl::SleepFor(std::min(absl::Milliseconds(100), deadline - absl::Now()));
  }
  return absl::UnavailableError(absl::StrCat("etcd ", what, ": no member answered within ",
                                             absl::FormatDuration(call_timeout_), " (last: ", last.error_message(), ")"));
}

absl::StatusOr<std::optional<EtcdKeyValue>> EtcdClient::Get(const std::string& key) {
  etcdserverpb::RangeRequest req;
  req.set_key(key);
  etcdserverpb::RangeResponse resp;
  absl::Status s = Call("get " + key, [&](Member& m, grpc::ClientContext* ctx) { return m.kv->Range(ctx, req, &resp); });
  if (!s.ok()) return s;
  if (resp.kvs_size() == 0) return std::optional<EtcdKeyValue>();
  return std::optional<EtcdKeyValue>(FromProto(resp.kvs(0)));
}

absl::StatusOr<EtcdListing> EtcdClient::List(const std::string& prefix) {
  etcdserverpb::RangeRequest req;
  req.set_key(prefix);
  req.set_range_end(PrefixEnd(prefix));
  etcdserverpb::RangeResponse resp;
  absl::Status s = Call("list " + prefix, [&](Member& m, grpc::ClientContext* ctx) { return m.kv->Range(ctx, req, &resp); });
  if (!s.ok()) return s;
  EtcdListing out;
  out.revision = resp.header().revision();
  for (const mvccpb::KeyValue& kv : resp.kvs()) out.kvs.push_back(FromProto(kv));
  return out;
}

absl::StatusOr<int64_t> EtcdClient::Put(const std::string& key, const std::string& value, int64_t lease) {
  etcdserverpb::PutRequest req;
  req.set_key(key);
  req.set_value(value);
  req.set_lease(lease);
  etcdserverpb::PutResponse resp;
  absl::Status s = Call("put " + key, [&](Member& m, grpc::ClientContext* ctx) { return m.kv->Put(ctx, req, &resp); });
  if (!s.ok()) return s;
  return resp.header().revision();
}

absl::StatusOr<std::optional<EtcdKeyValue>> EtcdClient::CreateIfAbsent(const std::string& key, const std::string& value,
                                                                        int64_t lease) {
  etcdserverpb::TxnRequest req;
  etcdserverpb::Compare* absent = req.add_compare();
  absent->set_key(key);
  absent->set_target(etcdserverpb::Compare::CREATE);
  absent->set_result(etcdserverpb::Compare::EQUAL);
  absent->set_create_revision(0);
  etcdserverpb::PutRequest* put = req.add_success()->mutable_request_put();
  put->set_key(key);
  put->set_value(value);
  put->set_lease(lease);
  req.add_failure()->mutable_request_range()->set_key(key);
  etcdserverpb::TxnResponse resp;
  absl::Status s = Call("create " + key, [&](Member& m, grpc::ClientContext* ctx) { return m.kv->Txn(ctx, req, &resp); });
  if (!s.ok()) return s;
  if (resp.succeeded()) return std::optional<EtcdKeyValue>();
  if (resp.responses_size() == 0 || resp.responses(0).response_range().kvs_size() == 0) {
    return absl::AbortedError(absl::StrCat("etcd create ", key, ": neither created nor found (deleted meanwhile)"));
  }
  return std::optional<EtcdKeyValue>(FromProto(resp.responses(0).response_range().kvs(0)));
}

absl::StatusOr<bool> EtcdClient::Delete(const std::string& key) {
  etcdserverpb::DeleteRangeRequest req;
  req.set_key(key);
  etcdserverpb::DeleteRangeResponse resp;
  absl::Status s =
      Call("delete " + key, [&](Member& m, grpc::ClientContext* ctx) { return m.kv->DeleteRange(ctx, req, &resp); });
  if (!s.ok()) return s;
  return resp.deleted() > 0;
}

namespace {

void SetGuard(etcdserverpb::TxnRequest* req, const EtcdClient::Guard& guard) {
  etcdserverpb::Compare* held = req->add_compare();
  held->set_key(guard.key);
  held->set_target(etcdserverpb::Compare::VALUE);
  held->set_result(etcdserverpb::Compare::EQUAL);
  held->set_value(guard.value);
}

}  // namespace

absl::StatusOr<bool> EtcdClient::PutIf(const std::string& key, const std::string& value, const Guard& guard) {
  etcdserverpb::TxnRequest req;
  SetGuard(&req, guard);
  etcdserverpb::PutRequest* put = req.add_success()->mutable_request_put();
  put->set_key(key);
  put->set_value(value);
  etcdserverpb::TxnResponse resp;
  absl::Status s = Call("put " + key, [&](Member& m, grpc::ClientContext* ctx) { return m.kv->Txn(ctx, req, &resp); });
  if (!s.ok()) return s;
  return resp.succeeded();
}

absl::StatusOr<bool> EtcdClient::DeleteIf(const std::string& key, const Guard& guard) {
  etcdserverpb::TxnRequest req;
  SetGuard(&req, guard);
  req.add_success()->mutable_request_delete_range()->set_key(key);
  etcdserverpb::TxnResponse resp;
  absl::Status s = Call("delete " + key, [&](Member& m, grpc::ClientContext* ctx) { return m.kv->Txn(ctx, req, &resp); });
  if (!s.ok()) return s;
  return resp.succeeded();
}

absl::Status EtcdClient::Scan(const std::string& prefix, const std::function<absl::Status(const EtcdKeyValue&)>& fn,
                              int page) {
  const std::string end = PrefixEnd(prefix);
  std::string from = prefix;
  int64_t revision = 0;
  while (true) {
    etcdserverpb::RangeRequest req;
    req.set_key(from);
    req.set_range_end(end);
    req.set_limit(page);
    req.set_revision(revision);
    etcdserverpb::RangeResponse resp;
    absl::Status s = Call("scan " + prefix, [&](Member& m, grpc::ClientContext* ctx) { return m.kv->Range(ctx, req, &resp); });
    if (!s.ok()) return s;
    if (revision == 0) revision = resp.header().revision();
    for (const mvccpb::KeyValue& kv : resp.kvs()) {
      if (absl::Status done = fn(FromProto(kv)); !done.ok()) return done;
    }
    if (!resp.more() || resp.kvs_size() == 0) return absl::OkStatus();
    from = resp.kvs(resp.kvs_size() - 1).key() + std::string(1, '\0');  // the next key after the last
  }
}

absl::StatusOr<int64_t> EtcdClient::GrantLease(absl::Duration ttl) {
  etcdserverpb::LeaseGrantRequest req;
  req.set_ttl(std::max<int64_t>(1, absl::ToInt64Seconds(ttl)));
  etcdserverpb::LeaseGrantResponse resp;
  absl::Status s =
      Call("lease grant", [&](Member& m, grpc::ClientContext* ctx) { return m.lease->LeaseGrant(ctx, req, &resp); });
  if (!s.ok()) return s;
  if (!resp.error().empty()) return absl::UnavailableError("etcd lease grant: " + resp.error());
  return resp.id();
}

absl::Status EtcdClient::KeepAlive(int64_t lease) {
  etcdserverpb::LeaseKeepAliveResponse resp;
  absl::Status s = Call("lease keepalive", [&](Member& m, grpc::ClientContext* ctx) {
    auto stream = m.lease->LeaseKeepAlive(ctx);
    etcdserverpb::LeaseKeepAliveRequest req;
    req.set_id(lease);
    if (!stream->Write(req) || !stream->Read(&resp)) return stream->Finish();
    ctx->TryCancel();  // one renewal is all this call wanted
    stream->Finish().ok();
    return grpc::Status::OK;
  });
  if (!s.ok()) return s;
  if (resp.ttl() <= 0) return absl::NotFoundError(absl::StrCat("etcd lease ", lease, " expired"));
  return absl::OkStatus();
}

absl::Status EtcdClient::RevokeLease(int64_t lease) {
  etcdserverpb::LeaseRevokeRequest req;
  req.set_id(lease);
  etcdserverpb::LeaseRevokeResponse resp;
  return Call("lease revoke", [&](Member& m, grpc::ClientContext* ctx) { return m.lease->LeaseRevoke(ctx, req, &resp); });
}

absl::StatusOr<uint64_t> EtcdClient::Leader() {
  etcdserverpb::StatusRequest req;
  etcdserverpb::StatusResponse resp;
  absl::Status s = Call("status", [&](Member& m, grpc::ClientContext* ctx) { return m.maintenance->Status(ctx, req, &resp); });
  if (!s.ok()) return s;
  return resp.leader();
}

absl::Status EtcdClient::Watch(const std::string& prefix, int64_t from_revision,
                               const std::function<bool(const EtcdEvent&)>& fn, absl::Notification* stop) {
  static auto log = GetLogger("etcd");
  int64_t next = from_revision;
  bool quiet = false;  // said already that the watch is broken (once an outage)
  while (!stop->HasBeenNotified()) {
    Member& m = members_[current_.load() % members_.size()];
    grpc::ClientContext ctx;
    ctx.AddMetadata("hasleader", "true");  // a member cut off from its leader ends the stream
    absl::Notification ended;
    std::thread canceller([&] {
      while (!ended.WaitForNotificationWithTimeout(absl::Milliseconds(50))) {
        if (stop->HasBeenNotified()) {
          ctx.TryCancel();
          return;
        }
      }
    });
    auto stream = m.watch->Watch(&ctx);
    etcdserverpb::WatchRequest req;
    etcdserverpb::WatchCreateRequest* create = req.mutable_create_request();
    create->set_key(prefix);
    create->set_range_end(PrefixEnd(prefix));
    create->set_start_revision(next);
    etcdserverpb::WatchResponse resp;
    bool wanted = true, compacted = false;
    if (stream->Write(req)) {
      while (wanted && stream->Read(&resp)) {
        if (resp.compact_revision() > 0) {
          compacted = true;
          break;
        }
        quiet = false;
        for (const mvccpb::Event& e : resp.events()) {
          EtcdEvent event{e.type() == mvccpb::Event::DELETE, FromProto(e.kv())};
          next = e.kv().mod_revision() + 1;
          if (!fn(event)) {
            wanted = false;
            break;
          }
        }
      }
    }
    ctx.TryCancel();
    const grpc::Status finished = stream->Finish();
    ended.Notify();
    canceller.join();
    if (compacted) return absl::OutOfRangeError(absl::StrCat("etcd watch of ", prefix, ": revision ", next, " was compacted"));
    if (!wanted || stop->HasBeenNotified()) return absl::OkStatus();
    if (!quiet) {
      log->info("watch of {} on {} ended ({}): again from revision {}", prefix, m.endpoint, finished.error_message(), next);
    }
    quiet = true;
    size_t at = current_.load();
    current_.compare_exchange_strong(at, at + 1);
    if (stop->WaitForNotificationWithTimeout(absl::Milliseconds(200))) break;
  }
  return absl::OkStatus();
}

}  // namespace converge::coord
