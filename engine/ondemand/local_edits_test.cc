// Writes in an on-demand folder (LocalEdits, uploaded by the folder) reaching a syncing device
// through the store's logic, conflicts with that device's edits, and a restart with changes
// still pending. The FUSE side is tests/e2e_on_demand_test.cc.
#include "engine/ondemand/local_edits.h"

#include <unistd.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/ondemand/on_demand_folder.h"
#include "engine/ondemand/writer_for_test.h"
#include "gtest/gtest.h"
#include "tests/testing/sim_store.h"
#include "tests/testing/test_folder.h"

namespace converge::engine {
namespace {

// Keeps records in memory, across folders (a restart), as the daemon keeps them in files.
class MemJournal : public ChangeJournal {
 public:
  absl::Status Put(const PendingChange& change) override {
    if (fail_) return absl::ResourceExhaustedError("disk full");
    records_[change.id] = change;
    return absl::OkStatus();
  }
  absl::Status Drop(uint64_t id) override {
    if (on_drop) on_drop(id);
    records_.erase(id);
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<PendingChange>> LoadAll() override {
    std::vector<PendingChange> out;
    for (const auto& [id, c] : records_) out.push_back(c);
    return out;
  }
  absl::Status Sync() override { return absl::OkStatus(); }
  std::map<uint64_t, PendingChange> records_;
  bool fail_ = false;
  std::function<void(uint64_t id)> on_drop;  // as a record is dropped
};

bool WaitFor(const std::function<bool()>& cond) {
  for (int i = 0; i < 500; ++i) {
    if (cond()) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return cond();
}

class LocalEditsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(writer_.Open().ok());
    reader_ = std::make_unique<sim::SimStoreClient>(writer_.store.get(), "dev2");
    options_.state_path = testing::MakeTestDir();
    options_.mount = false;
    options_.journal = &journal_;
    options_.device_id = "dev2";
    options_.device_name = "laptop";
    options_.upload_quiet = absl::Milliseconds(10);
    options_.follow_interval = absl::Hours(1);  // only what the test announces is followed
  }
  void Write(const std::string& path, const std::string& content) {
    ASSERT_TRUE(writer_.fs->UserWrite(path, content).ok());
    ASSERT_TRUE(writer_.Sync().ok());
  }
  // WriteThrough writes `content` at `offset` of a file of the folder, as a program would.
  static void WriteThrough(LocalEdits* edits, const std::string& path, const std::string& content, bool create,
                           off_t offset = 0) {
    absl::StatusOr<LocalEdits::Handle> h = create ? edits->Create(path, 0644) : edits->OpenForWrite(path, false);
    ASSERT_TRUE(h.ok()) << h.status();
    ASSERT_EQ(pwrite(h->fd, content.data(), content.size(), offset), static_cast<ssize_t>(content.size()));
    edits->Wrote(h->id);
    edits->Release(*h);
  }
  static bool Uploaded(OnDemandFolder& f) { return f.edits()->stats().pending == 0; }
  std::string Read(OnDemandFolder& f, const std::string& path) {
    absl::StatusOr<std::string> bytes = f.view()->Read(path, 0, 1 << 20);
    return bytes.ok() ? *bytes : "<" + bytes.status().ToString() + ">";
  }
  std::map<std::string, std::string> WriterSees() {
    EXPECT_TRUE(writer_.Sync().ok());
    return writer_.fs->Snapshot();
  }

