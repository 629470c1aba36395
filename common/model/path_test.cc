#include "common/model/path.h"

#include <string>

#include "gtest/gtest.h"

namespace converge {
namespace {

TEST(ValidateRelativePathTest, AcceptsOrdinaryPaths) {
  for (const char* p : {"a", "a/b/c.txt", "dir with space/ü.md", ".hidden", "a/.converge",
                        "..dots", "x..y/z"}) {
    EXPECT_TRUE(ValidateRelativePath(p).ok()) << p;
  }
}

TEST(ValidateRelativePathTest, RejectsTraversalAndAbsolute) {
  for (const char* p : {"..", "../x", "a/../../etc/passwd", "a/..", "/etc/passwd", "./a", "a/./b",
                        "a//b", "a/", ""}) {
    absl::Status s = ValidateRelativePath(p);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << p;
  }
}

TEST(ValidateRelativePathTest, RejectsNulBackslashReservedAndInvalidUtf8) {
  EXPECT_FALSE(ValidateRelativePath(std::string("a\0b", 3)).ok());
  EXPECT_FALSE(ValidateRelativePath("a\\..\\b").ok());
  EXPECT_FALSE(ValidateRelativePath(".converge/state").ok());
  EXPECT_FALSE(ValidateRelativePath(".converge").ok());
  EXPECT_FALSE(ValidateRelativePath(".Converge/index.rocksdb/CURRENT").ok());  // macOS, Windows
  EXPECT_TRUE(ValidateRelativePath("a/.converge").ok());
  EXPECT_FALSE(ValidateRelativePath("bad\xff").ok());
  EXPECT_FALSE(ValidateRelativePath("overlong\xc0\xaf").ok());
  EXPECT_FALSE(ValidateRelativePath("surrogate\xed\xa0\x80").ok());
  EXPECT_FALSE(ValidateRelativePath("truncated\xe2\x82").ok());
  EXPECT_TRUE(ValidateRelativePath("euro\xe2\x82\xac").ok());
}

TEST(ValidateRelativePathTest, EnforcesLengthLimits) {
  EXPECT_TRUE(ValidateRelativePath(std::string(255, 'n')).ok());
  EXPECT_FALSE(ValidateRelativePath(std::string(256, 'n')).ok());
  std::string deep;
  while (deep.size() <= kMaxPathBytes) deep += "abcdefgh/";
  deep += "f";
  EXPECT_FALSE(ValidateRelativePath(deep).ok());
}

TEST(ValidateSealedPathTest, TakesLongBase32NamesAndNothingElse) {
  const std::string name(kMaxSealedNameBytes, 'q');
  EXPECT_TRUE(ValidateSealedPath(name).ok());
  EXPECT_TRUE(ValidateSealedPath(name + "/abc234/" + name).ok());
  EXPECT_FALSE(ValidateSealedPath(name + "q").ok());  // a name over the limit
  EXPECT_FALSE(ValidateRelativePath(name).ok());       // and as a plain path already
  for (const char* bad : {"", "a//b", "/abc", "abc/", "..", "a/../b", "abc.txt", "ABC", "a1b", "a b", "a\\b"}) {
    EXPECT_FALSE(ValidateSealedPath(bad).ok()) << bad;
  }
  std::string deep;
  for (size_t i = 0; i < kMaxPathDepth; ++i) deep += deep.empty() ? "a" : "/a";
  EXPECT_TRUE(ValidateSealedPath(deep).ok());
  EXPECT_FALSE(ValidateSealedPath(deep + "/a").ok());
  std::string wide;
  while (wide.size() <= kMaxSealedPathBytes) wide += (wide.empty() ? "" : "/") + name;
  EXPECT_FALSE(ValidateSealedPath(wide).ok());
  // A store takes either kind where a device names a path.
  EXPECT_TRUE(ValidateStoredPath("docs/readme.txt").ok());
  EXPECT_TRUE(ValidateStoredPath(name).ok());
  EXPECT_FALSE(ValidateStoredPath("../up").ok());
}

TEST(ValidateRelativePathTest, RefusesNamesMacOsOrWindowsCouldNotHold) {
  for (const char* bad : {"report.", "notes ", "dir./f", "a/b ", ".converge ", ".converge.", "CON", "con.txt",
                          "x/Aux.tar.gz", "lpt9", "COM1.log", "a:b", "what?", "star*", "pipe|", "q\"uote", "<tag>",
                          "tab\there", "bell\x07"}) {
    EXPECT_EQ(ValidateRelativePath(bad).code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  for (const char* good : {"console", "com10", "lpt", "nul-ish.txt", ".hidden", "a.b.c", "x/.dotdir/y"}) {
    EXPECT_TRUE(ValidateRelativePath(good).ok()) << good;
  }
  std::string deep = "d";
  for (size_t i = 1; i < kMaxPathDepth; ++i) deep += "/d";
  EXPECT_TRUE(ValidateRelativePath(deep).ok());
  EXPECT_EQ(ValidateRelativePath(deep + "/d").code(), absl::StatusCode::kInvalidArgument);
}

TEST(ValidateIdTest, AcceptsSlugsRejectsOthers) {
  EXPECT_TRUE(ValidateId("user", "alice").ok());
  EXPECT_TRUE(ValidateId("user", "a1.b_c-d").ok());
  EXPECT_FALSE(ValidateId("user", "").ok());
  EXPECT_FALSE(ValidateId("user", "Alice").ok());
  EXPECT_FALSE(ValidateId("user", "-a").ok());
  EXPECT_FALSE(ValidateId("user", "a/b").ok());
  EXPECT_FALSE(ValidateId("user", std::string(65, 'a')).ok());
}

TEST(PathPartsTest, ParentAndBase) {
  EXPECT_EQ(ParentPath("a/b/c"), "a/b");
  EXPECT_EQ(ParentPath("c"), "");
  EXPECT_EQ(BaseName("a/b/c"), "c");
  EXPECT_EQ(BaseName("c"), "c");
}

TEST(CaseFoldTest, NameTwinsFoldAlike) {
  EXPECT_EQ(CaseFold("caf\xc3\xa9.txt"), CaseFold("cafe\xcc\x81.txt"));   // NFC é and NFD e + combining acute
  EXPECT_EQ(CaseFold("\xe2\x84\xaa-file"), CaseFold("k-file"));           // Kelvin sign K
  EXPECT_EQ(CaseFold("STRASSE"), CaseFold("stra\xc3\x9f" "e"));            // full folding: ß is ss
  EXPECT_EQ(CaseFold("\xce\xa3\xce\xbf\xcf\x86\xce\xaf\xce\xb1"), CaseFold("\xcf\x83\xce\xbf\xcf\x86\xce\xaf\xce\xb1"));  // Σ σ
  EXPECT_EQ(CaseFold("Dir/Sub/File"), "dir/sub/file");  // component by component
  EXPECT_NE(CaseFold("caf\xc3\xa9"), CaseFold("cafe"));
}

TEST(CaseFoldTest, FoldsCapitalsOfEveryScript) {
  EXPECT_EQ(CaseFold("Docs/README.md"), "docs/readme.md");
  EXPECT_EQ(CaseFold("docs/readme.md"), "docs/readme.md");
  EXPECT_EQ(CaseFold("\xc3\x84pfel"), "\xc3\xa4pfel");          // Ä -> ä
  EXPECT_EQ(CaseFold("\xc3\x97"), "\xc3\x97");                  // × has no small form
  EXPECT_EQ(CaseFold("\xc5\x81\xc3\xb3" "d\xc5\xba"), "\xc5\x82\xc3\xb3" "d\xc5\xba");  // Łódź
  EXPECT_EQ(CaseFold("\xc5\xb9"), "\xc5\xba");                  // Ź -> ź
  EXPECT_EQ(CaseFold("\xce\xa9"), "\xcf\x89");                  // Ω -> ω
  EXPECT_EQ(CaseFold("\xd0\x9c\xd0\xb8\xd1\x80"), "\xd0\xbc\xd0\xb8\xd1\x80");  // Мир
  EXPECT_EQ(CaseFold("\xd0\x81"), "\xd1\x91");                  // Ё -> ё
  EXPECT_EQ(CaseFold("euro\xe2\x82\xac"), "euro\xe2\x82\xac");  // three-byte: kept
  EXPECT_NE(CaseFold("a.txt"), CaseFold("b.txt"));
}

}  // namespace
}  // namespace converge
