// KeyDirectory: the key records of end-to-end encrypted namespaces, kept beside the registry's
// records. Management's logic for them; knows no gRPC.
//
// A member device publishes its public key for a namespace (a request for the keyring); a
// member device that holds the keyring seals it to that key and signs the grant; the device
// fetches its sealed keyring. Management never sees a key in the clear. It refuses what it can
// tell is wrong (a non-member, a grant sealed to a key the device did not publish, a signature
// that does not verify under the granting device's published key, a second keyring for one
// namespace, a grant of an older epoch than the device holds) and leaves the rest to the
// devices, which compare fingerprints and check signatures themselves: management is not trusted
// with the keys.
//
// Only end-to-end encrypted namespaces have key records (FailedPrecondition for others).
//
// Rotation (a device revoked: what is written afterwards must be unreadable to it): a device that
// holds the namespace's newest epoch grants itself the next one with `rotation` set; only one
// device can, so two devices rotating at once cannot split the namespace between two keys of one
// epoch (the second gets FailedPrecondition and receives the first's). A grant to another device
// needs a granter that holds at least that epoch; a device may record an epoch it holds for itself
// (after recovery) only up to the namespace's newest.
//
// Records: 'K' ns '\0' device -> KeyGrant; 'I' ns -> keyring id; 'R' ns -> RecoveryRecord;
// 'E' ns -> the namespace's newest epoch (decimal).
//
// Thread-safe; changes to one namespace's records are serialised (and across replicas by the
// records' lock); another namespace's never wait for them in this process.
#ifndef CONVERGE_SERVICES_MANAGEMENT_KEY_DIRECTORY_H_
#define CONVERGE_SERVICES_MANAGEMENT_KEY_DIRECTORY_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/base/clock.h"
#include "services/management/registry.h"
#include "services/management/registry_kv.h"

namespace converge::management {

inline constexpr size_t kMaxSealedKeyringBytes = 256 << 10;
inline constexpr size_t kMaxWrappedKeyringBytes = 256 << 10;

struct KeyGrant {
  std::string namespace_id;
  std::string device_id;
  std::string public_key;      // 64 bytes: X25519 then Ed25519
  std::string sealed_keyring;  // empty while waiting for approval (and in listings)
  bool granted = false;
  std::string granted_by;
  std::string grant_signature;
  std::string keyring_id;
  uint32_t epoch = 0;
  int64_t requested_at_unix_ms = 0;
  int64_t granted_at_unix_ms = 0;
  bool revoked = false;  // in listings: the device was revoked (its record stays, for rotation)
};

struct KeyGrantList {
  std::vector<KeyGrant> grants;  // of current members, by device id; sealed keyrings left out
  std::string keyring_id;        // empty until the first grant
};

struct RecoveryRecord {
  std::string namespace_id;
  std::string wrapped_keyring;
  std::string keyring_id;
  std::string set_by;
  int64_t set_at_unix_ms = 0;
};

class KeyDirectory {
 public:
  // `registry` answers membership; `kv` holds the records (the registry's own).
  KeyDirectory(Registry* registry, RegistryKv* kv, Clock* clock) : registry_(registry), kv_(kv), clock_(clock) {}

  // Publish records `device_id`'s public key for `ns` (waiting for a grant). Idempotent for the
  // same key; a waiting device may publish another key; FailedPrecondition for a device granted
  // under another key, PermissionDenied for a non-member, InvalidArgument for a malformed key.
  absl::StatusOr<KeyGrant> Publish(const std::string& ns, const std::string& device_id, const std::string& public_key);
  // List: every member's record (without sealed keyrings; a revoked device's marked revoked: the
  // holders rotate the keyring when one that held the newest epoch is) and the keyring id.
  absl::StatusOr<KeyGrantList> List(const std::string& ns);
  // Grant stores `grant` (granted_by is the calling device), after the checks above; `rotation`:
  // the granter starts the namespace's next epoch (a grant to itself).
  absl::StatusOr<KeyGrant> Grant(KeyGrant grant, bool rotation = false);
  // Epoch: the namespace's newest epoch (0 before its first grant).
  absl::StatusOr<uint32_t> Epoch(const std::string& ns);
  // Get: the device's own record; NotFound if it never published a key here.
  absl::StatusOr<KeyGrant> Get(const std::string& ns, const std::string& device_id);

  // SetRecovery: a member device stores the keyring wrapped by a passphrase (of the namespace's
  // keyring: FailedPrecondition for another keyring id). GetRecovery: NotFound if none.
  absl::StatusOr<RecoveryRecord> SetRecovery(RecoveryRecord record);
  absl::StatusOr<RecoveryRecord> GetRecovery(const std::string& ns, const std::string& device_id);

 private:
  absl::Status CheckMember(const std::string& ns, const std::string& device_id);
  absl::StatusOr<KeyGrant> Read(const std::string& ns, const std::string& device_id);
  absl::StatusOr<std::string> KeyringId(const std::string& ns);  // "" if none yet
  // CheckEpoch: the epoch rules above for `grant` by `granter` (its own record); the namespace's
  // newest epoch after it in *next.
  absl::Status CheckEpoch(const KeyGrant& grant, const KeyGrant& granter, bool rotation, uint32_t* next);

  // NamespaceMutex: the lock of `ns`'s changes (made on first use; callers are its members, so
  // there is one for each namespace that exists at most).
  absl::Mutex* NamespaceMutex(const std::string& ns);

  Registry* const registry_;
  RegistryKv* const kv_;
  Clock* const clock_;
  absl::Mutex map_mu_;  // the map below only, never held across a record's read or write
  absl::flat_hash_map<std::string, std::unique_ptr<absl::Mutex>> namespace_mu_ ABSL_GUARDED_BY(map_mu_);
};

}  // namespace converge::management

#endif  // CONVERGE_SERVICES_MANAGEMENT_KEY_DIRECTORY_H_
