#include "services/store/store_server.h"

#include "absl/flags/flag.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

ABSL_FLAG(uint64_t, mass_delete_min_files, 100,
          "hold a commit for approval when it deletes more than this many entries...");
ABSL_FLAG(int, max_calls_per_device, converge::store::kDefaultDeviceLimits.max_in_flight,
          "calls one device may have in flight; more are refused with RESOURCE_EXHAUSTED (0: no limit)");
ABSL_FLAG(double, max_call_rate_per_device, converge::store::kDefaultDeviceLimits.calls_per_second,
          "calls one device may start a second (bursts of twice that); more are refused with "
          "RESOURCE_EXHAUSTED (0: no limit)");
ABSL_FLAG(double, mass_delete_share, 0.5, "...and more than this share of its namespace (2: never)");

namespace converge::store {

absl::StatusOr<std::unique_ptr<StoreServer>> StoreServer::Create(const StoreOptions& options) {
  if (options.data_dir.empty()) return absl::InvalidArgumentError("--data_dir is required");
  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("create ", options.data_dir, ": ", ec.message()));
  std::unique_ptr<StoreServer> s(new StoreServer());
  CONVERGE_ASSIGN_OR_RETURN(s->db_, StoreDb::Open(options.data_dir + "/store.rocksdb"));
  s->chunks_ = std::make_unique<ChunkStore>(s->db_.get());
  s->log_ = std::make_unique<CommitLog>(s->db_.get(), s->chunks_.get(), Clock::Real(), options.mass_delete);
  Publisher* publisher = options.publisher;
  if (publisher == nullptr) {
    s->own_publisher_ = std::make_unique<FanoutPublisher>(options.notify_address, options.service_token,
                                                          options.client_credentials);
    publisher = s->own_publisher_.get();
  }
  s->service_ = std::make_unique<StoreService>(s->chunks_.get(), s->log_.get(), publisher, options.auth,
                                             options.per_device);
  s->registry_ = std::make_unique<RegistryArea>(s->db_.get(), Clock::Real());
  s->service_->set_registry(s->registry_.get());
  return s;
}

CallLimiter::Limits DeviceLimitsFromFlags() {
  CallLimiter::Limits limits;
  limits.max_in_flight = absl::GetFlag(FLAGS_max_calls_per_device);
  limits.calls_per_second = absl::GetFlag(FLAGS_max_call_rate_per_device);
  limits.burst = 2 * limits.calls_per_second;
  return limits;
}

MassDeletePolicy MassDeletePolicyFromFlags() {
  MassDeletePolicy p;
  p.min_files = absl::GetFlag(FLAGS_mass_delete_min_files);
  p.share = absl::GetFlag(FLAGS_mass_delete_share);
  return p;
}

}  // namespace converge::store
