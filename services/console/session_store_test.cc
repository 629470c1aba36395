#include "services/console/session_store.h"

#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"

namespace converge::console {
namespace {

class SessionStoreTest : public ::testing::Test {
 protected:
  FakeClock clock_{absl::FromUnixSeconds(1'800'000'000)};
  SessionStore store_{&clock_, absl::Minutes(30), 3};
};

TEST_F(SessionStoreTest, ASessionIsFoundByItsIdOnlyAndEndsWhenIdleOrExpired) {
  Session s = store_.Create("op-token", "", clock_.Now() + absl::Hours(8));
  EXPECT_EQ(s.id.size(), 43u);  // 256 bits, base64url
  EXPECT_NE(s.id, s.csrf);
  std::optional<Session> found = store_.Find(s.id);
  ASSERT_TRUE(found.has_value());
  EXPECT_TRUE(found->is_operator());
  EXPECT_EQ(found->bearer, "op-token");
  EXPECT_TRUE(found->id.empty());  // the store keeps no id, only its digest
  EXPECT_FALSE(store_.Find(s.csrf).has_value());
  EXPECT_FALSE(store_.Find(s.id.substr(1)).has_value());
  EXPECT_FALSE(store_.Find("").has_value());
  EXPECT_FALSE(store_.Find(std::string(10000, 'a')).has_value());

  clock_.Advance(absl::Minutes(29));
  EXPECT_TRUE(store_.Find(s.id).has_value());  // used: the idle time starts again
  clock_.Advance(absl::Minutes(29));
  EXPECT_TRUE(store_.Find(s.id).has_value());
  clock_.Advance(absl::Minutes(31));
  EXPECT_FALSE(store_.Find(s.id).has_value());

  Session user = store_.Create("cvu1.x", "alice", clock_.Now() + absl::Minutes(10));
  clock_.Advance(absl::Minutes(10));
  EXPECT_FALSE(store_.Find(user.id).has_value());  // its credential expired
}

TEST_F(SessionStoreTest, CsrfMustMatchExactlyAndSignOutEndsTheSession) {
  Session s = store_.Create("cvu1.x", "alice", clock_.Now() + absl::Hours(1));
  std::optional<Session> found = store_.Find(s.id);
  ASSERT_TRUE(found.has_value());
  EXPECT_TRUE(SessionStore::CsrfMatches(*found, s.csrf));
  EXPECT_FALSE(SessionStore::CsrfMatches(*found, ""));
  EXPECT_FALSE(SessionStore::CsrfMatches(*found, s.csrf + "x"));
  std::string other = s.csrf;
  other[0] = other[0] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(SessionStore::CsrfMatches(*found, other));
  store_.Remove(s.id);
  EXPECT_FALSE(store_.Find(s.id).has_value());
}

TEST_F(SessionStoreTest, TheLeastRecentlyUsedGivesWayAtTheLimit) {
  Session a = store_.Create("t", "a", clock_.Now() + absl::Hours(1));
  clock_.Advance(absl::Seconds(1));
  Session b = store_.Create("t", "b", clock_.Now() + absl::Hours(1));
  clock_.Advance(absl::Seconds(1));
  Session c = store_.Create("t", "c", clock_.Now() + absl::Hours(1));
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(store_.Find(a.id).has_value());  // a is now the most recently used
  Session d = store_.Create("t", "d", clock_.Now() + absl::Hours(1));
  EXPECT_EQ(store_.size(), 3u);
  EXPECT_TRUE(store_.Find(a.id).has_value());
  EXPECT_FALSE(store_.Find(b.id).has_value());
  EXPECT_TRUE(store_.Find(c.id).has_value());
  EXPECT_TRUE(store_.Find(d.id).has_value());
}

}  // namespace
}  // namespace converge::console
