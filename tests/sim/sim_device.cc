#include "tests/sim/sim_device.h"

#include "common/base/status_macros.h"

namespace converge::sim {

absl::Status SimDevice::Start() {
  CONVERGE_ASSIGN_OR_RETURN(index_, engine::LocalIndex::Open("/index", env_.env()));
  client_ = std::make_unique<SimStoreClient>(store_, id_, fault_, defer_);
  engine_ = std::make_unique<engine::SyncEngine>(&fs_, index_.get(), client_.get(), clock_, id_, options_);
  return absl::OkStatus();
}

absl::Status SimDevice::PowerCut() {
  env_.Cut();
  engine_.reset();
  client_.reset();
  index_.reset();
  CONVERGE_RETURN_IF_ERROR(env_.Recover());
  fs_.PowerCut();
  return Start();
}

}  // namespace converge::sim
