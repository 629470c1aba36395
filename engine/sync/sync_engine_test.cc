#include "engine/sync/sync_engine.h"

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"
#include "engine/sync/local_index.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/mem_filesystem.h"
#include "tests/testing/power_cut_env.h"
#include "tests/testing/random_bytes_for_test.h"
#include "tests/testing/sim_store.h"

namespace converge::engine {
namespace {

// One device: its folder in memory, its index on an in-memory RocksDB, its engine.
struct Device {
  Device(const std::string& id, FakeClock* clock, sim::SimStore* store) : fs(clock), client(store, id) {
    absl::StatusOr<std::unique_ptr<LocalIndex>> opened = LocalIndex::Open("/index", env.env());
    EXPECT_TRUE(opened.ok()) << opened.status();
    index = std::move(*opened);
    EngineOptions options;
    options.delete_settle = absl::ZeroDuration();
    engine = std::make_unique<SyncEngine>(&fs, index.get(), &client, clock, id, options);
  }
  PowerCutEnv env;
  MemFilesystem fs;
  sim::SimStoreClient client;
  std::unique_ptr<LocalIndex> index;
  std::unique_ptr<SyncEngine> engine;
};

class SyncEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<sim::SimStore>> store = sim::SimStore::Create(&clock_, {"dev1", "dev2", "dev3"});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    one_ = std::make_unique<Device>("dev1", &clock_, store_.get());
    two_ = std::make_unique<Device>("dev2", &clock_, store_.get());
  }
  // Sync runs a round on each device in turn (local changes up, remote ones down) until both
  // are quiet, at most `rounds` times.
  void Sync(int rounds = 3) {
    for (int i = 0; i < rounds; ++i) {
      clock_.Advance(absl::Seconds(2));  // past the stat granularity the index trusts
      ASSERT_TRUE(one_->engine->SyncOnce().ok());
      ASSERT_TRUE(two_->engine->SyncOnce().ok());
    }
  }

  FakeClock clock_;
  std::unique_ptr<sim::SimStore> store_;
  std::unique_ptr<Device> one_;
  std::unique_ptr<Device> two_;
};

TEST_F(SyncEngineTest, AFileWrittenOnOneDeviceReachesTheStoreAndTheOther) {
  ASSERT_TRUE(one_->fs.UserWrite("docs/a.txt", "hello").ok());
  Sync();
  EXPECT_EQ(two_->fs.Snapshot()["docs/a.txt"], "hello");
  absl::StatusOr<std::map<std::string, std::string>> stored = store_->Files();
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ((*stored)["docs/a.txt"], "hello");
  EXPECT_EQ(one_->fs.Snapshot(), two_->fs.Snapshot());
  EXPECT_EQ(one_->index->cursor(), two_->index->cursor());
  EXPECT_GE(one_->engine->upload_stats().files_committed, 1u);
}

TEST_F(SyncEngineTest, AnEditUploadsAboutWhatChangedNotTheWholeFile) {
  std::string big = RandomBytesForTest(4 << 20, 7);
  ASSERT_TRUE(one_->fs.UserWrite("big.bin", big).ok());
  Sync();
  const uint64_t first = one_->engine->upload_stats().bytes_uploaded;
  EXPECT_GE(first, big.size());
  big.replace(1 << 20, 4096, RandomBytesForTest(4096, 8));
  ASSERT_TRUE(one_->fs.UserWrite("big.bin", big).ok());
  Sync();
  EXPECT_EQ(two_->fs.Snapshot()["big.bin"], big);
  EXPECT_LT(one_->engine->upload_stats().bytes_uploaded - first, 64u << 10);
}

TEST_F(SyncEngineTest, ARenameTravelsAsARenameAndADeleteAsADelete) {
  ASSERT_TRUE(one_->fs.UserWrite("old-name.txt", RandomBytesForTest(100 << 10, 9)).ok());
  ASSERT_TRUE(one_->fs.UserWrite("doomed.txt", "bye").ok());
  Sync();
  const uint64_t uploaded = one_->engine->upload_stats().bytes_uploaded;
  ASSERT_TRUE(one_->fs.UserRename("old-name.txt", "new-name.txt").ok());
  ASSERT_TRUE(one_->fs.UserRemove("doomed.txt").ok());
  Sync();
  std::map<std::string, std::string> two = two_->fs.Snapshot();
  EXPECT_FALSE(two.count("old-name.txt"));
  EXPECT_FALSE(two.count("doomed.txt"));
  EXPECT_EQ(two["new-name.txt"], RandomBytesForTest(100 << 10, 9));
  EXPECT_EQ(one_->engine->upload_stats().bytes_uploaded, uploaded);  // no content crossed again
}

