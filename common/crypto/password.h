// Passwords of people (the web console's users): stored only as libsodium's Argon2id string
// (crypto_pwhash_str: algorithm, parameters, salt and hash in one line), checked against it.
//
//   std::string stored = *HashPassword("correct horse");
//   bool ok = VerifyPassword("correct horse", stored);
//
// Each hash or check costs kPasswordMemoryBytes of memory and ~0.1 s of one core: callers that
// take passwords from the network bound how many run at once (PasswordSlots).
#ifndef CONVERGE_COMMON_CRYPTO_PASSWORD_H_
#define CONVERGE_COMMON_CRYPTO_PASSWORD_H_

#include <cstddef>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace converge::crypto {

// libsodium's "interactive" Argon2id limits: 2 passes over 64 MiB.
inline constexpr size_t kPasswordMemoryBytes = size_t{64} << 20;
inline constexpr size_t kMinPasswordBytes = 10;
inline constexpr size_t kMaxPasswordBytes = 1024;

// HashPassword: InvalidArgument for a password shorter than kMinPasswordBytes or longer than
// kMaxPasswordBytes; ResourceExhausted if the memory cannot be had.
absl::StatusOr<std::string> HashPassword(absl::string_view password);

// VerifyPassword: whether `password` is the one `stored` was made from. A stored string asking
// for more than 4x the interactive memory or passes is refused (false), whoever wrote it.
bool VerifyPassword(absl::string_view password, const std::string& stored);

// PasswordSlots bounds the password work running at once (each holds kPasswordMemoryBytes).
class PasswordSlots {
 public:
  explicit PasswordSlots(int slots) : free_(slots) {}
  // Acquire waits up to `wait` for a slot: ResourceExhausted if none frees in time.
  absl::Status Acquire(absl::Duration wait);
  void Release();

 private:
  absl::Mutex mu_;
  int free_ ABSL_GUARDED_BY(mu_);
};

}  // namespace converge::crypto

#endif  // CONVERGE_COMMON_CRYPTO_PASSWORD_H_
