#include "services/coord/etcd_flags.h"

#include <unistd.h>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"

ABSL_FLAG(std::string, etcd, "",
          "etcd's client endpoints, comma-separated (host:port, or unix:PATH): replicas announce "
          "themselves there and find each other (empty: no etcd)");
ABSL_FLAG(std::string, advertise_host, "",
          "the host name or address other services reach this replica at (empty: this machine's host name)");
ABSL_FLAG(absl::Duration, etcd_lease_ttl, absl::Seconds(5),
          "a replica that dies leaves etcd within this long (its lease's TTL)");

namespace converge::coord {

absl::StatusOr<std::unique_ptr<EtcdClient>> EtcdFromFlags() {
  const std::string endpoints = absl::GetFlag(FLAGS_etcd);
  if (endpoints.empty()) return std::unique_ptr<EtcdClient>();
  return EtcdClient::Connect(endpoints);
}

std::shared_ptr<Announcement> AnnounceFromFlags(EtcdClient* etcd, const std::string& kind, int port) {
  if (etcd == nullptr) return nullptr;
  std::string host = absl::GetFlag(FLAGS_advertise_host);
  if (host.empty()) {
    char name[256] = {};
    gethostname(name, sizeof(name) - 1);
    host = name;
  }
  const std::string address = absl::StrCat(host, ":", port);
  return Announcement::Start(etcd, ServiceKey(kind, address), address, absl::GetFlag(FLAGS_etcd_lease_ttl));
}

}  // namespace converge::coord
