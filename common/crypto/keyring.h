// Keyring: the keys of one end-to-end encrypted namespace, as every member device holds them.
//
// One names key for the namespace's life (a path must map to the same encrypted name forever,
// or the store could no longer find it) and one content key per epoch: revoking a device starts
// a new epoch, whose key encrypts everything written afterwards; content written before stays
// readable with its own epoch's key. Each key is only a root: the keys in use are derived from
// it, one per purpose (ContentKeys, NameKeys).
//
//   Keyring ring = Keyring::Create();          // on the namespace's first device
//   std::string secret = ring.Serialize();     // sealed to each member (DeviceKeys), never stored
//   ContentKeys keys = ring.Current();
//
// Thread-compatible.
#ifndef CONVERGE_COMMON_CRYPTO_KEYRING_H_
#define CONVERGE_COMMON_CRYPTO_KEYRING_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/crypto/sodium.h"

namespace converge::crypto {

// The keys of one content epoch.
struct ContentKeys {
  uint32_t epoch = 0;
  SecretKey chunk_id;  // keyed BLAKE2b of a chunk's plaintext: its id in the store
  SecretKey chunk;     // XChaCha20-Poly1305 of chunk bytes
  SecretKey record;    // XChaCha20-Poly1305 of version records (size, mtime, mode, chunk list)
  SecretKey gear;      // seeds the content-defined chunker's gear table
};

// The keys of path names (the whole life of the namespace).
struct NameKeys {
  SecretKey mac;     // the synthetic IV of a name
  SecretKey cipher;  // XChaCha20 of a name
};

inline constexpr uint32_t kMaxEpochs = 1 << 16;
inline constexpr size_t kKeyringIdBytes = 16;

class Keyring {
 public:
  // Create makes a namespace's keys: a random names key and epoch 1.
  static Keyring Create();
  // Parse reads Serialize's form; InvalidArgument on anything else.
  static absl::StatusOr<Keyring> Parse(absl::string_view bytes);
  // Serialize returns every key: a secret, to be sealed to a device or wrapped by a passphrase.
  std::string Serialize() const;

  uint32_t current_epoch() const { return epochs_.rbegin()->first; }
  size_t epochs() const { return epochs_.size(); }
  ContentKeys Current() const;
  // Content returns an epoch's keys; NotFound for an epoch this ring does not hold.
  absl::StatusOr<ContentKeys> Content(uint32_t epoch) const;
  NameKeys Names() const;
  // Id names this namespace's keyring (kKeyringIdBytes, not secret: a one-way function of the
  // names key), the same on every device and across rotations: management refuses a second
  // keyring for a namespace, and a device checks a keyring it receives is the namespace's.
  std::string Id() const;

  // Extends: this ring holds every key `older` holds (and maybe newer epochs): a ring a device
  // receives after a rotation must extend its own, which only a holder of its keys can make.
  bool Extends(const Keyring& older) const;

  // Rotate starts the next epoch with a new random key; the older epochs stay readable.
  // ResourceExhausted once the ring holds kMaxEpochs.
  absl::Status Rotate();

 private:
  Keyring() = default;
  SecretKey names_;
  std::map<uint32_t, SecretKey> epochs_;  // never empty
};

}  // namespace converge::crypto

#endif  // CONVERGE_COMMON_CRYPTO_KEYRING_H_
