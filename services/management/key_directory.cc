#include "services/management/key_directory.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/coding.h"
#include "common/base/status_macros.h"
#include "common/crypto/device_keys.h"
#include "common/crypto/keyring.h"

namespace converge::management {
namespace {

constexpr size_t kPublicKeyBytes = 64;

std::string GrantKey(absl::string_view ns, absl::string_view device) {
  return absl::StrCat("K", ns, absl::string_view("\0", 1), device);
}
std::string KeyringIdKey(absl::string_view ns) { return absl::StrCat("I", ns); }
std::string RecoveryKey(absl::string_view ns) { return absl::StrCat("R", ns); }
std::string EpochKey(absl::string_view ns) { return absl::StrCat("E", ns); }

std::string Encode(const KeyGrant& g) {
  std::string out;
  PutLengthPrefixed(&out, g.public_key);
  PutLengthPrefixed(&out, g.sealed_keyring);
  PutVarint64(&out, g.granted ? 1 : 0);
  PutLengthPrefixed(&out, g.granted_by);
  PutLengthPrefixed(&out, g.grant_signature);
  PutLengthPrefixed(&out, g.keyring_id);
  PutVarint64(&out, g.epoch);
  PutVarint64(&out, static_cast<uint64_t>(g.requested_at_unix_ms));
  PutVarint64(&out, static_cast<uint64_t>(g.granted_at_unix_ms));
  return out;
}

absl::StatusOr<KeyGrant> Decode(absl::string_view ns, absl::string_view device, absl::string_view bytes) {
  KeyGrant g;
  g.namespace_id = std::string(ns);
  g.device_id = std::string(device);
  Decoder d(bytes);
  uint64_t granted = 0, epoch = 0, requested = 0, at = 0;
  if (!d.GetLengthPrefixed(&g.public_key) || !d.GetLengthPrefixed(&g.sealed_keyring) || !d.GetVarint64(&granted) ||
      !d.GetLengthPrefixed(&g.granted_by) || !d.GetLengthPrefixed(&g.grant_signature) ||
      !d.GetLengthPrefixed(&g.keyring_id) || !d.GetVarint64(&epoch) || !d.GetVarint64(&requested) ||
      !d.GetVarint64(&at) || !d.done() || epoch > UINT32_MAX) {
    return absl::DataLossError("corrupt key grant record");
  }
  g.granted = granted != 0;
  g.epoch = static_cast<uint32_t>(epoch);
  g.requested_at_unix_ms = static_cast<int64_t>(requested);
  g.granted_at_unix_ms = static_cast<int64_t>(at);
  return g;
}

std::string Encode(const RecoveryRecord& r) {
  std::string out;
  PutLengthPrefixed(&out, r.wrapped_keyring);
  PutLengthPrefixed(&out, r.keyring_id);
  PutLengthPrefixed(&out, r.set_by);
  PutVarint64(&out, static_cast<uint64_t>(r.set_at_unix_ms));
  return out;
}

absl::StatusOr<RecoveryRecord> DecodeRecovery(absl::string_view ns, absl::string_view bytes) {
  RecoveryRecord r;
  r.namespace_id = std::string(ns);
  Decoder d(bytes);
  uint64_t at = 0;
  if (!d.GetLengthPrefixed(&r.wrapped_keyring) || !d.GetLengthPrefixed(&r.keyring_id) ||
      !d.GetLengthPrefixed(&r.set_by) || !d.GetVarint64(&at) || !d.done()) {
    return absl::DataLossError("corrupt recovery key record");
  }
  r.set_at_unix_ms = static_cast<int64_t>(at);
  return r;
}

absl::Status CheckKeyringId(absl::string_view id) {
  if (id.size() != crypto::kKeyringIdBytes) {
    return absl::InvalidArgumentError(absl::StrCat("a keyring id has ", crypto::kKeyringIdBytes, " bytes"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status KeyDirectory::CheckMember(const std::string& ns, const std::string& device_id) {
  CONVERGE_ASSIGN_OR_RETURN(const Namespace n, registry_->GetNamespace(ns));
  if (!n.encrypted) {
    return absl::FailedPreconditionError(absl::StrCat("namespace '", ns, "' is not end-to-end encrypted: it has no keys"));
  }
  CONVERGE_ASSIGN_OR_RETURN(std::vector<Device> members, registry_->ListMembers(ns));
  for (const Device& d : members) {
    if (d.device_id == device_id && d.state == DeviceState::kActive) return absl::OkStatus();
  }
  return absl::PermissionDeniedError(absl::StrCat("device '", device_id, "' is not a member of '", ns, "'"));
}

absl::StatusOr<KeyGrant> KeyDirectory::Read(const std::string& ns, const std::string& device_id) {
  absl::StatusOr<std::string> bytes = kv_->Get(GrantKey(ns, device_id));
  if (absl::IsNotFound(bytes.status())) {
    return absl::NotFoundError(absl::StrCat("device '", device_id, "' published no key for '", ns, "'"));
  }
  if (!bytes.ok()) return bytes.status();
  return Decode(ns, device_id, *bytes);
}

absl::StatusOr<std::string> KeyDirectory::KeyringId(const std::string& ns) {
  absl::StatusOr<std::string> id = kv_->Get(KeyringIdKey(ns));
  if (absl::IsNotFound(id.status())) return std::string();
  return id;
}

absl::Mutex* KeyDirectory::NamespaceMutex(const std::string& ns) {
  absl::MutexLock lock(&map_mu_);
  std::unique_ptr<absl::Mutex>& mu = namespace_mu_[ns];
  if (mu == nullptr) mu = std::make_unique<absl::Mutex>();
  return mu.get();
}

absl::StatusOr<KeyGrant> KeyDirectory::Publish(const std::string& ns, const std::string& device_id,
                                               const std::string& public_key) {
  if (!crypto::DevicePublicKey::FromBytes(public_key).ok()) {
    return absl::InvalidArgumentError(absl::StrCat("a device public key has ", kPublicKeyBytes, " bytes"));
  }
  CONVERGE_RETURN_IF_ERROR(CheckMember(ns, device_id));
  absl::MutexLock lock(NamespaceMutex(ns));
  CONVERGE_ASSIGN_OR_RETURN(RegistryKv::Lease lease, kv_->Lock());
  absl::StatusOr<KeyGrant> existing = Read(ns, device_id);
  if (existing.ok() && existing->public_key == public_key) return existing;
  if (existing.ok() && existing->granted) {
    return absl::FailedPreconditionError(absl::StrCat("device '", device_id, "' already holds '", ns,
                                                      "''s keyring under another public key"));
  }
  if (!existing.ok() && !absl::IsNotFound(existing.status())) return existing.status();
  KeyGrant g;
  g.namespace_id = ns;
  g.device_id = device_id;
  g.public_key = public_key;
  g.requested_at_unix_ms = absl::ToUnixMillis(clock_->Now());
  CONVERGE_RETURN_IF_ERROR(kv_->Put(GrantKey(ns, device_id), Encode(g)));
  return g;
}

absl::StatusOr<KeyGrantList> KeyDirectory::List(const std::string& ns) {
  CONVERGE_ASSIGN_OR_RETURN(std::vector<Device> members, registry_->ListMembers(ns));
  KeyGrantList out;
  CONVERGE_ASSIGN_OR_RETURN(out.keyring_id, KeyringId(ns));
  absl::flat_hash_map<std::string, bool> active;
  for (const Device& d : members) active[d.device_id] = d.state == DeviceState::kActive;
  // Every record of the namespace: a device revoked or removed since keeps its record, listed as
  // revoked (the holders rotate the keyring while it holds the newest epoch).
  CONVERGE_RETURN_IF_ERROR(kv_->Scan(GrantKey(ns, ""), [&](absl::string_view device, absl::string_view value) {
    absl::StatusOr<KeyGrant> g = Decode(ns, std::string(device), value);
    if (!g.ok()) return g.status();
    g->sealed_keyring.clear();
    const auto it = active.find(g->device_id);
    g->revoked = it == active.end() || !it->second;
    out.grants.push_back(*std::move(g));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<uint32_t> KeyDirectory::Epoch(const std::string& ns) {
  absl::StatusOr<std::string> kept = kv_->Get(EpochKey(ns));
  if (kept.ok()) {
    uint32_t epoch = 0;
    if (!absl::SimpleAtoi(*kept, &epoch)) return absl::DataLossError(absl::StrCat("corrupt epoch record of '", ns, "'"));
    return epoch;
  }
  if (!absl::IsNotFound(kept.status())) return kept.status();
  // Kept since rotation came; before, the newest any member holds.
  CONVERGE_ASSIGN_OR_RETURN(KeyGrantList list, List(ns));
  uint32_t newest = 0;
  for (const KeyGrant& g : list.grants) newest = std::max(newest, g.granted ? g.epoch : 0);
  return newest;
}

absl::Status KeyDirectory::CheckEpoch(const KeyGrant& grant, const KeyGrant& granter, bool rotation,
                                      uint32_t* next) {
  CONVERGE_ASSIGN_OR_RETURN(const uint32_t newest, Epoch(grant.namespace_id));
  const bool to_itself = grant.device_id == grant.granted_by;
  const uint32_t held = granter.granted ? granter.epoch : 0;
  *next = std::max(newest, grant.epoch);
  if (rotation) {
    if (!to_itself) return absl::InvalidArgumentError("a rotation is a grant of the next epoch to the rotating device");
    if (newest == 0 || held != newest || grant.epoch != newest + 1) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the namespace's newest epoch is ", newest, " and this device holds ", held, ": only a device that holds the "
          "newest epoch starts the next one (another device may have rotated the keyring already)"));
    }
    return absl::OkStatus();
  }
  if (grant.epoch > newest && newest > 0) {
    return absl::FailedPreconditionError(absl::StrCat("epoch ", grant.epoch, " is past the namespace's newest (", newest,
                                                      "): a new epoch is started by a rotation"));
  }
  if (!to_itself && held < grant.epoch) {
    return absl::FailedPreconditionError(
        absl::StrCat("'", grant.granted_by, "' holds epoch ", held, ": it cannot grant epoch ", grant.epoch));
  }
  return absl::OkStatus();
}

absl::StatusOr<KeyGrant> KeyDirectory::Grant(KeyGrant grant, bool rotation) {
  const std::string& ns = grant.namespace_id;
  if (grant.sealed_keyring.empty() || grant.sealed_keyring.size() > kMaxSealedKeyringBytes) {
    return absl::InvalidArgumentError(absl::StrCat("a sealed keyring has 1..", kMaxSealedKeyringBytes, " bytes"));
  }
  CONVERGE_RETURN_IF_ERROR(CheckKeyringId(grant.keyring_id));
  if (grant.epoch == 0) return absl::InvalidArgumentError("a keyring's epochs start at 1");
  CONVERGE_RETURN_IF_ERROR(CheckMember(ns, grant.granted_by));
  CONVERGE_RETURN_IF_ERROR(CheckMember(ns, grant.device_id));
  absl::MutexLock lock(NamespaceMutex(ns));
  CONVERGE_ASSIGN_OR_RETURN(RegistryKv::Lease lease, kv_->Lock());
  absl::StatusOr<KeyGrant> granter = Read(ns, grant.granted_by);
  if (!granter.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("the granting device must publish its own key first: ",
                                                      granter.status().message()));
  }
  CONVERGE_ASSIGN_OR_RETURN(KeyGrant recipient, Read(ns, grant.device_id));
  if (recipient.public_key != grant.public_key) {
    return absl::FailedPreconditionError(
        absl::StrCat("the keyring was sealed to a key device '", grant.device_id, "' has not published"));
  }
  if (recipient.granted && grant.epoch < recipient.epoch) {
    return absl::FailedPreconditionError(absl::StrCat("device '", grant.device_id, "' already holds epoch ",
                                                      recipient.epoch, "; a grant of epoch ", grant.epoch,
                                                      " would take it back"));
  }
  CONVERGE_ASSIGN_OR_RETURN(const crypto::DevicePublicKey granter_key,
                            crypto::DevicePublicKey::FromBytes(granter->public_key));
  const std::string signed_bytes = crypto::KeyGrantSigningBytes(
      {ns, grant.device_id, grant.public_key, grant.sealed_keyring, grant.keyring_id, grant.epoch});
  if (!crypto::VerifySignature(granter_key, signed_bytes, grant.grant_signature)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the grant's signature does not verify under '", grant.granted_by, "''s published key"));
  }
  CONVERGE_ASSIGN_OR_RETURN(const std::string keyring_id, KeyringId(ns));
  if (!keyring_id.empty() && keyring_id != grant.keyring_id) {
    return absl::FailedPreconditionError(absl::StrCat("'", ns, "' already has a keyring; this grant is of another"));
  }
  uint32_t epoch = 0;
  CONVERGE_RETURN_IF_ERROR(CheckEpoch(grant, *granter, rotation, &epoch));
  if (keyring_id.empty()) CONVERGE_RETURN_IF_ERROR(kv_->Put(KeyringIdKey(ns), grant.keyring_id));
  CONVERGE_RETURN_IF_ERROR(kv_->Put(EpochKey(ns), absl::StrCat(epoch)));
  grant.granted = true;
  grant.requested_at_unix_ms = recipient.requested_at_unix_ms;
  grant.granted_at_unix_ms = absl::ToUnixMillis(clock_->Now());
  CONVERGE_RETURN_IF_ERROR(kv_->Put(GrantKey(ns, grant.device_id), Encode(grant)));
  return grant;
}

absl::StatusOr<KeyGrant> KeyDirectory::Get(const std::string& ns, const std::string& device_id) {
  CONVERGE_RETURN_IF_ERROR(CheckMember(ns, device_id));
  return Read(ns, device_id);
}

absl::StatusOr<RecoveryRecord> KeyDirectory::SetRecovery(RecoveryRecord record) {
  const std::string& ns = record.namespace_id;
  if (record.wrapped_keyring.empty() || record.wrapped_keyring.size() > kMaxWrappedKeyringBytes) {
    return absl::InvalidArgumentError(absl::StrCat("a wrapped keyring has 1..", kMaxWrappedKeyringBytes, " bytes"));
  }
  CONVERGE_RETURN_IF_ERROR(CheckKeyringId(record.keyring_id));
  CONVERGE_RETURN_IF_ERROR(CheckMember(ns, record.set_by));
  absl::MutexLock lock(NamespaceMutex(ns));
  CONVERGE_ASSIGN_OR_RETURN(RegistryKv::Lease lease, kv_->Lock());
  CONVERGE_ASSIGN_OR_RETURN(const std::string keyring_id, KeyringId(ns));
  if (keyring_id != record.keyring_id) {
    return absl::FailedPreconditionError(keyring_id.empty()
                                             ? "the namespace has no keyring yet: a device grants itself one first"
                                             : "the wrapped keyring is not the namespace's");
  }
  record.set_at_unix_ms = absl::ToUnixMillis(clock_->Now());
  CONVERGE_RETURN_IF_ERROR(kv_->Put(RecoveryKey(ns), Encode(record)));
  return record;
}

absl::StatusOr<RecoveryRecord> KeyDirectory::GetRecovery(const std::string& ns, const std::string& device_id) {
  CONVERGE_RETURN_IF_ERROR(CheckMember(ns, device_id));
  absl::StatusOr<std::string> bytes = kv_->Get(RecoveryKey(ns));
  if (absl::IsNotFound(bytes.status())) {
    return absl::NotFoundError(absl::StrCat("'", ns, "' has no recovery key"));
  }
  if (!bytes.ok()) return bytes.status();
  return DecodeRecovery(ns, *bytes);
}

}  // namespace converge::management
