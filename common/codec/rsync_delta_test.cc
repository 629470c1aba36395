#include "common/codec/rsync_delta.h"

#include <random>

#include "gtest/gtest.h"
#include "tests/testing/random_bytes_for_test.h"

namespace converge {
namespace {

TEST(RsyncDeltaTest, AnInsertCostsAboutItsSizePlusABlock) {
  const std::string base = RandomBytesForTest(256 << 10, 1);
  const uint32_t bs = BlockBytesFor(base.size());
  const Signature sig = MakeSignature(base, bs);
  EXPECT_EQ(sig.weak.size(), (base.size() + bs - 1) / bs);
  for (size_t at : {size_t{0}, size_t{1000}, base.size() / 2, base.size() - 10, base.size()}) {
    std::string target = base;
    target.insert(at, RandomBytesForTest(1024, at + 7));
    const std::string delta = MakeDelta(target, sig);
    EXPECT_LT(delta.size(), 1024 + 2 * bs + 1024) << "insert at " << at;
    auto rebuilt = ApplyDelta(delta, base, bs, 4 << 20);
    ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
    EXPECT_EQ(*rebuilt, target) << "insert at " << at;
  }
}

TEST(RsyncDeltaTest, DeletesOverwritesAndUnrelatedContentRoundTrip) {
  const std::string base = RandomBytesForTest(100000, 2);
  const uint32_t bs = 1024;
  const Signature sig = MakeSignature(base, bs);
  std::string deleted = base;
  deleted.erase(50000, 3000);
  std::string overwritten = base;
  overwritten.replace(20000, 500, RandomBytesForTest(500, 3));
  const std::string unrelated = RandomBytesForTest(90000, 4);
  for (const std::string* t : std::vector<const std::string*>{&deleted, &overwritten, &unrelated}) {
    auto rebuilt = ApplyDelta(MakeDelta(*t, sig), base, bs, 4 << 20);
    ASSERT_TRUE(rebuilt.ok());
    EXPECT_EQ(*rebuilt, *t);
  }
  EXPECT_LT(MakeDelta(deleted, sig).size(), 3000u);
}

TEST(RsyncDeltaTest, MalformedDeltasAreRefused) {
  const std::string base = RandomBytesForTest(10000, 5);
  EXPECT_FALSE(ApplyDelta(std::string("\x07", 1), base, 1024, 1 << 20).ok());     // unknown op
  EXPECT_FALSE(ApplyDelta(std::string("\x01\x63", 2), base, 1024, 1 << 20).ok());  // block 99 of 10
  EXPECT_FALSE(ApplyDelta(std::string("\x00\x05" "ab", 4), base, 1024, 1 << 20).ok());  // short literal
  EXPECT_FALSE(ApplyDelta(std::string("\x01\x00", 2), base, 1024, 100).ok());      // over max_bytes
  EXPECT_FALSE(ApplyDelta("", base, 0, 100).ok());
}

}  // namespace
}  // namespace converge
