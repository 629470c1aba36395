// The engine reads a file once to upload it: the scan's chunks go to the store as they are
// hashed, in batches, and only the chunks the store lacks travel.
#include <algorithm>
#include <map>
#include <random>
#include <string>

#include "common/base/clock.h"
#include "engine/sync/chunker.h"
#include "engine/sync/sync_engine.h"
#include "gtest/gtest.h"
#include "tests/sim/sim_device.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/random_bytes_for_test.h"

namespace converge::sim {
namespace {

TEST(EngineUploadTest, AFileIsReadOnceAndOnlyWhatTheStoreLacksTravels) {
  FakeClock clock;
  auto store = SimStore::Create(&clock, {"a", "b"});
  ASSERT_TRUE(store.ok());
  SimDevice a("a", &clock, store->get(), engine::EngineOptions{});
  SimDevice b("b", &clock, store->get(), engine::EngineOptions{});
  ASSERT_TRUE(a.Start().ok());
  ASSERT_TRUE(b.Start().ok());

  // 72 MiB: hashed on the chunker's second thread, uploaded in three batches during the scan.
  const std::string big = RandomBytesForTest(72 << 20, 1);
  const engine::FileContent chunks = engine::ChunkBytes(big);
  ASSERT_TRUE(a.fs().UserWrite("big.bin", big).ok());
  ASSERT_TRUE(a.engine().SyncOnce().ok());
  EXPECT_EQ(a.engine().upload_stats().bytes_read_again, 0u);
  EXPECT_EQ(a.engine().upload_stats().chunks_uploaded, chunks.chunks.size());
  for (const ChunkRef& c : chunks.chunks) {
    absl::StatusOr<bool> has = (*store)->chunks()->Has(SimStore::kOwner, c.sha256);
    ASSERT_TRUE(has.ok());
    EXPECT_TRUE(*has);
  }
  clock.Advance(absl::Seconds(1));
  ASSERT_TRUE(b.engine().SyncOnce().ok());
  EXPECT_EQ(b.fs().Snapshot()["big.bin"], big);

  // 1 MiB overwritten in the middle: the chunks around it travel, nothing else, nothing twice.
  std::string edited = big;
  const std::string patch = RandomBytesForTest(1 << 20, 2);
  edited.replace(36 << 20, patch.size(), patch);
  const uint64_t before = a.engine().upload_stats().chunks_uploaded;
  clock.Advance(absl::Seconds(1));
  ASSERT_TRUE(a.fs().UserWrite("big.bin", edited).ok());
  ASSERT_TRUE(a.engine().SyncOnce().ok());
  const uint64_t sent = a.engine().upload_stats().chunks_uploaded - before;
  EXPECT_GE(sent, 2u);
  EXPECT_LE(sent, 8u);  // 1 MiB of 256 KiB-mean chunks, and its two edges
  EXPECT_EQ(a.engine().upload_stats().bytes_read_again, 0u);
  clock.Advance(absl::Seconds(1));
  ASSERT_TRUE(b.engine().SyncOnce().ok());
  EXPECT_EQ(b.fs().Snapshot()["big.bin"], edited);
}

TEST(EngineUploadTest, AnOverwriteCostsAboutItsOwnBytesWhereverTheCutPointsFall) {
  // After an edit the cut points take a chunk or two to fall back onto the old ones; those new
  // chunks span two old ones, and go as deltas against both (ChunkLayout::BasesFor).
  FakeClock clock;
  auto store = SimStore::Create(&clock, {"a"});
  ASSERT_TRUE(store.ok());
  SimDevice a("a", &clock, store->get(), engine::EngineOptions{});
  ASSERT_TRUE(a.Start().ok());
  std::string content = RandomBytesForTest(24 << 20, 3);
  ASSERT_TRUE(a.fs().UserWrite("big.bin", content).ok());
  ASSERT_TRUE(a.engine().SyncOnce().ok());
  constexpr size_t kEdit = 256 << 10;
  uint64_t worst = 0;
  for (int i = 0; i < 8; ++i) {
    content.replace((2 + 2 * i) * (1 << 20) + i * 12345, kEdit, RandomBytesForTest(kEdit, 10 + i));
    const uint64_t before = a.engine().upload_stats().bytes_uploaded;
    clock.Advance(absl::Seconds(1));
    ASSERT_TRUE(a.fs().UserWrite("big.bin", content).ok());
    ASSERT_TRUE(a.engine().SyncOnce().ok());
    const uint64_t sent = a.engine().upload_stats().bytes_uploaded - before;
    worst = std::max(worst, sent);
    EXPECT_GE(sent, kEdit) << "edit " << i;  // random bytes do not compress
  }
  // The edit, plus signatures, an rsync block and a neighbour's few KiB at each of its ends
  // (262-294 KB for these eight; against one old chunk each, up to 478 KB).
  EXPECT_LE(worst, kEdit + (40 << 10));
  absl::StatusOr<std::map<std::string, std::string>> files = (*store)->Files();
  ASSERT_TRUE(files.ok());
  EXPECT_TRUE((*files)["big.bin"] == content);
}

}  // namespace
}  // namespace converge::sim
