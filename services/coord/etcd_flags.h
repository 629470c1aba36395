// The flags a service takes to coordinate through etcd: --etcd (the cluster's client endpoints),
// --advertise_host (how other replicas reach this one), --etcd_lease_ttl, and TLS to etcd
// (--etcd_tls_ca, --etcd_tls_cert, --etcd_tls_key, --etcd_tls_server_name).
//
//   absl::StatusOr<std::unique_ptr<coord::EtcdClient>> etcd = coord::EtcdFromFlags();  // null without --etcd
//   ServeUntilSignal("converge-notify", {...}, [&](int port) { return coord::AnnounceFromFlags(etcd->get(), "notify", port); });
#ifndef CONVERGE_SERVICES_COORD_ETCD_FLAGS_H_
#define CONVERGE_SERVICES_COORD_ETCD_FLAGS_H_

#include <memory>
#include <string>

#include "absl/flags/declare.h"
#include "absl/status/statusor.h"
#include "services/coord/etcd_client.h"
#include "services/coord/service_directory.h"

ABSL_DECLARE_FLAG(std::string, etcd);

namespace converge::coord {

// EtcdFromFlags: a client of --etcd, or null when the flag is empty (no coordination through etcd).
absl::StatusOr<std::unique_ptr<EtcdClient>> EtcdFromFlags();

// AnnounceFromFlags announces this replica of `kind` serving on `port` as
// ServiceKey(kind, "<advertise_host>:<port>") = "<advertise_host>:<port>"; null if `etcd` is.
std::shared_ptr<Announcement> AnnounceFromFlags(EtcdClient* etcd, const std::string& kind, int port);

}  // namespace converge::coord

#endif  // CONVERGE_SERVICES_COORD_ETCD_FLAGS_H_
