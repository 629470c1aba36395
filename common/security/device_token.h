// Device tokens: short-lived credentials that converge-management signs (Ed25519) for a device
// that proved its long-term credential, and that the store and the notification service verify
// locally, without a round trip. The token names the device, its user and the namespaces it was a
// member of when issued; the user and device of a call are taken from it, never from a request.
//
//   "cvt1." base64url(claims) "." base64url(Ed25519 signature over "cvt1." + base64url(claims))
#ifndef CONVERGE_COMMON_SECURITY_DEVICE_TOKEN_H_
#define CONVERGE_COMMON_SECURITY_DEVICE_TOKEN_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace converge {

inline constexpr char kDeviceTokenPrefix[] = "cvt1.";
inline constexpr size_t kMaxDeviceTokenBytes = 8192;
// No device token lives longer: a revoked device's tokens are refused for this long at most.
inline constexpr absl::Duration kMaxDeviceTokenTtl = absl::Hours(1);

class TokenVerifier;

struct DeviceClaims {
  std::string device_id;
  std::string user_id;
  std::vector<std::string> namespaces;
  absl::Time issued_at;
  absl::Time expires_at;
  bool HasNamespace(const std::string& ns) const;
};

class TokenSigner {
 public:
  // FromPemFile loads an Ed25519 private key (PEM, e.g. `openssl genpkey -algorithm ed25519`).
  static absl::StatusOr<std::unique_ptr<TokenSigner>> FromPemFile(const std::string& path);
  ~TokenSigner();
  absl::StatusOr<std::string> Sign(const DeviceClaims& claims) const;
  // MakeVerifier returns a verifier for this key's tokens.
  std::unique_ptr<TokenVerifier> MakeVerifier() const;

 private:
  explicit TokenSigner(void* key) : key_(key) {}
  void* key_;  // EVP_PKEY
};

class TokenVerifier {
 public:
  // FromPemFile loads an Ed25519 public key (PEM).
  static absl::StatusOr<std::unique_ptr<TokenVerifier>> FromPemFile(const std::string& path);
  ~TokenVerifier();
  // Verify returns the claims of a well-formed, correctly signed token that has not expired at
  // `now`; Unauthenticated (saying why) otherwise.
  absl::StatusOr<DeviceClaims> Verify(const std::string& token, absl::Time now) const;

 private:
  friend class TokenSigner;
  explicit TokenVerifier(void* key) : key_(key) {}
  void* key_;  // EVP_PKEY
};

}  // namespace converge

#endif  // CONVERGE_COMMON_SECURITY_DEVICE_TOKEN_H_
