// Registry: users, devices, namespaces and membership, kept in RocksDB. The management
// service's logic; knows no gRPC.
//
// Keys: 'u' user -> User; 'd' device -> Device; 'n' ns -> Namespace; 'm' ns '\0' device -> "";
// 's' ns '\0' user -> "" (the namespace is shared with the user).
//
// Every change that the store must know about (a namespace and its members) is first told to the
// store through DataPlane, then written here: a failure halfway leaves this registry as it
// was, and retrying is safe because the store's registration is idempotent.
//
// Thread-safe: all methods may be called concurrently; changes are serialised.
#ifndef CONVERGE_SERVICES_MANAGEMENT_REGISTRY_H_
#define CONVERGE_SERVICES_MANAGEMENT_REGISTRY_H_


#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/base/clock.h"
#include "common/model/namespace_state.h"
#include "services/management/registry_kv.h"

namespace converge::management {

struct User {
  std::string user_id;
  std::string display_name;
  int64_t created_at_unix_ms = 0;
  bool disabled = false;
  uint64_t quota_bytes = 0;  // 0: unlimited
  // The store shard of the user's new namespaces (and their chunks and quota), assigned at
  // creation to the shard with the fewest users that takes new ones; a drain gives it another
  // (DrainUsers). A namespace moved since lives where the placement says (namespace_placement.h).
  uint32_t shard = 0;
};

inline constexpr uint32_t kMaxEnrollmentUses = 1000;

struct EnrollmentGrant {
  std::string token;  // shown once; the registry keeps only its SHA-256
  std::string user_id;
  int64_t expires_at_unix_ms = 0;
  uint32_t uses = 1;  // devices it may (still) enroll
};

enum class DeviceState { kActive = 0, kRevoked = 1, kWipePending = 2, kWiped = 3 };

struct Device {
  std::string device_id;
  std::string user_id;
  std::string name;
  int64_t created_at_unix_ms = 0;
  DeviceState state = DeviceState::kActive;
};

struct Namespace {
  std::string namespace_id;
  std::string owner_user_id;
  int64_t created_at_unix_ms = 0;
  std::vector<std::string> shared_with;  // users besides the owner whose devices may join
  bool sync_xattrs = false;              // a namespace option: "user." extended attributes travel
  bool encrypted = false;                // end-to-end encrypted: at creation, or converted; never undone
};

struct RegisteredDevice {
  Device device;
  std::string credential;  // shown once; the registry keeps only its SHA-256
};

// DataPlane: the store and notification services as management sees them. Management tells
// it each namespace's full member list whenever it changes, users' quotas and revoked devices,
// and asks it how a namespace is used, for its held mass deletes and conflicts, to compact it
// and to evict a device. GrpcDataPlane (data_plane_client.h) calls the services; converge-server
// calls them in process.
class DataPlane {
 public:
  virtual ~DataPlane() = default;
  // `encrypted`: the namespace is end-to-end encrypted (the same on every call for a namespace).
  virtual absl::Status RegisterNamespace(const std::string& ns, const std::string& owner_user_id,
                                         const std::vector<std::string>& member_device_ids, bool encrypted) = 0;
  // SetQuota sets a user's storage quota at the store (0: unlimited); returns the bytes it uses.
  virtual absl::StatusOr<uint64_t> SetQuota(const std::string& user_id, uint64_t quota_bytes) = 0;
  // RevokeDevices tells the notification service(s) to close the devices' streams and refuse
  // their tokens until `until` (the store already refuses them: they are no longer members).
  virtual absl::Status RevokeDevices(const std::vector<std::string>& device_ids, absl::Time until) = 0;
  virtual absl::StatusOr<NamespaceStats> Usage(const std::string& ns) = 0;
  virtual absl::StatusOr<std::vector<HeldDelete>> ListHeldDeletes(const std::string& ns) = 0;
  virtual absl::StatusOr<HeldDelete> ResolveHeldDelete(const std::string& ns, const std::string& id,
                                                       bool approve) = 0;
  virtual absl::StatusOr<std::vector<ConflictRecord>> ListConflicts(const std::string& ns,
                                                                    bool include_resolved) = 0;
  virtual absl::StatusOr<ConflictRecord> ResolveConflict(const std::string& ns, const std::string& copy_path) = 0;
  virtual absl::StatusOr<CompactionResult> Compact(const std::string& ns) = 0;
  virtual absl::Status Evict(const std::string& ns, const std::string& device_id) = 0;
  // FilesAt hands `fn` each path's version as of `at_unix_ms` (tombstones included) as they
  // stream from the store; `fn` returning false stops. Returns the namespace's head seq.
  // Only paths starting with `prefix` ("dir/"; empty: all).
  virtual absl::StatusOr<uint64_t> FilesAt(const std::string& /*ns*/, int64_t /*at_unix_ms*/, const std::string& /*prefix*/,
                                           const std::function<bool(const FileVersion&)>& /*fn*/) {
    return absl::UnimplementedError("this deployment does not browse namespaces");
  }
  // Versions: the kept versions of one path, newest first (at most `limit`).
  virtual absl::StatusOr<std::vector<HistoryVersion>> Versions(const std::string& /*ns*/, const std::string& /*path*/,
                                                               uint32_t /*limit*/) {
    return absl::UnimplementedError("this deployment does not browse namespaces");
  }
  // Restore commits kept version `seq` of `path` again (the web console's restore); returns the
  // commit's seq.
  virtual absl::StatusOr<uint64_t> Restore(const std::string& /*ns*/, const std::string& /*path*/, uint64_t /*seq*/) {
    return absl::UnimplementedError("this deployment does not restore from the console");
  }
  // KeepConflictSide settles a conflict: the copy deleted, its content first made the original's
  // when `keep_copy`. Returns the commit's seq.
  virtual absl::StatusOr<uint64_t> KeepConflictSide(const std::string& /*ns*/, const std::string& /*copy_path*/,
                                                    bool /*keep_copy*/) {
    return absl::UnimplementedError("this deployment does not settle conflicts from the console");
  }
  // ReadVersion hands `fn` the bytes of kept file version `seq` of `path` in order (the total
  // size first, with no bytes); `fn` returning false stops.
  virtual absl::Status ReadVersion(const std::string& /*ns*/, const std::string& /*path*/, uint64_t /*seq*/,
                                   const std::function<bool(uint64_t size, const std::string& bytes)>& /*fn*/) {
    return absl::UnimplementedError("this deployment does not download from the console");
  }
  // How many store shards there are (namespaces live on their owner's shard).
  virtual uint32_t shard_count() const = 0;
  // Whether new users may be placed on a shard (false while it is drained).
  virtual bool AcceptsNewUsers(uint32_t /*shard*/) const { return true; }
};

// ShardMap says which store shard holds a user's or a namespace's data. Implemented by the
// Registry; its lookups take no registry lock (a data_plane may call them from inside a registry call).
class ShardMap {
 public:
  virtual ~ShardMap() = default;
  virtual absl::StatusOr<uint32_t> ShardOfUser(const std::string& user_id) = 0;
  virtual absl::StatusOr<uint32_t> ShardOfNamespace(const std::string& ns) = 0;
};

class Registry : public ShardMap {
 public:
  // Open creates the database under `dir` if needed.
  static absl::StatusOr<std::unique_ptr<Registry>> Open(const std::string& dir, DataPlane* data_plane,
                                                        Clock* clock);
  // Open over another store of records (RegistryKvClient: shared by several management replicas).
  static absl::StatusOr<std::unique_ptr<Registry>> Open(std::unique_ptr<RegistryKv> kv, DataPlane* data_plane,
                                                        Clock* clock);

