// Client channels, made one way everywhere: TLS (or plaintext) credentials from common/tls, and
// optionally a TokenSource whose current token every call carries as its bearer credential.
#ifndef CONVERGE_COMMON_RPC_CHANNEL_H_
#define CONVERGE_COMMON_RPC_CHANNEL_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/security/tls.h"

namespace converge {

// TokenSource holds a client's current bearer token; a refresher may replace it at any time.
class TokenSource {
 public:
  explicit TokenSource(std::string token = "") : token_(std::move(token)) {}
  void Set(std::string token) {
    absl::MutexLock lock(&mu_);
    token_ = std::move(token);
  }
  std::string Get() const {
    absl::MutexLock lock(&mu_);
    return token_;
  }

 private:
  mutable absl::Mutex mu_;
  std::string token_ ABSL_GUARDED_BY(mu_);
};

// MakeChannel connects to `address` with `creds`; when `tokens` is set, every call carries
// "authorization: Bearer <tokens->Get()>" (calls that set their own authorization keep it).
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address,
                                           const std::shared_ptr<grpc::ChannelCredentials>& creds,
                                           grpc::ChannelArguments args = {},
                                           std::shared_ptr<TokenSource> tokens = nullptr);

// MakeChannelFromFlags is MakeChannel with ChannelCredentials(TlsFromFlags()).
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannelFromFlags(const std::string& address,
                                                                    grpc::ChannelArguments args = {},
                                                                    std::shared_ptr<TokenSource> tokens = nullptr);

}  // namespace converge

#endif  // CONVERGE_COMMON_RPC_CHANNEL_H_
