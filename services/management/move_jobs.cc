#include "services/management/move_jobs.h"

#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/base/logging.h"
#include "common/base/random_id.h"
#include "common/base/status_macros.h"
#include "common/model/path.h"

namespace converge::management {
namespace {

constexpr char kJobs[] = "/converge/jobs/move/";
constexpr char kOutcomes[] = "/converge/jobs/outcome/";
constexpr char kLeaderKey[] = "/converge/leader/management";
constexpr absl::Duration kPoll = absl::Milliseconds(50);

struct Job {
  uint32_t to = 0;
  std::string id;
  std::optional<uint32_t> from;  // noted before the switch
};

std::optional<Job> ParseJob(const std::string& value) {
  std::vector<std::string> parts = absl::StrSplit(value, ' ', absl::SkipEmpty());
  Job job;
  if (parts.size() < 2 || parts.size() > 3 || !absl::SimpleAtoi(parts[0], &job.to)) return std::nullopt;
  job.id = parts[1];
  uint32_t from = 0;
  if (parts.size() == 3) {
    if (!absl::StartsWith(parts[2], "from=") || !absl::SimpleAtoi(parts[2].substr(5), &from)) return std::nullopt;
    job.from = from;
  }
  return job;
}

std::string EncodeOutcome(const std::string& id, const absl::StatusOr<MoveReport>& r) {
  const absl::Status s = r.status();
  std::string out = absl::StrCat(id, "\t", static_cast<int>(s.code()), "\t",
                                 absl::StrReplaceAll(s.message(), {{"\t", " "}, {"\n", " "}}));
  if (r.ok()) {
    absl::StrAppend(&out, "\t", r->from, " ", r->to, " ", r->head_seq, " ", r->rounds, " ", r->bytes, " ",
                    absl::ToInt64Microseconds(r->copy_time), " ", absl::ToInt64Microseconds(r->write_pause));
  }
  return out;
}

// DecodeOutcome: the outcome of request `id` (nullopt: another request's, or none yet).
std::optional<absl::StatusOr<MoveReport>> DecodeOutcome(const std::string& id, const std::string& value) {
  std::vector<std::string> parts = absl::StrSplit(value, '\t');
  int code = 0;
  if (parts.size() < 3 || parts[0] != id || !absl::SimpleAtoi(parts[1], &code)) return std::nullopt;
  if (code != 0) return absl::StatusOr<MoveReport>(absl::Status(static_cast<absl::StatusCode>(code), parts[2]));
  MoveReport r;
  int64_t copy_us = 0, pause_us = 0;
  std::vector<std::string> f = parts.size() == 4 ? absl::StrSplit(parts[3], ' ') : std::vector<std::string>();
  if (f.size() != 7 || !absl::SimpleAtoi(f[0], &r.from) || !absl::SimpleAtoi(f[1], &r.to) ||
      !absl::SimpleAtoi(f[2], &r.head_seq) || !absl::SimpleAtoi(f[3], &r.rounds) || !absl::SimpleAtoi(f[4], &r.bytes) ||
      !absl::SimpleAtoi(f[5], &copy_us) || !absl::SimpleAtoi(f[6], &pause_us)) {
    return absl::StatusOr<MoveReport>(absl::DataLossError("a move's outcome in etcd is malformed"));
  }
  r.copy_time = absl::Microseconds(copy_us);
  r.write_pause = absl::Microseconds(pause_us);
  return absl::StatusOr<MoveReport>(r);
}

}  // namespace

MoveJobs::MoveJobs(coord::EtcdClient* etcd, NamespaceMover* mover, NamespacePlacement* placement,
                   std::string replica_id, absl::Duration leader_ttl)
    : etcd_(etcd), mover_(mover), placement_(placement), id_(std::move(replica_id)) {
  worker_ = std::thread([this] { Lead(); });
  election_ = coord::LeaderElection::Start(etcd_, kLeaderKey, id_, leader_ttl, [this](bool leading) { leading_ = leading; });
}

MoveJobs::~MoveJobs() {
  election_.reset();  // resigns: another replica takes over the jobs
  stop_.Notify();
  worker_.join();
}

absl::StatusOr<MoveReport> MoveJobs::Request(const std::string& ns, uint32_t to, absl::Duration timeout) {
  CONVERGE_RETURN_IF_ERROR(ValidateId("namespace id", ns));
  const std::string id = RandomHex(8);
  CONVERGE_ASSIGN_OR_RETURN(std::optional<coord::EtcdKeyValue> pending,
                            etcd_->CreateIfAbsent(absl::StrCat(kJobs, ns), absl::StrCat(to, " ", id)));
  if (pending.has_value()) {
    return absl::AbortedError(absl::StrCat("a move of namespace '", ns, "' is pending already (", pending->value, ")"));
  }
  for (const absl::Time until = absl::Now() + timeout; absl::Now() < until;) {
    absl::StatusOr<std::optional<coord::EtcdKeyValue>> outcome = etcd_->Get(absl::StrCat(kOutcomes, ns));
    if (outcome.ok() && outcome->has_value()) {
      std::optional<absl::StatusOr<MoveReport>> mine = DecodeOutcome(id, (*outcome)->value);
      if (mine.has_value()) return *mine;
    }
    absl::SleepFor(kPoll);
  }
  return absl::DeadlineExceededError(absl::StrCat("the move of '", ns, "' did not finish in ",
                                                  absl::FormatDuration(timeout), "; it goes on (shards list shows it)"));
}

void MoveJobs::Lead() {
  auto log = GetLogger("management");
  while (!stop_.WaitForNotificationWithTimeout(kPoll * 4)) {
    if (!leading_) continue;
    absl::StatusOr<coord::EtcdListing> jobs = etcd_->List(kJobs);
    if (!jobs.ok()) continue;
    for (const coord::EtcdKeyValue& kv : jobs->kvs) {
      if (stop_.HasBeenNotified() || !leading_) break;
      RunJob(kv.key.substr(sizeof(kJobs) - 1), kv.value);
    }
  }
}

bool MoveJobs::RunJob(const std::string& ns, const std::string& value) {
  auto log = GetLogger("management");
  const std::string key = absl::StrCat(kJobs, ns);
  std::optional<Job> job = ParseJob(value);
  absl::StatusOr<MoveReport> result = absl::InvalidArgumentError("malformed move job");
  if (job.has_value()) {
    absl::StatusOr<uint32_t> now_on = placement_->ShardOfNamespace(ns);
    if (job->from.has_value() && now_on.ok() && *now_on == job->to) {
      // Its runner switched, then died: finish the switch.
      log->info("finishing the move of {} to shard {} another leader switched", ns, job->to);
      result = mover_->FinishSwitch(ns, *job->from, job->to);
    } else {
      result = mover_->Move(ns, job->to, [&](uint32_t from) {
        // Noted in the job while it is still ours: a leader that lost the job may not switch.
        coord::EtcdClient::Guard guard;
        guard.key = key;
        guard.value = value;
        absl::StatusOr<bool> noted = etcd_->PutIf(key, absl::StrCat(job->to, " ", job->id, " from=", from), guard);
        if (!noted.ok()) return noted.status();
        return *noted ? absl::OkStatus() : absl::AbortedError("the move's job changed under it");
      });
    }
    if (absl::IsAborted(result.status()) && absl::StrContains(result.status().message(), "running already")) {
      return false;  // a dead leader's run still holds the namespace: its lease expires, then again
    }
    if (absl::IsUnavailable(result.status()) && absl::StrContains(result.status().message(), "finishing the switch")) {
      return false;  // placed, not finished: the job stays and is finished again
    }
  }
  const std::string id = job.has_value() ? job->id : "";
  if (absl::StatusOr<int64_t> put = etcd_->Put(absl::StrCat(kOutcomes, ns), EncodeOutcome(id, result)); !put.ok()) {
    log->warn("move of {}: cannot write its outcome: {}", ns, put.status().ToString());
    return false;
  }
  (void)etcd_->Delete(key);
  return true;
}

}  // namespace converge::management
