#include "common/crypto/password.h"

#include <sodium.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "common/crypto/sodium.h"

namespace converge::crypto {

absl::StatusOr<std::string> HashPassword(absl::string_view password) {
  EnsureSodium();
  if (password.size() < kMinPasswordBytes || password.size() > kMaxPasswordBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("a password has ", kMinPasswordBytes, " to ", kMaxPasswordBytes, " bytes"));
  }
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str_alg(out, password.data(), password.size(), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                            kPasswordMemoryBytes, crypto_pwhash_ALG_ARGON2ID13) != 0) {
    return absl::ResourceExhaustedError("not enough memory to hash a password");
  }
  return std::string(out);
}

bool VerifyPassword(absl::string_view password, const std::string& stored) {
  EnsureSodium();
  if (password.size() > kMaxPasswordBytes || stored.size() >= crypto_pwhash_STRBYTES) return false;
  // A stored string names its own cost: refuse one asking for more than 4x ours.
  unsigned long long passes = 0;
  size_t kib = 0;
  if (std::sscanf(stored.c_str(), "$argon2id$v=19$m=%zu,t=%llu,", &kib, &passes) != 2) return false;
  if (kib > kPasswordMemoryBytes * 4 / 1024 || passes > crypto_pwhash_OPSLIMIT_INTERACTIVE * 4) return false;
  return crypto_pwhash_str_verify(stored.c_str(), password.data(), password.size()) == 0;
}

absl::Status PasswordSlots::Acquire(absl::Duration wait) {
  absl::MutexLock lock(&mu_);
  auto has_slot = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return free_ > 0; };
  if (!mu_.AwaitWithTimeout(absl::Condition(&has_slot), wait)) {
    return absl::ResourceExhaustedError("too many sign-ins at once; try again in a moment");
  }
  --free_;
  return absl::OkStatus();
}

void PasswordSlots::Release() {
  absl::MutexLock lock(&mu_);
  ++free_;
}

}  // namespace converge::crypto
