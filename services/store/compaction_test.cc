#include "services/store/commit_log.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "services/store/store_test_fixture.h"

namespace converge::store {
namespace {

class CompactionTest : public StoreTest {};

TEST_F(CompactionTest, CompactionFoldsTheLogBelowTheWatermarkAndDropsOldHistory) {
  PutChunk("v1");
  PutChunk("v2");
  PutChunk("v3");
  ASSERT_TRUE(log_->Append("ns", "dev1", {File("a.txt", "v1", 0), File("gone.txt", "v1", 0)}).ok());  // 1
  ASSERT_TRUE(log_->Append("ns", "dev1", {File("a.txt", "v2", 1)}).ok());                            // 2
  FileVersion gone = File("gone.txt", "", 1);
  gone.deleted = true;
  gone.chunks.clear();
  ASSERT_TRUE(log_->Append("ns", "dev1", {gone}).ok());                                               // 3
  clock_.Advance(absl::Hours(24 * 40));
  ASSERT_TRUE(log_->Append("ns", "dev1", {File("a.txt", "v3", 2)}).ok());                            // 4

  // dev2 never acked: it pins the watermark at 0 and nothing is folded.
  ASSERT_TRUE(log_->Ack("ns", "dev1", 4).ok());
  auto r = log_->Compact("ns", absl::Hours(24 * 30));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->watermark, 0u);
  EXPECT_EQ(r->pinned_by, std::vector<std::string>{"dev2"});
  EXPECT_EQ(r->log_entries_dropped, 0u);
  EXPECT_EQ(r->tombstones_dropped, 0u);       // dev2 has not applied the deletion
  EXPECT_EQ(r->versions_dropped, 2u);  // a.txt v1 and gone.txt v1: superseded 40 days ago
  auto stats = log_->Stats("ns");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->watermark, 0u);
  ASSERT_EQ(stats->devices.size(), 2u);
  EXPECT_TRUE(stats->devices[1].pins_watermark);

  // Evicted, dev2 no longer holds it back.
  ASSERT_TRUE(log_->Evict("ns", "dev2").ok());
  EXPECT_TRUE(absl::IsNotFound(log_->Evict("ns", "stranger")));
  r = log_->Compact("ns", absl::Hours(24 * 30));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->watermark, 4u);
  EXPECT_EQ(r->log_entries_dropped, 4u);
  EXPECT_EQ(r->tombstones_dropped, 1u);
  auto versions = log_->Versions("ns", "a.txt", 0);
  ASSERT_TRUE(versions.ok());
  EXPECT_EQ(versions->size(), 2u);  // v2 (current until 0 days ago) and v3
  std::vector<std::string> table;
  ASSERT_TRUE(log_->ListFiles("ns", [&](const FileVersion& v) { table.push_back(v.path); }).ok());
  EXPECT_EQ(table, std::vector<std::string>{"a.txt"});

  // A pull from below the compacted log is told to take a snapshot; from the head it is fine.
  absl::Status s = log_->ReadSince("ns", 2, 0, [](const Commit&) { return true; });
  EXPECT_TRUE(absl::IsOutOfRange(s)) << s;
  EXPECT_TRUE(log_->ReadSince("ns", 4, 0, [](const Commit&) { return true; }).ok());

  // A device that still knows the dropped tombstone (seq 3) re-creates the path on top of it.
  EXPECT_TRUE(log_->Append("ns", "dev1", {File("gone.txt", "v1", 3)}).ok());

  // Survives a restart; an ack ends the eviction.
  Open();
  EXPECT_TRUE(absl::IsOutOfRange(log_->ReadSince("ns", 0, 0, [](const Commit&) { return true; })));
  ASSERT_TRUE(log_->Ack("ns", "dev2", 5).ok());
  stats = log_->Stats("ns");
  ASSERT_TRUE(stats.ok());
  EXPECT_FALSE(stats->devices[1].evicted);
  EXPECT_EQ(stats->compacted_through, 4u);
}

