#include "services/management/registry.h"

#include <rocksdb/options.h>

#include "absl/strings/str_cat.h"
#include "common/coding.h"
#include "common/path.h"
#include "common/random_id.h"
#include "common/rocksdb_status.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace converge::management {
namespace {

constexpr size_t kMaxNameBytes = 200;

std::string UserKey(absl::string_view id) { return absl::StrCat("u", id); }
std::string DeviceKey(absl::string_view id) { return absl::StrCat("d", id); }
std::string NamespaceKey(absl::string_view id) { return absl::StrCat("n", id); }
std::string MemberPrefix(absl::string_view ns) {
  return absl::StrCat("m", ns, absl::string_view("\0", 1));
}

absl::Status Rocks(const rocksdb::Status& s, absl::string_view what) { return FromRocksStatus(s, what); }

std::string EncodeUser(const User& u) {
  std::string out;
  PutLengthPrefixed(&out, u.display_name);
  PutVarint64(&out, static_cast<uint64_t>(u.created_at_unix_ms));
  return out;
}

absl::StatusOr<User> DecodeUser(absl::string_view id, absl::string_view bytes) {
  User u;
  u.user_id = std::string(id);
  Decoder d(bytes);
  uint64_t at;
  if (!d.GetLengthPrefixed(&u.display_name) || !d.GetVarint64(&at)) {
    return absl::DataLossError("corrupt user record");
  }
  u.created_at_unix_ms = static_cast<int64_t>(at);
  return u;
}

std::string EncodeDevice(const Device& dev, absl::string_view credential_hash) {
  std::string out;
  PutLengthPrefixed(&out, dev.user_id);
  PutLengthPrefixed(&out, dev.name);
  PutVarint64(&out, static_cast<uint64_t>(dev.created_at_unix_ms));
  PutLengthPrefixed(&out, credential_hash);
  return out;
}

absl::StatusOr<Device> DecodeDevice(absl::string_view id, absl::string_view bytes,
                                    std::string* credential_hash = nullptr) {
  Device dev;
  dev.device_id = std::string(id);
  Decoder d(bytes);
  uint64_t at;
  std::string hash;
  if (!d.GetLengthPrefixed(&dev.user_id) || !d.GetLengthPrefixed(&dev.name) ||
      !d.GetVarint64(&at) || !d.GetLengthPrefixed(&hash)) {
    return absl::DataLossError("corrupt device record");
  }
  dev.created_at_unix_ms = static_cast<int64_t>(at);
  if (credential_hash != nullptr) *credential_hash = std::move(hash);
  return dev;
}

std::string EncodeNamespace(const Namespace& n) {
  std::string out;
  PutLengthPrefixed(&out, n.owner_user_id);
  PutVarint64(&out, static_cast<uint64_t>(n.created_at_unix_ms));
  return out;
}

absl::StatusOr<Namespace> DecodeNamespace(absl::string_view id, absl::string_view bytes) {
  Namespace n;
  n.namespace_id = std::string(id);
  Decoder d(bytes);
  uint64_t at;
  if (!d.GetLengthPrefixed(&n.owner_user_id) || !d.GetVarint64(&at)) {
    return absl::DataLossError("corrupt namespace record");
  }
  n.created_at_unix_ms = static_cast<int64_t>(at);
  return n;
}

// ForEachWithPrefix calls fn(key without prefix, value) for every key starting with prefix.
template <typename Fn>
absl::Status ForEachWithPrefix(rocksdb::DB* db, const std::string& prefix, Fn fn) {
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    CONVERGE_RETURN_IF_ERROR(fn(View(it->key()).substr(prefix.size()), View(it->value())));
  }
  return Rocks(it->status(), "scan registry");
}

