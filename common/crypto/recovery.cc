#include "common/crypto/recovery.h"

#include <sodium.h>

#include "absl/strings/str_cat.h"
#include "common/crypto/sodium.h"

namespace converge::crypto {
namespace {

// magic | opslimit u64 | memlimit u64 | salt | nonce | AEAD(secret) with everything before as
// associated data.
constexpr absl::string_view kMagic = "CVR1";
constexpr size_t kSaltBytes = crypto_pwhash_SALTBYTES;
constexpr size_t kNonceBytes = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr size_t kTagBytes = crypto_aead_xchacha20poly1305_ietf_ABYTES;
constexpr size_t kHeaderBytes = 4 + 8 + 8 + kSaltBytes + kNonceBytes;

const unsigned char* U(absl::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

absl::Status CheckParams(PassphraseParams p) {
  if (p.opslimit < crypto_pwhash_OPSLIMIT_MIN || p.opslimit > kMaxOpslimit || p.memlimit < crypto_pwhash_MEMLIMIT_MIN ||
      p.memlimit > kMaxMemlimit) {
    return absl::InvalidArgumentError(absl::StrCat("Argon2id parameters out of bounds: ", p.opslimit, " passes, ",
                                                   p.memlimit, " bytes (at most ", kMaxOpslimit, " and ",
                                                   kMaxMemlimit, ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<SecretKey> KeyFrom(absl::string_view passphrase, absl::string_view salt, PassphraseParams p) {
  SecretKey key;
  if (crypto_pwhash(key.mutable_data(), kKeyBytes, passphrase.data(), passphrase.size(), U(salt), p.opslimit,
                    p.memlimit, crypto_pwhash_ALG_ARGON2ID13) != 0) {
    return absl::ResourceExhaustedError("Argon2id: not enough memory for the passphrase's parameters");
  }
  return key;
}

}  // namespace

PassphraseParams RecoveryParams() {
  return PassphraseParams{crypto_pwhash_OPSLIMIT_MODERATE, crypto_pwhash_MEMLIMIT_MODERATE};
}

PassphraseParams WeakestParamsForTests() {
  return PassphraseParams{crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN};
}

absl::StatusOr<std::string> WrapWithPassphrase(absl::string_view secret, absl::string_view passphrase,
                                               PassphraseParams params) {
  EnsureSodium();
  if (passphrase.empty()) return absl::InvalidArgumentError("an empty recovery passphrase");
  if (absl::Status s = CheckParams(params); !s.ok()) return s;
  std::string out(kMagic);
  AppendU64(&out, params.opslimit);
  AppendU64(&out, params.memlimit);
  const size_t salt_at = out.size();
  out.resize(kHeaderBytes);
  randombytes_buf(out.data() + salt_at, kSaltBytes + kNonceBytes);
  absl::StatusOr<SecretKey> key = KeyFrom(passphrase, absl::string_view(out).substr(salt_at, kSaltBytes), params);
  if (!key.ok()) return key.status();
  out.resize(kHeaderBytes + secret.size() + kTagBytes);
  crypto_aead_xchacha20poly1305_ietf_encrypt(reinterpret_cast<unsigned char*>(out.data()) + kHeaderBytes, nullptr,
                                             U(secret), secret.size(), U(out), kHeaderBytes, nullptr,
                                             U(out) + salt_at + kSaltBytes, key->data());
  return out;
}

absl::StatusOr<std::string> UnwrapWithPassphrase(absl::string_view wrapped, absl::string_view passphrase) {
  EnsureSodium();
  absl::string_view in = wrapped, magic, salt, nonce;
  PassphraseParams p;
  if (!ReadBytes(&in, kMagic.size(), &magic) || magic != kMagic || !ReadU64(&in, &p.opslimit) ||
      !ReadU64(&in, &p.memlimit) || !ReadBytes(&in, kSaltBytes, &salt) || !ReadBytes(&in, kNonceBytes, &nonce) ||
      in.size() < kTagBytes) {
    return absl::InvalidArgumentError("not a passphrase-wrapped key");
  }
  if (absl::Status s = CheckParams(p); !s.ok()) return s;
  absl::StatusOr<SecretKey> key = KeyFrom(passphrase, salt, p);
  if (!key.ok()) return key.status();
  std::string out(in.size() - kTagBytes, '\0');
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(reinterpret_cast<unsigned char*>(out.data()), nullptr, nullptr,
                                                 U(in), in.size(), U(wrapped), kHeaderBytes, U(nonce),
                                                 key->data()) != 0) {
    return absl::PermissionDeniedError("wrong recovery passphrase (or the wrapped key was altered)");
  }
  return out;
}

}  // namespace converge::crypto
