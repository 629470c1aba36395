#include "engine/ondemand/chunk_cache.h"

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "tests/testing/test_folder.h"

namespace converge::engine {
namespace {

using testing::MakeTestDir;
using testing::WriteFile;

std::unique_ptr<ChunkCache> OpenCache(const std::string& dir, uint64_t budget) {
  absl::StatusOr<std::unique_ptr<ChunkCache>> cache = ChunkCache::Open(dir, budget);
  EXPECT_TRUE(cache.ok()) << cache.status();
  return cache.ok() ? std::move(*cache) : nullptr;
}

TEST(ChunkCacheTest, AChunkPutIsReadBackAfterTheCacheIsOpenedAgain) {
  const std::string dir = MakeTestDir() + "/cache";
  const std::string bytes(5000, 'x');
  {
    std::unique_ptr<ChunkCache> cache = OpenCache(dir, 1 << 20);
    ASSERT_TRUE(cache->Put(HashOf(bytes), bytes).ok());
    EXPECT_TRUE(absl::IsNotFound(cache->Get(HashOf("other")).status()));
  }
  WriteFile(dir + "/.tmp-1-1", "an interrupted write");
  std::unique_ptr<ChunkCache> cache = OpenCache(dir, 1 << 20);
  absl::StatusOr<std::string> got = cache->Get(HashOf(bytes));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, bytes);
  EXPECT_EQ(cache->stats().cached_bytes, 5000u);
  EXPECT_FALSE(std::filesystem::exists(dir + "/.tmp-1-1"));
}

TEST(ChunkCacheTest, PastItsBudgetTheLeastRecentlyUsedGoesFirstButNeverAPinnedOne) {
  std::unique_ptr<ChunkCache> cache = OpenCache(MakeTestDir() + "/cache", 3000);
  const std::string a(1000, 'a'), b(1000, 'b'), c(1000, 'c'), d(1000, 'd'), e(1000, 'e');
  for (const std::string* s : {&a, &b, &c}) ASSERT_TRUE(cache->Put(HashOf(*s), *s).ok());
  ASSERT_TRUE(cache->Get(HashOf(a)).ok());  // a is used again: b is now the oldest
  ASSERT_TRUE(cache->Put(HashOf(d), d).ok());
  EXPECT_TRUE(cache->Has(HashOf(a)));
  EXPECT_FALSE(cache->Has(HashOf(b)));
  EXPECT_TRUE(absl::IsNotFound(cache->Get(HashOf(b)).status()));
  cache->SetPinned({HashOf(c)});  // c is the oldest now, but pinned: a goes instead
  ASSERT_TRUE(cache->Put(HashOf(e), e).ok());
  EXPECT_TRUE(cache->Has(HashOf(c)));
  EXPECT_FALSE(cache->Has(HashOf(a)));
  const ChunkCache::Stats s = cache->stats();
  EXPECT_EQ(s.cached_bytes, 3000u);
  EXPECT_EQ(s.pinned_bytes, 1000u);
  EXPECT_EQ(s.evicted_bytes, 2000u);
}

TEST(ChunkCacheTest, BytesDamagedOnDiskAreDroppedNeverReturned) {
  const std::string dir = MakeTestDir() + "/cache";
  std::unique_ptr<ChunkCache> cache = OpenCache(dir, 1 << 20);
  const std::string bytes(4096, 'k');
  ASSERT_TRUE(cache->Put(HashOf(bytes), bytes).ok());
  std::string damaged = bytes;
  damaged[100] = 'X';
  WriteFile(dir + "/" + DigestToHex(HashOf(bytes)), damaged);
  EXPECT_TRUE(absl::IsNotFound(cache->Get(HashOf(bytes)).status()));
  EXPECT_FALSE(cache->Has(HashOf(bytes)));
  EXPECT_EQ(cache->stats().damaged_dropped, 1u);
  EXPECT_EQ(cache->stats().cached_bytes, 0u);
}

}  // namespace
}  // namespace converge::engine
