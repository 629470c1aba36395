#include "engine/client/device_names.h"

#include "absl/time/clock.h"
#include "common/base/logging.h"

namespace converge::engine {

std::string DeviceNames::NameOf(const std::string& device_id) {
  absl::MutexLock lock(&mu_);
  auto it = names_.find(device_id);
  if (it == names_.end() && absl::Now() - last_asked_ >= kRefreshInterval) {
    RefreshLocked();
    it = names_.find(device_id);
  }
  return it == names_.end() ? "" : it->second;
}

void DeviceNames::RefreshLocked() {
  last_asked_ = absl::Now();
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  management::v1::ListMembersRequest req;
  req.set_namespace_id(namespace_id_);
  management::v1::ListMembersResponse resp;
  if (grpc::Status s = management_->ListMembers(&ctx, req, &resp); !s.ok()) {
    GetLogger("engine")->debug("device names not refreshed: {}", s.error_message());
    return;
  }
  for (const management::v1::Device& d : resp.devices()) names_[d.device_id()] = d.name();
}

}  // namespace converge::engine
