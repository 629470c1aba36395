#include "tests/sim/sim_device.h"

#include "common/base/status_macros.h"

namespace converge::sim {

absl::StatusOr<engine::KeyListing> SimMembers::List() {
  engine::KeyListing listing;
  for (const auto& [id, key] : keys_) {
    engine::KeyRecord r;
    r.device_id = id;
    r.public_key = key;
    r.granted = true;
    listing.records.push_back(r);
  }
  return listing;
}

void SimDevice::Encrypt(const crypto::Keyring& ring, SimMembers* members, std::string head_file) {
  ring_ = ring;
  keys_ = crypto::DeviceKeys::Generate();
  members_ = members;
  members_->Add(id_, keys_->public_key());
  head_file_ = std::move(head_file);
}

absl::Status SimDevice::Start() {
  CONVERGE_ASSIGN_OR_RETURN(index_, engine::LocalIndex::Open("/index", env_.env()));
  client_ = std::make_unique<SimStoreClient>(store_, id_, fault_, defer_);
  engine::StoreClient* client = client_.get();
  if (ring_.has_value()) {
    CONVERGE_ASSIGN_OR_RETURN(guard_, engine::LogGuard::Open(head_file_, SimStore::kNamespace, id_, *keys_, members_));
    encrypting_ = std::make_unique<engine::EncryptingStoreClient>(client_.get(), *ring_);
    encrypting_->SetLogGuard(guard_.get());
    client = encrypting_.get();
  }
  engine_ = std::make_unique<engine::SyncEngine>(&fs_, index_.get(), client, clock_, id_, options_);
  return absl::OkStatus();
}

absl::Status SimDevice::PowerCut() {
  env_.Cut();
  engine_.reset();
  encrypting_.reset();
  guard_.reset();
  client_.reset();
  index_.reset();
  CONVERGE_RETURN_IF_ERROR(env_.Recover());
  fs_.PowerCut();
  return Start();
}

}  // namespace converge::sim
