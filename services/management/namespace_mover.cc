#include "services/management/namespace_mover.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/base/logging.h"
#include "common/base/random_id.h"
#include "common/base/status_macros.h"
#include "common/model/path.h"

namespace converge::management {
namespace {

constexpr char kMoves[] = "/converge/moves/";
constexpr absl::Duration kMoveLease = absl::Seconds(30);
// Catch-up rounds before the switch: until a round brings at most this many commits...
constexpr uint64_t kSwitchBelowCommits = 16;
// ...or this many rounds ran (a namespace written faster than it copies switches anyway: the
// freeze then lasts one more round).
constexpr uint32_t kMaxRounds = 6;

// MoveLock holds /converge/moves/<ns> under a lease kept alive while the move runs.
class MoveLock {
 public:
  static absl::StatusOr<std::unique_ptr<MoveLock>> Take(coord::EtcdClient* etcd, const std::string& ns) {
    CONVERGE_ASSIGN_OR_RETURN(int64_t lease, etcd->GrantLease(kMoveLease));
    const std::string key = absl::StrCat(kMoves, ns);
    absl::StatusOr<std::optional<coord::EtcdKeyValue>> there = etcd->CreateIfAbsent(key, RandomHex(8), lease);
    if (!there.ok() || there->has_value()) {
      (void)etcd->RevokeLease(lease);
      if (!there.ok()) return there.status();
      return absl::AbortedError(absl::StrCat("a move of namespace '", ns, "' is running already"));
    }
    return std::unique_ptr<MoveLock>(new MoveLock(etcd, lease));
  }
  ~MoveLock() {
    stop_.Notify();
    keeper_.join();
    (void)etcd_->RevokeLease(lease_);  // the key goes with it
  }

 private:
  MoveLock(coord::EtcdClient* etcd, int64_t lease) : etcd_(etcd), lease_(lease) {
    keeper_ = std::thread([this] {
      while (!stop_.WaitForNotificationWithTimeout(kMoveLease / 3)) (void)etcd_->KeepAlive(lease_);
    });
  }
  coord::EtcdClient* const etcd_;
  const int64_t lease_;
  absl::Notification stop_;
  std::thread keeper_;
};

}  // namespace

absl::StatusOr<MoveReport> NamespaceMover::Move(const std::string& ns, uint32_t to, const BeforeSwitch& before_switch) {
  CONVERGE_RETURN_IF_ERROR(ValidateId("namespace id", ns));
  if (to >= shards_->shard_count()) {
    return absl::InvalidArgumentError(absl::StrCat("there is no store shard ", to, " (", shards_->shard_count(), " known)"));
  }
  CONVERGE_ASSIGN_OR_RETURN(uint32_t from, placement_->ShardOfNamespace(ns));
  if (from == to) return absl::FailedPreconditionError(absl::StrCat("namespace '", ns, "' is on shard ", to, " already"));
  CONVERGE_ASSIGN_OR_RETURN(std::unique_ptr<MoveLock> lock, MoveLock::Take(etcd_, ns));
  // Under the lock: a move that finished meanwhile may have put it elsewhere.
  CONVERGE_ASSIGN_OR_RETURN(from, placement_->ShardOfNamespace(ns));
  if (from == to) return absl::FailedPreconditionError(absl::StrCat("namespace '", ns, "' is on shard ", to, " already"));
  return Run(ns, from, to, before_switch);
}

absl::StatusOr<MoveReport> NamespaceMover::Run(const std::string& ns, uint32_t from, uint32_t to,
                                               const BeforeSwitch& before_switch) {
  auto log = GetLogger("management");
  MoveReport report;
  report.from = from;
  report.to = to;
  const absl::Time start = absl::Now();
  CONVERGE_RETURN_IF_ERROR(shards_->SetGate(to, ns, MoveGate::kArriving, /*drop_records=*/true).status());
  CONVERGE_RETURN_IF_ERROR(shards_->SetGate(from, ns, MoveGate::kLeaving, false).status());
  // Any failure before the placement is written leaves the source the namespace's home.
  auto thaw = [&](const absl::Status& why) {
    absl::Status opened = shards_->SetGate(from, ns, MoveGate::kOpen, false).status();
    if (!opened.ok()) log->error("move of {}: could not reopen it on shard {}: {}", ns, from, opened.ToString());
    log->warn("move of {} from shard {} to {} failed: {}", ns, from, to, why.ToString());
    return why;
  };
  absl::StatusOr<uint64_t> head = shards_->Copy(from, to, ns, 0, &report.bytes);
  if (!head.ok()) return thaw(head.status());
  for (report.rounds = 1; report.rounds < kMaxRounds; ++report.rounds) {
    absl::StatusOr<uint64_t> next = shards_->Copy(from, to, ns, *head, &report.bytes);
    if (!next.ok()) return thaw(next.status());
    const uint64_t brought = *next - *head;
    head = next;
    if (brought <= kSwitchBelowCommits) break;
  }
  report.copy_time = absl::Now() - start;
  const absl::Time frozen = absl::Now();
  absl::StatusOr<uint64_t> frozen_head = shards_->SetGate(from, ns, MoveGate::kFrozen, false);
  if (!frozen_head.ok()) return thaw(frozen_head.status());
  absl::StatusOr<uint64_t> last = shards_->Copy(from, to, ns, *head, &report.bytes);
  if (!last.ok()) return thaw(last.status());
  if (*last != *frozen_head) {
    return thaw(absl::InternalError(absl::StrCat("the copy ends at seq ", *last, ", the frozen head is ", *frozen_head)));
  }
  if (before_switch) {
    if (absl::Status noted = before_switch(from); !noted.ok()) return thaw(noted);
  }
  if (absl::Status placed = placement_->Place(ns, to); !placed.ok()) return thaw(placed);
  // Switched: from here on the move only goes forward.
  absl::StatusOr<MoveReport> finished = FinishSwitch(ns, from, to);
  report.write_pause = absl::Now() - frozen;
  CONVERGE_RETURN_IF_ERROR(finished.status());
  report.head_seq = *last;
  log->info("moved {} from shard {} to {}: seq {}, {} rounds, {} bytes, copy {}, write pause {}", ns, from, to,
            report.head_seq, report.rounds, report.bytes, absl::FormatDuration(report.copy_time),
            absl::FormatDuration(report.write_pause));
  return report;
}

absl::StatusOr<MoveReport> NamespaceMover::FinishSwitch(const std::string& ns, uint32_t from, uint32_t to) {
  MoveReport report;
  report.from = from;
  report.to = to;
  absl::StatusOr<uint64_t> opened = shards_->SetGate(to, ns, MoveGate::kOpen, false);
  absl::Status moved = shards_->SetGate(from, ns, MoveGate::kMoved, /*drop_records=*/true).status();
  if (!opened.ok() || !moved.ok()) {
    return absl::UnavailableError(absl::StrCat("namespace '", ns, "' is placed on shard ", to,
                                               " but finishing the switch failed (",
                                               (opened.ok() ? moved : opened.status()).ToString(),
                                               "): the move's job stays pending and is finished again"));
  }
  report.head_seq = *opened;
  return report;
}

}  // namespace converge::management
