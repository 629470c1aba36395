// EtcdClient and the service directory against a real etcd (Debian's etcd-server): one member for
// the API, three to lose members under it.
#include "services/coord/etcd_client.h"

#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/security/tls.h"
#include "gtest/gtest.h"
#include "services/coord/service_directory.h"
#include "tests/etcd_cluster.h"
#include "tests/process.h"

namespace converge::coord {
namespace {

using testing::EtcdCluster;

std::string TestDir(const std::string& name) { return absl::StrCat(getenv("TEST_TMPDIR"), "/", name); }

bool WaitFor(const std::function<bool()>& cond, absl::Duration timeout) {
  for (const absl::Time until = absl::Now() + timeout; absl::Now() < until;) {
    if (cond()) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return cond();
}

// What a Roster reported last, for the test to wait on.
class Seen {
 public:
  void Set(const Roster::Members& m) {
    absl::MutexLock lock(&mu_);
    members_ = m;
    ++updates_;
  }
  Roster::Members Get() {
    absl::MutexLock lock(&mu_);
    return members_;
  }

 private:
  absl::Mutex mu_;
  Roster::Members members_;
  int updates_ = 0;
};

TEST(EtcdClientTest, KeysArePutReadListedCreatedOnceAndDeleted) {
  auto etcd = EtcdCluster::Start(TestDir("kv"), 1);
  ASSERT_TRUE(etcd.ok()) << etcd.status();
  auto client = EtcdClient::Connect((*etcd)->endpoints());
  ASSERT_TRUE(client.ok()) << client.status();
  EtcdClient& c = **client;

  absl::StatusOr<int64_t> rev = c.Put("/t/a", "alpha");
  ASSERT_TRUE(rev.ok()) << rev.status();
  ASSERT_TRUE(c.Put("/t/b", "bravo").ok());
  ASSERT_TRUE(c.Put("/u/c", "not under /t/").ok());
  absl::StatusOr<std::optional<EtcdKeyValue>> a = c.Get("/t/a");
  ASSERT_TRUE(a.ok() && a->has_value()) << a.status();
  EXPECT_EQ((*a)->value, "alpha");
  EXPECT_EQ((*a)->mod_revision, *rev);
  EXPECT_FALSE(c.Get("/t/none")->has_value());

  absl::StatusOr<EtcdListing> listed = c.List("/t/");
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->kvs.size(), 2u);
  EXPECT_EQ(listed->kvs[0].key, "/t/a");
  EXPECT_EQ(listed->kvs[1].value, "bravo");
  EXPECT_GT(listed->revision, *rev);

  // Created once: the second attempt finds the first one's value.
  absl::StatusOr<std::optional<EtcdKeyValue>> first = c.CreateIfAbsent("/t/owner", "me");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->has_value());
  absl::StatusOr<std::optional<EtcdKeyValue>> second = c.CreateIfAbsent("/t/owner", "someone else");
  ASSERT_TRUE(second.ok() && second->has_value()) << second.status();
  EXPECT_EQ((*second)->value, "me");
  EXPECT_EQ((*c.Get("/t/owner"))->value, "me");

