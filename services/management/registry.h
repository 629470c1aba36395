// Registry: users, devices, namespaces and membership, kept in RocksDB. The management
// service's logic; knows no gRPC.
//
// Keys: 'u' user -> User; 'd' device -> Device; 'n' ns -> Namespace; 'm' ns '\0' device -> "".
//
// Every change that the store must know about (a namespace and its members) is first told to the
// store through NamespaceSink, then written here: a failure halfway leaves this registry as it
// was, and retrying is safe because the store's registration is idempotent.
//
// Thread-safe: all methods may be called concurrently; changes are serialised.
#ifndef CONVERGE_SERVICES_MANAGEMENT_REGISTRY_H_
#define CONVERGE_SERVICES_MANAGEMENT_REGISTRY_H_

#include <rocksdb/db.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"

namespace converge::management {

struct User {
  std::string user_id;
  std::string display_name;
  int64_t created_at_unix_ms = 0;
};

struct Device {
  std::string device_id;
  std::string user_id;
  std::string name;
  int64_t created_at_unix_ms = 0;
};

struct Namespace {
  std::string namespace_id;
  std::string owner_user_id;
  int64_t created_at_unix_ms = 0;
};

struct RegisteredDevice {
  Device device;
  std::string credential;  // shown once; the registry keeps only its SHA-256
};

// NamespaceSink is told the full member list of a namespace whenever it changes.
class NamespaceSink {
 public:
  virtual ~NamespaceSink() = default;
  virtual absl::Status RegisterNamespace(const std::string& ns,
                                         const std::vector<std::string>& member_device_ids) = 0;
};

class Registry {
 public:
  // Open creates the database under `dir` if needed.
  static absl::StatusOr<std::unique_ptr<Registry>> Open(const std::string& dir, NamespaceSink* sink,
                                                        Clock* clock);

  // CreateUser: InvalidArgument for a bad id, AlreadyExists if taken.
  absl::StatusOr<User> CreateUser(const std::string& user_id, const std::string& display_name);
  absl::StatusOr<std::vector<User>> ListUsers();

  // RegisterDevice: NotFound for an unknown user; InvalidArgument for an empty or over-long name.
  absl::StatusOr<RegisteredDevice> RegisterDevice(const std::string& user_id,
                                                  const std::string& name);
  // ListDevices of one user, or of all users if user_id is empty.
  absl::StatusOr<std::vector<Device>> ListDevices(const std::string& user_id);
  // CheckDeviceCredential: Unauthenticated unless `credential` belongs to `device_id`.
  absl::Status CheckDeviceCredential(const std::string& device_id, const std::string& credential);

  // CreateNamespace: NotFound for an unknown owner, AlreadyExists if taken, Unavailable if the
  // store cannot be told.
  absl::StatusOr<Namespace> CreateNamespace(const std::string& ns, const std::string& owner);
  absl::StatusOr<std::vector<Namespace>> ListNamespaces(const std::string& user_id);

  // AddDevice: NotFound for an unknown namespace or device; PermissionDenied if the device's
  // user does not own the namespace. Idempotent.
  absl::Status AddDevice(const std::string& ns, const std::string& device_id);
  absl::StatusOr<std::vector<Device>> ListMembers(const std::string& ns);

 private:
  Registry(std::unique_ptr<rocksdb::DB> db, NamespaceSink* sink, Clock* clock)
      : db_(std::move(db)), sink_(sink), clock_(clock) {}

  absl::StatusOr<std::string> Read(const std::string& key);  // NotFound if absent
  absl::Status Write(const std::string& key, const std::string& value);
  absl::StatusOr<Device> GetDevice(const std::string& device_id);
  absl::StatusOr<std::vector<std::string>> MemberIds(const std::string& ns);

  std::unique_ptr<rocksdb::DB> db_;
  NamespaceSink* const sink_;
  Clock* const clock_;
  absl::Mutex mu_;  // serialises changes
};

}  // namespace converge::management

#endif  // CONVERGE_SERVICES_MANAGEMENT_REGISTRY_H_