  WriterForTest writer_;
  std::unique_ptr<sim::SimStoreClient> reader_;
  MemJournal journal_;
  OnDemandOptions options_;
};

TEST_F(LocalEditsTest, ChangesMadeHereReachASyncingDevice) {
  Write("a.txt", "alpha");
  Write("b.txt", "bravo");
  Write("c.txt", "charlie");
  OnDemandFolder folder(reader_.get(), options_, [](const OnDemandStatus&) {});
  ASSERT_TRUE(folder.Start().ok());
  LocalEdits* edits = folder.edits();
  WriteThrough(edits, "new.txt", "fresh", /*create=*/true);
  WriteThrough(edits, "a.txt", "ALPHA-and-more", /*create=*/false);  // over the fetched copy
  ASSERT_TRUE(edits->MkDir("d", 0755).ok());
  ASSERT_TRUE(edits->Rename("b.txt", "d/b.txt", false).ok());
  ASSERT_TRUE(edits->Unlink("c.txt").ok());
  ASSERT_TRUE(edits->SetMode("new.txt", 0600).ok());
  // Shown at once, before the store has them.
  EXPECT_EQ(Read(folder, "new.txt"), "fresh");
  EXPECT_EQ(Read(folder, "d/b.txt"), "bravo");
  EXPECT_FALSE(folder.view()->Stat("c.txt").ok());
  ASSERT_TRUE(WaitFor([&] { return Uploaded(folder); }));
  std::map<std::string, std::string> seen = WriterSees();
  EXPECT_EQ(seen["new.txt"], "fresh");
  EXPECT_EQ(seen["a.txt"], "ALPHA-and-more");
  EXPECT_EQ(seen["d/b.txt"], "bravo");
  EXPECT_EQ(seen.count("b.txt"), 0u);
  EXPECT_EQ(seen.count("c.txt"), 0u);
  EXPECT_TRUE(journal_.records_.empty());
  // The move kept the file's id (a move, not a new file), and the data files are gone.
  absl::StatusOr<std::vector<HistoryVersion>> moved = reader_->ListVersions("d/b.txt", 1);
  absl::StatusOr<std::vector<HistoryVersion>> before = reader_->ListVersions("b.txt", 2);
  ASSERT_TRUE(moved.ok() && before.ok() && !moved->empty() && before->size() == 2);
  EXPECT_EQ(moved->front().version.file_id, before->back().version.file_id);
  // Read back from the cache, not the written copy.
  EXPECT_EQ(Read(folder, "a.txt"), "ALPHA-and-more");
  EXPECT_EQ(folder.view()->Stat("new.txt")->mode, 0600u);
}

// A program reading a file as its upload settles: the moment its written copy goes, the view
// already reads the committed one (it used to go first, and such a read failed with EIO).
TEST_F(LocalEditsTest, AReadAsAnUploadSettlesFindsTheCommittedCopy) {
  Write("a.txt", "alpha");
  OnDemandFolder folder(reader_.get(), options_, [](const OnDemandStatus&) {});
  ASSERT_TRUE(folder.Start().ok());
  std::vector<std::string> seen;
  journal_.on_drop = [&](uint64_t id) {
    unlink(absl::StrCat(options_.state_path, "/local/", id, ".data").c_str());  // gone, as it is about to be
    seen.push_back(Read(folder, "new.txt"));
  };
  WriteThrough(folder.edits(), "new.txt", "fresh", /*create=*/true);
  ASSERT_TRUE(WaitFor([&] { return Uploaded(folder); }));
  EXPECT_EQ(seen, std::vector<std::string>{"fresh"});
  EXPECT_EQ(WriterSees()["new.txt"], "fresh");
}

TEST_F(LocalEditsTest, AnEditOfAFileEditedElsewhereBecomesAConflictCopy) {
  Write("notes.txt", "base");
  Write("gone.txt", "to delete here");
  OnDemandFolder folder(reader_.get(), options_, [](const OnDemandStatus&) {});
  ASSERT_TRUE(folder.Start().ok());
  Write("notes.txt", "theirs");          // the folder has not heard of it
  Write("gone.txt", "edited there");
  WriteThrough(folder.edits(), "notes.txt", "mine", /*create=*/false);
  ASSERT_TRUE(folder.edits()->Unlink("gone.txt").ok());
  ASSERT_TRUE(WaitFor([&] { return Uploaded(folder); }));
  EXPECT_EQ(folder.edits()->stats().conflicts, 1u);
  EXPECT_EQ(Read(folder, "notes.txt"), "theirs");
  EXPECT_EQ(Read(folder, "gone.txt"), "edited there");  // an edit beats a delete
  std::map<std::string, std::string> seen = WriterSees();
  EXPECT_EQ(seen["notes.txt"], "theirs");
  EXPECT_EQ(seen["gone.txt"], "edited there");
  std::string copy;
  for (const auto& [path, content] : seen) {
    if (absl::StartsWith(path, "notes (conflict laptop dev2 ")) copy = path;
  }
  ASSERT_FALSE(copy.empty()) << "no conflict copy of notes.txt";
  EXPECT_EQ(seen[copy], "mine");
  EXPECT_EQ(Read(folder, copy), "mine");
}

TEST_F(LocalEditsTest, ANewFileOverAPathDeletedLongAgoIsMadeAgain) {
  Write("old.txt", "once");
  ASSERT_TRUE(writer_.fs->UserRemove("old.txt").ok());
  ASSERT_TRUE(writer_.Sync().ok());  // a tombstone the folder's listing does not show
  OnDemandFolder folder(reader_.get(), options_, [](const OnDemandStatus&) {});
  ASSERT_TRUE(folder.Start().ok());
  WriteThrough(folder.edits(), "old.txt", "again", /*create=*/true);
  ASSERT_TRUE(WaitFor([&] { return Uploaded(folder); }));
  EXPECT_EQ(folder.edits()->stats().conflicts, 0u);
  EXPECT_EQ(WriterSees()["old.txt"], "again");
}

TEST_F(LocalEditsTest, ChangesPendingAtARestartAreUploadedAfterIt) {
  Write("keep.txt", "keep");
  {
    OnDemandFolder offline(nullptr, options_, [](const OnDemandStatus&) {});  // never connected
    ASSERT_TRUE(offline.Start().ok());
    WriteThrough(offline.edits(), "made-offline.txt", "offline bytes", /*create=*/true);
    ASSERT_TRUE(offline.edits()->MkDir("dir", 0700).ok());
    offline.Stop();
  }
  EXPECT_EQ(journal_.records_.size(), 2u);
  OnDemandFolder folder(nullptr, options_, [](const OnDemandStatus&) {});
  ASSERT_TRUE(folder.Start().ok());
  EXPECT_EQ(Read(folder, "made-offline.txt"), "offline bytes");  // shown before the store is reached
  folder.Connect(reader_.get(), "dev2");
  ASSERT_TRUE(WaitFor([&] { return Uploaded(folder); }));
  std::map<std::string, std::string> seen = WriterSees();
  EXPECT_EQ(seen["made-offline.txt"], "offline bytes");
  EXPECT_EQ(seen["dir"], "/");
  EXPECT_EQ(seen["keep.txt"], "keep");
}

TEST_F(LocalEditsTest, BadNamesAndMissingParentsAreRefusedAndChangeNothing) {
  OnDemandFolder folder(reader_.get(), options_, [](const OnDemandStatus&) {});
  ASSERT_TRUE(folder.Start().ok());
  LocalEdits* edits = folder.edits();
  EXPECT_EQ(ErrnoOf(edits->Create("no/such/dir.txt", 0644).status()), ENOENT);
  EXPECT_EQ(ErrnoOf(edits->Create("con.txt", 0644).status()), EINVAL);  // not syncable everywhere
  EXPECT_EQ(ErrnoOf(edits->MkDir("trailing.", 0755)), EINVAL);
  ASSERT_TRUE(edits->MkDir("d", 0755).ok());
  WriteThrough(edits, "d/f", "x", /*create=*/true);
  EXPECT_EQ(ErrnoOf(edits->RmDir("d")), ENOTEMPTY);
  EXPECT_EQ(ErrnoOf(edits->Rename("d", "d/inside", false)), EINVAL);
  EXPECT_EQ(ErrnoOf(edits->Unlink("d")), EISDIR);
  journal_.fail_ = true;  // the record cannot be written: the change is refused, not half made
  EXPECT_EQ(ErrnoOf(edits->MkDir("e", 0755)), ENOSPC);
  EXPECT_FALSE(folder.view()->Stat("e").ok());
  journal_.fail_ = false;
  ASSERT_TRUE(WaitFor([&] { return Uploaded(folder); }));
  EXPECT_EQ(WriterSees()["d/f"], "x");
}

// A directory moved while a file in it is held open: the rest of the move goes up first, and
// the old directory's deletion waits for that file's (the store deletes a directory only once
// everything in it is deleted) instead of being refused for good.
TEST_F(LocalEditsTest, ADirectoryMovedWhileAFileInItIsOpenGoesUpWhole) {
  Write("old/x.txt", "x");
  Write("old/deep/y.txt", "y");
  OnDemandFolder folder(reader_.get(), options_, [](const OnDemandStatus&) {});
  ASSERT_TRUE(folder.Start().ok());
  ASSERT_TRUE(folder.edits()->Rename("old", "new", false).ok());
  absl::StatusOr<LocalEdits::Handle> held = folder.edits()->OpenForWrite("new/x.txt", false);
  ASSERT_TRUE(held.ok()) << held.status();
  ASSERT_TRUE(WaitFor([&] { return folder.edits()->stats().pending <= 3; }));  // the rest went up
  absl::SleepFor(absl::Milliseconds(100));
  ASSERT_EQ(pwrite(held->fd, "X", 1, 0), 1);
  folder.edits()->Wrote(held->id);
  folder.edits()->Release(*held);
  ASSERT_TRUE(WaitFor([&] { return Uploaded(folder); })) << folder.edits()->stats().first_refused;
  std::map<std::string, std::string> seen = WriterSees();
  EXPECT_EQ(seen["new/x.txt"], "X");
  EXPECT_EQ(seen["new/deep/y.txt"], "y");
  EXPECT_EQ(seen.count("old"), 0u);
  EXPECT_EQ(seen.count("old/deep"), 0u);
}

TEST_F(LocalEditsTest, AChangeTheStoreRefusesIsKeptAndHoldsNoOtherBack) {
  Write("README.txt", "readme");
  OnDemandFolder folder(reader_.get(), options_, [](const OnDemandStatus&) {});
  ASSERT_TRUE(folder.Start().ok());
  WriteThrough(folder.edits(), "Readme.txt", "differs only in case", /*create=*/true);
  WriteThrough(folder.edits(), "other.txt", "fine", /*create=*/true);
  ASSERT_TRUE(WaitFor([&] { return folder.edits()->stats().refused == 1 && folder.edits()->stats().pending == 1; }));
  EXPECT_TRUE(absl::StartsWith(folder.edits()->stats().first_refused, "Readme.txt: ")) << folder.edits()->stats().first_refused;
  EXPECT_EQ(Read(folder, "Readme.txt"), "differs only in case");  // kept here
  std::map<std::string, std::string> seen = WriterSees();
  EXPECT_EQ(seen["other.txt"], "fine");
  EXPECT_EQ(seen.count("Readme.txt"), 0u);
  // Renamed, it goes.
  ASSERT_TRUE(folder.edits()->Rename("Readme.txt", "readme-2.txt", false).ok());
  ASSERT_TRUE(WaitFor([&] { return Uploaded(folder); }));
  EXPECT_EQ(WriterSees()["readme-2.txt"], "differs only in case");
}

// rm -r of most of the namespace through the mount: held by the store like a syncing device's,
// given back when an operator rejects it, applied when one approves the next.
TEST_F(LocalEditsTest, AMassDeleteIsHeldThenRestoredOrApplied) {
  for (int i = 0; i < 120; ++i) ASSERT_TRUE(writer_.fs->UserWrite(absl::StrCat("many/f", i), "x").ok());
  ASSERT_TRUE(writer_.Sync().ok());
  OnDemandFolder folder(reader_.get(), options_, [](const OnDemandStatus&) {});
  ASSERT_TRUE(folder.Start().ok());
  auto remove_all = [&] {
    for (int i = 0; i < 120; ++i) ASSERT_TRUE(folder.edits()->Unlink(absl::StrCat("many/f", i)).ok());
  };
  auto pending_hold = [&]() -> std::string {
    absl::StatusOr<std::vector<HeldDelete>> held = writer_.store->log()->ListHeld(sim::SimStore::kNamespace);
    if (!held.ok()) return "";
    for (const HeldDelete& h : *held) {
      if (h.state == HeldDelete::State::kPending) return h.id;
    }
    return "";
  };
  remove_all();
  ASSERT_TRUE(WaitFor([&] { return !pending_hold().empty(); }));
  EXPECT_FALSE(folder.view()->Stat("many/f3").ok());  // gone here while held
  EXPECT_EQ(folder.edits()->stats().pending_deletes, 120u);
  ASSERT_TRUE(writer_.store->log()->ResolveHeld(sim::SimStore::kNamespace, pending_hold(), false).ok());
  ASSERT_TRUE(WaitFor([&] { return Uploaded(folder); }));
  EXPECT_EQ(Read(folder, "many/f3"), "x");  // rejected: shown again
  EXPECT_EQ(WriterSees().count("many/f3"), 1u);

  remove_all();
  ASSERT_TRUE(WaitFor([&] { return !pending_hold().empty(); }));
  ASSERT_TRUE(writer_.store->log()->ResolveHeld(sim::SimStore::kNamespace, pending_hold(), true).ok());
  ASSERT_TRUE(WaitFor([&] { return Uploaded(folder); }));
  EXPECT_EQ(WriterSees().count("many/f3"), 0u);
}

}  // namespace
}  // namespace converge::engine
