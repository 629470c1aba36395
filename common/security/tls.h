// TLS for every gRPC hop. Servers present the service certificate and verify any client
// certificate against the CA; callers verify the server against the CA and, between services,
// present the service certificate themselves (mutual TLS). Off when no CA is configured (tests of
// one process; a warning is logged).
//
// Flags (every binary): --tls_ca, --tls_cert, --tls_key, or $CONVERGE_TLS_CA / _CERT / _KEY.
#ifndef CONVERGE_COMMON_SECURITY_TLS_H_
#define CONVERGE_COMMON_SECURITY_TLS_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/flags/declare.h"
#include "absl/status/statusor.h"

ABSL_DECLARE_FLAG(std::string, tls_ca);
ABSL_DECLARE_FLAG(std::string, tls_cert);
ABSL_DECLARE_FLAG(std::string, tls_key);

namespace converge {

// The common name of the certificate that marks a caller as a Converge service.
inline constexpr char kServiceCommonName[] = "converge-service";

struct TlsFiles {
  std::string ca;    // PEM CA bundle; empty: plaintext
  std::string cert;  // PEM certificate chain (servers; callers that are services)
  std::string key;   // PEM private key of `cert`
  bool enabled() const { return !ca.empty(); }
};

// TlsFromFlags reads --tls_ca/--tls_cert/--tls_key, each falling back to its environment variable.
TlsFiles TlsFromFlags();

// ServerCredentials: TLS with `files.cert`/`files.key`, client certificates requested and, when
// presented, verified against `files.ca`. Plaintext when TLS is off. InvalidArgument if a file
// cannot be read, or a server has a CA but no certificate.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(const TlsFiles& files);

// ChannelCredentials: TLS verifying the server against `files.ca`, presenting `files.cert` when
// set. Plaintext when TLS is off.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentials(const TlsFiles& files);

// PeerIsService reports whether the call came over TLS with a client certificate that the CA
// verified and whose common name is kServiceCommonName.
bool PeerIsService(const grpc::ServerContextBase& ctx);

// CallIsTls reports whether the call came over TLS.
bool CallIsTls(const grpc::ServerContextBase& ctx);

}  // namespace converge

#endif  // CONVERGE_COMMON_SECURITY_TLS_H_
