#include "common/crypto/chunk_cipher.h"

#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
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
    EXPECT_LE(sealed.size(), SealedBound(n));
    EXPECT_LE(sealed.size(), n + n / 8 + 400);
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

// The frames of a sealed chunk: where each starts, by their length fields (after the header).
std::vector<std::pair<size_t, size_t>> Frames(const std::string& sealed) {
  std::vector<std::pair<size_t, size_t>> out;
  for (size_t at = 29; at + 4 <= sealed.size();) {
    const size_t len = static_cast<uint8_t>(sealed[at]) | (static_cast<uint8_t>(sealed[at + 1]) << 8) |
                       (static_cast<uint8_t>(sealed[at + 2]) << 16) | (static_cast<uint8_t>(sealed[at + 3]) << 24);
    out.emplace_back(at, 4 + len);
    at += 4 + len;
  }
  return out;
}

std::string Random(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (char& c : s) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x);
  }
  return s;
}

TEST(ChunkCipherTest, AnEditedChunkSealsToTheSameFramesButAroundTheEdit) {
  const Keyring ring = Keyring::Create();
  const std::string before = Random(1 << 20, 1);
  std::string after = before;
  after.insert(500000, "one kilobyte inserted, more or less", 35);
  const std::string a = SealChunk(ring.Current(), before), b = SealChunk(ring.Current(), after);
  const auto fa = Frames(a), fb = Frames(b);
  ASSERT_GT(fa.size(), 40u);  // about 12 KiB a frame
  std::set<std::string> old_frames;
  for (auto [at, len] : fa) old_frames.insert(a.substr(at, len));
  size_t fresh_bytes = 0;
  for (auto [at, len] : fb) {
    if (!old_frames.count(b.substr(at, len))) fresh_bytes += len;
  }
  EXPECT_GT(fresh_bytes, 0u);
  EXPECT_LT(fresh_bytes, 3 * kMaxFrameBytes);  // the frame of the edit, maybe a neighbour
  absl::StatusOr<std::string> back = OpenChunk(ring, b, kMax + 64);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, after);
}

TEST(ChunkCipherTest, FramesDroppedRepeatedSwappedOrBorrowedAreRefused) {
  const Keyring ring = Keyring::Create();
  const std::string s = SealChunk(ring.Current(), Random(200000, 2));
  const std::string other = SealChunk(ring.Current(), Random(200000, 3));
  const auto f = Frames(s), g = Frames(other);
  ASSERT_GE(f.size(), 3u);
  const auto frame = [&](size_t i) { return s.substr(f[i].first, f[i].second); };
  const std::string head = s.substr(0, 29);
  std::string rest;
  for (size_t i = 1; i < f.size(); ++i) rest += frame(i);
  std::string tail;
  for (size_t i = 2; i < f.size(); ++i) tail += frame(i);
  const std::vector<std::string> forged = {
      head + rest,                                     // the first frame dropped
      head + frame(0) + frame(0) + rest,               // repeated
      head + frame(1) + frame(0) + tail,               // two swapped
      head + other.substr(g[0].first, g[0].second) + rest,  // another chunk's frame
      s.substr(0, s.size() - 1),                       // cut short
  };
  for (size_t i = 0; i < forged.size(); ++i) {
    absl::StatusOr<std::string> opened = OpenChunk(ring, forged[i], kMax);
    EXPECT_FALSE(opened.ok()) << i;
  }
  ASSERT_TRUE(OpenChunk(ring, s, kMax).ok());
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

TEST(ChunkCipherTest, ACompressedFrameSaysSoUnderTheTagAndOpensOnlyForACallerThatDecodesIt) {
  const Keyring ring = Keyring::Create();
  // A pretend codec: "compresses" a frame to its first half, and back by doubling it.
  const Compressor halve = [](absl::string_view in) { return std::string(in.substr(0, in.size() / 2)); };
  const Decompressor twice = [](absl::string_view in, size_t max) -> absl::StatusOr<std::string> {
    if (in.size() * 2 > max) return absl::InvalidArgumentError("too large");
    return absl::StrCat(in, in);
  };
  const std::string half = Bytes(3000, 'z');
  const std::string plain = half + half;
  const std::string sealed = SealChunk(ring.Current(), plain, halve);
  EXPECT_LT(sealed.size(), SealChunk(ring.Current(), plain).size());
  absl::StatusOr<std::string> back = OpenChunk(ring, sealed, 1 << 20, twice);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, plain);
  EXPECT_EQ(OpenChunk(ring, sealed, 1 << 20).status().code(), absl::StatusCode::kInvalidArgument);
  // Decompression is bounded by the caller's limit.
  EXPECT_FALSE(OpenChunk(ring, sealed, 4000, twice).ok());
  // The flag is inside the frame, authenticated: flipping any byte of the frame refuses it.
  std::string flipped = sealed;
  flipped[29 + 4 + 24] ^= 1;
  EXPECT_EQ(OpenChunk(ring, flipped, 1 << 20, twice).status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace converge::crypto