TEST_F(SyncEngineTest, EditsOfOneFileOnBothDevicesAreBothKept) {
  ASSERT_TRUE(one_->fs.UserWrite("notes.txt", "v0").ok());
  Sync();
  ASSERT_TRUE(one_->fs.UserWrite("notes.txt", "edited on one").ok());
  ASSERT_TRUE(two_->fs.UserWrite("notes.txt", "edited on two").ok());
  Sync();
  std::map<std::string, std::string> one = one_->fs.Snapshot();
  EXPECT_EQ(one, two_->fs.Snapshot());
  std::vector<std::string> contents;
  for (const auto& [path, content] : one) {
    if (path == "notes.txt" || absl::StrContains(path, "(conflict")) contents.push_back(content);
  }
  ASSERT_EQ(contents.size(), 2u);
  EXPECT_NE(contents[0], contents[1]);
  for (const std::string& c : contents) EXPECT_TRUE(c == "edited on one" || c == "edited on two") << c;
}

TEST_F(SyncEngineTest, TheEchoOfInstalledFilesIsNotScannedButAnEditMadeSinceIs) {
  ASSERT_TRUE(one_->fs.UserWrite("a.txt", "alpha").ok());
  ASSERT_TRUE(one_->fs.UserWrite("b.txt", "beta").ok());
  clock_.Advance(absl::Seconds(2));
  ASSERT_TRUE(one_->engine->SyncOnce().ok());
  clock_.Advance(absl::Seconds(2));
  ASSERT_TRUE(two_->engine->SyncOnce(std::vector<std::string>{}).ok());  // pulls and installs both
  ASSERT_EQ(two_->fs.Snapshot()["b.txt"], "beta");
  // The watcher reports both installs; b is edited before the engine looks.
  ASSERT_TRUE(two_->fs.UserWrite("b.txt", "edited on two").ok());
  clock_.Advance(absl::Seconds(2));
  const uint64_t scans = two_->engine->scan_stats().targeted_scans;
  ASSERT_TRUE(two_->engine->SyncOnce(std::vector<std::string>{"a.txt", "b.txt"}).ok());
  EXPECT_EQ(two_->engine->scan_stats().targeted_scans, scans + 1);
  EXPECT_EQ(two_->engine->scan_stats().last_entries, 1u);  // b alone
  absl::StatusOr<std::map<std::string, std::string>> stored = store_->Files();
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ((*stored)["b.txt"], "edited on two");
  // An install's echo is taken once: a later report of a is looked at.
  ASSERT_TRUE(two_->engine->SyncOnce(std::vector<std::string>{"a.txt"}).ok());
  EXPECT_EQ(two_->engine->scan_stats().targeted_scans, scans + 2);
}

TEST_F(SyncEngineTest, ManySmallFilesGoWithTheirCommitUnlessTheyWouldCompress) {
  std::map<std::string, int> calls;
  sim::SimStoreClient counted(store_.get(), "dev1", [&](const char* call) {
    ++calls[call];
    return sim::Fault::kNone;
  });
  SyncEngine engine(&one_->fs, one_->index.get(), &counted, &clock_, "dev1", EngineOptions());
  // 600 KiB that would not compress: past the 256 KiB where only such bytes ride the commit.
  for (int i = 0; i < 600; ++i) {
    ASSERT_TRUE(one_->fs.UserWrite("random/f" + std::to_string(i), RandomBytesForTest(1024, i)).ok());
  }
  clock_.Advance(absl::Seconds(2));
  ASSERT_TRUE(engine.SyncOnce().ok());
  EXPECT_EQ(calls["FindMissing"], 0);  // no asking first: one call stores them and commits
  EXPECT_EQ(calls["Commit"], 1);
  // 600 KiB of text goes the other way (PutChunks compresses it).
  calls.clear();
  for (int i = 0; i < 600; ++i) {
    ASSERT_TRUE(one_->fs.UserWrite("text/f" + std::to_string(i), std::string(1000, 'a' + i % 26) + std::to_string(i)).ok());
  }
  clock_.Advance(absl::Seconds(2));
  ASSERT_TRUE(engine.SyncOnce().ok());
  EXPECT_EQ(calls["FindMissing"], 1);
  Sync();
  EXPECT_EQ(two_->fs.Snapshot(), one_->fs.Snapshot());
  EXPECT_EQ(two_->fs.Snapshot().size(), 1202u);  // and the two directories
}

