#include "services/notification/hub.h"

#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace converge::notification {
namespace {

class Recorder : public Subscriber {
 public:
  void Deliver(const std::string& ns, uint64_t seq) override { events.emplace_back(ns, seq); }
  std::vector<std::pair<std::string, uint64_t>> events;
};

using Events = std::vector<std::pair<std::string, uint64_t>>;

TEST(HubTest, SubscribeDeliversCurrentHeadsThenPublishes) {
  Hub hub;
  EXPECT_EQ(hub.Publish("a", 5), 0u);
  Recorder r;
  ASSERT_TRUE(hub.Subscribe(&r, {"a", "b"}).ok());
  EXPECT_EQ(r.events, (Events{{"a", 5}, {"b", 0}}));
  EXPECT_EQ(hub.Publish("b", 1), 1u);
  EXPECT_EQ(hub.Publish("c", 1), 0u);
  EXPECT_EQ(r.events.back(), (std::pair<std::string, uint64_t>{"b", 1}));
  EXPECT_EQ(r.events.size(), 3u);
}

TEST(HubTest, FansOutToEverySubscriberAndStopsAfterUnsubscribe) {
  Hub hub;
  std::vector<Recorder> rs(100);
  for (Recorder& r : rs) ASSERT_TRUE(hub.Subscribe(&r, {"ns"}).ok());
  EXPECT_EQ(hub.subscriber_count(), 100u);
  EXPECT_EQ(hub.Publish("ns", 7), 100u);
  for (Recorder& r : rs) EXPECT_EQ(r.events.back().second, 7u);
  hub.Unsubscribe(&rs[0]);
  EXPECT_EQ(hub.Publish("ns", 8), 99u);
  EXPECT_EQ(rs[0].events.back().second, 7u);
}

TEST(HubTest, HeadNeverMovesBackward) {
  Hub hub;
  hub.Publish("ns", 9);
  hub.Publish("ns", 3);  // late, reordered publish
  Recorder r;
  ASSERT_TRUE(hub.Subscribe(&r, {"ns"}).ok());
  EXPECT_EQ(r.events, (Events{{"ns", 9}}));
}

TEST(HubTest, RejectsBadSubscriptions) {
  Hub hub;
  Recorder r;
  EXPECT_EQ(hub.Subscribe(&r, {}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(hub.Subscribe(&r, {"../x"}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(hub.subscriber_count(), 0u);
}

}  // namespace
}  // namespace converge::notification
