#include "common/security/device_token.h"

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <algorithm>
#include <cstdio>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/base/coding.h"

namespace converge {
namespace {

constexpr uint64_t kClaimsVersion = 1;
constexpr size_t kMaxNamespaces = 1024;

std::string EncodeClaims(const DeviceClaims& c) {
  std::string out;
  PutVarint64(&out, kClaimsVersion);
  PutLengthPrefixed(&out, c.device_id);
  PutLengthPrefixed(&out, c.user_id);
  PutVarint64(&out, static_cast<uint64_t>(absl::ToUnixSeconds(c.issued_at)));
  PutVarint64(&out, static_cast<uint64_t>(absl::ToUnixSeconds(c.expires_at)));
  PutVarint64(&out, c.namespaces.size());
  for (const std::string& ns : c.namespaces) PutLengthPrefixed(&out, ns);
  return out;
}

absl::StatusOr<DeviceClaims> DecodeClaims(absl::string_view in) {
  Decoder d(in);
  DeviceClaims c;
  uint64_t version = 0, issued = 0, expires = 0, n = 0;
  if (!d.GetVarint64(&version) || version != kClaimsVersion || !d.GetLengthPrefixed(&c.device_id) ||
      !d.GetLengthPrefixed(&c.user_id) || !d.GetVarint64(&issued) || !d.GetVarint64(&expires) ||
      !d.GetVarint64(&n) || n > kMaxNamespaces) {
    return absl::UnauthenticatedError("malformed device token");
  }
  c.namespaces.resize(n);
  for (std::string& ns : c.namespaces) {
    if (!d.GetLengthPrefixed(&ns)) return absl::UnauthenticatedError("malformed device token");
  }
  if (!d.done() || c.device_id.empty() || c.user_id.empty()) {
    return absl::UnauthenticatedError("malformed device token");
  }
  c.issued_at = absl::FromUnixSeconds(static_cast<int64_t>(issued));
  c.expires_at = absl::FromUnixSeconds(static_cast<int64_t>(expires));
  return c;
}

std::string EncodeUserClaims(const UserClaims& c) {
  std::string out;
  PutVarint64(&out, kClaimsVersion);
  PutLengthPrefixed(&out, c.user_id);
  PutVarint64(&out, static_cast<uint64_t>(absl::ToUnixSeconds(c.issued_at)));
  PutVarint64(&out, static_cast<uint64_t>(absl::ToUnixSeconds(c.expires_at)));
  return out;
}

absl::StatusOr<UserClaims> DecodeUserClaims(absl::string_view in) {
  Decoder d(in);
  UserClaims c;
  uint64_t version = 0, issued = 0, expires = 0;
  if (!d.GetVarint64(&version) || version != kClaimsVersion || !d.GetLengthPrefixed(&c.user_id) ||
      !d.GetVarint64(&issued) || !d.GetVarint64(&expires) || !d.done() || c.user_id.empty()) {
    return absl::UnauthenticatedError("malformed user token");
  }
  c.issued_at = absl::FromUnixSeconds(static_cast<int64_t>(issued));
  c.expires_at = absl::FromUnixSeconds(static_cast<int64_t>(expires));
  return c;
}

absl::StatusOr<EVP_PKEY*> ReadKey(const std::string& path, bool is_private) {
  FILE* f = fopen(path.c_str(), "r");
  if (f == nullptr) return absl::InvalidArgumentError(absl::StrCat("cannot read the token key '", path, "'"));
  EVP_PKEY* key = is_private ? PEM_read_PrivateKey(f, nullptr, nullptr, nullptr)
                             : PEM_read_PUBKEY(f, nullptr, nullptr, nullptr);
  fclose(f);
  if (key == nullptr || EVP_PKEY_get_id(key) != EVP_PKEY_ED25519) {
    if (key != nullptr) EVP_PKEY_free(key);
    return absl::InvalidArgumentError(absl::StrCat("'", path, "' is not a PEM Ed25519 ",
                                                   is_private ? "private" : "public", " key"));
  }
  return key;
}

}  // namespace

bool DeviceClaims::HasNamespace(const std::string& ns) const {
  return std::find(namespaces.begin(), namespaces.end(), ns) != namespaces.end();
}

absl::StatusOr<std::unique_ptr<TokenSigner>> TokenSigner::FromPemFile(const std::string& path) {
  absl::StatusOr<EVP_PKEY*> key = ReadKey(path, true);
  if (!key.ok()) return key.status();
  return std::unique_ptr<TokenSigner>(new TokenSigner(*key));
}

TokenSigner::~TokenSigner() { EVP_PKEY_free(static_cast<EVP_PKEY*>(key_)); }

absl::StatusOr<std::string> TokenSigner::Sign(const DeviceClaims& claims) const {
  return SignBytes(kDeviceTokenPrefix, EncodeClaims(claims));
}

absl::StatusOr<std::string> TokenSigner::SignUser(const UserClaims& claims) const {
  if (claims.user_id.empty()) return absl::InvalidArgumentError("a user token names a user");
  return SignBytes(kUserTokenPrefix, EncodeUserClaims(claims));
}

absl::StatusOr<std::string> TokenSigner::SignBytes(absl::string_view prefix, absl::string_view claims) const {
  const std::string signed_part = absl::StrCat(prefix, absl::WebSafeBase64Escape(claims));
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  unsigned char sig[64];
  size_t sig_len = sizeof(sig);
  const bool ok = ctx != nullptr &&
                  EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, static_cast<EVP_PKEY*>(key_)) == 1 &&
                  EVP_DigestSign(ctx, sig, &sig_len, reinterpret_cast<const unsigned char*>(signed_part.data()),
                                 signed_part.size()) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok) return absl::InternalError("signing a token failed");
  return absl::StrCat(signed_part, ".",
                      absl::WebSafeBase64Escape(absl::string_view(reinterpret_cast<char*>(sig), sig_len)));
}