TEST_F(SyncEngineTest, AStoreThatRefusesEverythingLeavesTheFolderAlone) {
  ASSERT_TRUE(one_->fs.UserWrite("keep.txt", "mine").ok());
  sim::SimStoreClient refusing(store_.get(), "dev1", [](const char*) { return sim::Fault::kDropRequest; });
  SyncEngine engine(&one_->fs, one_->index.get(), &refusing, &clock_, "dev1", EngineOptions());
  EXPECT_FALSE(engine.SyncOnce().ok());
  EXPECT_EQ(one_->fs.Snapshot()["keep.txt"], "mine");
  EXPECT_EQ(one_->index->cursor(), 0u);
  Sync();  // the real client afterwards: nothing was lost
  EXPECT_EQ(two_->fs.Snapshot()["keep.txt"], "mine");
}


// A folder whose walks of the whole tree can be held: a verifying scan of a large folder, caught
// in the middle.
class HeldWalkFilesystem : public MemFilesystem {
 public:
  using MemFilesystem::MemFilesystem;
  absl::Status Walk(const std::string& under,
                    const std::function<void(const std::string&, const LocalStat&)>& fn) override {
    if (under.empty() && hold.load()) {
      if (!held.HasBeenNotified()) held.Notify();
      release.WaitForNotificationWithTimeout(absl::Seconds(30));
    }
    return MemFilesystem::Walk(under, fn);
  }
  std::atomic<bool> hold{false};
  absl::Notification held;
  absl::Notification release;
};

TEST_F(SyncEngineTest, TheVerifyingScanRunsBesideTheRoundsAndFindsWhatTheWatcherMissed) {
  HeldWalkFilesystem fs(&clock_);
  PowerCutEnv env;
  absl::StatusOr<std::unique_ptr<LocalIndex>> index = LocalIndex::Open("/index", env.env());
  ASSERT_TRUE(index.ok()) << index.status();
  sim::SimStoreClient client(store_.get(), "dev1");
  ASSERT_TRUE(fs.UserWrite("old.txt", "old").ok());
  ASSERT_TRUE(fs.UserWrite("gone.txt", "soon gone").ok());
  EngineOptions options;
  options.rescan_interval = absl::Milliseconds(20);
  options.delete_settle = absl::ZeroDuration();
  SyncEngine engine(&fs, index->get(), &client, &clock_, "dev1", options);
  engine.set_local_event_flush([] {});  // a watcher reports changes
  std::thread runner([&] { engine.Run(); });
  absl::Cleanup stop = [&] {
    if (!fs.release.HasBeenNotified()) fs.release.Notify();
    engine.Stop();
    runner.join();
  };
  // Stored: the store has `path` with `content` (nullopt: not at all) within 10 s.
  auto stored = [&](const std::string& path, std::optional<std::string> content) {
    for (int i = 0; i < 2000; ++i) {
      absl::StatusOr<std::map<std::string, std::string>> files = store_->Files();
      if (files.ok()) {
        auto it = files->find(path);
        if (content.has_value() ? it != files->end() && it->second == *content : it == files->end()) return true;
      }
      clock_.Advance(absl::Milliseconds(100));  // past the stat granularity the index trusts
      absl::SleepFor(absl::Milliseconds(5));
    }
    return false;
  };
  ASSERT_TRUE(stored("old.txt", "old"));  // the first full scan, a round of its own

  // A verifying scan that takes long holds no reported edit.
  fs.hold = true;
  for (int i = 0; i < 2000 && !fs.held.WaitForNotificationWithTimeout(absl::Milliseconds(5)); ++i) {
    clock_.Advance(absl::Milliseconds(100));  // to the next verifying scan
  }
  ASSERT_TRUE(fs.held.HasBeenNotified());
  ASSERT_TRUE(fs.UserWrite("edit.txt", "reported").ok());
  engine.NotifyLocalPaths({{"edit.txt", false}});
  EXPECT_TRUE(stored("edit.txt", "reported"));

  // What no one reported, the verifying scan finds: a new file, an edit, a deletion.
  ASSERT_TRUE(fs.UserWrite("missed.txt", "unreported").ok());
  ASSERT_TRUE(fs.UserWrite("old.txt", "edited quietly").ok());
  ASSERT_TRUE(fs.UserRemove("gone.txt").ok());
  fs.hold = false;
  fs.release.Notify();
  EXPECT_TRUE(stored("missed.txt", "unreported"));
  EXPECT_TRUE(stored("old.txt", "edited quietly"));
  EXPECT_TRUE(stored("gone.txt", std::nullopt));
  std::move(stop).Invoke();
  EXPECT_GE(engine.verifications().first, 1u);
  // The whole folder was scanned in a round once (the first time); the rest was targeted.
  EXPECT_EQ(engine.scan_stats().scans - engine.scan_stats().targeted_scans, 1u);
}

