#include "services/management/registry.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/base/coding.h"
#include "common/base/logging.h"
#include "common/base/random_id.h"
#include "common/base/sha256.h"
#include "common/base/status_macros.h"
#include "common/model/path.h"
#include "common/security/device_token.h"

namespace converge::management {
namespace {

constexpr size_t kMaxNameBytes = 200;

std::string UserKey(absl::string_view id) { return absl::StrCat("u", id); }
std::string DeviceKey(absl::string_view id) { return absl::StrCat("d", id); }
std::string NamespaceKey(absl::string_view id) { return absl::StrCat("n", id); }
std::string EnrollmentKey(absl::string_view token) { return absl::StrCat("e", DigestToBytes(HashOf(token))); }
std::string MemberPrefix(absl::string_view ns) {
  return absl::StrCat("m", ns, absl::string_view("\0", 1));
}
std::string SharePrefix(absl::string_view ns) {
  return absl::StrCat("s", ns, absl::string_view("\0", 1));
}


std::string EncodeUser(const User& u) {
  std::string out;
  PutLengthPrefixed(&out, u.display_name);
  PutVarint64(&out, static_cast<uint64_t>(u.created_at_unix_ms));
  PutVarint64(&out, u.disabled ? 1 : 0);
  PutVarint64(&out, u.quota_bytes);
  PutVarint64(&out, u.shard);
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
  uint64_t flags = 0;
  uint64_t shard = 0;
  if (!d.GetVarint64(&flags) || !d.GetVarint64(&u.quota_bytes) || !d.GetVarint64(&shard) || !d.done()) {
    return absl::DataLossError("corrupt user record");
  }
  u.disabled = (flags & 1) != 0;
  u.shard = static_cast<uint32_t>(shard);
  return u;
}

std::string EncodeDevice(const Device& dev, absl::string_view credential_hash) {
  std::string out;
  PutLengthPrefixed(&out, dev.user_id);
  PutLengthPrefixed(&out, dev.name);
  PutVarint64(&out, static_cast<uint64_t>(dev.created_at_unix_ms));
  PutLengthPrefixed(&out, credential_hash);
  PutVarint64(&out, static_cast<uint64_t>(dev.state));
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
  uint64_t state = 0;
  if (!d.done() && (!d.GetVarint64(&state) || state > 3)) return absl::DataLossError("corrupt device record");
  dev.state = static_cast<DeviceState>(state);
  if (credential_hash != nullptr) *credential_hash = std::move(hash);
  return dev;
}

constexpr uint64_t kSyncXattrsFlag = 1;
constexpr uint64_t kEncryptedFlag = 2;

std::string EncodeNamespace(const Namespace& n) {
  std::string out;
  PutLengthPrefixed(&out, n.owner_user_id);
  PutVarint64(&out, static_cast<uint64_t>(n.created_at_unix_ms));
  PutVarint64(&out, (n.sync_xattrs ? kSyncXattrsFlag : 0) |
                        (n.encrypted ? kEncryptedFlag : 0));  // absent in records made before options
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
  uint64_t flags = 0;
  if (d.remaining() > 0 && !d.GetVarint64(&flags)) return absl::DataLossError("corrupt namespace record");
  n.sync_xattrs = (flags & kSyncXattrsFlag) != 0;
  n.encrypted = (flags & kEncryptedFlag) != 0;
  return n;
}

// ForEachWithPrefix calls fn(key without prefix, value) for every key starting with prefix.
absl::Status ForEachWithPrefix(RegistryKv* kv, const std::string& prefix, const RegistryKv::ScanFn& fn) {
  return kv->Scan(prefix, fn);
}

// KeysWithPrefix returns the rest of every key that starts with prefix (member and share ids).
absl::StatusOr<std::vector<std::string>> KeysWithPrefix(RegistryKv* kv, const std::string& prefix) {
  std::vector<std::string> out;
  CONVERGE_RETURN_IF_ERROR(ForEachWithPrefix(kv, prefix, [&](absl::string_view rest, absl::string_view) {
    out.emplace_back(rest);
    return absl::OkStatus();
  }));
  return out;
}

absl::Status CheckName(const std::string& name) {
  if (name.empty() || name.size() > kMaxNameBytes) {
    return absl::InvalidArgumentError(absl::StrCat("name must have 1..", kMaxNameBytes, " bytes"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Registry>> Registry::Open(const std::string& dir,
                                                         DataPlane* data_plane, Clock* clock) {
  CONVERGE_ASSIGN_OR_RETURN(std::unique_ptr<LocalRegistryKv> kv, LocalRegistryKv::Open(dir));
  return Open(std::move(kv), data_plane, clock);
}

absl::StatusOr<std::unique_ptr<Registry>> Registry::Open(std::unique_ptr<RegistryKv> kv, DataPlane* data_plane,
                                                         Clock* clock) {
  return std::unique_ptr<Registry>(new Registry(std::move(kv), data_plane, clock));
}

absl::StatusOr<std::string> Registry::Read(const std::string& key) { return kv_->Get(key); }

absl::Status Registry::Write(const std::string& key, const std::string& value) { return kv_->Put(key, value); }

absl::StatusOr<User> Registry::CreateUser(const std::string& user_id,
                                          const std::string& display_name) {
  CONVERGE_RETURN_IF_ERROR(ValidateId("user id", user_id));
  if (display_name.size() > kMaxNameBytes) return absl::InvalidArgumentError("display name too long");
  absl::MutexLock lock(&mu_);
  CONVERGE_ASSIGN_OR_RETURN(RegistryKv::Lease lease, kv_->Lock());
  if (Read(UserKey(user_id)).ok()) {
    return absl::AlreadyExistsError(absl::StrCat("user '", user_id, "' exists"));
  }
  User u{user_id, display_name.empty() ? user_id : display_name,
         absl::ToUnixMillis(clock_->Now())};
  CONVERGE_ASSIGN_OR_RETURN(std::vector<uint64_t> users_on, UsersOnShardsLocked());
  u.shard = EmptiestAccepting(users_on, UINT32_MAX);
  CONVERGE_RETURN_IF_ERROR(Write(UserKey(user_id), EncodeUser(u)));
  return u;
}

absl::StatusOr<std::vector<uint64_t>> Registry::UsersOnShardsLocked() {
  std::vector<uint64_t> users_on(std::max<uint32_t>(1, data_plane_->shard_count()), 0);
  CONVERGE_RETURN_IF_ERROR(ForEachWithPrefix(kv_.get(), "u", [&](absl::string_view id, absl::string_view v) {
    CONVERGE_ASSIGN_OR_RETURN(User other, DecodeUser(id, v));
    if (other.shard < users_on.size()) ++users_on[other.shard];
    return absl::OkStatus();
  }));
  return users_on;
}

uint32_t Registry::EmptiestAccepting(const std::vector<uint64_t>& users_on, uint32_t except) const {
  // The shard with the fewest users (the lowest on a tie) among those that take new users; if
  // none does, among all.
  uint32_t best = UINT32_MAX;
  for (int pass = 0; pass < 2 && best == UINT32_MAX; ++pass) {
    for (uint32_t i = 0; i < users_on.size(); ++i) {
      if (i == except || (pass == 0 && !data_plane_->AcceptsNewUsers(i))) continue;
      if (best == UINT32_MAX || users_on[i] < users_on[best]) best = i;
    }
  }
  return best == UINT32_MAX ? 0 : best;
}

absl::StatusOr<uint32_t> Registry::DrainUsers(uint32_t shard) {
  absl::MutexLock lock(&mu_);
  CONVERGE_ASSIGN_OR_RETURN(RegistryKv::Lease lease, kv_->Lock());
  CONVERGE_ASSIGN_OR_RETURN(std::vector<uint64_t> users_on, UsersOnShardsLocked());
  std::vector<User> leaving;
  CONVERGE_RETURN_IF_ERROR(ForEachWithPrefix(kv_.get(), "u", [&](absl::string_view id, absl::string_view v) {
    CONVERGE_ASSIGN_OR_RETURN(User u, DecodeUser(id, v));
    if (u.shard == shard) leaving.push_back(std::move(u));
    return absl::OkStatus();
  }));
  uint32_t moved = 0;
  for (User& u : leaving) {
    const uint32_t to = EmptiestAccepting(users_on, shard);
    if (to == shard || !data_plane_->AcceptsNewUsers(to)) {
      return absl::FailedPreconditionError(absl::StrCat("no other store shard takes users: shard ", shard, " keeps them"));
    }
    u.shard = to;
    ++users_on[to];
    CONVERGE_RETURN_IF_ERROR(Write(UserKey(u.user_id), EncodeUser(u)));
    if (u.quota_bytes > 0) CONVERGE_RETURN_IF_ERROR(data_plane_->SetQuota(u.user_id, u.quota_bytes).status());
    ++moved;
  }
  return moved;
}

absl::StatusOr<uint32_t> Registry::ShardOfUser(const std::string& user_id) {
  absl::StatusOr<std::string> value = Read(UserKey(user_id));
  if (absl::IsNotFound(value.status())) return absl::NotFoundError(absl::StrCat("unknown user '", user_id, "'"));
  CONVERGE_RETURN_IF_ERROR(value.status());
  CONVERGE_ASSIGN_OR_RETURN(User u, DecodeUser(user_id, *value));
  return u.shard;
}

absl::StatusOr<uint32_t> Registry::ShardOfNamespace(const std::string& ns) {
  absl::StatusOr<std::string> value = Read(NamespaceKey(ns));
  if (absl::IsNotFound(value.status())) return absl::NotFoundError(absl::StrCat("unknown namespace '", ns, "'"));
  CONVERGE_RETURN_IF_ERROR(value.status());
  CONVERGE_ASSIGN_OR_RETURN(Namespace n, DecodeNamespace(ns, *value));
  return ShardOfUser(n.owner_user_id);
}

absl::StatusOr<std::vector<User>> Registry::ListUsers() {
  std::vector<User> users;
  CONVERGE_RETURN_IF_ERROR(
      ForEachWithPrefix(kv_.get(), "u", [&](absl::string_view id, absl::string_view v) {
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
  CONVERGE_ASSIGN_OR_RETURN(RegistryKv::Lease lease, kv_->Lock());
  return RegisterDeviceLocked(user_id, name);
}

absl::StatusOr<RegisteredDevice> Registry::RegisterDeviceLocked(const std::string& user_id, const std::string& name) {
  CONVERGE_ASSIGN_OR_RETURN(User user, GetUserLocked(user_id));
  if (user.disabled) {
    return absl::FailedPreconditionError(absl::StrCat("user '", user_id, "' is disabled"));
  }
  RegisteredDevice out;
  out.device = Device{"dev-" + RandomHex(8), user_id, name, absl::ToUnixMillis(clock_->Now())};
  out.credential = RandomHex(32);
  CONVERGE_RETURN_IF_ERROR(Write(DeviceKey(out.device.device_id),
                                 EncodeDevice(out.device, DigestToBytes(HashOf(out.credential)))));
  return out;
}

absl::StatusOr<Device> Registry::ReadDevice(const std::string& device_id, std::string* credential_hash) {
  absl::StatusOr<std::string> value = Read(DeviceKey(device_id));
  if (absl::IsNotFound(value.status())) {
    return absl::NotFoundError(absl::StrCat("unknown device '", device_id, "'"));
  }
  CONVERGE_RETURN_IF_ERROR(value.status());
  return DecodeDevice(device_id, *value, credential_hash);
}

absl::StatusOr<Device> Registry::GetDevice(const std::string& device_id) { return ReadDevice(device_id, nullptr); }

absl::StatusOr<Device> Registry::Authenticate(const std::string& device_id, const std::string& credential,
                                              std::string* credential_hash) {
  absl::StatusOr<Device> device = ReadDevice(device_id, credential_hash);
  if (!device.ok() || *credential_hash != DigestToBytes(HashOf(credential))) {
    return absl::UnauthenticatedError("unknown device or wrong credential");
  }
  return device;
}

absl::Status Registry::CheckDeviceCredential(const std::string& device_id,
                                             const std::string& credential) {
  std::string hash;
  CONVERGE_ASSIGN_OR_RETURN(Device device, Authenticate(device_id, credential, &hash));
  if (device.state != DeviceState::kActive) {
    return absl::PermissionDeniedError(absl::StrCat("device '", device_id, "' is revoked"));
  }
  return absl::OkStatus();
}

absl::Status Registry::VerifyCredential(const std::string& device_id, const std::string& credential) {
  std::string hash;
  return Authenticate(device_id, credential, &hash).status();
}

absl::StatusOr<User> Registry::GetUserLocked(const std::string& user_id) { return GetUser(user_id); }

absl::StatusOr<User> Registry::GetUser(const std::string& user_id) {
  CONVERGE_RETURN_IF_ERROR(ValidateId("user id", user_id));
  absl::StatusOr<std::string> value = Read(UserKey(user_id));
  if (absl::IsNotFound(value.status())) {
    return absl::NotFoundError(absl::StrCat("unknown user '", user_id, "'"));
  }
  CONVERGE_RETURN_IF_ERROR(value.status());
  return DecodeUser(user_id, *value);
}

absl::StatusOr<User> Registry::DisableUser(const std::string& user_id) {
  CONVERGE_RETURN_IF_ERROR(ValidateId("user id", user_id));
  absl::MutexLock lock(&mu_);
  CONVERGE_ASSIGN_OR_RETURN(RegistryKv::Lease lease, kv_->Lock());
  CONVERGE_ASSIGN_OR_RETURN(User user, GetUserLocked(user_id));
  // Devices first: if the store cannot be told, the user stays enabled and a retry finishes.
  CONVERGE_ASSIGN_OR_RETURN(std::vector<Device> devices, ListDevices(user_id));
  for (const Device& d : devices) {
    if (d.state == DeviceState::kActive) CONVERGE_RETURN_IF_ERROR(RevokeLocked(d.device_id, false).status());
  }
  user.disabled = true;
  CONVERGE_RETURN_IF_ERROR(Write(UserKey(user_id), EncodeUser(user)));
  return user;
}

absl::StatusOr<std::vector<std::string>> Registry::NamespacesOf(const std::string& device_id) {
  std::vector<std::string> out;
  CONVERGE_RETURN_IF_ERROR(ForEachWithPrefix(kv_.get(), "m", [&](absl::string_view key, absl::string_view) {
    const size_t sep = key.find('\0');
    if (sep != absl::string_view::npos && key.substr(sep + 1) == device_id) out.emplace_back(key.substr(0, sep));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<Device> Registry::RevokeDevice(const std::string& device_id, bool wipe) {
  CONVERGE_RETURN_IF_ERROR(ValidateId("device id", device_id));
  absl::MutexLock lock(&mu_);
  CONVERGE_ASSIGN_OR_RETURN(RegistryKv::Lease lease, kv_->Lock());
  return RevokeLocked(device_id, wipe);
}

absl::StatusOr<Device> Registry::RevokeLocked(const std::string& device_id, bool wipe) {
  std::string hash;
  CONVERGE_ASSIGN_OR_RETURN(Device device, ReadDevice(device_id, &hash));
  // Out of every namespace: the store first (it then refuses the device), then here.
  CONVERGE_ASSIGN_OR_RETURN(std::vector<std::string> namespaces, NamespacesOf(device_id));
  for (const std::string& ns : namespaces) {
    CONVERGE_ASSIGN_OR_RETURN(Namespace n, GetNamespaceLocked(ns));
    CONVERGE_ASSIGN_OR_RETURN(std::vector<std::string> members, MemberIds(ns));
    members.erase(std::remove(members.begin(), members.end(), device_id), members.end());
    CONVERGE_RETURN_IF_ERROR(data_plane_->RegisterNamespace(ns, n.owner_user_id, members, n.encrypted));
    CONVERGE_RETURN_IF_ERROR(kv_->Delete(absl::StrCat(MemberPrefix(ns), device_id)));
  }
  if (device.state == DeviceState::kActive || (wipe && device.state == DeviceState::kRevoked)) {
    device.state = wipe ? DeviceState::kWipePending : DeviceState::kRevoked;
  }
  CONVERGE_RETURN_IF_ERROR(Write(DeviceKey(device_id), EncodeDevice(device, hash)));
  // Open notification streams close now; the store already refuses the device. Tokens expire
  // within kMaxDeviceTokenTtl, so refusing them that long is enough.
  if (absl::Status told = data_plane_->RevokeDevices({device_id}, clock_->Now() + kMaxDeviceTokenTtl); !told.ok()) {
    GetLogger("registry")->warn("revoked {} but could not tell the notification service: {}", device_id,
                                told.ToString());
  }
  return device;
}

absl::StatusOr<User> Registry::SetQuota(const std::string& user_id, uint64_t quota_bytes) {
  CONVERGE_RETURN_IF_ERROR(ValidateId("user id", user_id));
  absl::MutexLock lock(&mu_);
  CONVERGE_ASSIGN_OR_RETURN(RegistryKv::Lease lease, kv_->Lock());
  CONVERGE_ASSIGN_OR_RETURN(User user, GetUserLocked(user_id));
  CONVERGE_RETURN_IF_ERROR(data_plane_->SetQuota(user_id, quota_bytes).status());
  user.quota_bytes = quota_bytes;
  CONVERGE_RETURN_IF_ERROR(Write(UserKey(user_id), EncodeUser(user)));
  return user;
}

absl::StatusOr<EnrollmentGrant> Registry::CreateEnrollmentToken(const std::string& user_id, absl::Duration ttl,
                                                                uint32_t uses) {
  CONVERGE_RETURN_IF_ERROR(ValidateId("user id", user_id));
  if (uses < 1 || uses > kMaxEnrollmentUses) {
    return absl::InvalidArgumentError(absl::StrCat("an enrollment token enrolls 1 to ", kMaxEnrollmentUses, " devices"));
  }
  if (ttl <= absl::ZeroDuration() || ttl > absl::Hours(24 * 30)) {
    return absl::InvalidArgumentError("an enrollment token lives between 1 s and 30 days");
  }
  absl::MutexLock lock(&mu_);
  CONVERGE_ASSIGN_OR_RETURN(RegistryKv::Lease lease, kv_->Lock());
  CONVERGE_ASSIGN_OR_RETURN(User user, GetUserLocked(user_id));
  if (user.disabled) return absl::FailedPreconditionError(absl::StrCat("user '", user_id, "' is disabled"));
  EnrollmentGrant grant;
  grant.token = "cve1." + RandomHex(24);
  grant.user_id = user_id;
  grant.expires_at_unix_ms = absl::ToUnixMillis(clock_->Now() + ttl);
  grant.uses = uses;
  std::string value;
  PutLengthPrefixed(&value, user_id);
  PutVarint64(&value, static_cast<uint64_t>(grant.expires_at_unix_ms));
  PutVarint64(&value, uses);
  CONVERGE_RETURN_IF_ERROR(Write(EnrollmentKey(grant.token), value));
  return grant;
}

absl::StatusOr<RegisteredDevice> Registry::EnrollDevice(const std::string& token, const std::string& user_hint,
                                                        const std::string& name) {
  if (token.empty() || token.size() > 256) return absl::UnauthenticatedError("invalid enrollment token");
  CONVERGE_RETURN_IF_ERROR(CheckName(name));
  absl::MutexLock lock(&mu_);
  CONVERGE_ASSIGN_OR_RETURN(RegistryKv::Lease lease, kv_->Lock());
  const std::string key = EnrollmentKey(token);
  absl::StatusOr<std::string> value = Read(key);
  if (absl::IsNotFound(value.status())) return absl::UnauthenticatedError("invalid or used-up enrollment token");
  CONVERGE_RETURN_IF_ERROR(value.status());
  Decoder d(*value);
  std::string user_id;
  uint64_t expires = 0;
  uint64_t uses = 0;
  if (!d.GetLengthPrefixed(&user_id) || !d.GetVarint64(&expires) || !d.GetVarint64(&uses) || uses == 0) {
    return absl::DataLossError("corrupt enrollment token");
  }
  if (absl::FromUnixMillis(static_cast<int64_t>(expires)) <= clock_->Now()) {
    return absl::UnauthenticatedError("enrollment token expired");
  }
  if (!user_hint.empty() && user_hint != user_id) {
    return absl::PermissionDeniedError("the enrollment token is for another user");
  }
  CONVERGE_ASSIGN_OR_RETURN(User user, GetUserLocked(user_id));
  if (user.disabled) return absl::PermissionDeniedError(absl::StrCat("user '", user_id, "' is disabled"));
  CONVERGE_ASSIGN_OR_RETURN(RegisteredDevice device, RegisterDeviceLocked(user_id, name));
  if (uses <= 1) {
    CONVERGE_RETURN_IF_ERROR(kv_->Delete(key));
  } else {
    std::string left;
    PutLengthPrefixed(&left, user_id);
    PutVarint64(&left, expires);
    PutVarint64(&left, uses - 1);
    CONVERGE_RETURN_IF_ERROR(Write(key, left));
  }
  return device;
}

absl::StatusOr<Device> Registry::ConfirmWipe(const std::string& device_id, const std::string& credential) {
  CONVERGE_RETURN_IF_ERROR(ValidateId("device id", device_id));
  absl::MutexLock lock(&mu_);
  CONVERGE_ASSIGN_OR_RETURN(RegistryKv::Lease lease, kv_->Lock());
  std::string hash;
  CONVERGE_ASSIGN_OR_RETURN(Device device, Authenticate(device_id, credential, &hash));
  if (device.state != DeviceState::kWipePending && device.state != DeviceState::kWiped) {
    return absl::FailedPreconditionError(absl::StrCat("no wipe was requested for '", device_id, "'"));
  }
  device.state = DeviceState::kWiped;
  CONVERGE_RETURN_IF_ERROR(Write(DeviceKey(device_id), EncodeDevice(device, hash)));
  return device;
}

absl::StatusOr<std::vector<Device>> Registry::ListDevices(const std::string& user_id) {
  std::vector<Device> devices;
  CONVERGE_RETURN_IF_ERROR(
      ForEachWithPrefix(kv_.get(), "d", [&](absl::string_view id, absl::string_view v) {
        CONVERGE_ASSIGN_OR_RETURN(Device d, DecodeDevice(id, v));
        if (user_id.empty() || d.user_id == user_id) devices.push_back(std::move(d));
        return absl::OkStatus();
      }));
  return devices;
}

absl::StatusOr<Namespace> Registry::CreateNamespace(const std::string& ns,
                                                    const std::string& owner, bool sync_xattrs,
                                                    bool encrypted) {
  CONVERGE_RETURN_IF_ERROR(ValidateId("namespace id", ns));
  CONVERGE_RETURN_IF_ERROR(ValidateId("owner user id", owner));
  absl::MutexLock lock(&mu_);
  CONVERGE_ASSIGN_OR_RETURN(RegistryKv::Lease lease, kv_->Lock());
  CONVERGE_ASSIGN_OR_RETURN(User user, GetUserLocked(owner));
  if (user.disabled) return absl::FailedPreconditionError(absl::StrCat("user '", owner, "' is disabled"));
  if (Read(NamespaceKey(ns)).ok()) {
    return absl::AlreadyExistsError(absl::StrCat("namespace '", ns, "' exists"));
  }
  CONVERGE_RETURN_IF_ERROR(data_plane_->RegisterNamespace(ns, owner, {}, encrypted));
  Namespace n{ns, owner, absl::ToUnixMillis(clock_->Now())};
  n.sync_xattrs = sync_xattrs;
  n.encrypted = encrypted;
  CONVERGE_RETURN_IF_ERROR(Write(NamespaceKey(ns), EncodeNamespace(n)));
  return n;
}

absl::StatusOr<std::vector<Namespace>> Registry::ListNamespaces(const std::string& user_id) {
  std::vector<Namespace> out;
  CONVERGE_RETURN_IF_ERROR(
      ForEachWithPrefix(kv_.get(), "n", [&](absl::string_view id, absl::string_view v) {
        CONVERGE_ASSIGN_OR_RETURN(Namespace n, DecodeNamespace(id, v));
        CONVERGE_ASSIGN_OR_RETURN(n.shared_with, SharedWith(n.namespace_id));
        if (user_id.empty() || n.owner_user_id == user_id ||
            std::find(n.shared_with.begin(), n.shared_with.end(), user_id) != n.shared_with.end()) {
          out.push_back(std::move(n));
        }
        return absl::OkStatus();
      }));
  return out;
}

absl::StatusOr<std::vector<std::string>> Registry::SharedWith(const std::string& ns) {
  return KeysWithPrefix(kv_.get(), SharePrefix(ns));
}

absl::StatusOr<Namespace> Registry::GetNamespaceLocked(const std::string& ns) {
  absl::StatusOr<std::string> value = Read(NamespaceKey(ns));
  if (absl::IsNotFound(value.status())) {
    return absl::NotFoundError(absl::StrCat("unknown namespace '", ns, "'"));
  }
  CONVERGE_RETURN_IF_ERROR(value.status());
  CONVERGE_ASSIGN_OR_RETURN(Namespace n, DecodeNamespace(ns, *value));
  CONVERGE_ASSIGN_OR_RETURN(n.shared_with, SharedWith(ns));
  return n;
}

absl::StatusOr<Namespace> Registry::GetNamespace(const std::string& ns) {
  CONVERGE_RETURN_IF_ERROR(ValidateId("namespace id", ns));
  return GetNamespaceLocked(ns);
}

absl::StatusOr<Namespace> Registry::ShareNamespace(const std::string& ns, const std::string& user_id) {
  CONVERGE_RETURN_IF_ERROR(ValidateId("namespace id", ns));
  CONVERGE_RETURN_IF_ERROR(ValidateId("user id", user_id));
  absl::MutexLock lock(&mu_);
  CONVERGE_ASSIGN_OR_RETURN(RegistryKv::Lease lease, kv_->Lock());
  CONVERGE_ASSIGN_OR_RETURN(Namespace n, GetNamespaceLocked(ns));
  CONVERGE_ASSIGN_OR_RETURN(User user, GetUserLocked(user_id));
  if (user.disabled) return absl::FailedPreconditionError(absl::StrCat("user '", user_id, "' is disabled"));
  if (user_id == n.owner_user_id ||
      std::find(n.shared_with.begin(), n.shared_with.end(), user_id) != n.shared_with.end()) {
    return n;
  }
  CONVERGE_RETURN_IF_ERROR(Write(absl::StrCat(SharePrefix(ns), user_id), ""));
  n.shared_with.push_back(user_id);
  std::sort(n.shared_with.begin(), n.shared_with.end());
  return n;
}

absl::StatusOr<Namespace> Registry::SetSyncXattrs(const std::string& ns, bool on) {
  CONVERGE_RETURN_IF_ERROR(ValidateId("namespace id", ns));
  absl::MutexLock lock(&mu_);
  CONVERGE_ASSIGN_OR_RETURN(RegistryKv::Lease lease, kv_->Lock());
  CONVERGE_ASSIGN_OR_RETURN(Namespace n, GetNamespaceLocked(ns));
  if (n.sync_xattrs == on) return n;
  n.sync_xattrs = on;
  CONVERGE_RETURN_IF_ERROR(Write(NamespaceKey(ns), EncodeNamespace(n)));
  return n;
}

absl::StatusOr<Namespace> Registry::EncryptNamespace(const std::string& ns) {
  CONVERGE_RETURN_IF_ERROR(ValidateId("namespace id", ns));
  absl::MutexLock lock(&mu_);
  CONVERGE_ASSIGN_OR_RETURN(RegistryKv::Lease lease, kv_->Lock());
  CONVERGE_ASSIGN_OR_RETURN(Namespace n, GetNamespaceLocked(ns));
  if (n.encrypted) return n;
  CONVERGE_ASSIGN_OR_RETURN(std::vector<std::string> members, MemberIds(ns));
  CONVERGE_RETURN_IF_ERROR(data_plane_->RegisterNamespace(ns, n.owner_user_id, members, /*encrypted=*/true));
  n.encrypted = true;
  CONVERGE_RETURN_IF_ERROR(Write(NamespaceKey(ns), EncodeNamespace(n)));
  return n;
}

absl::StatusOr<std::vector<std::string>> Registry::MemberIds(const std::string& ns) {
  return KeysWithPrefix(kv_.get(), MemberPrefix(ns));
}

absl::Status Registry::AddDevice(const std::string& ns, const std::string& device_id) {
  CONVERGE_RETURN_IF_ERROR(ValidateId("namespace id", ns));
  CONVERGE_RETURN_IF_ERROR(ValidateId("device id", device_id));
  absl::MutexLock lock(&mu_);
  CONVERGE_ASSIGN_OR_RETURN(RegistryKv::Lease lease, kv_->Lock());
  CONVERGE_ASSIGN_OR_RETURN(Namespace n, GetNamespaceLocked(ns));
  CONVERGE_ASSIGN_OR_RETURN(Device d, GetDevice(device_id));
  if (d.state != DeviceState::kActive) {
    return absl::FailedPreconditionError(absl::StrCat("device '", device_id, "' is revoked"));
  }
  if (d.user_id != n.owner_user_id &&
      std::find(n.shared_with.begin(), n.shared_with.end(), d.user_id) == n.shared_with.end()) {
    return absl::PermissionDeniedError(absl::StrCat("device '", device_id, "' belongs to '",
                                                    d.user_id, "', namespace '", ns,
                                                    "' to '", n.owner_user_id, "' (not shared with '",
                                                    d.user_id, "')"));
  }
  CONVERGE_ASSIGN_OR_RETURN(std::vector<std::string> members, MemberIds(ns));
  if (std::find(members.begin(), members.end(), device_id) == members.end()) {
    members.push_back(device_id);
  }
  // Tell the store even when already a member: it heals a store that missed an earlier call.
  CONVERGE_RETURN_IF_ERROR(data_plane_->RegisterNamespace(ns, n.owner_user_id, members, n.encrypted));
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
