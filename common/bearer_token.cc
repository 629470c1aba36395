#include "common/bearer_token.h"

#include <openssl/crypto.h>

namespace converge {

absl::Status CheckBearerToken(const grpc::ServerContextBase& ctx, const std::string& expected) {
  if (expected.empty()) return absl::OkStatus();
  const auto& metadata = ctx.client_metadata();
  auto it = metadata.find("authorization");
  const std::string want = "Bearer " + expected;
  if (it == metadata.end() || it->second.size() != want.size() ||
      CRYPTO_memcmp(it->second.data(), want.data(), want.size()) != 0) {
    return absl::UnauthenticatedError("missing or wrong bearer token");
  }
  return absl::OkStatus();
}

void AddBearerToken(grpc::ClientContext* ctx, const std::string& token) {
  if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
}

}  // namespace converge