TEST_F(SyncEngineTest, MoreChangedPathsThanItKeepsBecomeOneScanOfTheFolder) {
  MemFilesystem fs(&clock_);
  PowerCutEnv env;
  absl::StatusOr<std::unique_ptr<LocalIndex>> index = LocalIndex::Open("/index", env.env());
  ASSERT_TRUE(index.ok()) << index.status();
  sim::SimStoreClient client(store_.get(), "dev1");
  ASSERT_TRUE(fs.UserWrite("old.txt", "old").ok());
  EngineOptions options;
  options.rescan_interval = absl::Hours(1);  // no verifying scan: only the reports and the overflow
  SyncEngine engine(&fs, index->get(), &client, &clock_, "dev1", options);
  engine.set_local_event_flush([] {});
  std::thread runner([&] { engine.Run(); });
  absl::Cleanup stop = [&] {
    engine.Stop();
    runner.join();
  };
  auto stored = [&](const std::string& path, const std::string& content) {
    for (int i = 0; i < 2000; ++i) {
      absl::StatusOr<std::map<std::string, std::string>> files = store_->Files();
      if (files.ok() && files->count(path) != 0 && files->at(path) == content) return true;
      clock_.Advance(absl::Milliseconds(100));
      absl::SleepFor(absl::Milliseconds(5));
    }
    return false;
  };
  ASSERT_TRUE(stored("old.txt", "old"));
  const uint64_t full_scans = engine.scan_stats().scans - engine.scan_stats().targeted_scans;

  // A new device installing a large folder hears every file: past what it keeps one by one,
  // nothing more is kept and the next round scans the whole folder.
  ASSERT_TRUE(fs.UserWrite("new.txt", "new").ok());
  std::vector<std::pair<std::string, bool>> heard;
  for (int i = 0; i < 40000; ++i) heard.emplace_back(absl::StrCat("installed/f", i), false);
  heard.emplace_back("new.txt", false);
  engine.NotifyLocalPaths(heard);
  EXPECT_EQ(engine.dirty_overflows(), 1u);
  EXPECT_EQ(engine.status().pending_uploads, 0u);
  EXPECT_TRUE(stored("new.txt", "new"));
  std::move(stop).Invoke();
  EXPECT_EQ(engine.scan_stats().scans - engine.scan_stats().targeted_scans, full_scans + 1);
}

// A folder whose every new file takes a second of the fake clock to write.
class SlowWritesFilesystem : public MemFilesystem {
 public:
  SlowWritesFilesystem(FakeClock* clock, std::function<void()> on_write)
      : MemFilesystem(clock), clock_(clock), on_write_(std::move(on_write)) {}
  absl::StatusOr<std::unique_ptr<TempFile>> CreateTemp() override {
    clock_->Advance(absl::Seconds(1));
    on_write_();
    return MemFilesystem::CreateTemp();
  }

 private:
  FakeClock* const clock_;
  const std::function<void()> on_write_;
};

