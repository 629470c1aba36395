#include "engine/client/notification_listener.h"

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/rpc/server_runner.h"
#include "gtest/gtest.h"
#include "services/notification/notification_server.h"

namespace converge::engine {
namespace {

// A notification service in this process, on a loopback port of its own, that can be restarted
// (the new one knows nothing the old one kept).
class Notify {
 public:
  Notify() { Start(); }
  void Start() {
    notification::NotificationOptions options;
    options.auth.service_token = "svc";
    server_ = nullptr;
    notify_ = std::make_unique<notification::NotificationServer>(options);
    absl::StatusOr<std::unique_ptr<RunningServer>> started = StartServer(ServerOptions{}, {notify_->service()});
    ASSERT_TRUE(started.ok()) << started.status();
    server_ = std::move(*started);
    absl::MutexLock lock(&mu_);
    address_ = server_->address();
  }
  void Restart() {
    server_->Shutdown();
    server_ = nullptr;
    Start();
  }
  std::shared_ptr<grpc::Channel> Connect() {
    absl::MutexLock lock(&mu_);
    return grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
  }

 private:
  absl::Mutex mu_;
  std::string address_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<notification::NotificationServer> notify_;
  std::unique_ptr<RunningServer> server_;
};

// A device's listener and the announcements it heard.
class Device {
 public:
  Device(Notify* notify, const std::string& id)
      : listener_([notify] { return notify->Connect(); }, id, "vault", absl::Milliseconds(200),
                  NotificationListener::Callbacks{[](uint64_t) {}, [] {},
                                                  [this](const NotificationListener::Announced& a) {
                                                    absl::MutexLock lock(&mu_);
                                                    heard_.push_back(a);
                                                  }}) {
    listener_.Start();
  }
  ~Device() { listener_.Stop(); }
  NotificationListener& listener() { return listener_; }
  // Heard: an announcement of `device` at `seq` arrived within 10 s.
  bool Heard(const std::string& device, uint64_t seq) {
    absl::MutexLock lock(&mu_);
    auto found = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      for (const auto& a : heard_) {
        if (a.device_id == device && a.seq == seq) return true;
      }
      return false;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&found), absl::Seconds(10));
  }

 private:
  absl::Mutex mu_;
  std::vector<NotificationListener::Announced> heard_ ABSL_GUARDED_BY(mu_);
  NotificationListener listener_;
};

TEST(NotificationListenerTest, AHeadIsAnnouncedAgainToAServiceThatRestarted) {
  Notify notify;
  Device one(&notify, "dev1");
  Device two(&notify, "dev2");
  one.listener().Announce({"dev1", 7, std::string(32, 'h'), std::string(64, 's')});
  EXPECT_TRUE(two.Heard("dev1", 7));
  // The service restarts: it kept dev1's head for later subscribers in memory only. dev1
  // reconnects and announces it again, so a device that subscribes afterwards still gets it.
  notify.Restart();
  Device three(&notify, "dev3");
  EXPECT_TRUE(three.Heard("dev1", 7));
}

}  // namespace
}  // namespace converge::engine