  EXPECT_TRUE(*c.Delete("/t/owner"));
  EXPECT_FALSE(*c.Delete("/t/owner"));
  EXPECT_FALSE(c.Get("/t/owner")->has_value());
}

TEST(EtcdClientTest, AnnouncedReplicasAreFollowedAndGoWithTheirLease) {
  auto etcd = EtcdCluster::Start(TestDir("leases"), 1);
  ASSERT_TRUE(etcd.ok()) << etcd.status();
  auto client = EtcdClient::Connect((*etcd)->endpoints());
  ASSERT_TRUE(client.ok());
  EtcdClient& c = **client;
  Seen seen;
  std::unique_ptr<Roster> roster = Roster::Follow(&c, ServicePrefix("notify"), [&](const Roster::Members& m) { seen.Set(m); });

  std::unique_ptr<Announcement> a = Announcement::Start(&c, ServiceKey("notify", "a"), "10.0.0.1:7002", absl::Seconds(2));
  std::unique_ptr<Announcement> b = Announcement::Start(&c, ServiceKey("notify", "b"), "10.0.0.2:7002", absl::Seconds(2));
  EXPECT_NE(a->lease(), 0);
  const Roster::Members both = {{"a", "10.0.0.1:7002"}, {"b", "10.0.0.2:7002"}};
  ASSERT_TRUE(WaitFor([&] { return seen.Get() == both; }, absl::Seconds(5)));
  // Renewed: still there after three TTLs.
  absl::SleepFor(absl::Seconds(6));
  EXPECT_EQ(seen.Get(), both);
  EXPECT_EQ(c.List(ServicePrefix("notify"))->kvs.size(), 2u);

  // Stopped cleanly: gone at once (its lease revoked).
  const absl::Time stopped = absl::Now();
  a.reset();
  ASSERT_TRUE(WaitFor([&] { return seen.Get().size() == 1; }, absl::Seconds(1)));
  EXPECT_LT(absl::Now() - stopped, absl::Seconds(1));

  // A replica that dies renews nothing: its key goes when its lease runs out.
  absl::StatusOr<int64_t> lease = c.GrantLease(absl::Seconds(2));
  ASSERT_TRUE(lease.ok()) << lease.status();
  ASSERT_TRUE(c.Put(ServiceKey("notify", "dead"), "10.0.0.9:7002", *lease).ok());
  ASSERT_TRUE(WaitFor([&] { return seen.Get().count("dead") == 1; }, absl::Seconds(2)));
  const absl::Time died = absl::Now();
  ASSERT_TRUE(WaitFor([&] { return seen.Get().count("dead") == 0; }, absl::Seconds(5)));
  EXPECT_GE(absl::Now() - died, absl::Seconds(1));
  EXPECT_TRUE(absl::IsNotFound(c.KeepAlive(*lease)));
  EXPECT_EQ(seen.Get(), (Roster::Members{{"b", "10.0.0.2:7002"}}));
}

TEST(EtcdClientTest, LosingOneMemberOfThreeAndThenTheLeaderIsInvisibleToCallers) {
  auto etcd = EtcdCluster::Start(TestDir("three"), 3);
  ASSERT_TRUE(etcd.ok()) << etcd.status();
  // A deadline that outlasts a re-election on a loaded machine: the pause is what is measured.
  auto client = EtcdClient::Connect((*etcd)->endpoints(), absl::Seconds(20));
  ASSERT_TRUE(client.ok());
  EtcdClient& c = **client;
  Seen seen;
  std::unique_ptr<Roster> roster = Roster::Follow(&c, "/r/", [&](const Roster::Members& m) { seen.Set(m); });
  ASSERT_TRUE(c.Put("/r/0", "zero").ok());
  ASSERT_TRUE(WaitFor([&] { return seen.Get().count("0") == 1; }, absl::Seconds(5)));

  // A follower killed: calls and the watch go on (the client moves to a member that answers).
  const int leader = (*etcd)->Leader();
  ASSERT_GE(leader, 0);
  const int follower = (leader + 1) % 3;
  (*etcd)->Kill(follower);
  ASSERT_TRUE(c.Put("/r/1", "one").ok());
  ASSERT_TRUE(WaitFor([&] { return seen.Get().count("1") == 1; }, absl::Seconds(5)));

  // The leader killed: a re-election among the two left, then calls succeed again.
  ASSERT_TRUE((*etcd)->Restart(follower).ok());
  // Back and caught up before the leader goes (else two of three are not there to elect one).
  ASSERT_TRUE(WaitFor([&] { return (*etcd)->Healthy(follower); }, absl::Seconds(20)));
  ASSERT_TRUE(WaitFor([&] { return c.Put("/r/probe", "x").ok(); }, absl::Seconds(10)));
  const absl::Time killed = absl::Now();
  (*etcd)->Kill(leader);
  absl::StatusOr<int64_t> put = c.Put("/r/2", "two");
  const absl::Duration pause = absl::Now() - killed;
  ASSERT_TRUE(put.ok()) << put.status();
  std::printf("FIGURES etcd leader killed: a put waited %s for the re-election\n", absl::FormatDuration(pause).c_str());
  EXPECT_LT(pause, absl::Seconds(15));
  EXPECT_TRUE(WaitFor([&] { return seen.Get().count("2") == 1; }, absl::Seconds(5)));
  EXPECT_EQ((*c.Get("/r/1"))->value, "one");
}

}  // namespace
}  // namespace converge::coord

namespace converge::coord {
namespace {

// etcd with --client-cert-auth over TLS: a client with the CA and a certificate of it works; one
// in plaintext, or over TLS without a certificate, is refused.
TEST(EtcdClientTest, OverTlsOnlyAClientWithACertificateOfTheCaGetsIn) {
  const std::string dir = std::string(getenv("TEST_TMPDIR")) + "/etcd-tls";
  const std::string tls = dir + "/tls";
  std::filesystem::create_directories(dir);
  testing::CommandResult made = testing::RunCommand({testing::Runfile("tools/certs/make-certs"), tls}, dir);
  ASSERT_EQ(made.exit_code, 0) << made.err;
  auto etcd = testing::EtcdCluster::Start(dir + "/etcd", 1, tls);
  ASSERT_TRUE(etcd.ok()) << etcd.status();
  EXPECT_TRUE(absl::IsInvalidArgument(EtcdClient::Connect((*etcd)->endpoints()).status()));  // unixs: without a CA

  auto with_cert = ChannelCredentials(TlsFiles{tls + "/ca.crt", tls + "/service.crt", tls + "/service.key"});
  ASSERT_TRUE(with_cert.ok());
  auto client = EtcdClient::Connect((*etcd)->endpoints(), absl::Seconds(3), *with_cert);
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_TRUE((*client)->Put("/tls/k", "v").ok());
  auto got = (*client)->Get("/tls/k");
  ASSERT_TRUE(got.ok() && got->has_value()) << got.status();
  EXPECT_EQ((*got)->value, "v");

  std::string plain_endpoint = (*etcd)->endpoints();
  plain_endpoint.replace(0, 6, "unix:");  // the same socket, spoken to in plaintext
  auto plain = EtcdClient::Connect(plain_endpoint, absl::Seconds(2));
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE((*plain)->Put("/tls/k", "plain").ok());
  auto no_cert = ChannelCredentials(TlsFiles{tls + "/ca.crt", "", ""});
  ASSERT_TRUE(no_cert.ok());
  auto anonymous = EtcdClient::Connect((*etcd)->endpoints(), absl::Seconds(2), *no_cert);
  ASSERT_TRUE(anonymous.ok());
  EXPECT_FALSE((*anonymous)->Put("/tls/k", "anonymous").ok());
  got = (*client)->Get("/tls/k");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->value, "v");  // neither got in
}

}  // namespace
}  // namespace converge::coord
