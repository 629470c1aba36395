#include "engine/keys/namespace_keys.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "common/base/files.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/crypto/recovery.h"

namespace converge::engine {
namespace {

constexpr char kDeviceKeyFile[] = "device.key";
constexpr char kKeyringFile[] = "keyring";
constexpr size_t kMaxKeyFileBytes = 4 << 20;

absl::Status Errno(absl::string_view what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", strerror(errno)));
}

// ReadSecret: the file's bytes, or nullopt if it does not exist.
absl::StatusOr<std::optional<std::string>> ReadSecret(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<std::string>();
    return Errno("cannot open", path);
  }
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      close(fd);
      return Errno("cannot read", path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxKeyFileBytes) {
      close(fd);
      return absl::DataLossError(absl::StrCat(path, " is larger than any key file"));
    }
  }
  close(fd);
  return std::optional<std::string>(std::move(out));
}

// WriteSecret replaces dir/name with `bytes` whole, durably (the directory is fsynced too).
absl::Status WriteSecret(const std::string& dir, const std::string& name, absl::string_view bytes) {
  return WriteFileAtomically(absl::StrCat(dir, "/", name), bytes, /*sync_dir=*/true);
}

std::string Hex(const std::string& bytes) { return absl::BytesToHexString(bytes); }

std::string FingerprintOf(const std::string& public_key) {
  absl::StatusOr<crypto::DevicePublicKey> key = crypto::DevicePublicKey::FromBytes(public_key);
  return key.ok() ? key->Fingerprint() : "(malformed key)";
}

}  // namespace

std::string NormalizeFingerprint(const std::string& text) { return absl::StrReplaceAll(text, {{" ", ""}}); }

absl::StatusOr<std::unique_ptr<NamespaceKeys>> NamespaceKeys::Open(const std::string& dir,
                                                                   const std::string& namespace_id,
                                                                   const std::string& device_id,
                                                                   KeyDirectoryClient* directory) {
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return Errno("cannot create", dir);
  if (chmod(dir.c_str(), 0700) != 0) return Errno("cannot restrict", dir);
  CONVERGE_ASSIGN_OR_RETURN(std::optional<std::string> device_bytes, ReadSecret(absl::StrCat(dir, "/", kDeviceKeyFile)));
  if (!device_bytes.has_value()) {
    device_bytes = crypto::DeviceKeys::Generate().Serialize();
    CONVERGE_RETURN_IF_ERROR(WriteSecret(dir, kDeviceKeyFile, *device_bytes));
  }
  absl::StatusOr<crypto::DeviceKeys> device = crypto::DeviceKeys::Parse(*device_bytes);
  if (!device.ok()) return absl::DataLossError(absl::StrCat(dir, "/", kDeviceKeyFile, ": ", device.status().message()));
  std::unique_ptr<NamespaceKeys> keys(new NamespaceKeys(dir, namespace_id, device_id, directory, *std::move(device)));
  CONVERGE_ASSIGN_OR_RETURN(std::optional<std::string> ring_bytes, ReadSecret(absl::StrCat(dir, "/", kKeyringFile)));
  if (ring_bytes.has_value()) {
    absl::StatusOr<crypto::Keyring> ring = crypto::Keyring::Parse(*ring_bytes);
    if (!ring.ok()) return absl::DataLossError(absl::StrCat(dir, "/", kKeyringFile, ": ", ring.status().message()));
    absl::MutexLock lock(&keys->mu_);
    keys->keyring_ = *std::move(ring);
  }
  return keys;
}

std::optional<crypto::Keyring> NamespaceKeys::keyring() const {
  absl::MutexLock lock(&mu_);
  return keyring_;
}

absl::StatusOr<KeysStatus> NamespaceKeys::Status() {
  absl::MutexLock lock(&mu_);
  return StatusLocked();
}

absl::StatusOr<KeysStatus> NamespaceKeys::StatusLocked() {
  KeysStatus s;
  s.device_fingerprint = device_.public_key().Fingerprint();
  s.has_keyring = keyring_.has_value();
  CONVERGE_ASSIGN_OR_RETURN(KeyListing listing, directory_->List());
  s.keyring_id = Hex(keyring_.has_value() ? keyring_->Id() : listing.keyring_id);
  s.epoch = keyring_.has_value() ? keyring_->current_epoch() : 0;
  for (const KeyRecord& r : listing.records) {
    if (r.revoked) continue;
    s.members.push_back({r.device_id, r.device_name, FingerprintOf(r.public_key), r.granted, r.epoch});
  }
  return s;
}

