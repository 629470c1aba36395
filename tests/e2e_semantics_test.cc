// End-to-end tests of sync semantics with real services and engines (TLS, loopback): moves are
// renames in place that move no chunk, edit-vs-move and move-vs-move end as one file, conflicts
// are recorded by the store and listed and resolved by users and operators, history restores
// files and whole folders, compaction folds the log below the watermark (an evicted device gets
// a snapshot), and symlinks are synced as links.
//
// CONVERGE_MOVE_BIG_MIB (default 64) and CONVERGE_MOVE_FILES (default 10000) size the move test;
// by hand: --test_env=CONVERGE_MOVE_BIG_MIB=1024.
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/model/conflict_name.h"
#include "gtest/gtest.h"
#include "tests/cluster.h"

namespace converge::testing {
namespace {

// PeakRssMiB: the largest resident size a process had (VmHWM), in MiB.
uint64_t PeakRssMiB(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return strtoull(line.c_str() + 6, nullptr, 10) / 1024;
  }
  return 0;
}

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = getenv(name);
  return v == nullptr ? fallback : strtoull(v, nullptr, 10);
}

std::string Random(std::mt19937_64& rng, size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    const uint64_t r = rng();
    for (size_t j = 0; j < 8 && i + j < n; ++j) s[i + j] = static_cast<char>(r >> (8 * j));
  }
  return s;
}

