// libsodium underneath the end-to-end encryption of a namespace (docs/security.md, "End-to-end
// encrypted namespaces"): secret keys that wipe themselves, subkeys for one purpose each, and
// the byte encodings the other files share.
//
//   SecretKey root = SecretKey::Random();
//   SecretKey chunk_ids = Derive(root, 1, "cvgchnid");
//
// Nothing here is cryptography of its own: every primitive is libsodium's.
#ifndef CONVERGE_COMMON_CRYPTO_SODIUM_H_
#define CONVERGE_COMMON_CRYPTO_SODIUM_H_

#include <array>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace converge::crypto {

inline constexpr size_t kKeyBytes = 32;

// EnsureSodium starts libsodium once (thread-safe); aborts if it cannot (no random source).
void EnsureSodium();

// SecretKey: 32 secret bytes, compared in constant time and wiped when destroyed.
class SecretKey {
 public:
  SecretKey() = default;  // all zero
  ~SecretKey();
  SecretKey(const SecretKey&) = default;
  SecretKey& operator=(const SecretKey&) = default;

  static SecretKey Random();
  // FromBytes: InvalidArgument unless `bytes` holds exactly kKeyBytes.
  static absl::StatusOr<SecretKey> FromBytes(absl::string_view bytes);
  std::string ToBytes() const;

  const uint8_t* data() const { return bytes_.data(); }
  uint8_t* mutable_data() { return bytes_.data(); }
  bool operator==(const SecretKey& o) const;
  bool operator!=(const SecretKey& o) const { return !(*this == o); }

 private:
  std::array<uint8_t, kKeyBytes> bytes_{};
};

// Derive returns the subkey `id` of `root` for the purpose named by `context` (exactly eight
// characters): libsodium's crypto_kdf (BLAKE2b). Keys for different purposes never coincide.
SecretKey Derive(const SecretKey& root, uint64_t id, const char (&context)[9]);

// Little-endian fixed-width integers, appended and read; Read* fail on short input.
void AppendU32(std::string* out, uint32_t v);
void AppendU64(std::string* out, uint64_t v);
bool ReadU32(absl::string_view* in, uint32_t* v);
bool ReadU64(absl::string_view* in, uint64_t* v);
bool ReadBytes(absl::string_view* in, size_t n, absl::string_view* out);

// Base32 of RFC 4648 in lowercase, without padding: names the store may hold on any file
// system and that case folding and Unicode normalisation leave as they are.
std::string Base32(absl::string_view bytes);
// FromBase32: InvalidArgument on a character outside the alphabet or a malformed tail.
absl::StatusOr<std::string> FromBase32(absl::string_view text);

}  // namespace converge::crypto

#endif  // CONVERGE_COMMON_CRYPTO_SODIUM_H_
