#include "engine/ondemand/on_demand_view.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/ondemand/writer_for_test.h"
#include "gtest/gtest.h"
#include "tests/testing/random_bytes_for_test.h"
#include "tests/testing/test_folder.h"

namespace converge::engine {
namespace {

// A namespace one device synced up through the store's logic; the view is another device's,
// fetching from that store (offline at the test's word).
class OnDemandViewTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(writer_.Open().ok());
    reader_ = std::make_unique<sim::SimStoreClient>(writer_.store.get(), "dev2", [this](const char*) {
      return offline_ ? sim::Fault::kDropRequest : sim::Fault::kNone;
    });
    big_ = RandomBytesForTest(3 << 20, 11);
    ASSERT_TRUE(writer_.fs->UserWrite("big.bin", big_).ok());
    ASSERT_TRUE(writer_.fs->UserWrite("docs/a.txt", "alpha").ok());
    ASSERT_TRUE(writer_.fs->UserWrite("docs/deep/b.txt", RandomBytesForTest(300 << 10, 12)).ok());
    ASSERT_TRUE(writer_.fs->UserMkdir("empty").ok());
    ASSERT_TRUE(writer_.Sync().ok());
  }

  // Open lists the namespace into a view whose cache holds `budget` bytes.
  void Open(uint64_t budget) {
    absl::StatusOr<std::unique_ptr<ChunkCache>> cache =
        ChunkCache::Open(testing::MakeTestDir() + "/cache", budget);
    ASSERT_TRUE(cache.ok()) << cache.status();
    cache_ = std::move(*cache);
    view_ = std::make_unique<OnDemandView>(reader_.get(), cache_.get());
    std::vector<FileVersion> listed;
    absl::StatusOr<uint64_t> seq = reader_->ListFiles([&](const FileVersion& v) { listed.push_back(v); }, -1);
    ASSERT_TRUE(seq.ok()) << seq.status();
    view_->Replace(listed, *seq);
  }

  std::string ReadAll(const std::string& path, uint64_t piece) {
    std::string out;
    for (;;) {
      absl::StatusOr<std::string> got = view_->Read(path, out.size(), piece);
      EXPECT_TRUE(got.ok()) << got.status();
      if (!got.ok() || got->empty()) return out;
      out += *got;
    }
  }

  WriterForTest writer_;
  bool offline_ = false;
  std::unique_ptr<sim::SimStoreClient> reader_;
  std::unique_ptr<ChunkCache> cache_;
  std::unique_ptr<OnDemandView> view_;
  std::string big_;
};

TEST_F(OnDemandViewTest, EveryFileIsShownWithItsSizeBeforeAnyByteIsFetched) {
  Open(64 << 20);
  absl::StatusOr<std::vector<std::string>> root = view_->List("");
  ASSERT_TRUE(root.ok()) << root.status();
  EXPECT_EQ(*root, (std::vector<std::string>{"big.bin", "docs", "empty"}));
  absl::StatusOr<std::vector<std::string>> docs = view_->List("docs");
  ASSERT_TRUE(docs.ok()) << docs.status();
  EXPECT_EQ(*docs, (std::vector<std::string>{"a.txt", "deep"}));
  absl::StatusOr<FileVersion> big = view_->Stat("big.bin");
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_EQ(big->size, big_.size());
  EXPECT_EQ(big->kind, FileKind::kFile);
  EXPECT_EQ(view_->Stat("docs/deep")->kind, FileKind::kDirectory);
  EXPECT_TRUE(absl::IsNotFound(view_->Stat("nope").status()));
  EXPECT_TRUE(absl::IsFailedPrecondition(view_->List("big.bin").status()));
  EXPECT_EQ(view_->stats().files, 3u);
  EXPECT_EQ(view_->stats().bytes_fetched, 0u);
}

TEST_F(OnDemandViewTest, AReadFetchesOnlyTheChunksOfItsRangeAndMatchesByteForByte) {
  Open(64 << 20);
  absl::StatusOr<std::string> head = view_->Read("big.bin", 0, 100);
  ASSERT_TRUE(head.ok()) << head.status();
  EXPECT_EQ(*head, big_.substr(0, 100));
  EXPECT_EQ(view_->stats().chunks_fetched, 1u);  // `head -c 100`: one chunk
  EXPECT_LT(view_->stats().bytes_fetched, big_.size() / 2);
  std::mt19937_64 rng(5);
  for (int i = 0; i < 40; ++i) {
    const uint64_t offset = rng() % (big_.size() + 1000);
    const uint64_t size = 1 + rng() % (200 << 10);
    absl::StatusOr<std::string> got = view_->Read("big.bin", offset, size);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, offset >= big_.size() ? "" : big_.substr(offset, size)) << offset << "+" << size;
  }
  EXPECT_EQ(ReadAll("docs/a.txt", 4096), "alpha");
  EXPECT_LE(view_->stats().bytes_fetched, big_.size() + (1 << 20));  // each chunk about once
}

