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

TEST(ConflictNameTest, CarriesTheDeviceNameSanitised) {
  const absl::Time t = absl::FromUnixSeconds(1795774500);
  EXPECT_EQ(MakeConflictName("doc.txt", "dev-a6e0", t, "laptop"), "doc (conflict laptop dev-a6e0 20261127T101500Z).txt");
  auto c = ParseConflictName(MakeConflictName("d/doc.txt", "dev-a6e0", t, "laptop"));
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->original_path, "d/doc.txt");
  EXPECT_EQ(c->device, "dev-a6e0");
  EXPECT_EQ(c->device_label, "laptop");
  EXPECT_EQ(c->detected_at, "20261127T101500Z");
  // Names from the network: nothing that splits the name, leaves the directory or hides it.
  EXPECT_EQ(ConflictLabel("Anna's MacBook Pro"), "Anna-s-MacBook-Pro");
  EXPECT_EQ(ConflictLabel("../../etc/passwd"), "");  // only dots and separators: nothing left
  EXPECT_EQ(ConflictLabel("a/b (c) d"), "a-b-c-d");
  EXPECT_EQ(ConflictLabel("  "), "");
  EXPECT_EQ(ConflictLabel(".hidden"), "");
  EXPECT_EQ(ConflictLabel("Gerät"), "Ger-t");
  EXPECT_EQ(ConflictLabel(std::string(100, 'x')).size(), kMaxConflictLabelBytes);
  for (const char* hostile : {"a b", "x/y", "(conflict", "dev 2026Z", "../.."}) {
    auto parsed = ParseConflictName(MakeConflictName("f.txt", "dev-1", t, hostile));
    ASSERT_TRUE(parsed.has_value()) << hostile;
    EXPECT_EQ(parsed->original_path, "f.txt") << hostile;
    EXPECT_EQ(parsed->device, "dev-1") << hostile;
  }
  // No name: the older form.
  EXPECT_EQ(MakeConflictName("f.txt", "dev-1", t, "///"), "f (conflict dev-1 20261127T101500Z).txt");
  EXPECT_FALSE(ParseConflictName("f (conflict a b dev-1 20261127T101500Z).txt").has_value());
}

}  // namespace
}  // namespace converge
