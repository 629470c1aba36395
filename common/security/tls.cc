#include "common/security/tls.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"

ABSL_FLAG(std::string, tls_ca, "", "PEM CA that signs Converge's certificates (or $CONVERGE_TLS_CA); empty: plaintext");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate this process presents (or $CONVERGE_TLS_CERT)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert (or $CONVERGE_TLS_KEY)");

namespace converge {
namespace {

std::string FlagOrEnvironment(const std::string& flag, const char* env) {
  if (!flag.empty() || getenv(env) == nullptr) return flag;
  return getenv(env);
}

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read the TLS ", what, " '", path, "'"));
  std::stringstream s;
  s << in.rdbuf();
  if (s.str().find("-----BEGIN") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("the TLS ", what, " '", path, "' is not PEM"));
  }
  return s.str();
}

}  // namespace

TlsFiles TlsFromFlags() {
  TlsFiles f;
  f.ca = FlagOrEnvironment(absl::GetFlag(FLAGS_tls_ca), "CONVERGE_TLS_CA");
  f.cert = FlagOrEnvironment(absl::GetFlag(FLAGS_tls_cert), "CONVERGE_TLS_CERT");
  f.key = FlagOrEnvironment(absl::GetFlag(FLAGS_tls_key), "CONVERGE_TLS_KEY");
  return f;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(const TlsFiles& files) {
  if (!files.enabled()) return grpc::InsecureServerCredentials();
  if (files.cert.empty() || files.key.empty()) {
    return absl::InvalidArgumentError("a TLS server needs --tls_cert and --tls_key besides --tls_ca");
  }
  grpc::SslServerCredentialsOptions options(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  absl::StatusOr<std::string> ca = ReadPem(files.ca, "CA");
  if (!ca.ok()) return ca.status();
  absl::StatusOr<std::string> cert = ReadPem(files.cert, "certificate");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadPem(files.key, "key");
  if (!key.ok()) return key.status();
  options.pem_root_certs = *ca;
  options.pem_key_cert_pairs.push_back({*key, *cert});
  return grpc::SslServerCredentials(options);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentials(const TlsFiles& files) {
  if (!files.enabled()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions options;
  absl::StatusOr<std::string> ca = ReadPem(files.ca, "CA");
  if (!ca.ok()) return ca.status();
  options.pem_root_certs = *ca;
  if (!files.cert.empty() && !files.key.empty()) {
    absl::StatusOr<std::string> cert = ReadPem(files.cert, "certificate");
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadPem(files.key, "key");
    if (!key.ok()) return key.status();
    options.pem_cert_chain = *cert;
    options.pem_private_key = *key;
  }
  return grpc::SslCredentials(options);
}

bool CallIsTls(const grpc::ServerContextBase& ctx) {
  std::shared_ptr<const grpc::AuthContext> auth = ctx.auth_context();
  if (auth == nullptr) return false;
  for (const grpc::string_ref& v : auth->FindPropertyValues("transport_security_type")) {
    if (std::string(v.data(), v.size()) == "ssl") return true;
  }
  return false;
}

bool PeerIsService(const grpc::ServerContextBase& ctx) {
  std::shared_ptr<const grpc::AuthContext> auth = ctx.auth_context();
  // Peer identity is set only for a client certificate the CA verified.
  if (auth == nullptr || !auth->IsPeerAuthenticated() || !CallIsTls(ctx)) return false;
  for (const grpc::string_ref& v : auth->FindPropertyValues("x509_common_name")) {
    if (std::string(v.data(), v.size()) == kServiceCommonName) return true;
  }
  return false;
}

}  // namespace converge