  // ShardOfUser: NotFound for an unknown user. ShardOfNamespace: the owner's shard; NotFound
  // for an unknown namespace.
  absl::StatusOr<uint32_t> ShardOfUser(const std::string& user_id) override;
  absl::StatusOr<uint32_t> ShardOfNamespace(const std::string& ns) override;

  // CreateUser: InvalidArgument for a bad id, AlreadyExists if taken. The user is placed on the
  // store shard with the fewest users.
  absl::StatusOr<User> CreateUser(const std::string& user_id, const std::string& display_name);
  absl::StatusOr<std::vector<User>> ListUsers();
  // GetUser: InvalidArgument for a bad id, NotFound for an unknown user.
  absl::StatusOr<User> GetUser(const std::string& user_id);

  // DrainUsers gives every user placed on `shard` the shard with the fewest users among those
  // that accept new users (their new namespaces go there; their quota is set there too). Returns
  // how many moved. FailedPrecondition if no other shard accepts users.
  absl::StatusOr<uint32_t> DrainUsers(uint32_t shard);

  // DisableUser revokes every device of the user and refuses it new devices and namespaces.
  // NotFound for an unknown user. Idempotent.
  absl::StatusOr<User> DisableUser(const std::string& user_id);
  // SetQuota: the store first, then here. NotFound for an unknown user.
  absl::StatusOr<User> SetQuota(const std::string& user_id, uint64_t quota_bytes);

  // CreateEnrollmentToken issues a token with which `uses` devices (1 to kMaxEnrollmentUses) may
  // be registered for `user_id` until `ttl` passes. FailedPrecondition for a disabled user.
  absl::StatusOr<EnrollmentGrant> CreateEnrollmentToken(const std::string& user_id, absl::Duration ttl,
                                                        uint32_t uses = 1);
  // EnrollDevice registers a device named `name` for the user a valid, unexpired enrollment
  // token is for, and uses the token up by one, atomically: a token enrolls exactly as many
  // devices as it was issued for, and a refused registration does not use it. Unauthenticated
  // for an unknown, used-up or expired token; PermissionDenied if `user_id` is given and the
  // token is another user's.
  absl::StatusOr<RegisteredDevice> EnrollDevice(const std::string& token, const std::string& user_id,
                                                const std::string& name);