absl::Status CheckName(const std::string& name) {
  if (name.empty() || name.size() > kMaxNameBytes) {
    return absl::InvalidArgumentError(absl::StrCat("name must have 1..", kMaxNameBytes, " bytes"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Registry>> Registry::Open(const std::string& dir,
                                                         NamespaceSink* sink, Clock* clock) {
  rocksdb::Options options;
  options.create_if_missing = true;
  rocksdb::DB* raw = nullptr;
  CONVERGE_RETURN_IF_ERROR(Rocks(rocksdb::DB::Open(options, dir, &raw), "open registry"));
  return std::unique_ptr<Registry>(new Registry(std::unique_ptr<rocksdb::DB>(raw), sink, clock));
}

absl::StatusOr<std::string> Registry::Read(const std::string& key) {
  std::string value;
  CONVERGE_RETURN_IF_ERROR(Rocks(db_->Get(rocksdb::ReadOptions(), key, &value), "read registry"));
  return value;
}

absl::Status Registry::Write(const std::string& key, const std::string& value) {
  rocksdb::WriteOptions sync;
  sync.sync = true;
  return Rocks(db_->Put(sync, key, value), "write registry");
}

absl::StatusOr<User> Registry::CreateUser(const std::string& user_id,
                                          const std::string& display_name) {
  CONVERGE_RETURN_IF_ERROR(ValidateId("user id", user_id));
  if (display_name.size() > kMaxNameBytes) return absl::InvalidArgumentError("display name too long");
  absl::MutexLock lock(&mu_);
  if (Read(UserKey(user_id)).ok()) {
    return absl::AlreadyExistsError(absl::StrCat("user '", user_id, "' exists"));
  }
  User u{user_id, display_name.empty() ? user_id : display_name,
         absl::ToUnixMillis(clock_->Now())};
  CONVERGE_RETURN_IF_ERROR(Write(UserKey(user_id), EncodeUser(u)));
  return u;
}

absl::StatusOr<std::vector<User>> Registry::ListUsers() {
  std::vector<User> users;
  CONVERGE_RETURN_IF_ERROR(
      ForEachWithPrefix(db_.get(), "u", [&](absl::string_view id, absl::string_view v) {
        CONVERGE_ASSIGN_OR_RETURN(User u, DecodeUser(id, v));
        users.push_back(std::move(u));
        return absl::OkStatus();
      }));
  return users;
}

absl::StatusOr<RegisteredDevice> Registry::RegisterDevice(const std::string& user_id,
                                                          const std::string& name) {
  CONVERGE_RETURN_IF_ERROR(ValidateId("user id", user_id));
  CONVERGE_RETURN_IF_ERROR(CheckName(name));
  absl::MutexLock lock(&mu_);
  absl::StatusOr<std::string> user = Read(UserKey(user_id));
  if (absl::IsNotFound(user.status())) {
    return absl::NotFoundError(absl::StrCat("unknown user '", user_id, "'"));
  }
  CONVERGE_RETURN_IF_ERROR(user.status());
  RegisteredDevice out;
  out.device = Device{"dev-" + RandomHex(8), user_id, name, absl::ToUnixMillis(clock_->Now())};
  out.credential = RandomHex(32);
  CONVERGE_RETURN_IF_ERROR(Write(DeviceKey(out.device.device_id),
                                 EncodeDevice(out.device, DigestToBytes(HashOf(out.credential)))));
  return out;
}

absl::StatusOr<Device> Registry::GetDevice(const std::string& device_id) {
  absl::StatusOr<std::string> value = Read(DeviceKey(device_id));
  if (absl::IsNotFound(value.status())) {
    return absl::NotFoundError(absl::StrCat("unknown device '", device_id, "'"));
  }
  CONVERGE_RETURN_IF_ERROR(value.status());
  return DecodeDevice(device_id, *value);
}

absl::Status Registry::CheckDeviceCredential(const std::string& device_id,
                                             const std::string& credential) {
  absl::StatusOr<std::string> value = Read(DeviceKey(device_id));
  std::string hash;
  if (value.ok() && DecodeDevice(device_id, *value, &hash).ok() &&
      hash == DigestToBytes(HashOf(credential))) {
    return absl::OkStatus();
  }
  return absl::UnauthenticatedError("unknown device or wrong credential");
}

absl::StatusOr<std::vector<Device>> Registry::ListDevices(const std::string& user_id) {
  std::vector<Device> devices;
  CONVERGE_RETURN_IF_ERROR(
      ForEachWithPrefix(db_.get(), "d", [&](absl::string_view id, absl::string_view v) {
        CONVERGE_ASSIGN_OR_RETURN(Device d, DecodeDevice(id, v));
        if (user_id.empty() || d.user_id == user_id) devices.push_back(std::move(d));
        return absl::OkStatus();
      }));
  return devices;
}

absl::StatusOr<Namespace> Registry::CreateNamespace(const std::string& ns,
                                                    const std::string& owner) {
  CONVERGE_RETURN_IF_ERROR(ValidateId("namespace id", ns));
  CONVERGE_RETURN_IF_ERROR(ValidateId("owner user id", owner));
  absl::MutexLock lock(&mu_);
  if (!Read(UserKey(owner)).ok()) {
    return absl::NotFoundError(absl::StrCat("unknown user '", owner, "'"));
  }
  if (Read(NamespaceKey(ns)).ok()) {
    return absl::AlreadyExistsError(absl::StrCat("namespace '", ns, "' exists"));
  }
  CONVERGE_RETURN_IF_ERROR(sink_->RegisterNamespace(ns, {}));
  Namespace n{ns, owner, absl::ToUnixMillis(clock_->Now())};
  CONVERGE_RETURN_IF_ERROR(Write(NamespaceKey(ns), EncodeNamespace(n)));
  return n;
}

absl::StatusOr<std::vector<Namespace>> Registry::ListNamespaces(const std::string& user_id) {
  std::vector<Namespace> out;
  CONVERGE_RETURN_IF_ERROR(
      ForEachWithPrefix(db_.get(), "n", [&](absl::string_view id, absl::string_view v) {
        CONVERGE_ASSIGN_OR_RETURN(Namespace n, DecodeNamespace(id, v));
        if (user_id.empty() || n.owner_user_id == user_id) out.push_back(std::move(n));
        return absl::OkStatus();
      }));
  return out;
}

absl::StatusOr<std::vector<std::string>> Registry::MemberIds(const std::string& ns) {
  std::vector<std::string> ids;
  CONVERGE_RETURN_IF_ERROR(
      ForEachWithPrefix(db_.get(), MemberPrefix(ns), [&](absl::string_view id, absl::string_view) {
        ids.emplace_back(id);
        return absl::OkStatus();
      }));
  return ids;
}

absl::Status Registry::AddDevice(const std::string& ns, const std::string& device_id) {
  CONVERGE_RETURN_IF_ERROR(ValidateId("namespace id", ns));
  CONVERGE_RETURN_IF_ERROR(ValidateId("device id", device_id));
  absl::MutexLock lock(&mu_);
  absl::StatusOr<std::string> ns_value = Read(NamespaceKey(ns));
  if (absl::IsNotFound(ns_value.status())) {
    return absl::NotFoundError(absl::StrCat("unknown namespace '", ns, "'"));
  }
  CONVERGE_RETURN_IF_ERROR(ns_value.status());
  CONVERGE_ASSIGN_OR_RETURN(Namespace n, DecodeNamespace(ns, *ns_value));
  CONVERGE_ASSIGN_OR_RETURN(Device d, GetDevice(device_id));
  if (d.user_id != n.owner_user_id) {
    return absl::PermissionDeniedError(absl::StrCat("device '", device_id, "' belongs to '",
                                                    d.user_id, "', namespace '", ns,
                                                    "' to '", n.owner_user_id, "'"));
  }
  CONVERGE_ASSIGN_OR_RETURN(std::vector<std::string> members, MemberIds(ns));
  if (std::find(members.begin(), members.end(), device_id) == members.end()) {
    members.push_back(device_id);
  }
  // Tell the store even when already a member: it heals a store that missed an earlier call.
  CONVERGE_RETURN_IF_ERROR(sink_->RegisterNamespace(ns, members));
  return Write(absl::StrCat(MemberPrefix(ns), device_id), "");
}

absl::StatusOr<std::vector<Device>> Registry::ListMembers(const std::string& ns) {
  CONVERGE_RETURN_IF_ERROR(ValidateId("namespace id", ns));
  absl::StatusOr<std::string> ns_value = Read(NamespaceKey(ns));
  if (absl::IsNotFound(ns_value.status())) {
    return absl::NotFoundError(absl::StrCat("unknown namespace '", ns, "'"));
  }
  CONVERGE_ASSIGN_OR_RETURN(std::vector<std::string> ids, MemberIds(ns));
  std::vector<Device> out;
  for (const std::string& id : ids) {
    CONVERGE_ASSIGN_OR_RETURN(Device d, GetDevice(id));
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace converge::management
