#include "services/coord/etcd_flags.h"

#include <unistd.h>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/security/tls.h"

ABSL_FLAG(std::string, etcd, "",
          "etcd's client endpoints, comma-separated (host:port, or unix:PATH): replicas announce "
          "themselves there and find each other (empty: no etcd)");
ABSL_FLAG(std::string, advertise_host, "",
          "the host name or address other services reach this replica at (empty: this machine's host name)");
ABSL_FLAG(absl::Duration, etcd_lease_ttl, absl::Seconds(5),
          "a replica that dies leaves etcd within this long (its lease's TTL)");
ABSL_FLAG(std::string, etcd_tls_ca, "",
          "reach etcd over TLS, verifying its members against this CA (PEM); empty: plaintext");
ABSL_FLAG(std::string, etcd_tls_cert, "",
          "the certificate (PEM) this service presents to etcd (etcd's --client-cert-auth)");
ABSL_FLAG(std::string, etcd_tls_key, "", "the private key (PEM) of --etcd_tls_cert");
ABSL_FLAG(std::string, etcd_tls_server_name, "",
          "the name etcd's certificate is checked against (empty: the endpoint's host; localhost for unix sockets)");

namespace converge::coord {

absl::StatusOr<std::unique_ptr<EtcdClient>> EtcdFromFlags() {
  const std::string endpoints = absl::GetFlag(FLAGS_etcd);
  if (endpoints.empty()) return std::unique_ptr<EtcdClient>();
  TlsFiles files{absl::GetFlag(FLAGS_etcd_tls_ca), absl::GetFlag(FLAGS_etcd_tls_cert), absl::GetFlag(FLAGS_etcd_tls_key)};
  if (!files.enabled() && (!files.cert.empty() || !files.key.empty())) {
    return absl::InvalidArgumentError("--etcd_tls_cert and --etcd_tls_key need --etcd_tls_ca");
  }
  std::shared_ptr<grpc::ChannelCredentials> tls;
  if (files.enabled()) {
    absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> made = ChannelCredentials(files);
    if (!made.ok()) return made.status();
    tls = *made;
  }
  return EtcdClient::Connect(endpoints, absl::Seconds(5), std::move(tls), absl::GetFlag(FLAGS_etcd_tls_server_name));
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
