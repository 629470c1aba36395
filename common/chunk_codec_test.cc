#include "common/chunk_codec.h"

#include <random>

#include "gtest/gtest.h"

namespace converge {
namespace {

std::string Random(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    const uint64_t v = rng();
    memcpy(&s[i], &v, std::min<size_t>(8, n - i));
  }
  return s;
}

TEST(ChunkCodecTest, CompressesOnlyWhenItPays) {
  std::string text;
  for (int i = 0; i < 20000; ++i) text += "the quick brown fox " + std::to_string(i % 100) + "\n";
  auto z = CompressIfWorthIt(text);
  ASSERT_TRUE(z.has_value());
  EXPECT_LT(z->size(), text.size() / 5);
  auto back = Decompress(*z, text.size());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, text);
  EXPECT_FALSE(CompressIfWorthIt(Random(1 << 20, 1)).has_value());
  EXPECT_FALSE(CompressIfWorthIt("tiny").has_value());
}

TEST(ChunkCodecTest, RefusesCorruptAndOversizedFrames) {
  std::string text(100000, 'a');
  auto z = CompressIfWorthIt(text);
  ASSERT_TRUE(z.has_value());
  EXPECT_EQ(Decompress(*z, 1000).status().code(), absl::StatusCode::kInvalidArgument);  // bomb
  EXPECT_EQ(Decompress("not zstd at all", 1000).status().code(), absl::StatusCode::kInvalidArgument);
  std::string broken = *z;
  broken[broken.size() / 2] ^= 0x55;
  auto bad = Decompress(broken, text.size());
  EXPECT_TRUE(!bad.ok() || *bad != text);
}

TEST(ChunkCodecTest, DeltaOfAnEditedChunkCostsAboutTheEdit) {
  const std::string base = Random(1 << 20, 2);
  std::string target = base;
  target.insert(500000, Random(1024, 3));  // 1 KiB inserted
  auto delta = DeltaEncode(target, base, target.size());
  ASSERT_TRUE(delta.has_value());
  EXPECT_LT(delta->size(), 1200u);
  auto back = DeltaDecode(*delta, base, 4 << 20);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, target);
  // With the wrong base it does not decode to the target.
  auto wrong = DeltaDecode(*delta, Random(1 << 20, 9), 4 << 20);
  EXPECT_TRUE(!wrong.ok() || *wrong != target);
  // Unrelated content: no useful delta.
  EXPECT_FALSE(DeltaEncode(Random(1 << 20, 4), base, 1 << 20).has_value());
}

}  // namespace
}  // namespace converge
