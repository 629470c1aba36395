#include "common/crypto/device_keys.h"

#include <sodium.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/crypto/sodium.h"

namespace converge::crypto {
namespace {

constexpr absl::string_view kMagic = "CVD1";
static_assert(crypto_box_PUBLICKEYBYTES == 32 && crypto_box_SECRETKEYBYTES == 32);
static_assert(crypto_sign_PUBLICKEYBYTES == 32 && crypto_sign_SECRETKEYBYTES == 64);
static_assert(crypto_sign_BYTES == kSignatureBytes);

const unsigned char* U(absl::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

}  // namespace

std::string DevicePublicKey::ToBytes() const {
  std::string out(reinterpret_cast<const char*>(box.data()), box.size());
  out.append(reinterpret_cast<const char*>(sign.data()), sign.size());
  return out;
}

absl::StatusOr<DevicePublicKey> DevicePublicKey::FromBytes(absl::string_view bytes) {
  if (bytes.size() != 64) {
    return absl::InvalidArgumentError(absl::StrCat("a device public key has 64 bytes, not ", bytes.size()));
  }
  DevicePublicKey k;
  memcpy(k.box.data(), bytes.data(), 32);
  memcpy(k.sign.data(), bytes.data() + 32, 32);
  return k;
}

std::string DevicePublicKey::Fingerprint() const {
  EnsureSodium();
  const std::string bytes = ToBytes();
  std::array<uint8_t, 24> h{};
  crypto_generichash(h.data(), h.size(), U(bytes), bytes.size(), nullptr, 0);
  std::string out;
  for (int group = 0; group < 6; ++group) {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | h[group * 4 + i];
    absl::StrAppend(&out, group ? " " : "", absl::StrFormat("%05u", v % 100000));
  }
  return out;
}

DeviceKeys DeviceKeys::Generate() {
  EnsureSodium();
  DeviceKeys k;
  crypto_box_keypair(k.public_.box.data(), k.box_secret_.data());
  crypto_sign_keypair(k.public_.sign.data(), k.sign_secret_.data());
  return k;
}

DeviceKeys::~DeviceKeys() {
  sodium_memzero(box_secret_.data(), box_secret_.size());
  sodium_memzero(sign_secret_.data(), sign_secret_.size());
}

std::string DeviceKeys::Serialize() const {
  std::string out(kMagic);
  out.append(reinterpret_cast<const char*>(box_secret_.data()), box_secret_.size());
  out.append(reinterpret_cast<const char*>(sign_secret_.data()), sign_secret_.size());
  return out;
}

absl::StatusOr<DeviceKeys> DeviceKeys::Parse(absl::string_view bytes) {
  if (bytes.size() != kMagic.size() + 32 + 64 || bytes.substr(0, kMagic.size()) != kMagic) {
    return absl::InvalidArgumentError("not a device key file");
  }
  EnsureSodium();
  DeviceKeys k;
  memcpy(k.box_secret_.data(), bytes.data() + kMagic.size(), 32);
  memcpy(k.sign_secret_.data(), bytes.data() + kMagic.size() + 32, 64);
  // The public halves follow from the secret ones; the Ed25519 secret key carries its public key.
  crypto_scalarmult_base(k.public_.box.data(), k.box_secret_.data());
  crypto_sign_ed25519_sk_to_pk(k.public_.sign.data(), k.sign_secret_.data());
  std::array<uint8_t, 32> seed{}, pk{};
  std::array<uint8_t, 64> sk{};
  crypto_sign_ed25519_sk_to_seed(seed.data(), k.sign_secret_.data());
  crypto_sign_seed_keypair(pk.data(), sk.data(), seed.data());
  const bool consistent = pk == k.public_.sign;
  sodium_memzero(seed.data(), seed.size());
  sodium_memzero(sk.data(), sk.size());
  if (!consistent) return absl::InvalidArgumentError("device key file: the signing key pair does not match");
  return k;
}

std::string DeviceKeys::Sign(absl::string_view message) const {
  std::string sig(kSignatureBytes, '\0');
  crypto_sign_detached(reinterpret_cast<unsigned char*>(sig.data()), nullptr, U(message), message.size(),
                       sign_secret_.data());
  return sig;
}

absl::StatusOr<std::string> DeviceKeys::OpenSealed(absl::string_view sealed) const {
  if (sealed.size() < crypto_box_SEALBYTES) return absl::PermissionDeniedError("sealed key: too short");
  std::string out(sealed.size() - crypto_box_SEALBYTES, '\0');
  if (crypto_box_seal_open(reinterpret_cast<unsigned char*>(out.data()), U(sealed), sealed.size(),
                           public_.box.data(), box_secret_.data()) != 0) {
    return absl::PermissionDeniedError("sealed key: not sealed to this device, or altered");
  }
  return out;
}

std::string SealTo(const DevicePublicKey& to, absl::string_view secret) {
  EnsureSodium();
  std::string out(secret.size() + crypto_box_SEALBYTES, '\0');
  crypto_box_seal(reinterpret_cast<unsigned char*>(out.data()), U(secret), secret.size(), to.box.data());
  return out;
}

std::string KeyGrantSigningBytes(const KeyGrantFields& g) {
  std::string out;
  for (absl::string_view field : {absl::string_view("converge key grant v1"), g.namespace_id, g.device_id,
                                  g.public_key, g.sealed_keyring, g.keyring_id}) {
    AppendU64(&out, field.size());
    out.append(field.data(), field.size());
  }
  AppendU32(&out, g.epoch);
  return out;
}

bool VerifySignature(const DevicePublicKey& from, absl::string_view message, absl::string_view signature) {
  EnsureSodium();
  return signature.size() == kSignatureBytes &&
         crypto_sign_verify_detached(U(signature), U(message), message.size(), from.sign.data()) == 0;
}

}  // namespace converge::crypto
