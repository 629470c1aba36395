// UserSignIn: people's passwords and their sign-in (the web console). An operator sets a user's
// password; the user signs in with it for a short-lived user token (common/security/device_token.h)
// that the management API then accepts for that user's own namespaces and devices.
//
// Passwords are kept only as Argon2id strings (common/crypto/password.h), under 'p' user id in
// the registry's records. Every check costs 64 MiB and ~0.1 s of a core: at most two run at once
// (a caller waits up to 2 s for one, then gets ResourceExhausted), an unknown user costs what a
// known one does (no timing oracle), and a user who gets the password wrong 5 times is refused
// for a minute, whoever asks. Knows no gRPC. Thread-safe.
#ifndef CONVERGE_SERVICES_MANAGEMENT_USER_SIGN_IN_H_
#define CONVERGE_SERVICES_MANAGEMENT_USER_SIGN_IN_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/call_once.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/base/clock.h"
#include "common/crypto/password.h"
#include "common/security/device_token.h"
#include "services/management/registry.h"

namespace converge::management {

struct SignedIn {
  User user;
  std::string token;  // "cvu1...."
  absl::Time expires_at;
};

class UserSignIn {
 public:
  static constexpr int kFailuresBeforeLockout = 5;
  static constexpr absl::Duration kLockout = absl::Minutes(1);
  static constexpr size_t kMaxTrackedUsers = 10'000;

  // `signer` (not owned; null: nobody can sign in) signs tokens that live `ttl`.
  UserSignIn(Registry* registry, const TokenSigner* signer, absl::Duration ttl);

  // SetPassword: NotFound for an unknown user, InvalidArgument for a password of the wrong length.
  absl::StatusOr<User> SetPassword(const std::string& user_id, const std::string& password);

  // SignIn: Unauthenticated ("wrong user or password") for an unknown user, a user with no
  // password, or a wrong one; PermissionDenied for a disabled user; ResourceExhausted while the
  // user is locked out or too many sign-ins run; FailedPrecondition without a signing key.
  absl::StatusOr<SignedIn> SignIn(const std::string& user_id, const std::string& password);

 private:
  // Whether `password` is the user's (false for an unknown user, after the same work).
  bool Check(const std::string& user_id, const std::string& password);
  absl::Status CheckNotLockedOut(const std::string& user_id);
  void NoteOutcome(const std::string& user_id, bool ok);

  struct Failures {
    int count = 0;
    absl::Time last;
  };

  Registry* const registry_;
  const TokenSigner* const signer_;
  const absl::Duration ttl_;
  crypto::PasswordSlots slots_{2};
  absl::once_flag decoy_once_;
  std::string decoy_;  // checked for unknown users (made the first time one signs in)
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Failures> failures_ ABSL_GUARDED_BY(mu_);
};

}  // namespace converge::management

#endif  // CONVERGE_SERVICES_MANAGEMENT_USER_SIGN_IN_H_