TEST_F(OnDemandViewTest, ReadersWantingTheSameChunkAtOnceWaitForOneFetch) {
  Open(64 << 20);
  std::vector<std::thread> readers;
  std::atomic<int> right{0};
  for (int t = 0; t < 8; ++t) {
    readers.emplace_back([&, t] {
      absl::StatusOr<std::string> got = view_->Read("big.bin", 1000 + t, 100);
      if (got.ok() && *got == big_.substr(1000 + t, 100)) ++right;
    });
  }
  for (std::thread& r : readers) r.join();
  EXPECT_EQ(right.load(), 8);
  EXPECT_EQ(view_->stats().chunks_fetched, 1u);
}

TEST_F(OnDemandViewTest, ASmallBudgetEvictsWhileAReaderGoesThroughTheWholeFile) {
  Open(512 << 10);
  EXPECT_EQ(ReadAll("big.bin", 128 << 10), big_);
  const ChunkCache::Stats s = cache_->stats();
  EXPECT_GT(s.evicted_bytes, 0u);
  EXPECT_LE(s.cached_bytes, 512u << 10);
  EXPECT_EQ(ReadAll("big.bin", 128 << 10), big_);  // again, fetching what was evicted
}

TEST_F(OnDemandViewTest, OfflineAFileNotCachedFailsNamingItWhileACachedOneReads) {
  Open(64 << 20);
  EXPECT_EQ(ReadAll("docs/a.txt", 4096), "alpha");
  offline_ = true;
  EXPECT_EQ(ReadAll("docs/a.txt", 4096), "alpha");
  absl::StatusOr<std::string> failed = view_->Read("docs/deep/b.txt", 0, 10);
  EXPECT_TRUE(absl::IsUnavailable(failed.status())) << failed.status();
  EXPECT_NE(failed.status().message().find("docs/deep/b.txt"), std::string::npos) << failed.status();
  EXPECT_EQ(view_->stats().reads_failed, 1u);
  EXPECT_NE(view_->stats().last_failure.find("docs/deep/b.txt"), std::string::npos);
}

TEST_F(OnDemandViewTest, APinnedSubtreeIsFetchedWholeAndOutlastsEvictionOffline) {
  Open(400 << 10);  // room for docs/, not for big.bin beside it
  view_->SetPins({"docs"});
  ASSERT_TRUE(view_->HydratePins().ok());
  EXPECT_GE(cache_->stats().pinned_bytes, 300u << 10);
  EXPECT_EQ(ReadAll("big.bin", 128 << 10), big_);  // passes through the cache, evicting others
  offline_ = true;
  EXPECT_EQ(ReadAll("docs/a.txt", 4096), "alpha");
  absl::StatusOr<std::string> deep = view_->Read("docs/deep/b.txt", 0, 400 << 10);
  ASSERT_TRUE(deep.ok()) << deep.status();
  EXPECT_EQ(deep->size(), 300u << 10);
  view_->SetPins({});
  EXPECT_EQ(cache_->stats().pinned_bytes, 0u);
}

TEST_F(OnDemandViewTest, AListingWhoseChunksDoNotAddUpIsRefusedNotGuessedAt) {
  Open(1 << 20);
  FileVersion lying;
  lying.path = "lying.bin";
  lying.size = 100;  // and no chunks at all
  FileVersion short_chunks = lying;
  short_chunks.path = "short.bin";
  short_chunks.chunks.push_back(ChunkRef{HashOf("abc"), 3});
  view_->Replace({lying, short_chunks}, 9);
  for (const char* path : {"lying.bin", "short.bin"}) {
    absl::StatusOr<std::string> got = view_->Read(path, 0, 100);
    EXPECT_TRUE(absl::IsDataLoss(got.status())) << path << ": " << got.status();
  }
  EXPECT_EQ(view_->stats().reads_failed, 2u);
  EXPECT_EQ(view_->stats().bytes_fetched, 0u);
}

// AllListed walks a view from its root: every path with its kind and size.
std::map<std::string, std::string> AllListed(const OnDemandView& view) {
  std::map<std::string, std::string> out;
  std::vector<std::string> dirs = {""};
  while (!dirs.empty()) {
    const std::string dir = dirs.back();
    dirs.pop_back();
    absl::Status listed = view.ListFrom(dir, 0, [&](const std::string& name, const FileVersion& v) {
      const std::string path = dir.empty() ? name : dir + "/" + name;
      out[path] = absl::StrCat(static_cast<int>(v.kind), ":", v.size);
      if (v.kind == FileKind::kDirectory) dirs.push_back(path);
      return true;
    });
    EXPECT_TRUE(listed.ok()) << dir << ": " << listed;
  }
  return out;
}