TEST_F(SyncEngineTest, ALongCatchUpShowsItsProgressAndTellsTheStoreAsItGoes) {
  constexpr int kCommits = 30;
  for (int i = 0; i < kCommits; ++i) {
    ASSERT_TRUE(one_->fs.UserWrite(absl::StrCat("f", i), absl::StrCat("file ", i)).ok());
    clock_.Advance(absl::Seconds(2));
    ASSERT_TRUE(one_->engine->SyncOnce().ok());
  }
  const uint64_t head = one_->index->cursor();
  ASSERT_GE(head, static_cast<uint64_t>(kCommits));

  // Another device catches up, a second a file: the store hears of its progress every couple of
  // seconds, and its status shows the catch-up while it lasts.
  std::vector<uint64_t> acked;  // the cursor at each ack
  SyncEngine* engine = nullptr;
  LocalIndex* index = nullptr;
  std::vector<EngineStatus> seen;
  SlowWritesFilesystem fs(&clock_, [&] { seen.push_back(engine->status()); });
  PowerCutEnv env;
  absl::StatusOr<std::unique_ptr<LocalIndex>> opened = LocalIndex::Open("/index", env.env());
  ASSERT_TRUE(opened.ok()) << opened.status();
  index = opened->get();
  sim::SimStoreClient client(store_.get(), "dev2", [&](const char* call) {
    if (absl::string_view(call) == "Ack") acked.push_back(index->cursor());
    return sim::Fault::kNone;
  });
  SyncEngine catching_up(&fs, index, &client, &clock_, "dev2", EngineOptions());
  engine = &catching_up;
  catching_up.NotifyRemoteHead(head);
  ASSERT_TRUE(catching_up.SyncOnce().ok());
  EXPECT_EQ(index->cursor(), head);
  EXPECT_EQ(fs.Snapshot().size(), static_cast<size_t>(kCommits));
  // Acks while it applied (not only at the end), the cursor moving up each time.
  ASSERT_GE(acked.size(), static_cast<size_t>(kCommits / 3));
  EXPECT_TRUE(std::is_sorted(acked.begin(), acked.end()));
  EXPECT_LT(acked.front(), head / 2);
  ASSERT_EQ(seen.size(), static_cast<size_t>(kCommits));
  const EngineStatus& midway = seen[kCommits / 2];
  EXPECT_NE(midway.catchup_started, absl::InfinitePast());
  EXPECT_EQ(midway.catchup_from, 0u);
  EXPECT_GT(midway.cursor, 0u);
  EXPECT_LT(midway.cursor, head);
  EXPECT_GE(midway.catchup_files, static_cast<uint64_t>(kCommits / 2 - 1));
  EXPECT_EQ(catching_up.status().catchup_started, absl::InfinitePast());  // over
}

TEST_F(SyncEngineTest, ADeviceBackAfterCompactionTakesTheFileTablePageByPage) {
  ASSERT_TRUE(one_->fs.UserWrite("doomed.txt", "bye").ok());
  Sync();
  ASSERT_EQ(two_->fs.Snapshot()["doomed.txt"], "bye");

  // While two is away: more files than a page, one deletion; two is evicted and the log folded.
  constexpr int kFiles = 2500;
  for (int i = 0; i < kFiles; ++i) ASSERT_TRUE(one_->fs.UserWrite(absl::StrCat("d", i % 7, "/f", i), absl::StrCat("v", i)).ok());
  ASSERT_TRUE(one_->fs.UserRemove("doomed.txt").ok());
  clock_.Advance(absl::Seconds(2));
  ASSERT_TRUE(one_->engine->SyncOnce().ok());
  const uint64_t head = one_->index->cursor();
  ASSERT_TRUE(store_->log()->Evict(sim::SimStore::kNamespace, "dev2").ok());
  ASSERT_TRUE(store_->log()->Evict(sim::SimStore::kNamespace, "dev3").ok());  // a new device, to come
  absl::StatusOr<CompactionResult> compacted = store_->log()->Compact(sim::SimStore::kNamespace, absl::Hours(24 * 30));
  ASSERT_TRUE(compacted.ok()) << compacted.status();
  ASSERT_GT(compacted->compacted_through, two_->index->cursor());

  // Back: the table is applied as it streams in, the cursor left where it was until the end
  // (a device killed halfway lists it again).
  std::vector<uint64_t> cursors;  // at each file written
  LocalIndex* index = nullptr;
  SlowWritesFilesystem fs(&clock_, [&] { cursors.push_back(index->cursor()); });
  PowerCutEnv env;
  absl::StatusOr<std::unique_ptr<LocalIndex>> opened = LocalIndex::Open("/index", env.env());
  ASSERT_TRUE(opened.ok()) << opened.status();
  index = opened->get();
  sim::SimStoreClient client(store_.get(), "dev3");
  SyncEngine back(&fs, index, &client, &clock_, "dev3", EngineOptions());
  ASSERT_TRUE(back.SyncOnce().ok());
  EXPECT_EQ(back.snapshots(), 1u);
  EXPECT_EQ(index->cursor(), head);
  EXPECT_EQ(fs.Snapshot(), one_->fs.Snapshot());
  ASSERT_EQ(cursors.size(), static_cast<size_t>(kFiles));
  EXPECT_EQ(cursors.back(), 0u);

  // The device that had the deleted file: gone from its folder too.
  ASSERT_TRUE(two_->engine->SyncOnce().ok());
  EXPECT_EQ(two_->engine->snapshots(), 1u);
  EXPECT_EQ(two_->fs.Snapshot(), one_->fs.Snapshot());
  EXPECT_EQ(two_->fs.Snapshot().count("doomed.txt"), 0u);
}