TEST_F(CompactionTest, GarbageCollectionDropsChunksNoKeptVersionReferences) {
  PutChunk("old");
  PutChunk("new");
  PutChunk("never committed");
  ASSERT_TRUE(log_->Append("ns", "dev1", {File("a.txt", "old", 0)}).ok());
  ASSERT_TRUE(log_->Append("ns", "dev1", {File("a.txt", "new", 1)}).ok());
  // Within the grace period everything stays.
  auto swept = log_->CollectGarbage(absl::Hours(1));
  ASSERT_TRUE(swept.ok()) << swept.status();
  EXPECT_EQ(swept->chunks_dropped, 0u);
  // History still references "old": only the never committed chunk goes.
  swept = log_->CollectGarbage(absl::ZeroDuration());
  ASSERT_TRUE(swept.ok());
  EXPECT_EQ(swept->chunks_dropped, 1u);
  EXPECT_EQ(swept->bytes_dropped, std::string("never committed").size());
  auto has = chunks_->Has("alice", HashOf("never committed"));
  ASSERT_TRUE(has.ok());
  EXPECT_FALSE(*has);
  // Past the retention its history goes, but the log a device has not applied still needs it.
  clock_.Advance(absl::Hours(24 * 31));
  ASSERT_TRUE(log_->Compact("ns", absl::Hours(24 * 30)).ok());
  swept = log_->CollectGarbage(absl::ZeroDuration());
  ASSERT_TRUE(swept.ok());
  EXPECT_EQ(swept->chunks_dropped, 0u);
  EXPECT_TRUE(chunks_->Get("alice", HashOf("old")).ok());
  // Once every device applied it (the log is folded), its chunk goes too.
  ASSERT_TRUE(log_->Ack("ns", "dev1", 2).ok());
  ASSERT_TRUE(log_->Ack("ns", "dev2", 2).ok());
  clock_.Advance(absl::Hours(24 * 31));
  ASSERT_TRUE(log_->Compact("ns", absl::Hours(24 * 30)).ok());
  swept = log_->CollectGarbage(absl::ZeroDuration());
  ASSERT_TRUE(swept.ok());
  EXPECT_EQ(swept->chunks_dropped, 1u);
  auto old_chunk = chunks_->Get("alice", HashOf("old"));
  EXPECT_TRUE(absl::IsNotFound(old_chunk.status())) << old_chunk.status();
  auto new_chunk = chunks_->Get("alice", HashOf("new"));
  EXPECT_TRUE(new_chunk.ok()) << new_chunk.status();
  auto usage = chunks_->Usage("alice");
  ASSERT_TRUE(usage.ok());
  EXPECT_EQ(usage->first, 3u);  // "new"
}

TEST_F(CompactionTest, CompactionAndGarbageCollectionRacingCommitsLoseNoChunk) {
  // Commits (each with new chunks, and edits that make old ones garbage) race compactions and
  // collections with no grace period; afterwards every committed live file's chunks are there.
  std::atomic<bool> done{false};
  std::thread collector([&] {
    while (!done) {
      ASSERT_TRUE(log_->Compact("ns", absl::ZeroDuration()).ok());
      ASSERT_TRUE(log_->CollectGarbage(absl::ZeroDuration()).ok());
    }
  });
  // Stopped on every way out (a failed assertion too).
  auto stop_collector = absl::MakeCleanup([&] {
    done = true;
    collector.join();
  });
  std::map<std::string, uint64_t> seq_of;
  for (int i = 0; i < 300; ++i) {
    const std::string path = absl::StrCat("f", i % 20, ".txt");
    const std::string content = absl::StrCat("version ", i, " of ", path);
    // As a device does: ask which chunks are missing, upload them, commit; with no grace a
    // collection may drop the upload before the commit (refused: upload again). On a loaded
    // machine the collector, which never pauses, can win that race many times in a row.
    absl::StatusOr<Commit> c;
    for (int attempt = 0; attempt < 2000; ++attempt) {
      auto missing = chunks_->FindMissing("alice", {HashOf(content)});
      ASSERT_TRUE(missing.ok());
      if (!missing->empty()) PutChunk(content);
      c = log_->Append("ns", "dev1", {File(path, content, seq_of[path])});
      if (!absl::IsFailedPrecondition(c.status())) break;
    }
    ASSERT_TRUE(c.ok()) << c.status();
    seq_of[path] = c->seq;
    ASSERT_TRUE(log_->Ack("ns", "dev1", c->seq).ok());
    ASSERT_TRUE(log_->Ack("ns", "dev2", c->seq).ok());
  }
  std::move(stop_collector).Invoke();
  clock_.Advance(absl::Seconds(1));  // every old version is now past the (zero) retention
  ASSERT_TRUE(log_->Compact("ns", absl::ZeroDuration()).ok());
  ASSERT_TRUE(log_->CollectGarbage(absl::ZeroDuration()).ok());
  int live = 0;
  ASSERT_TRUE(log_->ListFiles("ns", [&](const FileVersion& v) {
                    if (v.deleted) return;
                    ++live;
                    for (const ChunkRef& c : v.chunks) EXPECT_TRUE(chunks_->Get("alice", c.sha256).ok()) << v.path;
                  }).ok());
  EXPECT_EQ(live, 20);
  auto usage = chunks_->Usage("alice");
  ASSERT_TRUE(usage.ok());
  uint64_t expected = 0;
  ASSERT_TRUE(log_->ListFiles("ns", [&](const FileVersion& v) { expected += v.size; }).ok());
  EXPECT_EQ(usage->first, expected);  // old versions' chunks were collected, the usage followed
}

}  // namespace
}  // namespace converge::store
