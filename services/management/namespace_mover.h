// NamespaceMover: online moves of a namespace between store shards (management's side; the
// stores' side is services/store/namespace_transfer.h).
//
//   1. the target is told the namespace arrives (what an unfinished earlier move left is
//      dropped), the source that it leaves (it is served as usual, not compacted);
//   2. everything is copied while devices go on syncing, then what their commits changed
//      meanwhile, again while that is more than a few commits;
//   3. the switch: the source freezes it (commits and acks refused retryably: engines retry),
//      the last changes are copied, the placement in etcd names the target, the target opens;
//   4. the source refuses every call with the moved mark: engines ask management for their
//      endpoints again and go on with the target; the source drops its copy.
// A move fails cleanly before the placement is written (the source thaws, nothing is lost: the
// source never stopped being the namespace's home). One move of a namespace runs at a time in
// the whole fleet: it holds /converge/moves/<namespace> in etcd under a lease.
#ifndef CONVERGE_SERVICES_MANAGEMENT_NAMESPACE_MOVER_H_
#define CONVERGE_SERVICES_MANAGEMENT_NAMESPACE_MOVER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/coord/etcd_client.h"
#include "services/management/namespace_placement.h"

namespace converge::management {

enum class MoveGate { kOpen, kLeaving, kFrozen, kMoved, kArriving };

// What a move asks of the store shards (GrpcDataPlane implements it over their gRPC API).
class MoveTransport {
 public:
  virtual ~MoveTransport() = default;
  virtual uint32_t shard_count() const = 0;
  // SetGate returns the namespace's head on that shard when the gate closed.
  virtual absl::StatusOr<uint64_t> SetGate(uint32_t shard, const std::string& ns, MoveGate gate, bool drop_records) = 0;
  // Copy streams what `from` exports of `ns` after `after_seq` (0: all) into `to`; returns the
  // head the export saw and adds the bytes that travelled to *bytes.
  virtual absl::StatusOr<uint64_t> Copy(uint32_t from, uint32_t to, const std::string& ns, uint64_t after_seq,
                                        uint64_t* bytes) = 0;
};

struct MoveReport {
  uint32_t from = 0;
  uint32_t to = 0;
  uint64_t head_seq = 0;      // at the switch
  uint32_t rounds = 0;        // copies before the switch (the first one whole)
  uint64_t bytes = 0;         // that travelled, chunks included
  absl::Duration copy_time;   // until the switch began
  absl::Duration write_pause; // from the freeze until the target opened
};

class NamespaceMover {
 public:
  // Not owned; all must outlive it.
  NamespaceMover(MoveTransport* shards, NamespacePlacement* placement, coord::EtcdClient* etcd)
      : shards_(shards), placement_(placement), etcd_(etcd) {}

  // Move puts `ns` on shard `to`. InvalidArgument for an unknown shard, FailedPrecondition if it
  // is there already, Aborted if another move of it runs; the stores' errors otherwise.
  // `before_switch` (optional) is told the shard it leaves just before the placement changes; its
  // error fails the move cleanly.
  using BeforeSwitch = std::function<absl::Status(uint32_t from)>;
  absl::StatusOr<MoveReport> Move(const std::string& ns, uint32_t to, const BeforeSwitch& before_switch = nullptr);
  // FinishSwitch completes a move whose placement names `to` already (its runner died after the
  // switch): the target opens, the source closes for good and drops its copy. Idempotent.
  absl::StatusOr<MoveReport> FinishSwitch(const std::string& ns, uint32_t from, uint32_t to);

 private:
  absl::StatusOr<MoveReport> Run(const std::string& ns, uint32_t from, uint32_t to, const BeforeSwitch& before_switch);

  MoveTransport* const shards_;
  NamespacePlacement* const placement_;
  coord::EtcdClient* const etcd_;
};

}  // namespace converge::management

#endif  // CONVERGE_SERVICES_MANAGEMENT_NAMESPACE_MOVER_H_