TEST_F(SyncEngineTest, AnExcludedSubtreeLeavesThisDeviceOnlyAndComesBackWithWhatCameMeanwhile) {
  ASSERT_TRUE(one_->fs.UserWrite("a/x.txt", "x").ok());
  ASSERT_TRUE(one_->fs.UserWrite("a/y.txt", "y").ok());
  ASSERT_TRUE(one_->fs.UserWrite("b.txt", "b").ok());
  Sync();
  // An edit made on two just before it excludes a/ goes up first: nothing made here is lost.
  ASSERT_TRUE(two_->fs.UserWrite("a/y.txt", "y edited on two").ok());
  clock_.Advance(absl::Seconds(2));
  Selection out;
  ASSERT_TRUE(out.Exclude("a").ok());
  two_->engine->SetSelection(out);
  ASSERT_TRUE(two_->engine->AdoptSelection().ok());
  std::map<std::string, std::string> two = two_->fs.Snapshot();
  EXPECT_FALSE(two.count("a/x.txt") || two.count("a/y.txt") || two.count("a")) << "a/ is still here";
  EXPECT_EQ(two["b.txt"], "b");
  EXPECT_EQ(two_->engine->status().excluded, std::vector<std::string>{"a"});
  // Others' changes there are not written here; what is made here there is not uploaded; the
  // removed copies are no deletions, not even after a restart.
  ASSERT_TRUE(one_->fs.UserWrite("a/z.txt", "z").ok());
  ASSERT_TRUE(two_->fs.UserWrite("a/local.txt", "two's own").ok());
  ASSERT_TRUE(two_->fs.UserWrite("a/x.txt", "two's x").ok());  // a path the namespace has
  Sync();
  two_->engine = std::make_unique<SyncEngine>(&two_->fs, two_->index.get(), &two_->client, &clock_, "dev2",
                                              EngineOptions{});
  Sync();
  EXPECT_FALSE(two_->fs.Snapshot().count("a/z.txt"));
  absl::StatusOr<std::map<std::string, std::string>> stored = store_->Files();
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ((*stored)["a/x.txt"], "x");
  EXPECT_EQ((*stored)["a/y.txt"], "y edited on two");
  EXPECT_EQ((*stored)["a/z.txt"], "z");
  EXPECT_FALSE(stored->count("a/local.txt"));
  EXPECT_EQ(one_->fs.Snapshot()["a/y.txt"], "y edited on two");
  // Back in: what came meanwhile arrives, two's own file stays and goes up.
  two_->engine->SetSelection(Selection());
  ASSERT_TRUE(two_->engine->AdoptSelection().ok());
  Sync();
  EXPECT_EQ(one_->fs.Snapshot(), two_->fs.Snapshot());
  EXPECT_EQ(one_->fs.Snapshot()["a/local.txt"], "two's own");
  EXPECT_EQ(two_->fs.Snapshot()["a/z.txt"], "z");
  // The namespace's a/x.txt comes back; two's own file there is kept as a conflict copy.
  std::map<std::string, std::string> one = one_->fs.Snapshot();
  EXPECT_EQ(one["a/x.txt"], "x");
  int copies = 0;
  for (const auto& [path, content] : one) {
    if (absl::StartsWith(path, "a/x (conflict") && content == "two's x") ++copies;
  }
  EXPECT_EQ(copies, 1);
  EXPECT_TRUE(two_->engine->status().excluded.empty());
}

