// The registry kept in a real etcd (Debian's etcd-server) by two "replicas": one lock at a time,
// writes fenced by it, a user created once however the two race, and scans past one page.
#include "services/management/etcd_registry_kv.h"

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "services/management/registry.h"
#include "tests/etcd_cluster.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/fake_data_plane.h"

namespace converge::management {
namespace {

class EtcdRegistryKvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto etcd = testing::EtcdCluster::Start(std::string(getenv("TEST_TMPDIR")) + "/etcd", 1);
    ASSERT_TRUE(etcd.ok()) << etcd.status();
    etcd_ = std::move(*etcd);
    auto client = coord::EtcdClient::Connect(etcd_->endpoints());
    ASSERT_TRUE(client.ok());
    client_ = std::move(*client);
  }
  std::unique_ptr<testing::EtcdCluster> etcd_;
  std::shared_ptr<coord::EtcdClient> client_;
};

TEST_F(EtcdRegistryKvTest, OneReplicaHoldsTheLockAtATimeAndALostLockWritesNothing) {
  EtcdRegistryKv a(client_), b(client_);
  absl::StatusOr<RegistryKv::Lease> held = a.Lock();
  ASSERT_TRUE(held.ok()) << held.status();
  ASSERT_TRUE(a.Put("users/alice", "A").ok());
  std::atomic<bool> b_locked{false};
  std::thread other([&] {
    absl::StatusOr<RegistryKv::Lease> mine = b.Lock();
    b_locked = mine.ok();
    if (mine.ok()) {
      EXPECT_TRUE(b.Put("users/bob", "B").ok());
    }
  });
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_FALSE(b_locked.load());  // waits while a holds it
  { RegistryKv::Lease released = std::move(*held); }
  other.join();
  EXPECT_TRUE(b_locked.load());
  EXPECT_EQ(*b.Get("users/bob"), "B");

  // A lock lost while a change is in progress (its lease ran out: here the key is taken from under
  // it): the change's writes are refused and nothing of them lands.
  absl::StatusOr<RegistryKv::Lease> again = a.Lock();
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE(client_->Delete("/converge/registry/lock").ok());
  absl::Status late = a.Put("users/alice", "overwritten");
  EXPECT_TRUE(absl::IsAborted(late)) << late;
  EXPECT_EQ(*a.Get("users/alice"), "A");
  EXPECT_TRUE(absl::IsAborted(a.Delete("users/alice")));
  EXPECT_TRUE(a.Get("users/alice").ok());
}

TEST_F(EtcdRegistryKvTest, TwoRegistriesOverOneEtcdCreateARacedUserOnce) {
  FakeDataPlane data_plane;
  FakeClock clock;
  auto r1 = Registry::Open(std::make_unique<EtcdRegistryKv>(client_), &data_plane, &clock);
  auto r2 = Registry::Open(std::make_unique<EtcdRegistryKv>(client_), &data_plane, &clock);
  ASSERT_TRUE(r1.ok() && r2.ok()) << r1.status() << r2.status();
  for (int i = 0; i < 5; ++i) {
    const std::string user = absl::StrCat("racer", i);
    absl::Status s1, s2;
    std::thread t1([&] { s1 = (*r1)->CreateUser(user, "").status(); });
    std::thread t2([&] { s2 = (*r2)->CreateUser(user, "").status(); });
    t1.join();
    t2.join();
    EXPECT_EQ(s1.ok() + s2.ok(), 1) << s1 << " / " << s2;
    EXPECT_TRUE(absl::IsAlreadyExists(s1.ok() ? s2 : s1)) << s1 << " / " << s2;
  }
  EXPECT_EQ((*r2)->ListUsers()->size(), 5u);
  EXPECT_EQ((*r1)->ListUsers()->size(), 5u);
}

TEST_F(EtcdRegistryKvTest, AScanReadsPastOnePageInKeyOrder) {
  EtcdRegistryKv kv(client_);
  for (int i = 0; i < 2100; ++i) ASSERT_TRUE(kv.Put(absl::StrCat("many/", 10000 + i), "x").ok());
  ASSERT_TRUE(kv.Put("other/1", "y").ok());
  std::vector<std::string> seen;
  ASSERT_TRUE(kv.Scan("many/", [&](absl::string_view rest, absl::string_view) {
    seen.emplace_back(rest);
    return absl::OkStatus();
  }).ok());
  ASSERT_EQ(seen.size(), 2100u);
  EXPECT_EQ(seen.front(), "10000");
  EXPECT_EQ(seen.back(), "12099");
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
}

TEST_F(EtcdRegistryKvTest, ARegistryKeptLocallyBeforeIsCopiedIntoAnEmptyEtcdOnce) {
  const std::string dir = std::string(getenv("TEST_TMPDIR")) + "/local-registry";
  std::filesystem::remove_all(dir);
  auto local = LocalRegistryKv::Open(dir);
  ASSERT_TRUE(local.ok()) << local.status();
  ASSERT_TRUE((*local)->Put("u/alice", "A").ok());
  ASSERT_TRUE((*local)->Put("u/bob", "B").ok());
  ASSERT_TRUE((*local)->Put("n/docs", "D").ok());
  EtcdRegistryKv etcd(client_);
  absl::StatusOr<size_t> copied = ImportRegistry(local->get(), &etcd);
  ASSERT_TRUE(copied.ok()) << copied.status();
  EXPECT_EQ(*copied, 3u);
  EXPECT_EQ(*etcd.Get("u/bob"), "B");
  EXPECT_EQ(*etcd.Get("n/docs"), "D");
  // etcd holds records now (changed since): a second start copies nothing over them.
  ASSERT_TRUE(etcd.Put("u/bob", "changed in etcd").ok());
  copied = ImportRegistry(local->get(), &etcd);
  ASSERT_TRUE(copied.ok());
  EXPECT_EQ(*copied, 0u);
  EXPECT_EQ(*etcd.Get("u/bob"), "changed in etcd");
}

}  // namespace
}  // namespace converge::management