TEST(OnDemandViewApplyTest, CommitsAppliedOneByOneShowWhatAWholeListingShows) {
  absl::StatusOr<std::unique_ptr<ChunkCache>> cache = ChunkCache::Open(testing::MakeTestDir() + "/cache", 1 << 20);
  ASSERT_TRUE(cache.ok()) << cache.status();
  OnDemandView applied(nullptr, cache->get()), replaced(nullptr, cache->get());
  applied.Replace({}, 0);
  std::map<std::string, FileVersion> live;
  std::mt19937_64 rng(17);
  const std::vector<std::string> names = {"a", "b", "c"};
  for (uint64_t seq = 1; seq <= 400; ++seq) {
    std::vector<FileVersion> commit;
    for (int k = 0; k < 1 + static_cast<int>(rng() % 3); ++k) {
      std::string path = names[rng() % 3];
      for (int depth = rng() % 3; depth > 0; --depth) path += "/" + names[rng() % 3];
      FileVersion v;
      v.path = path;
      if (rng() % 3 == 0) {
        v.deleted = true;
        live.erase(path);
      } else {
        v.kind = rng() % 4 == 0 ? FileKind::kDirectory : FileKind::kFile;
        v.size = v.kind == FileKind::kFile ? rng() % 100 : 0;
        live[path] = v;
      }
      commit.push_back(v);
    }
    applied.Apply(commit, seq);
    std::vector<FileVersion> all;
    for (const auto& [path, v] : live) all.push_back(v);
    replaced.Replace(all, seq);
    ASSERT_EQ(AllListed(applied), AllListed(replaced)) << "after seq " << seq;
    ASSERT_EQ(applied.stats().files, replaced.stats().files);
    ASSERT_EQ(applied.stats().bytes_shown, replaced.stats().bytes_shown);
  }
  std::vector<FileVersion> snapshot = applied.Snapshot();
  EXPECT_EQ(snapshot.size(), live.size());  // the implied directories are not versions
}

}  // namespace
}  // namespace converge::engine

namespace converge::engine {
namespace {

FileVersion Version(const std::string& path, uint64_t seq, FileKind kind = FileKind::kFile) {
  FileVersion v;
  v.path = path;
  v.kind = kind;
  v.seq = seq;
  v.file_id = "id-" + path;
  v.content_sha256 = ContentDigest({});
  return v;
}

// A local change stays shown over the namespace's version of its path whatever the namespace
// does meanwhile (a pulled commit, a whole new listing); the namespace's goes underneath and is
// what the saved listing holds; settled, the path shows the store's version again.
TEST(OnDemandViewOverlayTest, LocalChangesStayOverTheNamespaceUntilSettled) {
  absl::StatusOr<std::unique_ptr<ChunkCache>> cache = ChunkCache::Open(testing::MakeTestDir() + "/cache", 1 << 20);
  ASSERT_TRUE(cache.ok());
  OnDemandView view(nullptr, cache->get());
  view.Replace({Version("a.txt", 1), Version("d", 1, FileKind::kDirectory), Version("d/b.txt", 2)}, 2);
  const std::string data = testing::MakeTestDir() + "/a.data";
  testing::WriteFile(data, "written here");
  FileVersion mine = Version("a.txt", 0);
  mine.mode = 0600;
  view.ShowLocal(mine, data);
  view.HideLocal("d/b.txt");
  ASSERT_TRUE(view.Stat("a.txt").ok());
  EXPECT_EQ(view.Stat("a.txt")->size, 12u);  // the data file's
  EXPECT_EQ(*view.Read("a.txt", 0, 100), "written here");
  EXPECT_FALSE(view.Stat("d/b.txt").ok());

  view.Apply({Version("a.txt", 3), Version("d/b.txt", 3), Version("c.txt", 3)}, 3);
  EXPECT_EQ(view.Stat("a.txt")->mode, 0600u);           // still this device's
  EXPECT_EQ(view.Remote("a.txt")->seq, 3u);             // the namespace's underneath
  EXPECT_FALSE(view.Stat("d/b.txt").ok());
  EXPECT_TRUE(view.Stat("c.txt").ok());

  view.Replace({Version("a.txt", 4), Version("d", 1, FileKind::kDirectory), Version("d/b.txt", 3),
                Version("e.txt", 4)}, 4);
  EXPECT_EQ(*view.Read("a.txt", 0, 100), "written here");
  EXPECT_EQ(view.Remote("a.txt")->seq, 4u);
  EXPECT_FALSE(view.Stat("d/b.txt").ok());
  EXPECT_FALSE(view.Stat("c.txt").ok());
  EXPECT_TRUE(view.Stat("e.txt").ok());
  std::map<std::string, uint64_t> saved;
  for (const FileVersion& v : view.Snapshot()) saved[v.path] = v.seq;
  EXPECT_EQ(saved, (std::map<std::string, uint64_t>{{"a.txt", 4}, {"d", 1}, {"d/b.txt", 3}, {"e.txt", 4}}));

  FileVersion committed = Version("a.txt", 5);
  view.Settle("a.txt", &committed);
  view.Settle("d/b.txt", nullptr);  // the deletion gave way: the namespace's version again
  EXPECT_EQ(view.Stat("a.txt")->seq, 5u);
  EXPECT_EQ(view.Stat("d/b.txt")->seq, 3u);
  EXPECT_EQ(view.List("d")->size(), 1u);
  view.Apply({Version("a.txt", 6)}, 6);  // no longer shadowed: shown at once
  EXPECT_EQ(view.Stat("a.txt")->seq, 6u);
}

}  // namespace
}  // namespace converge::engine
