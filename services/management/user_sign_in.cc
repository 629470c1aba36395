#include "services/management/user_sign_in.h"

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/model/path.h"

namespace converge::management {
namespace {

std::string PasswordKey(const std::string& user_id) { return absl::StrCat("p", user_id); }

std::string MakeDecoy() {
  absl::StatusOr<std::string> decoy = crypto::HashPassword("no such user, no such password");
  return decoy.ok() ? *decoy : std::string();
}

}  // namespace

UserSignIn::UserSignIn(Registry* registry, const TokenSigner* signer, absl::Duration ttl)
    : registry_(registry), signer_(signer), ttl_(ttl) {}

absl::StatusOr<User> UserSignIn::SetPassword(const std::string& user_id, const std::string& password) {
  CONVERGE_ASSIGN_OR_RETURN(User user, registry_->GetUser(user_id));
  CONVERGE_RETURN_IF_ERROR(slots_.Acquire(absl::Seconds(2)));
  absl::StatusOr<std::string> hash = crypto::HashPassword(password);
  slots_.Release();
  CONVERGE_RETURN_IF_ERROR(hash.status());
  CONVERGE_RETURN_IF_ERROR(registry_->records()->Put(PasswordKey(user_id), *hash));
  {
    absl::MutexLock lock(&mu_);
    failures_.erase(user_id);
  }
  return user;
}

absl::StatusOr<SignedIn> UserSignIn::SignIn(const std::string& user_id, const std::string& password) {
  if (signer_ == nullptr) {
    return absl::FailedPreconditionError("management has no --token_signing_key: people cannot sign in");
  }
  // Only well-formed ids are remembered for lockouts (64 bytes at most each).
  if (!ValidateId("user id", user_id).ok()) return absl::UnauthenticatedError("wrong user or password");
  CONVERGE_RETURN_IF_ERROR(CheckNotLockedOut(user_id));
  CONVERGE_RETURN_IF_ERROR(slots_.Acquire(absl::Seconds(2)));
  const bool ok = Check(user_id, password);
  slots_.Release();
  NoteOutcome(user_id, ok);
  if (!ok) return absl::UnauthenticatedError("wrong user or password");
  CONVERGE_ASSIGN_OR_RETURN(User user, registry_->GetUser(user_id));
  if (user.disabled) return absl::PermissionDeniedError(absl::StrCat("user '", user_id, "' is disabled"));
  SignedIn out;
  out.user = user;
  const absl::Time now = registry_->clock()->Now();
  out.expires_at = now + ttl_;
  CONVERGE_ASSIGN_OR_RETURN(out.token, signer_->SignUser(UserClaims{user_id, now, out.expires_at}));
  return out;
}

bool UserSignIn::Check(const std::string& user_id, const std::string& password) {
  absl::StatusOr<std::string> stored = registry_->GetUser(user_id).ok()
                                           ? registry_->records()->Get(PasswordKey(user_id))
                                           : absl::StatusOr<std::string>(absl::NotFoundError(""));
  if (!stored.ok()) {
    absl::call_once(decoy_once_, [this] { decoy_ = MakeDecoy(); });
    crypto::VerifyPassword(password, decoy_);  // the same work as for a known user
    return false;
  }
  return crypto::VerifyPassword(password, *stored);
}

absl::Status UserSignIn::CheckNotLockedOut(const std::string& user_id) {
  absl::MutexLock lock(&mu_);
  auto it = failures_.find(user_id);
  if (it == failures_.end() || it->second.count < kFailuresBeforeLockout) return absl::OkStatus();
  const absl::Duration left = it->second.last + kLockout - registry_->clock()->Now();
  if (left <= absl::ZeroDuration()) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat("too many wrong passwords for '", user_id, "'; try again in ",
                                                   absl::ToInt64Seconds(left) + 1, " s"));
}

void UserSignIn::NoteOutcome(const std::string& user_id, bool ok) {
  absl::MutexLock lock(&mu_);
  if (ok) {
    failures_.erase(user_id);
    return;
  }
  const absl::Time now = registry_->clock()->Now();
  if (failures_.size() >= kMaxTrackedUsers && !failures_.contains(user_id)) {
    // Forget the failures that no longer lock anyone out; if all still do, the oldest.
    for (auto it = failures_.begin(); it != failures_.end();) {
      if (it->second.last + kLockout <= now) {
        failures_.erase(it++);
      } else {
        ++it;
      }
    }
    if (failures_.size() >= kMaxTrackedUsers) failures_.erase(failures_.begin());
  }
  Failures& f = failures_[user_id];
  if (f.count >= kFailuresBeforeLockout && f.last + kLockout <= now) f.count = 0;  // served its minute
  ++f.count;
  f.last = now;
}

}  // namespace converge::management
