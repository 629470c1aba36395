// A namespace keyring wrapped by a recovery passphrase (Argon2id, then XChaCha20-Poly1305), so
// that a user who lost every device can still read their namespace. The wrapped form carries its
// Argon2id parameters; the store keeps it like any sealed key and learns nothing from it.
//
//   std::string wrapped = WrapWithPassphrase(ring.Serialize(), passphrase, kRecoveryParams);
//   absl::StatusOr<std::string> secret = UnwrapWithPassphrase(wrapped, passphrase);
#ifndef CONVERGE_COMMON_CRYPTO_RECOVERY_H_
#define CONVERGE_COMMON_CRYPTO_RECOVERY_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace converge::crypto {

// Argon2id's cost: passes over memory, and bytes of memory.
struct PassphraseParams {
  uint64_t opslimit = 0;
  uint64_t memlimit = 0;
};

// What new recovery keys use: libsodium's "moderate" (3 passes, 256 MiB; about a second).
PassphraseParams RecoveryParams();
// The cheapest Argon2id libsodium allows: tests only.
PassphraseParams WeakestParamsForTests();
// Unwrapping refuses parameters above these (a hostile store must not make a device allocate
// a terabyte or spin for an hour): 16 passes, 1 GiB.
inline constexpr uint64_t kMaxOpslimit = 16;
inline constexpr uint64_t kMaxMemlimit = uint64_t{1} << 30;

// WrapWithPassphrase: `secret` encrypted under a key derived from `passphrase` and a random
// salt. InvalidArgument for parameters out of bounds or an empty passphrase.
absl::StatusOr<std::string> WrapWithPassphrase(absl::string_view secret, absl::string_view passphrase,
                                               PassphraseParams params);
// UnwrapWithPassphrase: the secret; PermissionDenied for a wrong passphrase (or altered bytes),
// InvalidArgument for something that is not a wrapped key or asks for too much work.
absl::StatusOr<std::string> UnwrapWithPassphrase(absl::string_view wrapped, absl::string_view passphrase);

}  // namespace converge::crypto

#endif  // CONVERGE_COMMON_CRYPTO_RECOVERY_H_
