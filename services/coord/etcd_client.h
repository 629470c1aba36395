// EtcdClient: what Converge's replicas agree on goes through etcd's own v3 gRPC API (KV, leases,
// watches), the consensus an operator already runs and trusts. This client speaks it directly
// (etcd's .proto files from Debian, protos/etcd) and knows nothing of Converge.
//
// `endpoints` lists the cluster's client URLs ("127.0.0.1:2379,10.0.0.2:2379", or
// "unix:/run/etcd.sock"); a call that finds its member unavailable (down, or without a leader)
// goes on to the next one until its deadline, so one member killed is invisible to callers.
//
//   absl::StatusOr<std::unique_ptr<EtcdClient>> etcd = EtcdClient::Connect("127.0.0.1:2379");
//   absl::StatusOr<int64_t> lease = (*etcd)->GrantLease(absl::Seconds(5));
//   (*etcd)->Put("/converge/services/notify/a", "10.0.0.3:7002", *lease);
//   (*etcd)->Watch("/converge/services/notify/", rev + 1, [](const EtcdEvent& e) { ...; return true; });
//
// Thread-safe.
#ifndef CONVERGE_SERVICES_COORD_ETCD_CLIENT_H_
#define CONVERGE_SERVICES_COORD_ETCD_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include <grpcpp/grpcpp.h>

#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"

namespace converge::coord {

struct EtcdKeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t lease = 0;
};

// One change a watch saw.
struct EtcdEvent {
  bool deleted = false;  // a delete (or a lease's expiry); else a put
  EtcdKeyValue kv;       // for a delete, the key and the revision of the delete
};

// A prefix read at one revision.
struct EtcdListing {
  std::vector<EtcdKeyValue> kvs;
  int64_t revision = 0;  // the store's revision the listing is of: watch from revision + 1
};

class EtcdClient {
 public:
  // Connect: `endpoints` comma-separated, "host:port" or "unix:PATH" (http:// and unix:// as
  // etcdctl writes them); "https://host:port" and "unixs:PATH" need `tls`. With `tls` every
  // member is reached over TLS (verified against its CA, presenting its certificate when etcd
  // asks: --client-cert-auth), under `tls_server_name` when set ("localhost" for unix sockets).
  static absl::StatusOr<std::unique_ptr<EtcdClient>> Connect(const std::string& endpoints,
                                                             absl::Duration call_timeout = absl::Seconds(5),
                                                             std::shared_ptr<grpc::ChannelCredentials> tls = nullptr,
                                                             const std::string& tls_server_name = "");

  absl::StatusOr<std::optional<EtcdKeyValue>> Get(const std::string& key);
  absl::StatusOr<EtcdListing> List(const std::string& prefix);
  // Put returns the revision it made. `lease` 0: the key lives until deleted.
  absl::StatusOr<int64_t> Put(const std::string& key, const std::string& value, int64_t lease = 0);
  // CreateIfAbsent puts the key only if no such key exists (one transaction): nullopt when it
  // created it, else what is there (which may be this caller's own value, when an attempt whose
  // answer was lost succeeded).
  absl::StatusOr<std::optional<EtcdKeyValue>> CreateIfAbsent(const std::string& key, const std::string& value,
                                                             int64_t lease = 0);
  // Delete removes the key; true if it existed.
  absl::StatusOr<bool> Delete(const std::string& key);
  // Guarded writes: made only if `guard.key` holds `guard.value` then (one transaction); false if
  // it did not (e.g. a lock that is no longer this caller's).
  struct Guard {
    std::string key;
    std::string value;
  };
  absl::StatusOr<bool> PutIf(const std::string& key, const std::string& value, const Guard& guard);
  absl::StatusOr<bool> DeleteIf(const std::string& key, const Guard& guard);
  // Scan calls `fn` for each key under `prefix` in key order, read a page of `page` keys at a
  // time, every page at the first page's revision (one consistent view, however large).
  absl::Status Scan(const std::string& prefix, const std::function<absl::Status(const EtcdKeyValue&)>& fn,
                    int page = 1000);

  absl::StatusOr<int64_t> GrantLease(absl::Duration ttl);
  // KeepAlive renews the lease once; NotFound once it expired (its keys are gone).
  absl::Status KeepAlive(int64_t lease);
  absl::Status RevokeLease(int64_t lease);

  // Watch calls `fn` with each change under `prefix` from `from_revision` on, until `fn` returns
  // false or `stop` is notified; a broken stream is opened again (on another member) from the
  // revision after the last one seen. OutOfRange if that revision was compacted away: list again.
  absl::Status Watch(const std::string& prefix, int64_t from_revision, const std::function<bool(const EtcdEvent&)>& fn,
                     absl::Notification* stop);

  // The member id of the cluster's leader as the member this client talks to sees it (0: none).
  absl::StatusOr<uint64_t> Leader();

 private:
  EtcdClient(std::vector<std::string> endpoints, absl::Duration call_timeout,
             std::shared_ptr<grpc::ChannelCredentials> tls, const std::string& tls_server_name);

  struct Member {
    std::string endpoint;
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<etcdserverpb::KV::Stub> kv;
    std::unique_ptr<etcdserverpb::Lease::Stub> lease;
    std::unique_ptr<etcdserverpb::Watch::Stub> watch;
    std::unique_ptr<etcdserverpb::Maintenance::Stub> maintenance;
  };
  // Call runs `rpc` on members in turn, from the one that last answered, until one answers with
  // something other than unavailable or the deadline passes.
  absl::Status Call(const std::string& what, const std::function<grpc::Status(Member&, grpc::ClientContext*)>& rpc);

  const absl::Duration call_timeout_;
  std::vector<Member> members_;
  std::atomic<size_t> current_{0};
};

}  // namespace converge::coord

#endif  // CONVERGE_SERVICES_COORD_ETCD_CLIENT_H_