std::unique_ptr<TokenVerifier> TokenSigner::MakeVerifier() const {
  EVP_PKEY_up_ref(static_cast<EVP_PKEY*>(key_));
  return std::unique_ptr<TokenVerifier>(new TokenVerifier(key_));
}

absl::StatusOr<std::unique_ptr<TokenVerifier>> TokenVerifier::FromPemFile(const std::string& path) {
  absl::StatusOr<EVP_PKEY*> key = ReadKey(path, false);
  if (!key.ok()) return key.status();
  return std::unique_ptr<TokenVerifier>(new TokenVerifier(*key));
}

TokenVerifier::~TokenVerifier() { EVP_PKEY_free(static_cast<EVP_PKEY*>(key_)); }

absl::StatusOr<DeviceClaims> TokenVerifier::Verify(const std::string& token, absl::Time now) const {
  absl::StatusOr<std::string> bytes = VerifiedBytes(token, kDeviceTokenPrefix, "device token");
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<DeviceClaims> claims = DecodeClaims(*bytes);
  if (!claims.ok()) return claims.status();
  if (claims->expires_at <= now) {
    return absl::UnauthenticatedError(absl::StrCat("device token expired at ", absl::FormatTime(claims->expires_at)));
  }
  return claims;
}

absl::StatusOr<UserClaims> TokenVerifier::VerifyUser(const std::string& token, absl::Time now) const {
  absl::StatusOr<std::string> bytes = VerifiedBytes(token, kUserTokenPrefix, "user token");
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<UserClaims> claims = DecodeUserClaims(*bytes);
  if (!claims.ok()) return claims.status();
  if (claims->expires_at <= now) {
    return absl::UnauthenticatedError(absl::StrCat("user token expired at ", absl::FormatTime(claims->expires_at)));
  }
  return claims;
}

absl::StatusOr<std::string> TokenVerifier::VerifiedBytes(const std::string& token, absl::string_view prefix,
                                                         absl::string_view what) const {
  if (token.size() > kMaxDeviceTokenBytes || !absl::StartsWith(token, prefix)) {
    return absl::UnauthenticatedError(absl::StrCat("not a ", what));
  }
  const size_t dot = token.rfind('.');
  if (dot <= prefix.size()) return absl::UnauthenticatedError(absl::StrCat("malformed ", what));
  const absl::string_view signed_part(token.data(), dot);
  std::string claims_bytes, sig;
  if (!absl::WebSafeBase64Unescape(signed_part.substr(prefix.size()), &claims_bytes) ||
      !absl::WebSafeBase64Unescape(absl::string_view(token).substr(dot + 1), &sig) || sig.size() != 64) {
    return absl::UnauthenticatedError(absl::StrCat("malformed ", what));
  }
  // One spelling per token: the decoder forgives padding and trailing bits the encoder never
  // writes, so a re-spelled token would otherwise verify as well.
  if (absl::WebSafeBase64Escape(claims_bytes) != signed_part.substr(prefix.size()) ||
      absl::WebSafeBase64Escape(sig) != absl::string_view(token).substr(dot + 1)) {
    return absl::UnauthenticatedError(absl::StrCat(what, " is not in canonical base64"));
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool valid =
      ctx != nullptr && EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, static_cast<EVP_PKEY*>(key_)) == 1 &&
      EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                       reinterpret_cast<const unsigned char*>(signed_part.data()), signed_part.size()) == 1;
  EVP_MD_CTX_free(ctx);
  if (!valid) return absl::UnauthenticatedError(absl::StrCat(what, " signature does not verify"));
  return claims_bytes;
}

}  // namespace converge