absl::Status NamespaceKeys::GrantTo(const KeyRecord& recipient, const crypto::Keyring& ring, bool rotation) {
  CONVERGE_ASSIGN_OR_RETURN(const crypto::DevicePublicKey to, crypto::DevicePublicKey::FromBytes(recipient.public_key));
  KeyRecord grant;
  grant.device_id = recipient.device_id;
  grant.public_key = recipient.public_key;
  grant.sealed_keyring = crypto::SealTo(to, ring.Serialize());
  grant.granted_by = device_id_;
  grant.keyring_id = ring.Id();
  grant.epoch = ring.current_epoch();
  grant.grant_signature = device_.Sign(crypto::KeyGrantSigningBytes(
      {namespace_id_, grant.device_id, grant.public_key, grant.sealed_keyring, grant.keyring_id, grant.epoch}));
  grant.rotation = rotation;
  return directory_->Grant(grant);
}

absl::Status NamespaceKeys::Keep(const crypto::Keyring& ring) {
  CONVERGE_RETURN_IF_ERROR(WriteSecret(dir_, kKeyringFile, ring.Serialize()));
  keyring_ = ring;
  if (on_keyring_) on_keyring_(ring);
  CONVERGE_ASSIGN_OR_RETURN(KeyRecord mine, directory_->Publish(device_.public_key().ToBytes()));
  if (mine.granted && mine.keyring_id == ring.Id() && mine.epoch >= ring.current_epoch()) return absl::OkStatus();
  return GrantTo(mine, ring);
}

absl::StatusOr<KeysStatus> NamespaceKeys::Init(const std::string& passphrase) {
  absl::MutexLock lock(&mu_);
  if (keyring_.has_value()) return absl::FailedPreconditionError("this device already holds the namespace's keyring");
  CONVERGE_ASSIGN_OR_RETURN(KeyListing listing, directory_->List());
  if (!listing.keyring_id.empty()) {
    return absl::FailedPreconditionError(
        "the namespace already has a keyring: ask a device that holds it to approve this one (keys request)");
  }
  const crypto::Keyring ring = crypto::Keyring::Create();
  std::string wrapped;
  if (!passphrase.empty()) {
    CONVERGE_ASSIGN_OR_RETURN(wrapped, crypto::WrapWithPassphrase(ring.Serialize(), passphrase, crypto::RecoveryParams()));
  }
  CONVERGE_RETURN_IF_ERROR(Keep(ring));
  if (!wrapped.empty()) CONVERGE_RETURN_IF_ERROR(directory_->SetRecovery(wrapped, ring.Id()));
  return StatusLocked();
}

absl::StatusOr<std::string> NamespaceKeys::Request() {
  CONVERGE_ASSIGN_OR_RETURN(KeyRecord mine, directory_->Publish(device_.public_key().ToBytes()));
  return device_.public_key().Fingerprint();
}

absl::Status NamespaceKeys::Approve(const std::string& device_id, const std::string& fingerprint) {
  absl::MutexLock lock(&mu_);
  if (!keyring_.has_value()) return absl::FailedPreconditionError("this device does not hold the namespace's keyring");
  CONVERGE_ASSIGN_OR_RETURN(KeyListing listing, directory_->List());
  for (const KeyRecord& r : listing.records) {
    if (r.device_id != device_id) continue;
    const std::string actual = FingerprintOf(r.public_key);
    if (NormalizeFingerprint(actual) != NormalizeFingerprint(fingerprint)) {
      return absl::PermissionDeniedError(
          absl::StrCat("device '", device_id, "' published a key with fingerprint ", actual,
                       ", not the one given: approve only what that device itself shows"));
    }
    return GrantTo(r, *keyring_);
  }
  return absl::FailedPreconditionError(absl::StrCat("device '", device_id, "' has not asked for the keyring"));
}

