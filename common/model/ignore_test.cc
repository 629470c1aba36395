#include "common/model/ignore.h"

#include "gtest/gtest.h"

namespace converge {
namespace {

TEST(GlobMatchTest, StarsStayWithinANameAndDoubleStarsCross) {
  EXPECT_TRUE(GlobMatch("*.tmp", "a.tmp"));
  EXPECT_FALSE(GlobMatch("*.tmp", "d/a.tmp"));
  EXPECT_TRUE(GlobMatch("**/a.tmp", "a.tmp"));
  EXPECT_TRUE(GlobMatch("**/a.tmp", "x/y/a.tmp"));
  EXPECT_TRUE(GlobMatch("docs/**/draft-*", "docs/draft-1"));
  EXPECT_TRUE(GlobMatch("docs/**/draft-*", "docs/a/b/draft-1"));
  EXPECT_FALSE(GlobMatch("docs/**/draft-*", "docs/a/b/final"));
  EXPECT_TRUE(GlobMatch("build/**", "build/x/y"));
  EXPECT_TRUE(GlobMatch("file?.txt", "file1.txt"));
  EXPECT_FALSE(GlobMatch("file?.txt", "file/.txt"));
  EXPECT_TRUE(GlobMatch("[a-c]x", "bx"));
  EXPECT_FALSE(GlobMatch("[!a-c]x", "bx"));
  EXPECT_TRUE(GlobMatch("[!a-c]x", "dx"));
  EXPECT_TRUE(GlobMatch("a\\*b", "a*b"));
  EXPECT_FALSE(GlobMatch("a\\*b", "axb"));
  EXPECT_TRUE(GlobMatch("[unclosed", "[unclosed"));
}

TEST(IgnoreRulesTest, GitignoreSemantics) {
  const IgnoreRules rules = IgnoreRules::Parse(
      "# editor leftovers\n"
      "*.tmp\n"
      "!keep.tmp\n"
      "build/\n"
      "/notes.txt\n"
      "docs/**/draft-*\n"
      "  \n"
      "cache/\n"
      "!cache/important\n");
  EXPECT_TRUE(rules.Ignored("a.tmp", false));
  EXPECT_TRUE(rules.Ignored("deep/er/a.tmp", false));
  EXPECT_FALSE(rules.Ignored("deep/keep.tmp", false));
  EXPECT_TRUE(rules.Ignored("build", true));
  EXPECT_FALSE(rules.Ignored("build", false));  // a file named build is not a directory
  EXPECT_TRUE(rules.Ignored("build/out.o", false));
  EXPECT_TRUE(rules.Ignored("src/build/out.o", false));
  EXPECT_TRUE(rules.Ignored("notes.txt", false));
  EXPECT_FALSE(rules.Ignored("sub/notes.txt", false));
  EXPECT_TRUE(rules.Ignored("docs/x/draft-1.md", false));
  EXPECT_FALSE(rules.Ignored("docs/x/final.md", false));
  EXPECT_FALSE(rules.Ignored("src/main.cc", false));
  // Nothing below an ignored directory comes back.
  EXPECT_TRUE(rules.Ignored("cache/important", false));
  EXPECT_FALSE(rules.Ignored(".convergeignore", false));
}

TEST(IgnoreRulesTest, EmptyIgnoresNothing) {
  const IgnoreRules rules = IgnoreRules::Parse("# only a comment\n\n");
  EXPECT_TRUE(rules.empty());
  EXPECT_FALSE(rules.Ignored("anything", false));
}

}  // namespace
}  // namespace converge
