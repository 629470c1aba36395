#include "common/base/sha256.h"

#include <openssl/evp.h>

#include <cstdlib>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace converge {

struct Sha256::Ctx {
  EVP_MD_CTX* md = nullptr;
};

Sha256::Sha256() : ctx_(std::make_unique<Ctx>()) {
  ctx_->md = EVP_MD_CTX_new();
  if (ctx_->md == nullptr || EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr) != 1) abort();
}

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_->md); }

void Sha256::Update(absl::string_view data) {
  if (EVP_DigestUpdate(ctx_->md, data.data(), data.size()) != 1) abort();
}

Digest Sha256::Finish() {
  Digest d;
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx_->md, d.data(), &len) != 1 || len != kDigestSize) abort();
  if (EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr) != 1) abort();
  return d;
}

Digest HashOf(absl::string_view data) {
  Digest d;
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), d.data(), &len, EVP_sha256(), nullptr) != 1) abort();
  return d;
}

std::string DigestToBytes(const Digest& d) {
  return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

absl::StatusOr<Digest> DigestFromBytes(absl::string_view bytes) {
  if (bytes.size() != kDigestSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("a SHA-256 digest has 32 bytes, got ", bytes.size()));
  }
  Digest d;
  std::copy(bytes.begin(), bytes.end(), d.begin());
  return d;
}

std::string DigestToHex(const Digest& d) {
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
}

}  // namespace converge
