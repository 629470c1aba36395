#include "common/rpc/channel.h"

#include <grpcpp/support/client_interceptor.h>

namespace converge {
namespace {

class BearerInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit BearerInterceptor(const TokenSource* tokens) : tokens_(tokens) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      std::multimap<std::string, std::string>* md = methods->GetSendInitialMetadata();
      const std::string token = tokens_->Get();
      if (!token.empty() && md->find("authorization") == md->end()) md->emplace("authorization", "Bearer " + token);
    }
    methods->Proceed();
  }

 private:
  const TokenSource* tokens_;
};

class BearerInterceptorFactory : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit BearerInterceptorFactory(std::shared_ptr<TokenSource> tokens) : tokens_(std::move(tokens)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(grpc::experimental::ClientRpcInfo*) override {
    return new BearerInterceptor(tokens_.get());
  }

 private:
  std::shared_ptr<TokenSource> tokens_;  // outlives the channel's calls
};

}  // namespace

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address,
                                           const std::shared_ptr<grpc::ChannelCredentials>& creds,
                                           grpc::ChannelArguments args, std::shared_ptr<TokenSource> tokens) {
  if (tokens == nullptr) return grpc::CreateCustomChannel(address, creds, args);
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<BearerInterceptorFactory>(std::move(tokens)));
  return grpc::experimental::CreateCustomChannelWithInterceptors(address, creds, args, std::move(interceptors));
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannelFromFlags(const std::string& address,
                                                                    grpc::ChannelArguments args,
                                                                    std::shared_ptr<TokenSource> tokens) {
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds = ChannelCredentials(TlsFromFlags());
  if (!creds.ok()) return creds.status();
  return MakeChannel(address, *creds, std::move(args), std::move(tokens));
}

}  // namespace converge