TEST_F(SyncEngineTest, AnUnreadableSelectionStopsSyncingRatherThanDeletingWhatItKeptOut) {
  ASSERT_TRUE(one_->fs.UserWrite("a/x.txt", "x").ok());
  Sync();
  Selection out;
  ASSERT_TRUE(out.Exclude("a").ok());
  two_->engine->SetSelection(out);
  ASSERT_TRUE(two_->engine->AdoptSelection().ok());
  ASSERT_FALSE(two_->fs.Snapshot().count("a/x.txt"));
  ASSERT_TRUE(two_->index->SetSetting("selection", "a mangled rule\n").ok());
  two_->engine = std::make_unique<SyncEngine>(&two_->fs, two_->index.get(), &two_->client, &clock_, "dev2",
                                              EngineOptions{});
  clock_.Advance(absl::Seconds(2));
  const absl::Status refused = two_->engine->SyncOnce();
  EXPECT_TRUE(absl::StrContains(refused.message(), "selection this device keeps cannot be read")) << refused;
  ASSERT_TRUE(two_->index->SetSetting("selection", out.ToText()).ok());  // readable again
  EXPECT_TRUE(two_->engine->SyncOnce().ok());
  absl::StatusOr<std::map<std::string, std::string>> stored = store_->Files();
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ((*stored)["a/x.txt"], "x");
}

TEST_F(SyncEngineTest, AReceiveOnlyFolderKeepsItsChangesHomeAndARevertLosesNone) {
  ASSERT_TRUE(one_->fs.UserWrite("a.txt", "a").ok());
  ASSERT_TRUE(one_->fs.UserWrite("d/b.txt", "b").ok());
  ASSERT_TRUE(one_->fs.UserWrite("c.txt", "c").ok());
  Sync();
  EngineOptions receive_only;
  receive_only.receive_only = true;
  receive_only.delete_settle = absl::ZeroDuration();
  two_->engine = std::make_unique<SyncEngine>(&two_->fs, two_->index.get(), &two_->client, &clock_, "dev2", receive_only);
  ASSERT_TRUE(two_->fs.UserWrite("a.txt", "two's a").ok());
  ASSERT_TRUE(two_->fs.UserWrite("n/new.txt", "new").ok());
  ASSERT_TRUE(two_->fs.UserRemove("c.txt").ok());
  Sync();
  // Nothing went up; the differences are shown.
  absl::StatusOr<std::map<std::string, std::string>> stored = store_->Files();
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ((*stored)["a.txt"], "a");
  EXPECT_EQ((*stored)["c.txt"], "c");
  EXPECT_FALSE(stored->count("n/new.txt"));
  EXPECT_EQ(one_->fs.Snapshot()["a.txt"], "a");
  EngineStatus status = two_->engine->status();
  EXPECT_TRUE(status.receive_only);
  EXPECT_EQ(status.local_differences, 4u);  // a.txt, c.txt, n, n/new.txt
  EXPECT_EQ(status.differences_shown,
            (std::vector<std::string>{"a.txt (changed)", "c.txt (deleted)", "n (added)", "n/new.txt (added)"}));
  // Other devices' changes still arrive.
  ASSERT_TRUE(one_->fs.UserWrite("d/b.txt", "b2").ok());
  Sync();
  EXPECT_EQ(two_->fs.Snapshot()["d/b.txt"], "b2");
  // A revert brings the namespace's versions back and keeps this device's own aside.
  ASSERT_TRUE(two_->engine->Revert().ok());
  EXPECT_EQ(two_->fs.Snapshot(), one_->fs.Snapshot());
  std::map<std::string, std::string> aside = two_->fs.SetAsideSnapshot();
  std::vector<std::string> kept;
  for (const auto& [path, content] : aside) {
    if (absl::EndsWith(path, "/a.txt")) {
      EXPECT_EQ(content, "two's a");
    }
    if (absl::EndsWith(path, "/n/new.txt")) {
      EXPECT_EQ(content, "new");
    }
    kept.push_back(path.substr(path.find('/') + 1));
  }
  EXPECT_EQ(kept, (std::vector<std::string>{"a.txt", "n", "n/new.txt"}));
  EXPECT_EQ(two_->engine->status().local_differences, 0u);
  Sync();
  EXPECT_EQ(two_->fs.Snapshot(), one_->fs.Snapshot());
  // A folder that uploads its changes has nothing to revert.
  EXPECT_TRUE(absl::IsFailedPrecondition(one_->engine->Revert()));
}

