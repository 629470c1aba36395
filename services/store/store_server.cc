#include "services/store/store_server.h"

#include "absl/flags/flag.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "services/store/notify_client.h"

ABSL_FLAG(uint64_t, mass_delete_min_files, 100,
          "hold a commit for approval when it deletes more than this many entries...");
ABSL_FLAG(int, max_calls_per_device, converge::store::kDefaultDeviceLimits.max_in_flight,
          "calls one device may have in flight; more are refused with RESOURCE_EXHAUSTED (0: no limit)");
ABSL_FLAG(double, max_call_rate_per_device, converge::store::kDefaultDeviceLimits.calls_per_second,
          "calls one device may start a second (bursts of twice that); more are refused with "
          "RESOURCE_EXHAUSTED (0: no limit)");
ABSL_FLAG(double, mass_delete_share, 0.5, "...and more than this share of its namespace (2: never)");
ABSL_FLAG(absl::Duration, history_retention, converge::store::kDefaultHistoryRetention,
          "old versions and deletions are kept this long (users list and restore them)");
ABSL_FLAG(absl::Duration, chunk_grace, absl::Hours(1),
          "an unreferenced chunk uploaded or asked about this recently is kept (a commit may be coming)");
ABSL_FLAG(absl::Duration, compact_interval, absl::Minutes(10),
          "how often every namespace is compacted and unreferenced chunks dropped (0: only on request)");

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
    auto fanout = std::make_unique<FanoutPublisher>(options.notify_address, options.service_token,
                                                    options.client_credentials);
    s->fanout_ = fanout.get();
    s->own_publisher_ = std::move(fanout);
    publisher = s->own_publisher_.get();
  }
  s->service_ = std::make_unique<StoreService>(s->chunks_.get(), s->log_.get(), publisher, options.auth,
                                             options.per_device);
  s->registry_ = std::make_unique<RegistryArea>(s->db_.get(), Clock::Real());
  s->service_->set_registry(s->registry_.get());
  s->transfer_ = std::make_unique<NamespaceTransfer>(s->db_.get(), s->chunks_.get(), s->log_.get());
  s->service_->set_transfer(s->transfer_.get());
  s->service_->set_compaction(options.compaction.history_retention, options.compaction.chunk_grace);
  if (options.compaction.interval > absl::ZeroDuration()) {
    StoreServer* server = s.get();
    const CompactionOptions compaction = options.compaction;
    s->compactor_ = std::thread([server, compaction] { server->CompactEvery(compaction); });
  }
  return s;
}

StoreServer::~StoreServer() {
  stop_.Notify();
  if (compactor_.joinable()) compactor_.join();
}

void StoreServer::CompactEvery(const CompactionOptions& options) {
  auto log = GetLogger("compaction");
  while (!stop_.WaitForNotificationWithTimeout(options.interval)) {
    absl::StatusOr<std::vector<std::string>> namespaces = log_->Namespaces();
    if (!namespaces.ok()) {
      log->warn("{}", namespaces.status().ToString());
      continue;
    }
    for (const std::string& ns : *namespaces) {
      absl::StatusOr<CompactionResult> r = log_->Compact(ns, options.history_retention);
      if (!r.ok()) {
        log->warn("compact {}: {}", ns, r.status().ToString());
      } else if (r->log_entries_dropped + r->versions_dropped + r->tombstones_dropped > 0) {
        log->info("compacted {} through seq {}: {} log entries, {} old versions, {} tombstones dropped", ns,
                  r->compacted_through, r->log_entries_dropped, r->versions_dropped, r->tombstones_dropped);
      }
    }
    absl::StatusOr<ChunkStore::SweepResult> swept = log_->CollectGarbage(options.chunk_grace);
    if (!swept.ok()) {
      log->warn("chunk garbage collection: {}", swept.status().ToString());
    } else if (swept->chunks_dropped > 0) {
      log->info("dropped {} unreferenced chunks ({} bytes)", swept->chunks_dropped, swept->bytes_dropped);
    }
  }
}

CompactionOptions CompactionOptionsFromFlags() {
  CompactionOptions c;
  c.history_retention = absl::GetFlag(FLAGS_history_retention);
  c.interval = absl::GetFlag(FLAGS_compact_interval);
  c.chunk_grace = absl::GetFlag(FLAGS_chunk_grace);
  return c;
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
