#include "common/model/conflict_name.h"

#include "gtest/gtest.h"

namespace converge {
namespace {

TEST(ConflictNameTest, MakesAndReadsNames) {
  const absl::Time t = absl::FromUnixSeconds(1795774500);  // 2026-11-27 10:15:00 UTC
  EXPECT_EQ(MakeConflictName("docs/notes.txt", "dev-ab12", t), "docs/notes (conflict dev-ab12 20261127T101500Z).txt");
  EXPECT_EQ(MakeConflictName("Makefile", "dev-x", t), "Makefile (conflict dev-x 20261127T101500Z)");
  EXPECT_EQ(MakeConflictName(".bashrc", "dev-x", t), ".bashrc (conflict dev-x 20261127T101500Z)");

  auto c = ParseConflictName("docs/notes (conflict dev-ab12 20261127T101500Z).txt");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->original_path, "docs/notes.txt");
  EXPECT_EQ(c->device, "dev-ab12");
  EXPECT_EQ(c->detected_at, "20261127T101500Z");
  auto d = ParseConflictName(MakeConflictName("a/b.tar.gz", "dev-x-2", t));
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->original_path, "a/b.tar.gz");
  EXPECT_EQ(d->device, "dev-x-2");
  EXPECT_FALSE(ParseConflictName("plain.txt").has_value());
  EXPECT_FALSE(ParseConflictName("a (conflict nospace).txt").has_value());
  EXPECT_FALSE(ParseConflictName("d (conflict dev-1 20260101T000000Z)/plain.txt").has_value());
  EXPECT_TRUE(IsConflictCopy("d/x (conflict dev-1 20260101T000000Z)"));
}

}  // namespace
}  // namespace converge
