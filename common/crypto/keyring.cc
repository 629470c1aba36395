#include "common/crypto/keyring.h"

#include "absl/strings/str_cat.h"

namespace converge::crypto {
namespace {

constexpr absl::string_view kMagic = "CVK1";

ContentKeys DeriveContent(uint32_t epoch, const SecretKey& root) {
  ContentKeys k;
  k.epoch = epoch;
  k.chunk_id = Derive(root, 1, "cvgchnid");
  k.chunk = Derive(root, 2, "cvgchunk");
  k.record = Derive(root, 3, "cvgrecrd");
  k.gear = Derive(root, 4, "cvggear_");
  return k;
}

}  // namespace

Keyring Keyring::Create() {
  Keyring ring;
  ring.names_ = SecretKey::Random();
  ring.epochs_[1] = SecretKey::Random();
  return ring;
}

std::string Keyring::Serialize() const {
  std::string out(kMagic);
  out += names_.ToBytes();
  AppendU32(&out, static_cast<uint32_t>(epochs_.size()));
  for (const auto& [epoch, key] : epochs_) {
    AppendU32(&out, epoch);
    out += key.ToBytes();
  }
  return out;
}

absl::StatusOr<Keyring> Keyring::Parse(absl::string_view bytes) {
  const auto bad = [](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("not a namespace keyring: ", why));
  };
  absl::string_view in = bytes, part;
  if (!ReadBytes(&in, kMagic.size(), &part) || part != kMagic) return bad("unknown format");
  Keyring ring;
  uint32_t count = 0;
  if (!ReadBytes(&in, kKeyBytes, &part) || !ReadU32(&in, &count)) return bad("truncated");
  ring.names_ = *SecretKey::FromBytes(part);
  if (count == 0 || count > kMaxEpochs || in.size() != size_t{count} * (4 + kKeyBytes)) {
    return bad("wrong number of epochs");
  }
  uint32_t last = 0;
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t epoch = 0;
    ReadU32(&in, &epoch);
    ReadBytes(&in, kKeyBytes, &part);
    if (epoch <= last) return bad("epochs out of order");
    ring.epochs_[epoch] = *SecretKey::FromBytes(part);
    last = epoch;
  }
  return ring;
}

ContentKeys Keyring::Current() const {
  const auto& [epoch, key] = *epochs_.rbegin();
  return DeriveContent(epoch, key);
}

absl::StatusOr<ContentKeys> Keyring::Content(uint32_t epoch) const {
  const auto it = epochs_.find(epoch);
  if (it == epochs_.end()) {
    return absl::NotFoundError(absl::StrCat("no key for epoch ", epoch, " (this device has up to ", current_epoch(), ")"));
  }
  return DeriveContent(epoch, it->second);
}

NameKeys Keyring::Names() const { return NameKeys{Derive(names_, 1, "cvgnmmac"), Derive(names_, 2, "cvgnmenc")}; }

std::string Keyring::Id() const { return Derive(names_, 3, "cvgringd").ToBytes().substr(0, kKeyringIdBytes); }

bool Keyring::Extends(const Keyring& older) const {
  if (names_.ToBytes() != older.names_.ToBytes()) return false;
  for (const auto& [epoch, key] : older.epochs_) {
    const auto it = epochs_.find(epoch);
    if (it == epochs_.end() || it->second.ToBytes() != key.ToBytes()) return false;
  }
  return true;
}

absl::Status Keyring::Rotate() {
  if (epochs_.size() >= kMaxEpochs) {
    return absl::ResourceExhaustedError(absl::StrCat("a namespace keeps at most ", kMaxEpochs, " key epochs"));
  }
  epochs_[current_epoch() + 1] = SecretKey::Random();
  return absl::OkStatus();
}

}  // namespace converge::crypto
