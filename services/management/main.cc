// converge-management: users, devices, namespaces and membership; the operator API.
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/base/logging.h"
#include "common/rpc/service_main.h"
#include "services/coord/etcd_flags.h"
#include "common/base/files.h"
#include "common/security/tls.h"
#include "services/console/console_server.h"
#include "services/management/management_server.h"

ABSL_FLAG(std::string, data_dir, "", "folder for the registry's RocksDB (required)");
ABSL_FLAG(std::string, store, "",
          "address of converge-store (required); several store shards: their addresses, comma-separated, in "
          "shard order (append new shards at the end, never reorder or remove)");
ABSL_FLAG(std::string, notify, "", "address of converge-notify, handed to engines");
ABSL_FLAG(std::string, token, "", "the operators' bearer token (or $CONVERGE_TOKEN)");
ABSL_FLAG(std::string, token_signing_key, "",
          "PEM Ed25519 private key that signs device tokens (or $CONVERGE_TOKEN_SIGNING_KEY)");
ABSL_FLAG(bool, registry_in_store, false,
          "keep the registry on the first store shard (not under --data_dir): several management replicas "
          "can then serve, changes serialised by the store's registry lock");
ABSL_FLAG(bool, registry_in_etcd, false,
          "keep the registry in etcd (--etcd): several management replicas can then serve, changes serialised "
          "by an etcd lock. A registry kept before under --data_dir (or, with --registry_in_store too, on the "
          "store) is copied into etcd the first time, while etcd holds none");
ABSL_FLAG(std::string, console_listen, "",
          "serve the web console here (host:port; port 0 picks one): HTTPS with --console_tls_cert or the "
          "service certificate (--tls_cert); empty: no console");
ABSL_FLAG(std::string, console_port_file, "", "write the console's port here once it serves");
ABSL_FLAG(std::string, console_tls_cert, "", "the console's certificate (PEM; default: --tls_cert)");
ABSL_FLAG(std::string, console_tls_key, "", "its key (default: --tls_key)");
ABSL_FLAG(absl::Duration, lag_sample_interval, absl::Seconds(15),
          "how often the web console's lag charts ask the store how far behind devices are (0: never; "
          "never without --console_listen)");
ABSL_FLAG(absl::Duration, device_token_ttl, absl::Minutes(10), "how long a device token lives (at most 1h)");

namespace {

// StartConsole serves the web console (--console_listen) over an in-process channel to `server`;
// exits if it cannot (an operator who asked for a console gets one or a clear failure).
std::shared_ptr<void> StartConsole(grpc::Server* server) {
  const std::string listen = absl::GetFlag(FLAGS_console_listen);
  if (listen.empty()) return nullptr;
  auto log = converge::GetLogger("console");
  const converge::TlsFiles tls = converge::TlsFromFlags();
  converge::console::ConsoleOptions options;
  options.listen = listen;
  options.tls_cert = absl::GetFlag(FLAGS_console_tls_cert).empty() ? tls.cert : absl::GetFlag(FLAGS_console_tls_cert);
  options.tls_key = absl::GetFlag(FLAGS_console_tls_key).empty() ? tls.key : absl::GetFlag(FLAGS_console_tls_key);
  options.management = server->InProcessChannel(grpc::ChannelArguments());
  absl::StatusOr<std::unique_ptr<converge::console::ConsoleServer>> console =
      converge::console::ConsoleServer::Start(std::move(options));
  if (!console.ok()) {
    log->error("cannot serve the console: {}", console.status().ToString());
    std::exit(1);
  }
  const std::string scheme = absl::GetFlag(FLAGS_console_tls_cert).empty() && tls.cert.empty() ? "http" : "https";
  if (scheme == "http") log->warn("the console serves plain HTTP (no certificate): for loopback tests only");
  log->info("web console on {}://{}:{}/", scheme, listen.substr(0, listen.rfind(':')), (*console)->port());
  if (const std::string port_file = absl::GetFlag(FLAGS_console_port_file); !port_file.empty()) {
    if (absl::Status s = converge::WriteFileAtomically(port_file, absl::StrCat((*console)->port(), "\n")); !s.ok()) {
      log->error("cannot write {}: {}", port_file, s.ToString());
      std::exit(1);
    }
  }
  return std::shared_ptr<converge::console::ConsoleServer>(std::move(*console));
}

}  // namespace

int main(int argc, char** argv) {
  converge::InitService(argc, argv);
  auto log = converge::GetLogger("converge-management");
  converge::management::ManagementOptions options;
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  options.token = converge::FlagOrEnv(absl::GetFlag(FLAGS_token), "CONVERGE_TOKEN");
  options.service_token = converge::ServiceToken();
  for (absl::string_view shard : absl::StrSplit(absl::GetFlag(FLAGS_store), ',', absl::SkipEmpty())) {
    options.endpoints.store_addresses.emplace_back(shard);
  }
  options.endpoints.notification_address = absl::GetFlag(FLAGS_notify);
  options.token_signing_key =
      converge::FlagOrEnv(absl::GetFlag(FLAGS_token_signing_key), "CONVERGE_TOKEN_SIGNING_KEY");
  options.device_token_ttl = absl::GetFlag(FLAGS_device_token_ttl);
  // Only a console draws the lag charts: without one, nothing is sampled.
  options.lag_sample_interval =
      absl::GetFlag(FLAGS_console_listen).empty() ? absl::ZeroDuration() : absl::GetFlag(FLAGS_lag_sample_interval);
  options.registry_in_store = absl::GetFlag(FLAGS_registry_in_store);
  absl::StatusOr<std::unique_ptr<converge::coord::EtcdClient>> etcd = converge::coord::EtcdFromFlags();
  if (!etcd.ok()) {
    log->error("cannot start: {}", etcd.status().ToString());
    return 1;
  }
  if (absl::GetFlag(FLAGS_registry_in_etcd)) {
    if (*etcd == nullptr) {
      log->error("cannot start: --registry_in_etcd needs --etcd");
      return 1;
    }
    options.registry_etcd = std::move(*etcd);
  }
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds = converge::ServiceChannelCredentials();
  if (!creds.ok()) {
    log->error("cannot start: {}", creds.status().ToString());
    return 1;
  }
  options.client_credentials = *creds;
  if (options.token_signing_key.empty()) log->warn("no --token_signing_key: devices cannot get tokens");
  if (options.token.empty()) log->warn("no --token: the management API is unguarded");
  auto management = converge::management::ManagementServer::Create(options);
  if (!management.ok()) {
    log->error("cannot start: {}", management.status().ToString());
    return 1;
  }
  return converge::ServeUntilSignal(
      "converge-management", {(*management)->service()}, [&](int, grpc::Server* server) -> std::shared_ptr<void> {
        return StartConsole(server);
      });
}
