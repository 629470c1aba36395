// Path names of an end-to-end encrypted namespace, as the store holds them.
//
// Each component is encrypted deterministically (a synthetic IV, SIV-style): the same path
// always maps to the same encrypted path, so the store can still order, look up and check
// `base_seq` per file without learning a name. A component is bound to its encrypted parent,
// so equal names in different folders do not look equal; names are padded to 32-byte blocks,
// so their lengths show only roughly.
//
//   siv = BLAKE2b-128(names.mac; len(parent) | parent | padded name)
//   encrypted = base32(siv | XChaCha20(names.cipher; nonce = siv | 0^8) xor padded name)
//
// Decryption recomputes the IV from the plaintext it gets, so an altered name is refused.
// Encrypted components are lowercase base32: case folding, NFC and every OS's rules leave them
// as they are (the engines check case collisions among the plaintext names instead).
#ifndef CONVERGE_COMMON_CRYPTO_NAME_CIPHER_H_
#define CONVERGE_COMMON_CRYPTO_NAME_CIPHER_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/crypto/keyring.h"

namespace converge::crypto {

inline constexpr size_t kNameBlockBytes = 32;
// The longest encrypted component: a 255-byte name pads to 256 bytes, plus a 16-byte IV, in
// base32.
inline constexpr size_t kMaxEncryptedNameChars = (16 + 256) * 8 / 5 + 1;

// EncryptName: the component `name` (1-255 bytes, no '/') of a folder whose encrypted path is
// `encrypted_parent` ("" at the root). InvalidArgument for a name out of those bounds.
absl::StatusOr<std::string> EncryptName(const NameKeys& keys, absl::string_view encrypted_parent,
                                        absl::string_view name);
// DecryptName: the plaintext name; DataLoss if it was not made by EncryptName with these keys
// under this parent (altered, or moved by the store to another folder).
absl::StatusOr<std::string> DecryptName(const NameKeys& keys, absl::string_view encrypted_parent,
                                        absl::string_view encrypted);

// EncryptedNameSize: the characters EncryptName makes of a name of `name_bytes` bytes.
size_t EncryptedNameSize(size_t name_bytes);
// EncryptedPathSize: the characters EncryptPath makes of `path`, and the longest encrypted
// component in *longest (when not null), computed without any key.
size_t EncryptedPathSize(absl::string_view path, size_t* longest = nullptr);

// EncryptPath / DecryptPath: component by component ("a/b" -> "x/y").
absl::StatusOr<std::string> EncryptPath(const NameKeys& keys, absl::string_view path);
absl::StatusOr<std::string> DecryptPath(const NameKeys& keys, absl::string_view encrypted_path);

}  // namespace converge::crypto

#endif  // CONVERGE_COMMON_CRYPTO_NAME_CIPHER_H_
