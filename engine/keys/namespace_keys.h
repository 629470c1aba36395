// NamespaceKeys: this device's keys for its end-to-end encrypted namespace, and the steps that
// bring the namespace's keyring to it (docs/security.md, "End-to-end encrypted namespaces").
//
//   first device:   Init(passphrase)        makes the keyring, grants it to itself, and stores it
//                                           wrapped by the recovery passphrase
//   a new device:   Request()               publishes its public key; shows its fingerprint
//   a member:       Approve(id, fingerprint) checks the waiting device's key has the fingerprint
//                                           that device shows, seals the keyring to it, signs
//   the new device: Accept(fingerprint)     checks the grant is signed by the device whose
//                                           fingerprint the user read there, opens it, keeps it
//   or:             Recover(passphrase)     from the wrapped keyring alone
//   after a device left: Rotate(passphrase)  the next epoch, granted to every remaining holder
//                                           (management lets one device rotate per epoch); Watch
//                                           does it when a revoked device holds the newest epoch
//   every holder:   Refresh()               takes a newer epoch granted to it, once the keyring
//                                           it gets extends its own (only a holder can make one)
//
// Neither management nor the store can swap a key in: the user compares fingerprints on both
// devices, and every grant is signed. Keys live in `dir` (the folder's state, owner-only):
// device.key (the device's secret keys) and keyring, each written whole (temp, fsync, rename).
//
// Thread-safe.
#ifndef CONVERGE_ENGINE_KEYS_NAMESPACE_KEYS_H_
#define CONVERGE_ENGINE_KEYS_NAMESPACE_KEYS_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/crypto/device_keys.h"
#include "common/crypto/keyring.h"
#include "engine/keys/key_directory_client.h"

namespace converge::engine {

struct KeysStatus {
  std::string device_fingerprint;
  bool has_keyring = false;
  std::string keyring_id;  // hex; the namespace's (from management) when this device has none
  uint32_t epoch = 0;      // this device's newest
  struct Member {
    std::string device_id;
    std::string device_name;
    std::string fingerprint;
    bool granted = false;
    uint32_t epoch = 0;
  };
  std::vector<Member> members;  // every device that published a key
};

class NamespaceKeys {
 public:
  // Open reads (or makes, on first use) this device's keys under `dir` and the keyring if this
  // device holds it. `directory` must outlive this.
  static absl::StatusOr<std::unique_ptr<NamespaceKeys>> Open(const std::string& dir, const std::string& namespace_id,
                                                             const std::string& device_id,
                                                             KeyDirectoryClient* directory);

  absl::StatusOr<KeysStatus> Status();
  // Init: FailedPrecondition if this device or the namespace already has a keyring. An empty
  // passphrase sets no recovery key.
  absl::StatusOr<KeysStatus> Init(const std::string& passphrase);
  // Request returns this device's fingerprint once its key is published.
  absl::StatusOr<std::string> Request();
  // Approve: PermissionDenied if the device's published key does not have `fingerprint`;
  // FailedPrecondition without a keyring or a published key of that device.
  absl::Status Approve(const std::string& device_id, const std::string& fingerprint);
  // Accept: FailedPrecondition while not granted; PermissionDenied when the granting device's
  // key does not have `approver_fingerprint`, the signature does not verify, the keyring does
  // not open or is not the namespace's.
  absl::StatusOr<KeysStatus> Accept(const std::string& approver_fingerprint);
  // Recover: PermissionDenied for a wrong passphrase, NotFound without a recovery key.
  absl::StatusOr<KeysStatus> Recover(const std::string& passphrase);

  // This device's key pair for the namespace (it signs the device's commits: LogGuard).
  const crypto::DeviceKeys& device() const { return device_; }
  // Rotate: FailedPrecondition without the keyring, or when another device rotated first (its
  // grant then reaches this one: Refresh). A non-empty passphrase also re-wraps the recovery key.
  absl::StatusOr<KeysStatus> Rotate(const std::string& passphrase);
  // Refresh takes a newer epoch granted to this device: true if it did. PermissionDenied for a
  // grant that does not verify or a keyring that does not extend this device's.
  absl::StatusOr<bool> Refresh();
  // Watch (every few seconds): Refresh, then Rotate if management lists a revoked device that
  // holds this device's newest epoch (several holders may try: management lets one).
  absl::Status Watch();

  // The keyring, if this device holds it (a copy).
  std::optional<crypto::Keyring> keyring() const;
  // set_on_keyring: called with the keyring each time this device gets it (init, accept,
  // recover), under this object's lock (it must not call back). Set before use.
  void set_on_keyring(std::function<void(const crypto::Keyring&)> fn) { on_keyring_ = std::move(fn); }

 private:
  NamespaceKeys(std::string dir, std::string namespace_id, std::string device_id, KeyDirectoryClient* directory,
                crypto::DeviceKeys device)
      : dir_(std::move(dir)),
        namespace_id_(std::move(namespace_id)),
        device_id_(std::move(device_id)),
        directory_(directory),
        device_(std::move(device)) {}

  // Keep saves `ring` and grants it to this device (so it can approve others).
  absl::Status Keep(const crypto::Keyring& ring) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status GrantTo(const KeyRecord& recipient, const crypto::Keyring& ring, bool rotation = false)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // GranterKey: the key of the device that granted `mine`, once the grant's signature verifies
  // under it; PermissionDenied for a granter that is not listed or a signature that does not.
  absl::StatusOr<crypto::DevicePublicKey> GranterKey(const KeyRecord& mine, const KeyListing& listing);
  absl::StatusOr<KeysStatus> RotateLocked(const std::string& passphrase) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<KeysStatus> StatusLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string dir_;
  const std::string namespace_id_;
  const std::string device_id_;
  KeyDirectoryClient* const directory_;
  const crypto::DeviceKeys device_;
  mutable absl::Mutex mu_;
  std::optional<crypto::Keyring> keyring_ ABSL_GUARDED_BY(mu_);
  std::function<void(const crypto::Keyring&)> on_keyring_;
};

// NormalizeFingerprint drops spaces (people copy "40961 03328 ..." either way).
std::string NormalizeFingerprint(const std::string& text);

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_KEYS_NAMESPACE_KEYS_H_