absl::StatusOr<crypto::DevicePublicKey> NamespaceKeys::GranterKey(const KeyRecord& mine, const KeyListing& listing) {
  const KeyRecord* granter = nullptr;
  for (const KeyRecord& r : listing.records) {
    if (r.device_id == mine.granted_by) granter = &r;
  }
  if (granter == nullptr) return absl::PermissionDeniedError("the granting device is not a member");
  CONVERGE_ASSIGN_OR_RETURN(const crypto::DevicePublicKey key, crypto::DevicePublicKey::FromBytes(granter->public_key));
  const std::string signed_bytes = crypto::KeyGrantSigningBytes(
      {namespace_id_, mine.device_id, mine.public_key, mine.sealed_keyring, mine.keyring_id, mine.epoch});
  if (!crypto::VerifySignature(key, signed_bytes, mine.grant_signature)) {
    return absl::PermissionDeniedError("the grant's signature does not verify under its granting device's key");
  }
  return key;
}

absl::StatusOr<KeysStatus> NamespaceKeys::Accept(const std::string& approver_fingerprint) {
  absl::MutexLock lock(&mu_);
  CONVERGE_ASSIGN_OR_RETURN(KeyRecord mine, directory_->Own());
  if (!mine.granted) return absl::FailedPreconditionError("no device has approved this one yet");
  if (mine.public_key != device_.public_key().ToBytes()) {
    return absl::PermissionDeniedError("the grant is sealed to another key than this device's");
  }
  CONVERGE_ASSIGN_OR_RETURN(KeyListing listing, directory_->List());
  CONVERGE_ASSIGN_OR_RETURN(const crypto::DevicePublicKey granter_key, GranterKey(mine, listing));
  if (NormalizeFingerprint(granter_key.Fingerprint()) != NormalizeFingerprint(approver_fingerprint)) {
    return absl::PermissionDeniedError(absl::StrCat("the grant comes from a key with fingerprint ",
                                                    granter_key.Fingerprint(),
                                                    ", not the approving device's as given: not accepted"));
  }
  absl::StatusOr<std::string> opened = device_.OpenSealed(mine.sealed_keyring);
  if (!opened.ok()) return opened.status();
  absl::StatusOr<crypto::Keyring> ring = crypto::Keyring::Parse(*opened);
  if (!ring.ok()) return absl::PermissionDeniedError(absl::StrCat("the sealed keyring: ", ring.status().message()));
  if (ring->Id() != mine.keyring_id || ring->Id() != listing.keyring_id) {
    return absl::PermissionDeniedError("the sealed keyring is not the namespace's");
  }
  CONVERGE_RETURN_IF_ERROR(WriteSecret(dir_, kKeyringFile, ring->Serialize()));
  keyring_ = *std::move(ring);
  if (on_keyring_) on_keyring_(*keyring_);
  return StatusLocked();
}

absl::StatusOr<KeysStatus> NamespaceKeys::Recover(const std::string& passphrase) {
  absl::MutexLock lock(&mu_);
  CONVERGE_ASSIGN_OR_RETURN(std::string wrapped, directory_->GetRecovery());
  CONVERGE_ASSIGN_OR_RETURN(std::string secret, crypto::UnwrapWithPassphrase(wrapped, passphrase));
  CONVERGE_ASSIGN_OR_RETURN(crypto::Keyring ring, crypto::Keyring::Parse(secret));
  CONVERGE_ASSIGN_OR_RETURN(KeyListing listing, directory_->List());
  if (ring.Id() != listing.keyring_id) return absl::PermissionDeniedError("the recovery key is not of the namespace's keyring");
  if (keyring_.has_value() && keyring_->current_epoch() > ring.current_epoch()) return StatusLocked();
  CONVERGE_RETURN_IF_ERROR(Keep(ring));
  return StatusLocked();
}

absl::StatusOr<KeysStatus> NamespaceKeys::Rotate(const std::string& passphrase) {
  absl::MutexLock lock(&mu_);
  return RotateLocked(passphrase);
}