TEST_F(SyncEngineTest, ASendOnlyFolderAppliesNoOtherDevicesChangeUntilItOverrides) {
  ASSERT_TRUE(one_->fs.UserWrite("a.txt", "a").ok());
  ASSERT_TRUE(one_->fs.UserWrite("gone.txt", "g").ok());
  Sync();
  EngineOptions send_only;
  send_only.send_only = true;
  send_only.delete_settle = absl::ZeroDuration();
  auto restart_two = [&] {
    two_->engine = std::make_unique<SyncEngine>(&two_->fs, two_->index.get(), &two_->client, &clock_, "dev2", send_only);
  };
  restart_two();
  ASSERT_TRUE(one_->fs.UserWrite("a.txt", "a from one").ok());
  ASSERT_TRUE(one_->fs.UserRemove("gone.txt").ok());
  ASSERT_TRUE(one_->fs.UserWrite("new.txt", "n").ok());
  ASSERT_TRUE(two_->fs.UserWrite("mine.txt", "two's").ok());
  Sync();
  std::map<std::string, std::string> two = two_->fs.Snapshot();
  EXPECT_EQ(two["a.txt"], "a");
  EXPECT_EQ(two["gone.txt"], "g");
  EXPECT_FALSE(two.count("new.txt"));
  EXPECT_EQ(one_->fs.Snapshot()["mine.txt"], "two's");  // its own changes go up
  EngineStatus status = two_->engine->status();
  EXPECT_TRUE(status.send_only);
  EXPECT_EQ(status.not_applied, 3u);
  EXPECT_EQ(status.not_applied_shown, (std::vector<std::string>{"a.txt", "gone.txt (deleted)", "new.txt"}));
  // An edit here goes up on top of the version it did not apply (no conflict); what it never
  // had and what it kept are no changes, not even after a restart.
  ASSERT_TRUE(two_->fs.UserWrite("a.txt", "a from two").ok());
  restart_two();
  Sync();
  std::map<std::string, std::string> one = one_->fs.Snapshot();
  EXPECT_EQ(one["a.txt"], "a from two");
  EXPECT_EQ(one.size(), 3u) << "a conflict copy, or gone.txt made again";  // a.txt, mine.txt, new.txt
  EXPECT_EQ(one["new.txt"], "n");
  // Override: the namespace becomes this folder.
  ASSERT_TRUE(two_->engine->Override().ok());
  Sync();
  EXPECT_EQ(one_->fs.Snapshot(), two_->fs.Snapshot());
  EXPECT_EQ(one_->fs.Snapshot()["gone.txt"], "g");
  EXPECT_FALSE(one_->fs.Snapshot().count("new.txt"));
  EXPECT_EQ(two_->engine->status().not_applied, 0u);
  EXPECT_TRUE(absl::IsFailedPrecondition(one_->engine->Override()));
}

TEST_F(SyncEngineTest, AFolderNoLongerSendOnlyTakesWhatItDidNotApply) {
  ASSERT_TRUE(one_->fs.UserWrite("a.txt", "a").ok());
  ASSERT_TRUE(one_->fs.UserWrite("gone.txt", "g").ok());
  Sync();
  EngineOptions send_only;
  send_only.send_only = true;
  two_->engine = std::make_unique<SyncEngine>(&two_->fs, two_->index.get(), &two_->client, &clock_, "dev2", send_only);
  ASSERT_TRUE(one_->fs.UserWrite("a.txt", "a from one").ok());
  ASSERT_TRUE(one_->fs.UserRemove("gone.txt").ok());
  ASSERT_TRUE(one_->fs.UserWrite("new.txt", "n").ok());
  Sync();
  ASSERT_EQ(two_->engine->status().not_applied, 3u);
  // Back to sending and receiving: the three arrive, nothing goes up in their place.
  two_->engine = std::make_unique<SyncEngine>(&two_->fs, two_->index.get(), &two_->client, &clock_, "dev2",
                                              EngineOptions{});
  Sync();
  EXPECT_EQ(two_->fs.Snapshot(), one_->fs.Snapshot());
  EXPECT_EQ(one_->fs.Snapshot()["a.txt"], "a from one");
  EXPECT_FALSE(two_->fs.Snapshot().count("gone.txt"));
  EXPECT_EQ(two_->fs.Snapshot()["new.txt"], "n");
  bool any = false;
  ASSERT_TRUE(two_->index->ForEachNotApplied([&](const IndexEntry&) { any = true; }).ok());
  EXPECT_FALSE(any);
}

}  // namespace
}  // namespace converge::engine
