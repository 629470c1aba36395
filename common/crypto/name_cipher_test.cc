#include "common/crypto/name_cipher.h"

#include <vector>

#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace converge::crypto {
namespace {

TEST(NameCipherTest, APathMapsToTheSameEncryptedPathEveryTimeAndBack) {
  const Keyring ring = Keyring::Create();
  const NameKeys keys = ring.Names();
  const std::string path = "Photos/2026/Été à Paris/IMG 0001.jpg";
  absl::StatusOr<std::string> enc = EncryptPath(keys, path);
  ASSERT_TRUE(enc.ok()) << enc.status();
  EXPECT_EQ(*enc, *EncryptPath(keys, path));
  EXPECT_EQ(*enc, *EncryptPath(Keyring::Parse(ring.Serialize())->Names(), path));  // another device
  EXPECT_EQ(enc->find("Photos"), std::string::npos);
  EXPECT_EQ(std::count(enc->begin(), enc->end(), '/'), 3);
  for (char c : *enc) EXPECT_TRUE(c == '/' || (c >= 'a' && c <= 'z') || (c >= '2' && c <= '7')) << c;
  absl::StatusOr<std::string> back = DecryptPath(keys, *enc);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, path);
}

TEST(NameCipherTest, EqualNamesInDifferentFoldersLookUnrelated) {
  const NameKeys keys = Keyring::Create().Names();
  const std::string a = *EncryptPath(keys, "a/notes.txt"), b = *EncryptPath(keys, "b/notes.txt");
  EXPECT_NE(a.substr(a.find('/')), b.substr(b.find('/')));
  EXPECT_NE(*EncryptPath(keys, "x"), *EncryptPath(Keyring::Create().Names(), "x"));
}

TEST(NameCipherTest, LengthsShowOnlyByBlocksAndTheLongestNameFits) {
  const NameKeys keys = Keyring::Create().Names();
  EXPECT_EQ(EncryptName(keys, "", "a")->size(), EncryptName(keys, "", std::string(31, 'b'))->size());
  EXPECT_LT(EncryptName(keys, "", "a")->size(), EncryptName(keys, "", std::string(32, 'b'))->size());
  const std::string longest(255, 'z');
  absl::StatusOr<std::string> enc = EncryptName(keys, "", longest);
  ASSERT_TRUE(enc.ok());
  EXPECT_EQ(enc->size(), kMaxEncryptedNameChars);
  EXPECT_EQ(*DecryptName(keys, "", *enc), longest);
  EXPECT_FALSE(EncryptName(keys, "", std::string(256, 'z')).ok());
  EXPECT_FALSE(EncryptName(keys, "", "").ok());
  EXPECT_FALSE(EncryptName(keys, "", "a/b").ok());
}

TEST(NameCipherTest, TheSizeOfAnEncryptedPathIsKnownWithoutTheKey) {
  const NameKeys keys = Keyring::Create().Names();
  for (const std::string& path : std::vector<std::string>{"a", "docs/plan.txt", std::string(127, 'x') + "/" + std::string(128, 'y')}) {
    size_t longest = 0;
    const size_t size = EncryptedPathSize(path, &longest);
    const std::string enc = *EncryptPath(keys, path);
    EXPECT_EQ(size, enc.size()) << path;
    size_t most = 0;
    for (absl::string_view part : absl::StrSplit(enc, '/')) most = std::max(most, part.size());
    EXPECT_EQ(longest, most) << path;
  }
  EXPECT_LE(EncryptedNameSize(127), 255u);  // what a store holding 255-byte names takes
  EXPECT_GT(EncryptedNameSize(128), 255u);
}

TEST(NameCipherTest, AStoreThatAltersOrMovesANameIsCaught) {
  const NameKeys keys = Keyring::Create().Names();
  const std::string enc = *EncryptPath(keys, "docs/plan.txt");
  const std::string other = *EncryptPath(keys, "mail/x");
  const std::string name = enc.substr(enc.find('/') + 1);
  // The same encrypted name under another folder: it was bound to "docs".
  EXPECT_EQ(DecryptPath(keys, other.substr(0, other.find('/')) + "/" + name).status().code(),
            absl::StatusCode::kDataLoss);
  std::string flipped = enc;
  flipped[flipped.size() - 2] = flipped[flipped.size() - 2] == 'a' ? 'b' : 'a';
  EXPECT_EQ(DecryptPath(keys, flipped).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecryptPath(Keyring::Create().Names(), enc).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_FALSE(DecryptPath(keys, "NOT-BASE32").ok());
  EXPECT_FALSE(DecryptPath(keys, "").ok());
  EXPECT_FALSE(DecryptPath(keys, enc + "/").ok());
  EXPECT_FALSE(DecryptName(keys, "", std::string(kMaxEncryptedNameChars + 1, 'a')).ok());
}

}  // namespace
}  // namespace converge::crypto