  // RegisterDevice: NotFound for an unknown user; InvalidArgument for an empty or over-long
  // name; FailedPrecondition for a disabled user.
  absl::StatusOr<RegisteredDevice> RegisterDevice(const std::string& user_id,
                                                  const std::string& name);
 private:
  // The users on each shard; the shard with the fewest users that takes new ones (not `except`).
  absl::StatusOr<std::vector<uint64_t>> UsersOnShardsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint32_t EmptiestAccepting(const std::vector<uint64_t>& users_on, uint32_t except) const;
  absl::StatusOr<RegisteredDevice> RegisterDeviceLocked(const std::string& user_id, const std::string& name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

 public:
  // ListDevices of one user, or of all users if user_id is empty.
  absl::StatusOr<std::vector<Device>> ListDevices(const std::string& user_id);
  absl::StatusOr<Device> GetDevice(const std::string& device_id);
  // CheckDeviceCredential: Unauthenticated unless `credential` belongs to `device_id`.
  absl::Status CheckDeviceCredential(const std::string& device_id, const std::string& credential);
  // VerifyCredential: like CheckDeviceCredential, but for a device in any state.
  absl::Status VerifyCredential(const std::string& device_id, const std::string& credential);

  // RevokeDevice removes the device from every namespace (the store is told first, so it
  // refuses the device from then on) and marks it revoked, or wipe-pending when `wipe`.
  // NotFound for an unknown device. Revoking again is allowed (it can add a wipe).
  absl::StatusOr<Device> RevokeDevice(const std::string& device_id, bool wipe);
  // ConfirmWipe: the device's engine deleted its synced files. Unauthenticated for a wrong
  // credential, FailedPrecondition unless a wipe is pending (or done).
  absl::StatusOr<Device> ConfirmWipe(const std::string& device_id, const std::string& credential);
  // NamespacesOf lists the namespaces the device is a member of.
  absl::StatusOr<std::vector<std::string>> NamespacesOf(const std::string& device_id);

  // CreateNamespace: NotFound for an unknown owner, AlreadyExists if taken, Unavailable if the
  // store cannot be told.
  absl::StatusOr<Namespace> CreateNamespace(const std::string& ns, const std::string& owner, bool sync_xattrs = false,
                                            bool encrypted = false);
  // ListNamespaces: all, or those a user owns or shares.
  absl::StatusOr<std::vector<Namespace>> ListNamespaces(const std::string& user_id);
  absl::StatusOr<Namespace> GetNamespace(const std::string& ns);
  // ShareNamespace lets `user_id`'s devices join `ns`. NotFound for an unknown namespace or
  // user; FailedPrecondition for a disabled user. Idempotent.
  absl::StatusOr<Namespace> ShareNamespace(const std::string& ns, const std::string& user_id);
  // SetSyncXattrs sets the namespace option. NotFound for an unknown namespace.
  absl::StatusOr<Namespace> SetSyncXattrs(const std::string& ns, bool on);
  // EncryptNamespace converts a plain namespace to end-to-end encrypted: the store first (it
  // converts at its head), then the record. Idempotent; NotFound for an unknown namespace,
  // Unavailable if the store cannot be told.
  absl::StatusOr<Namespace> EncryptNamespace(const std::string& ns);

  // AddDevice: NotFound for an unknown namespace or device; PermissionDenied if the device's
  // user neither owns the namespace nor has it shared; FailedPrecondition for a revoked device.
  // Idempotent.
  absl::Status AddDevice(const std::string& ns, const std::string& device_id);
  absl::StatusOr<std::vector<Device>> ListMembers(const std::string& ns);

  // The records and clock underneath, for the logic beside the registry (KeyDirectory).
  RegistryKv* records() { return kv_.get(); }
  Clock* clock() { return clock_; }

 private:
  Registry(std::unique_ptr<RegistryKv> kv, DataPlane* data_plane, Clock* clock)
      : kv_(std::move(kv)), data_plane_(data_plane), clock_(clock) {}

  absl::StatusOr<std::string> Read(const std::string& key);  // NotFound if absent
  absl::Status Write(const std::string& key, const std::string& value);
  // ReadDevice: NotFound for an unknown device; the stored credential hash into *credential_hash
  // when not null. Authenticate also checks the credential (Unauthenticated otherwise).
  absl::StatusOr<Device> ReadDevice(const std::string& device_id, std::string* credential_hash);
  absl::StatusOr<Device> Authenticate(const std::string& device_id, const std::string& credential,
                                      std::string* credential_hash);
  absl::StatusOr<User> GetUserLocked(const std::string& user_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Namespace> GetNamespaceLocked(const std::string& ns);
  absl::StatusOr<std::vector<std::string>> MemberIds(const std::string& ns);
  absl::StatusOr<std::vector<std::string>> SharedWith(const std::string& ns);
  absl::StatusOr<Device> RevokeLocked(const std::string& device_id, bool wipe) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::unique_ptr<RegistryKv> kv_;
  DataPlane* const data_plane_;
  Clock* const clock_;
  absl::Mutex mu_;  // serialises changes in this process; kv_->Lock() across replicas
};

}  // namespace converge::management

#endif  // CONVERGE_SERVICES_MANAGEMENT_REGISTRY_H_
