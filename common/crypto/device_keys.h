// DeviceKeys: a device's own key pairs for end-to-end encrypted namespaces. X25519 receives the
// namespace keyring sealed to it by a device that already holds it (crypto_box_seal: the store
// and management carry only the sealed form); Ed25519 signs every commit the device makes.
//
//   DeviceKeys mine = DeviceKeys::Generate();                 // kept on the device only
//   std::string sealed = SealTo(newcomer, ring.Serialize());  // on the approving device
//   absl::StatusOr<std::string> ring = mine.OpenSealed(sealed);
//
// The approval step shows Fingerprint() on both devices: the user checks the two match, so a
// store that swapped in a key of its own is caught before anything is sealed to it.
#ifndef CONVERGE_COMMON_CRYPTO_DEVICE_KEYS_H_
#define CONVERGE_COMMON_CRYPTO_DEVICE_KEYS_H_

#include <array>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace converge::crypto {

inline constexpr size_t kSignatureBytes = 64;

// DevicePublicKey: what other devices (and the store, for display) know of a device.
struct DevicePublicKey {
  std::array<uint8_t, 32> box{};   // X25519
  std::array<uint8_t, 32> sign{};  // Ed25519

  std::string ToBytes() const;  // 64 bytes: box then sign
  // FromBytes: InvalidArgument unless 64 bytes.
  static absl::StatusOr<DevicePublicKey> FromBytes(absl::string_view bytes);
  // Fingerprint: 30 decimal digits in six groups of five, from a BLAKE2b hash of both keys,
  // for people to compare ("40961 03328 ...").
  std::string Fingerprint() const;
  bool operator==(const DevicePublicKey& o) const { return box == o.box && sign == o.sign; }
};

class DeviceKeys {
 public:
  static DeviceKeys Generate();
  // Parse reads Serialize's form (which holds the secret keys); InvalidArgument otherwise, or
  // when the public halves do not belong to the secret ones.
  static absl::StatusOr<DeviceKeys> Parse(absl::string_view bytes);
  std::string Serialize() const;
  ~DeviceKeys();
  DeviceKeys(const DeviceKeys&) = default;
  DeviceKeys& operator=(const DeviceKeys&) = default;

  const DevicePublicKey& public_key() const { return public_; }
  // Sign returns the 64-byte Ed25519 signature of `message`.
  std::string Sign(absl::string_view message) const;
  // OpenSealed returns what SealTo sealed to this device; PermissionDenied if it was sealed to
  // another key or altered.
  absl::StatusOr<std::string> OpenSealed(absl::string_view sealed) const;

 private:
  DeviceKeys() = default;
  DevicePublicKey public_;
  std::array<uint8_t, 32> box_secret_{};
  std::array<uint8_t, 64> sign_secret_{};
};

// What a device granting a namespace keyring to another signs: the namespace, the recipient
// and the public key sealed to, the sealed keyring, the keyring's id and newest epoch.
struct KeyGrantFields {
  absl::string_view namespace_id;
  absl::string_view device_id;
  absl::string_view public_key;  // DevicePublicKey::ToBytes of the recipient
  absl::string_view sealed_keyring;
  absl::string_view keyring_id;
  uint32_t epoch = 0;
};
std::string KeyGrantSigningBytes(const KeyGrantFields& grant);

// SealTo encrypts `secret` so that only `to`'s device can open it (anonymous sender).
std::string SealTo(const DevicePublicKey& to, absl::string_view secret);
// VerifySignature: whether `signature` is `from`'s signature of `message`.
bool VerifySignature(const DevicePublicKey& from, absl::string_view message, absl::string_view signature);

}  // namespace converge::crypto

#endif  // CONVERGE_COMMON_CRYPTO_DEVICE_KEYS_H_
