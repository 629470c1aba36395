#include "services/notification/hub.h"

#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace converge::notification {
namespace {

class Recorder : public Subscriber {
 public:
  void Deliver(const HeadEvent& e) override {
    events.emplace_back(e.namespace_id, e.seq);
    if (e.heartbeat) ++heartbeats;
  }
  bool HeartbeatDue(absl::Time) override { return due; }
  bool due = false;
  int heartbeats = 0;
  std::vector<std::pair<std::string, uint64_t>> events;
};

using Events = std::vector<std::pair<std::string, uint64_t>>;

TEST(HubTest, SubscribeDeliversCurrentHeadsThenPublishes) {
  Hub hub;
  EXPECT_EQ(hub.Publish({"a", 5, 0}), 0u);
  Recorder r;
  ASSERT_TRUE(hub.Subscribe(&r, {"a", "b"}).ok());
  EXPECT_EQ(r.events, (Events{{"a", 5}, {"b", 0}}));
  EXPECT_EQ(hub.Publish({"b", 1, 0}), 1u);
  EXPECT_EQ(hub.Publish({"c", 1, 0}), 0u);
  EXPECT_EQ(r.events.back(), (std::pair<std::string, uint64_t>{"b", 1}));
  EXPECT_EQ(r.events.size(), 3u);
}

TEST(HubTest, FansOutToEverySubscriberAndStopsAfterUnsubscribe) {
  Hub hub;
  std::vector<Recorder> rs(100);
  for (Recorder& r : rs) ASSERT_TRUE(hub.Subscribe(&r, {"ns"}).ok());
  EXPECT_EQ(hub.subscriber_count(), 100u);
  EXPECT_EQ(hub.Publish({"ns", 7, 0}), 100u);
  for (Recorder& r : rs) EXPECT_EQ(r.events.back().second, 7u);
  hub.Unsubscribe(&rs[0]);
  EXPECT_EQ(hub.Publish({"ns", 8, 0}), 99u);
  EXPECT_EQ(rs[0].events.back().second, 7u);
}

TEST(HubTest, HeadNeverMovesBackward) {
  Hub hub;
  hub.Publish({"ns", 9, 0});
  hub.Publish({"ns", 3, 0});  // late, reordered publish
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

TEST(HubTest, HeadsRepeatWhatASubscriberFollows) {
  Hub hub;
  hub.Publish({"a", 4, 0});
  Recorder r;
  ASSERT_TRUE(hub.Subscribe(&r, {"a", "b"}).ok());
  hub.Publish({"b", 2, 0});
  std::vector<HeadEvent> heads = hub.Heads(&r);
  ASSERT_EQ(heads.size(), 2u);
  EXPECT_EQ(heads[0].namespace_id, "a");
  EXPECT_EQ(heads[0].seq, 4u);
  EXPECT_EQ(heads[1].seq, 2u);
  Recorder stranger;
  EXPECT_TRUE(hub.Heads(&stranger).empty());

  Recorder quiet;
  quiet.due = true;
  ASSERT_TRUE(hub.Subscribe(&quiet, {"a"}).ok());
  EXPECT_EQ(hub.Heartbeat(absl::Now()), 1u);
  EXPECT_EQ(quiet.heartbeats, 1);
  EXPECT_EQ(quiet.events.back(), (std::pair<std::string, uint64_t>{"a", 4}));
  EXPECT_EQ(r.heartbeats, 0);
}

TEST(HubTest, DroppedDeliveriesStillAdvanceTheHead) {
  Hub hub;
  hub.set_drop_ratio(1.0);
  Recorder r;
  ASSERT_TRUE(hub.Subscribe(&r, {"ns"}).ok());
  EXPECT_EQ(hub.Publish({"ns", 3, 0}), 0u);
  EXPECT_EQ(r.events, (Events{{"ns", 0}}));  // only the head at subscribe time
  EXPECT_EQ(hub.dropped(), 1u);
  EXPECT_EQ(hub.Heads(&r)[0].seq, 3u);  // a heartbeat would carry it
}

}  // namespace
}  // namespace converge::notification