uint64_t Inode(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

class E2eSemanticsTest : public ::testing::Test {
 protected:
  void Start(ClusterOptions options = {}, int engines = 2) {
    options.dir = std::string(getenv("TEST_TMPDIR")) + "/" +
                  ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(options.dir);
    auto cluster = Cluster::Start(options);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = std::move(*cluster);
    const char* names[] = {"alpha", "beta", "gamma"};
    for (int i = 0; i < engines; ++i) ASSERT_TRUE(cluster_->AddEngine(names[i]).ok());
  }

  std::string Path(int engine, const std::string& rel) { return cluster_->folder(engine) + "/" + rel; }

  void Converge(absl::Duration timeout = absl::Seconds(60)) {
    absl::Status converged = cluster_->WaitConverged(timeout);
    ASSERT_TRUE(converged.ok()) << converged << "; logs in " << cluster_->logs_dir();
  }

  double StoreBytes(const char* direction) {
    auto scrape = cluster_->ServiceMetrics("store");
    return scrape.ok() ? Cluster::MetricValue(*scrape, absl::StrCat("converge_store_chunk_bytes_total{direction=\"",
                                                                     direction, "\"}"))
                       : -1;
  }

  // Engine runs `converge-engine <args> --folder=<engine's folder>`.
  CommandResult Engine(int engine, std::vector<std::string> args) {
    args.push_back("--folder=" + cluster_->folder(engine));
    return cluster_->EngineCommand(args);
  }

  std::string DeviceId(int engine) {
    const std::string status = ReadFile(Path(engine, ".converge/status.json"));
    const size_t at = status.find("\"device_id\"");
    if (at == std::string::npos) return "";
    const size_t start = status.find('"', status.find(':', at)) + 1;
    return status.substr(start, status.find('"', start) - start);
  }

  std::string EngineLog(int engine) { return cluster_->EngineLog(engine); }

  std::unique_ptr<Cluster> cluster_;
};

TEST_F(E2eSemanticsTest, AMovedFileOrFolderIsRenamedInPlaceAndMovesNoChunk) {
  Start();
  const uint64_t big_mib = EnvOr("CONVERGE_MOVE_BIG_MIB", 64);
  const uint64_t files = EnvOr("CONVERGE_MOVE_FILES", 10000);
  std::mt19937_64 rng(5);
  const std::string big = Random(rng, big_mib << 20);
  WriteFile(Path(0, "big.bin"), big);
  for (uint64_t i = 0; i < files; ++i) {
    WriteFile(Path(0, absl::StrCat("photos/", i / 1000, "/p", i, ".jpg")), Random(rng, 100 + rng() % 400));
  }
  absl::Time started = absl::Now();
  Converge(absl::Seconds(600));
  std::cout << "initial sync of " << big_mib << " MiB and " << files << " files: "
            << absl::FormatDuration(absl::Now() - started) << "; peak RSS: store " << PeakRssMiB(cluster_->store_pid())
            << " MiB, engines " << PeakRssMiB(cluster_->engine_pid(0)) << " and " << PeakRssMiB(cluster_->engine_pid(1))
            << " MiB\n";
  // Thousands of small chunks in flight must not each hold a chunk-sized buffer (they once held
  // 4 MiB each, and the store was killed for memory).
  EXPECT_LT(PeakRssMiB(cluster_->store_pid()), 1024u);
  EXPECT_LT(PeakRssMiB(cluster_->engine_pid(1)), 1024u);
  const uint64_t big_inode = Inode(Path(1, "big.bin"));
  const uint64_t photo_inode = Inode(Path(1, "photos/0/p7.jpg"));
  ASSERT_NE(big_inode, 0u);
  ASSERT_NE(photo_inode, 0u);
  const double in = StoreBytes("in"), out = StoreBytes("out");
  ASSERT_GT(in, 0);

  std::filesystem::create_directories(Path(0, "archive"));
  std::filesystem::rename(Path(0, "big.bin"), Path(0, "archive/big renamed.bin"));
  std::filesystem::create_directories(Path(0, "albums"));
  std::filesystem::rename(Path(0, "photos"), Path(0, "albums/2026"));
  started = absl::Now();
  // Time until beta has both under their new names and the old folder is gone (stat only).
  const std::string last_photo = absl::StrCat("albums/2026/", (files - 1) / 1000, "/p", files - 1, ".jpg");
  while (absl::Now() - started < absl::Seconds(300) &&
         (Inode(Path(1, "archive/big renamed.bin")) != big_inode || Inode(Path(1, last_photo)) == 0 ||
          std::filesystem::exists(Path(1, "photos")))) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  const absl::Duration arrived = absl::Now() - started;
  Converge(absl::Seconds(300));
  std::cout << "rename of the " << big_mib << " MiB file and the " << files << "-file folder reached beta in "
            << absl::FormatDuration(arrived) << "; chunk bytes to the store " << StoreBytes("in") - in
            << ", from it " << StoreBytes("out") - out << "\n";
  // Nothing crossed the wire but metadata: no chunk up, no chunk down.
  EXPECT_EQ(StoreBytes("in"), in);
  EXPECT_EQ(StoreBytes("out"), out);
  // beta renamed its own files: the same inodes, now under the new names.
  EXPECT_EQ(Inode(Path(1, "archive/big renamed.bin")), big_inode);
  EXPECT_EQ(Inode(Path(1, "albums/2026/0/p7.jpg")), photo_inode);
  EXPECT_FALSE(std::filesystem::exists(Path(1, "big.bin")));
  EXPECT_FALSE(std::filesystem::exists(Path(1, "photos")));
  EXPECT_EQ(ReadFile(Path(1, "archive/big renamed.bin")), big);
  // The rename of 10,000 files is not a mass delete: nothing is held.
  CommandResult held = cluster_->Convergectl({"deletes", "list"});
  EXPECT_EQ(held.exit_code, 0) << held.err;
  EXPECT_FALSE(absl::StrContains(held.out, "pending")) << held.out;
}

TEST_F(E2eSemanticsTest, EditMeetsMoveAndMoveMeetsMoveEndAsOneFile) {
  Start();
  WriteFile(Path(0, "notes.txt"), "draft");
  WriteFile(Path(0, "plan.txt"), "plan");
  WriteFile(Path(0, "todo.txt"), "todo");
  Converge();
  // An edit beats a delete, whichever comes first.
  cluster_->PauseEngine(1);
  std::filesystem::remove(Path(0, "todo.txt"));
  WriteFile(Path(1, "todo.txt"), "todo, edited on beta");
  absl::SleepFor(absl::Seconds(1));
  cluster_->ResumeEngine(1);
  Converge();
  EXPECT_EQ(ReadFile(Path(0, "todo.txt")), "todo, edited on beta");

  cluster_->PauseEngine(1);  // beta is offline: both change the same files
  std::filesystem::create_directories(Path(0, "docs"));
  std::filesystem::rename(Path(0, "notes.txt"), Path(0, "docs/notes.txt"));  // alpha moves...
  WriteFile(Path(1, "notes.txt"), "draft, edited on beta");                 // ...beta edits
  std::filesystem::create_directories(Path(0, "a"));
  std::filesystem::create_directories(Path(1, "b"));
  std::filesystem::rename(Path(0, "plan.txt"), Path(0, "a/plan.txt"));  // both move it
  std::filesystem::rename(Path(1, "plan.txt"), Path(1, "b/plan.txt"));
  absl::SleepFor(absl::Seconds(1));  // alpha commits first
  cluster_->ResumeEngine(1);
  Converge();
  auto snap = Cluster::SnapshotFolder(cluster_->folder(0));
  ASSERT_TRUE(snap.ok());
  // The edit travelled with the move: one file, no conflict copy, nothing at the old name.
  EXPECT_EQ(ReadFile(Path(0, "docs/notes.txt")), "draft, edited on beta");
  EXPECT_EQ(snap->count("notes.txt"), 0u);
  // Both moved plan.txt: one file (the first move committed), not two copies.
  int plans = 0;
  for (const auto& [path, hash] : *snap) {
    EXPECT_FALSE(absl::StrContains(path, "(conflict")) << path;
    if (absl::EndsWith(path, "plan.txt")) ++plans;
  }
  EXPECT_EQ(plans, 1) << "a/plan.txt and b/plan.txt both exist";
  EXPECT_EQ(ReadFile(Path(0, "a/plan.txt")), "plan");
}

TEST_F(E2eSemanticsTest, ConflictsAreRecordedListedAndResolved) {
  Start({}, 3);
  WriteFile(Path(0, "budget.txt"), "v0");
  Converge();
  // Three devices edit the same file at once: one edit wins, the other two are kept as copies.
  cluster_->PauseEngine(1);
  cluster_->PauseEngine(2);
  WriteFile(Path(0, "budget.txt"), "alpha's numbers");
  WriteFile(Path(1, "budget.txt"), "beta's numbers");
  WriteFile(Path(2, "budget.txt"), "gamma's numbers");
  absl::SleepFor(absl::Seconds(1));
  cluster_->ResumeEngine(1);
  cluster_->ResumeEngine(2);
  Converge();
  auto snap = Cluster::SnapshotFolder(cluster_->folder(2));
  ASSERT_TRUE(snap.ok());
  std::vector<std::string> contents;
  for (const auto& [path, hash] : *snap) contents.push_back(ReadFile(Path(2, path)));
  std::sort(contents.begin(), contents.end());
  EXPECT_EQ(contents, (std::vector<std::string>{"alpha's numbers", "beta's numbers", "gamma's numbers"}));
  // Each copy's name says whose edit it kept, by the name the device registered with: the
  // device that made the copy, and whose content it holds.
  for (const auto& [path, hash] : *snap) {
    if (path == "budget.txt") continue;
    std::optional<ConflictCopyName> name = ParseConflictName(path);
    ASSERT_TRUE(name.has_value()) << path;
    EXPECT_TRUE(name->device_label == "alpha" || name->device_label == "beta" || name->device_label == "gamma") << path;
    EXPECT_EQ(ReadFile(Path(2, path)), name->device_label + "'s numbers") << path;
  }
  CommandResult fleet = cluster_->Convergectl({"conflicts", "list"});
  EXPECT_EQ(std::count(fleet.out.begin(), fleet.out.end(), '\n'), 3) << fleet.out;  // header + 2
  const size_t second = fleet.out.rfind("budget (conflict ");
  ASSERT_NE(second, std::string::npos);
  const std::string other_copy = fleet.out.substr(second, fleet.out.find(".txt", second) + 4 - second);
  std::filesystem::remove(Path(2, other_copy));  // deleting a copy resolves it
  Converge();
  // The user sees the conflict on either device...
  CommandResult listed = Engine(0, {"conflicts"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_TRUE(absl::StrContains(listed.out, "the losing edit of budget.txt")) << listed.out;
  const size_t start = listed.out.find("budget (conflict ");
  ASSERT_NE(start, std::string::npos) << listed.out;
  const std::string copy = listed.out.substr(start, listed.out.find('\n', start) - start);
  EXPECT_TRUE(std::filesystem::exists(Path(0, copy))) << copy;
  const std::string label = ParseConflictName(copy)->device_label;
  EXPECT_TRUE(absl::StrContains(listed.out, absl::StrCat("kept by ", label, " (dev-"))) << listed.out;
  // ...and the operator across the fleet.
  fleet = cluster_->Convergectl({"conflicts", "list"});
  ASSERT_EQ(fleet.exit_code, 0) << fleet.err;
  EXPECT_TRUE(absl::StrContains(fleet.out, copy)) << fleet.out;
  EXPECT_TRUE(absl::StrContains(fleet.out, "open")) << fleet.out;
  // Marked resolved by the user: gone from the open list, the copy stays.
  CommandResult resolved = Engine(1, {"resolve", copy});
  ASSERT_EQ(resolved.exit_code, 0) << resolved.err;
  listed = Engine(0, {"conflicts"});
  EXPECT_TRUE(absl::StrContains(listed.out, "no open conflicts")) << listed.out;
  listed = Engine(0, {"conflicts", "--all"});
  EXPECT_TRUE(absl::StrContains(listed.out, "resolved")) << listed.out;
  EXPECT_TRUE(std::filesystem::exists(Path(1, copy)));
  CommandResult status = cluster_->Convergectl({"namespaces", "status", "shared"});
  EXPECT_TRUE(absl::StrContains(status.out, "0 open conflicts")) << status.out;
  fleet = cluster_->Convergectl({"conflicts", "list", "--all"});
  EXPECT_TRUE(absl::StrContains(fleet.out, "resolved (deleted by dev-")) << fleet.out;
  // Resolving an unknown copy is a clear error.
  CommandResult unknown = cluster_->Convergectl({"conflicts", "resolve", "shared", "nope.txt"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(unknown.err, "no conflict copy")) << unknown.err;
}

TEST_F(E2eSemanticsTest, HistoryRestoresAFileADeletedFileAndTheWholeFolder) {
  Start();
  auto now = [] { return absl::FormatTime(absl::RFC3339_full, absl::Now(), absl::UTCTimeZone()); };
  WriteFile(Path(0, "report.txt"), "first");
  WriteFile(Path(0, "old/keep.txt"), "keep me");
  Converge();
  absl::SleepFor(absl::Milliseconds(20));
  const std::string after_first = now();
  absl::SleepFor(absl::Milliseconds(20));
  WriteFile(Path(0, "report.txt"), "second");
  Converge();
  WriteFile(Path(0, "report.txt"), "ruined");
  Converge();
  CommandResult history = Engine(1, {"history", "report.txt"});
  ASSERT_EQ(history.exit_code, 0) << history.err;
  EXPECT_EQ(std::count(history.out.begin(), history.out.end(), '\n'), 3) << history.out;
  EXPECT_EQ(std::vector<std::string>(absl::StrSplit(history.out, "by alpha (dev-")).size(), 4u)
      << "each version names alpha: " << history.out;

  // One file back to its first version, from beta; alpha gets it too.
  CommandResult restored = Engine(1, {"restore", "report.txt", "--at=" + after_first});
  ASSERT_EQ(restored.exit_code, 0) << restored.err;
  Converge();
  EXPECT_EQ(ReadFile(Path(0, "report.txt")), "first");

  // A deleted directory and its file come back.
  std::filesystem::remove_all(Path(0, "old"));
  Converge();
  ASSERT_FALSE(std::filesystem::exists(Path(1, "old/keep.txt")));
  restored = Engine(1, {"restore", "old/keep.txt", "--at=" + after_first});
  ASSERT_EQ(restored.exit_code, 0) << restored.err;
  Converge();
  EXPECT_EQ(ReadFile(Path(0, "old/keep.txt")), "keep me");

  // The whole folder as it was: what was made since goes (into history), the rest comes back.
  const std::string before_mess = now();
  absl::SleepFor(absl::Milliseconds(20));
  WriteFile(Path(0, "report.txt"), "overwritten");
  WriteFile(Path(0, "new/stray.txt"), "stray");
  std::filesystem::remove(Path(0, "old/keep.txt"));
  Converge();
  restored = Engine(0, {"restore", "--at=" + before_mess});
  ASSERT_EQ(restored.exit_code, 0) << restored.err;
  EXPECT_TRUE(absl::StrContains(restored.out, "restored 2 path(s), deleted 2")) << restored.out;
  Converge();
  EXPECT_EQ(ReadFile(Path(1, "report.txt")), "first");
  EXPECT_EQ(ReadFile(Path(1, "old/keep.txt")), "keep me");
  EXPECT_FALSE(std::filesystem::exists(Path(1, "new")));
  // Clear errors: an unknown path, no version given.
  EXPECT_EQ(Engine(0, {"restore", "never.txt", "--seq=1"}).exit_code, 1);
  EXPECT_EQ(Engine(0, {"restore", "report.txt"}).exit_code, 2);
}

TEST_F(E2eSemanticsTest, CompactionWaitsForDevicesAndAnEvictedDeviceGetsASnapshot) {
  ClusterOptions options;
  options.store_args = {"--history_retention=0s", "--compact_interval=0s", "--chunk_grace=0s"};
  Start(options);
  for (int i = 0; i < 20; ++i) WriteFile(Path(0, absl::StrCat("f", i, ".txt")), absl::StrCat("v1 ", i));
  Converge();
  const std::string beta = DeviceId(1);
  ASSERT_FALSE(beta.empty());
  cluster_->StopEngine(1);  // beta goes away for a long time
  for (int i = 0; i < 10; ++i) WriteFile(Path(0, absl::StrCat("f", i, ".txt")), absl::StrCat("v2 ", i));
  for (int i = 10; i < 15; ++i) std::filesystem::remove(Path(0, absl::StrCat("f", i, ".txt")));
  WriteFile(Path(0, "added.txt"), "new while beta was away");
  absl::SleepFor(absl::Seconds(2));  // alpha commits

  CommandResult status = cluster_->Convergectl({"namespaces", "status", "shared"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_TRUE(absl::StrContains(status.out, "pins the watermark")) << status.out;
  CommandResult compact = cluster_->Convergectl({"namespaces", "compact", "shared"});
  ASSERT_EQ(compact.exit_code, 0) << compact.err;
  EXPECT_TRUE(absl::StrContains(compact.out, "the watermark is held by: " + beta)) << compact.out;

  // Old versions past the (zero) retention went, and with them the chunks only they used.
  EXPECT_FALSE(absl::StrContains(compact.out, " 0 chunks")) << compact.out;

  CommandResult evicted = cluster_->Convergectl({"namespaces", "evict", "shared", beta});
  ASSERT_EQ(evicted.exit_code, 0) << evicted.err;
  compact = cluster_->Convergectl({"namespaces", "compact", "shared"});
  ASSERT_EQ(compact.exit_code, 0) << compact.err;
  EXPECT_FALSE(absl::StrContains(compact.out, "held by")) << compact.out;
  EXPECT_FALSE(absl::StrContains(compact.out, " 0 log entries folded")) << compact.out;
  EXPECT_FALSE(absl::StrContains(compact.out, " 0 deletions past the retention dropped")) << compact.out;

  // beta comes back below the compacted log: the file table, then the log after it.
  ASSERT_TRUE(cluster_->StartEngine(1).ok());
  Converge();
  EXPECT_TRUE(absl::StrContains(EngineLog(1), "applied its file table")) << cluster_->logs_dir();
  EXPECT_EQ(ReadFile(Path(1, "f3.txt")), "v2 3");
  EXPECT_EQ(ReadFile(Path(1, "added.txt")), "new while beta was away");
  EXPECT_FALSE(std::filesystem::exists(Path(1, "f12.txt")));  // its tombstone was compacted away
  status = cluster_->Convergectl({"namespaces", "status", "shared"});
  EXPECT_FALSE(absl::StrContains(status.out, "evicted")) << status.out;  // its ack ended the eviction
}

TEST_F(E2eSemanticsTest, AFolderWhoseDiskIsGoneIsNeverTakenAsEverythingDeleted) {
  Start();
  for (int i = 0; i < 5; ++i) WriteFile(Path(0, absl::StrCat("keep", i, ".txt")), "keep");
  Converge();
  // beta's disk is "unmounted": its files vanish and so does the marker in the state dir.
  for (int i = 0; i < 5; ++i) std::filesystem::remove(Path(1, absl::StrCat("keep", i, ".txt")));
  std::filesystem::remove(Path(1, ".converge/folder-marker"));
  absl::SleepFor(absl::Seconds(2));  // ten full scans
  auto store = cluster_->SnapshotStore();
  ASSERT_TRUE(store.ok());
  EXPECT_EQ(store->size(), 5u);  // nothing deleted in the store
  EXPECT_EQ(ReadFile(Path(0, "keep3.txt")), "keep");
  // The status says why, in every state of its retries (polled: the status file is rewritten
  // four times a second).
  CommandResult status;
  for (int i = 0; i < 8; ++i) {
    status = Engine(1, {"status"});
    EXPECT_TRUE(absl::StrContains(status.out, "marker")) << status.out;
    absl::SleepFor(absl::Milliseconds(130));
  }
}

TEST_F(E2eSemanticsTest, SymlinksAreSyncedAsLinksNeverFollowed) {
  Start();
  WriteFile(Path(0, "docs/target.txt"), "t");
  std::filesystem::create_directories(Path(0, "links"));
  std::filesystem::create_symlink("/etc", Path(0, "system"));
  std::filesystem::create_symlink("../docs/target.txt", Path(0, "links/rel"));
  Converge();
  EXPECT_EQ(std::filesystem::read_symlink(Path(1, "system")).string(), "/etc");
  EXPECT_TRUE(std::filesystem::is_symlink(Path(1, "links/rel")));
  EXPECT_EQ(std::filesystem::read_symlink(Path(1, "links/rel")).string(), "../docs/target.txt");
  // Nothing below /etc was synced through the link.
  auto store = cluster_->SnapshotStore();
  ASSERT_TRUE(store.ok());
  for (const auto& [path, what] : *store) EXPECT_FALSE(absl::StartsWith(path, "system/")) << path;
  // Retargeted on beta, alpha follows.
  std::filesystem::remove(Path(1, "links/rel"));
  std::filesystem::create_symlink("elsewhere", Path(1, "links/rel"));
  Converge();
  EXPECT_EQ(std::filesystem::read_symlink(Path(0, "links/rel")).string(), "elsewhere");
}

}  // namespace
}  // namespace converge::testing
