#include "common/crypto/chunk_cipher.h"

#include <set>

#include "gtest/gtest.h"

namespace converge::crypto {
namespace {

constexpr size_t kMax = 1 << 20;

std::string Bytes(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i * 7 + (i >> 9));
  return s;
}

TEST(ChunkCipherTest, ASealedChunkOpensToItsBytesAndHidesThem) {
  const Keyring ring = Keyring::Create();
  for (size_t n : {size_t{0}, size_t{1}, size_t{255}, size_t{4096}, size_t{300000}, kMax}) {
    const std::string plain = Bytes(n, 'a');
    const std::string sealed = SealChunk(ring.Current(), plain);
    EXPECT_EQ(sealed.size(), SealedSize(n));
    if (n >= 64) {
      EXPECT_EQ(sealed.find(plain.substr(0, 64)), std::string::npos);
    }
    absl::StatusOr<std::string> back = OpenChunk(ring, sealed, kMax);
    ASSERT_TRUE(back.ok()) << n << ": " << back.status();
    EXPECT_EQ(*back, plain);
  }
}

TEST(ChunkCipherTest, EqualChunksSealAlikeWithinANamespaceAndUnrelatedAcrossThem) {
  const Keyring a = Keyring::Create(), b = Keyring::Create();
  const std::string plain = Bytes(1000, 'x');
  EXPECT_EQ(SealChunk(a.Current(), plain), SealChunk(a.Current(), plain));  // the store deduplicates
  EXPECT_NE(HashOf(SealChunk(a.Current(), plain)), HashOf(SealChunk(b.Current(), plain)));
  EXPECT_NE(SealChunk(a.Current(), plain), SealChunk(a.Current(), Bytes(1000, 'y')));
}

TEST(ChunkCipherTest, WhatAStoreCanDoToAChunkIsRefused) {
  const Keyring ring = Keyring::Create(), other = Keyring::Create();
  const std::string s1 = SealChunk(ring.Current(), Bytes(5000, '1'));
  // One bit flipped anywhere: the header (epoch aside), the nonce, the body, the tag.
  for (size_t at : {size_t{0}, size_t{5}, size_t{40}, s1.size() - 1}) {
    std::string flipped = s1;
    flipped[at] ^= 1;
    EXPECT_FALSE(OpenChunk(ring, flipped, kMax).ok()) << at;
  }
  // Another namespace's key, a truncated chunk, an unknown epoch, a chunk above the limit.
  EXPECT_EQ(OpenChunk(other, s1, kMax).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(OpenChunk(ring, s1.substr(0, 100), kMax).status().code(), absl::StatusCode::kInvalidArgument);
  std::string epoch9 = s1;
  epoch9[1] = 9;
  EXPECT_EQ(OpenChunk(ring, epoch9, kMax).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(OpenChunk(ring, s1, 1000).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ChunkCipherTest, ChunksOfAnEarlierEpochStayReadableAfterRotation) {
  Keyring ring = Keyring::Create();
  const std::string plain = Bytes(2000, 'e');
  const std::string old_sealed = SealChunk(ring.Current(), plain);
  ASSERT_TRUE(ring.Rotate().ok());
  EXPECT_NE(SealChunk(ring.Current(), plain), old_sealed);
  absl::StatusOr<std::string> back = OpenChunk(ring, old_sealed, kMax);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, plain);
}

TEST(ChunkCipherTest, ARecordOpensOnlyUnderThePathItWasSealedFor) {
  const Keyring ring = Keyring::Create();
  const std::string sealed = SealRecord(ring.Current(), "encrypted/path", "the version");
  EXPECT_EQ(sealed.find("the version"), std::string::npos);
  EXPECT_NE(SealRecord(ring.Current(), "encrypted/path", "the version"), sealed);  // random nonce
  absl::StatusOr<std::string> back = OpenRecord(ring, "encrypted/path", sealed);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, "the version");
  EXPECT_EQ(OpenRecord(ring, "encrypted/other", sealed).status().code(), absl::StatusCode::kDataLoss);
  std::string flipped = sealed;
  flipped[flipped.size() - 1] ^= 1;
  EXPECT_EQ(OpenRecord(ring, "encrypted/path", flipped).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(OpenRecord(ring, "encrypted/path", "x").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(OpenRecord(Keyring::Create(), "encrypted/path", sealed).status().code(), absl::StatusCode::kDataLoss);
}

TEST(ChunkCipherTest, PaddingLeavesFewDistinctSizesAndCostsLittle) {
  std::set<size_t> sizes;
  for (size_t n = 200000; n < 300000; ++n) {
    const size_t p = PaddedSize(n);
    ASSERT_GT(p, n);
    ASSERT_LE(p, n + n / 8 + 1);
    sizes.insert(p);
  }
  // 100,000 plaintext sizes fall into a few hundred buckets.
  EXPECT_LT(sizes.size(), 400u);
  EXPECT_EQ(PaddedSize(0), 256u);
  EXPECT_EQ(PaddedSize(100), 256u);
}

TEST(ChunkCipherTest, TheGearTableIsTheNamespacesOwnAndTheSameOnEveryDevice) {
  const Keyring a = Keyring::Create(), b = Keyring::Create();
  const auto ta = GearTable(a.Current());
  EXPECT_EQ(ta, GearTable(*Keyring::Parse(a.Serialize())->Content(1)));
  EXPECT_NE(ta, GearTable(b.Current()));
  EXPECT_EQ(std::set<uint64_t>(ta.begin(), ta.end()).size(), 256u);
}

TEST(ChunkCipherTest, ACompressedPayloadSaysSoUnderTheTagAndOpensOnlyForACallerThatDecodesIt) {
  const Keyring ring = Keyring::Create();
  const std::string payload = "pretend these are zstd bytes";
  const std::string sealed = SealChunk(ring.Current(), payload, /*compressed=*/true);
  bool compressed = false;
  absl::StatusOr<std::string> back = OpenChunk(ring, sealed, 1 << 20, &compressed);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, payload);
  EXPECT_TRUE(compressed);
  EXPECT_EQ(OpenChunk(ring, sealed, 1 << 20).status().code(), absl::StatusCode::kInvalidArgument);
  // The flag is authenticated: a store that flips it (either way) gets nothing opened.
  std::string flipped = sealed;
  flipped[0] = 1;
  EXPECT_EQ(OpenChunk(ring, flipped, 1 << 20, &compressed).status().code(), absl::StatusCode::kDataLoss);
  std::string raw = SealChunk(ring.Current(), payload);
  ASSERT_TRUE(OpenChunk(ring, raw, 1 << 20, &compressed).ok());
  EXPECT_FALSE(compressed);
  raw[0] = 2;
  EXPECT_EQ(OpenChunk(ring, raw, 1 << 20, &compressed).status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace converge::crypto
