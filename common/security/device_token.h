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
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace converge {

inline constexpr char kDeviceTokenPrefix[] = "cvt1.";
// A person's token (the web console's users), signed by the same key: "cvu1." base64url(claims)
// "." signature. It names only the user; it is never taken for a device's.
inline constexpr char kUserTokenPrefix[] = "cvu1.";
inline constexpr size_t kMaxDeviceTokenBytes = 8192;
// No device token lives longer: a revoked device's tokens are refused for this long at most.
inline constexpr absl::Duration kMaxDeviceTokenTtl = absl::Hours(1);
// How long a user token lives (a person signs in again after it).
inline constexpr absl::Duration kUserTokenTtl = absl::Hours(1);

class TokenVerifier;

struct DeviceClaims {
  std::string device_id;
  std::string user_id;
  std::vector<std::string> namespaces;
  absl::Time issued_at;
  absl::Time expires_at;
  bool HasNamespace(const std::string& ns) const;
};

struct UserClaims {
  std::string user_id;
  absl::Time issued_at;
  absl::Time expires_at;
};

class TokenSigner {
 public:
  // FromPemFile loads an Ed25519 private key (PEM, e.g. `openssl genpkey -algorithm ed25519`).
  static absl::StatusOr<std::unique_ptr<TokenSigner>> FromPemFile(const std::string& path);
  ~TokenSigner();
  absl::StatusOr<std::string> Sign(const DeviceClaims& claims) const;
  absl::StatusOr<std::string> SignUser(const UserClaims& claims) const;
  // MakeVerifier returns a verifier for this key's tokens.
  std::unique_ptr<TokenVerifier> MakeVerifier() const;

 private:
  explicit TokenSigner(void* key) : key_(key) {}
  absl::StatusOr<std::string> SignBytes(absl::string_view prefix, absl::string_view claims) const;
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
  // VerifyUser: the same for a user token.
  absl::StatusOr<UserClaims> VerifyUser(const std::string& token, absl::Time now) const;

 private:
  friend class TokenSigner;
  explicit TokenVerifier(void* key) : key_(key) {}
  // The claims bytes of a token of this kind whose signature verifies.
  absl::StatusOr<std::string> VerifiedBytes(const std::string& token, absl::string_view prefix,
                                            absl::string_view what) const;
  void* key_;  // EVP_PKEY
};

}  // namespace converge

#endif  // CONVERGE_COMMON_SECURITY_DEVICE_TOKEN_H_