absl::StatusOr<KeysStatus> NamespaceKeys::RotateLocked(const std::string& passphrase) {
  if (!keyring_.has_value()) return absl::FailedPreconditionError("this device does not hold the namespace's keyring");
  crypto::Keyring next = *keyring_;
  CONVERGE_RETURN_IF_ERROR(next.Rotate());
  CONVERGE_ASSIGN_OR_RETURN(KeyRecord mine, directory_->Publish(device_.public_key().ToBytes()));
  // The claim first: management lets one device start each epoch. Then the other holders' grants,
  // and only then this device seals with it: a device that meets the new epoch in a pulled
  // version finds its grant waiting (EncryptingStoreClient asks for it then).
  CONVERGE_RETURN_IF_ERROR(GrantTo(mine, next, /*rotation=*/true));
  CONVERGE_RETURN_IF_ERROR(WriteSecret(dir_, kKeyringFile, next.Serialize()));
  CONVERGE_ASSIGN_OR_RETURN(KeyListing listing, directory_->List());
  for (const KeyRecord& r : listing.records) {
    if (r.device_id == device_id_ || !r.granted || r.revoked) continue;
    if (absl::Status granted = GrantTo(r, next); !granted.ok()) {
      GetLogger("engine")->warn("granting epoch {} to '{}': {}", next.current_epoch(), r.device_id, granted.ToString());
    }
  }
  keyring_ = next;
  if (on_keyring_) on_keyring_(next);
  if (!passphrase.empty()) {
    CONVERGE_ASSIGN_OR_RETURN(std::string wrapped,
                              crypto::WrapWithPassphrase(next.Serialize(), passphrase, crypto::RecoveryParams()));
    CONVERGE_RETURN_IF_ERROR(directory_->SetRecovery(wrapped, next.Id()));
  }
  GetLogger("engine")->info("rotated the namespace's keyring to epoch {}: what is written from now on is sealed "
                            "under it", next.current_epoch());
  return StatusLocked();
}

absl::StatusOr<bool> NamespaceKeys::Refresh() {
  absl::MutexLock lock(&mu_);
  if (!keyring_.has_value()) return false;
  CONVERGE_ASSIGN_OR_RETURN(KeyRecord mine, directory_->Own());
  if (!mine.granted || mine.epoch <= keyring_->current_epoch() || mine.public_key != device_.public_key().ToBytes()) {
    return false;
  }
  CONVERGE_ASSIGN_OR_RETURN(KeyListing listing, directory_->List());
  CONVERGE_RETURN_IF_ERROR(GranterKey(mine, listing).status());
  CONVERGE_ASSIGN_OR_RETURN(std::string opened, device_.OpenSealed(mine.sealed_keyring));
  absl::StatusOr<crypto::Keyring> ring = crypto::Keyring::Parse(opened);
  // Only a device that holds this one's keys can make a ring that extends it: a management or a
  // stranger cannot slip a keyring of its own in as a "rotation".
  if (!ring.ok() || !ring->Extends(*keyring_) || ring->current_epoch() != mine.epoch) {
    return absl::PermissionDeniedError("a newer epoch's keyring does not extend the one this device holds");
  }
  CONVERGE_RETURN_IF_ERROR(WriteSecret(dir_, kKeyringFile, ring->Serialize()));
  keyring_ = *std::move(ring);
  if (on_keyring_) on_keyring_(*keyring_);
  GetLogger("engine")->info("took the namespace's keyring epoch {} from '{}'", keyring_->current_epoch(),
                            mine.granted_by);
  return true;
}

absl::Status NamespaceKeys::Watch() {
  // A newer epoch just taken came from a device that rotated for the revocations it saw.
  CONVERGE_ASSIGN_OR_RETURN(const bool took_newer, Refresh());
  absl::MutexLock lock(&mu_);
  if (!keyring_.has_value() || took_newer) return absl::OkStatus();
  CONVERGE_ASSIGN_OR_RETURN(KeyListing listing, directory_->List());
  std::vector<std::string> revoked;
  for (const KeyRecord& r : listing.records) {
    // A revoked device that holds this device's newest epoch can read what is written next.
    if (r.revoked && r.granted && r.epoch >= keyring_->current_epoch()) revoked.push_back(r.device_id);
  }
  if (revoked.empty()) return absl::OkStatus();
  GetLogger("engine")->warn("revoked device(s) {} hold the keyring's epoch {}: rotating it", absl::StrJoin(revoked, ", "),
                            keyring_->current_epoch());
  absl::StatusOr<KeysStatus> rotated = RotateLocked("");
  // FailedPrecondition: another device rotated first; its grant reaches this one (Refresh).
  if (!rotated.ok() && !absl::IsFailedPrecondition(rotated.status())) return rotated.status();
  return absl::OkStatus();
}

}  // namespace converge::engine
