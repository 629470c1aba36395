#include "engine/sync/selection.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace converge::engine {
namespace {

using ::testing::ElementsAre;

TEST(SelectionTest, TheDeepestRuleDecides) {
  Selection s;
  ASSERT_TRUE(s.Exclude("Photos").ok());
  ASSERT_TRUE(s.Include("Photos/2026").ok());
  EXPECT_TRUE(s.Excluded("Photos"));
  EXPECT_TRUE(s.Excluded("Photos/2025/a.jpg"));
  EXPECT_FALSE(s.Excluded("Photos/2026"));
  EXPECT_FALSE(s.Excluded("Photos/2026/a.jpg"));
  EXPECT_FALSE(s.Excluded("Photos2/a.jpg"));  // a sibling whose name starts alike
  EXPECT_FALSE(s.Excluded("Docs/Photos"));
  EXPECT_THAT(s.Rules(), ElementsAre("Photos", "Photos/2026 (included)"));
}

TEST(SelectionTest, IncludingAPathDropsTheRulesBelowIt) {
  Selection s;
  ASSERT_TRUE(s.Exclude("a/b").ok());
  ASSERT_TRUE(s.Exclude("a/c/d").ok());
  ASSERT_TRUE(s.Include("a").ok());  // nothing above excludes a: no rule is needed for it
  EXPECT_TRUE(s.empty());
  EXPECT_FALSE(s.Excluded("a/b/x"));
  ASSERT_TRUE(s.Exclude("a").ok());
  ASSERT_TRUE(s.Exclude("a/b").ok());  // already excluded by a: adds nothing
  EXPECT_THAT(s.Rules(), ElementsAre("a"));
}

TEST(SelectionTest, TextRoundTripsAndBadRulesAreRefused) {
  Selection s;
  ASSERT_TRUE(s.Exclude("Video").ok());
  ASSERT_TRUE(s.Include("Video/keep").ok());
  absl::StatusOr<Selection> back = Selection::Parse(s.ToText());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, s);
  EXPECT_FALSE(Selection::Parse("Video\n").ok());         // neither - nor +
  EXPECT_FALSE(Selection::Parse("-../etc\n").ok());       // not a relative path inside the folder
  EXPECT_FALSE(Selection::Parse("-/abs\n").ok());
  EXPECT_FALSE(s.Exclude("a/../b").ok());
}

TEST(SelectionTest, PathsAreNormalizedAsTyped) {
  EXPECT_EQ(NormalizeSelectionPath("./Photos//2026/").value(), "Photos/2026");
  EXPECT_FALSE(NormalizeSelectionPath("./").ok());
  EXPECT_FALSE(NormalizeSelectionPath("a/../../b").ok());
}

}  // namespace
}  // namespace converge::engine
