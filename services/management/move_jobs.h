// MoveJobs: namespace moves as jobs in etcd, run once, by the management replica that leads
// (coord::LeaderElection), whichever replica an operator asked:
//
//   /converge/jobs/move/<namespace>    = "<to shard> <request id>[ from=<shard>]"  pending
//   /converge/jobs/outcome/<namespace> = "<request id>\t<code>\t<message>\t<report>"
//
// Request creates the job (only if none is pending for the namespace) and waits for its outcome.
// The leader runs pending jobs one at a time, writes the outcome, then deletes the job. Before a
// move switches, the leader notes the shard it leaves in the job ("from=..."): a leader that dies
// mid-move leaves the job pending, and the next leader runs it again (from the start while the
// placement still names the old shard: the source thaws, the target's partial copy is dropped),
// or only finishes the switch if the placement names the new shard already.
#ifndef CONVERGE_SERVICES_MANAGEMENT_MOVE_JOBS_H_
#define CONVERGE_SERVICES_MANAGEMENT_MOVE_JOBS_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "services/coord/etcd_client.h"
#include "services/coord/leader_election.h"
#include "services/management/namespace_mover.h"

namespace converge::management {

class MoveJobs {
 public:
  // Not owned; all outlive it. Campaigns for /converge/leader/management as `replica_id`.
  MoveJobs(coord::EtcdClient* etcd, NamespaceMover* mover, NamespacePlacement* placement, std::string replica_id,
           absl::Duration leader_ttl = absl::Seconds(5));
  ~MoveJobs();

  // Request asks for `ns` to move to shard `to` and waits up to `timeout` for the leader's outcome.
  // Aborted if a move of it is pending already; DeadlineExceeded if no outcome came in time (the
  // job stays: the leader finishes it).
  absl::StatusOr<MoveReport> Request(const std::string& ns, uint32_t to, absl::Duration timeout);

  bool leading() const { return election_ != nullptr && election_->leading(); }

 private:
  void Lead();
  // RunJob runs one pending job and writes its outcome; false if it must wait (another run of it
  // still holds the namespace's move lock).
  bool RunJob(const std::string& ns, const std::string& job);

  coord::EtcdClient* const etcd_;
  NamespaceMover* const mover_;
  NamespacePlacement* const placement_;
  const std::string id_;
  std::atomic<bool> leading_{false};
  absl::Notification stop_;
  std::thread worker_;
  std::unique_ptr<coord::LeaderElection> election_;
};

}  // namespace converge::management

#endif  // CONVERGE_SERVICES_MANAGEMENT_MOVE_JOBS_H_
