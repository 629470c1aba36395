// End to end: real converge-notify, converge-store and converge-management processes on
// loopback, and three converge-engine processes on three folders of one namespace. A seeded
// random mix of creates, edits, deletes, nested directories, empty files and a 50 MiB file is
// made on different engines; after every round all three folders must be byte-identical and
// match the store's file table. The seed is printed; CONVERGE_E2E_SEED replays it.
#include <algorithm>
#include <cstdlib>
#include <sys/stat.h>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/cluster.h"

namespace converge::testing {
namespace {

constexpr int kEngines = 3;
constexpr int kRounds = 6;
constexpr int kOpsPerRound = 10;
constexpr size_t kBigFileBytes = 50 << 20;

std::string RandomBytes(std::mt19937_64& rng, size_t n) {
  std::string out(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    const uint64_t v = rng();
    std::memcpy(out.data() + i, &v, std::min<size_t>(8, n - i));
  }
  return out;
}

// Files and directories currently in a folder (relative paths), outside the state dir.
void List(const std::string& folder, std::vector<std::string>* files, std::vector<std::string>* dirs) {
  for (auto it = std::filesystem::recursive_directory_iterator(folder);
       it != std::filesystem::recursive_directory_iterator(); ++it) {
    const std::string rel = it->path().string().substr(folder.size() + 1);
    if (rel == ".converge") {
      it.disable_recursion_pending();
      continue;
    }
    (it->is_directory() ? dirs : files)->push_back(rel);
  }
  std::sort(files->begin(), files->end());
  std::sort(dirs->begin(), dirs->end());
}

// A random path: up to two directory levels ("d0".."d3"), then a file name ("f0".."f9").
std::string RandomFilePath(std::mt19937_64& rng) {
  std::string path;
  const int depth = static_cast<int>(rng() % 3);
  for (int i = 0; i < depth; ++i) absl::StrAppend(&path, "d", rng() % 4, "/");
  absl::StrAppend(&path, "f", rng() % 10, rng() % 2 ? ".txt" : ".bin");
  return path;
}

class E2eSyncTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* env = getenv("CONVERGE_E2E_SEED");
    seed_ = env != nullptr ? std::strtoull(env, nullptr, 10) : std::random_device{}();
    std::cout << "seed " << seed_ << " (replay with CONVERGE_E2E_SEED=" << seed_ << ")" << std::endl;
    ClusterOptions options;
    options.dir = std::string(getenv("TEST_TMPDIR")) + "/e2e";
    std::filesystem::remove_all(options.dir);
    auto cluster = Cluster::Start(options);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = std::move(*cluster);
    for (int i = 0; i < kEngines; ++i) ASSERT_TRUE(cluster_->AddEngine(absl::StrCat("device", i)).ok());
  }

  // One random operation on folder `engine`; returns a description for the trace.
  std::string RandomOp(std::mt19937_64& rng, int engine) {
    const std::string root = cluster_->folder(engine);
    std::vector<std::string> files, dirs;
    List(root, &files, &dirs);
    const int kind = static_cast<int>(rng() % 10);
    if (kind <= 3 || files.empty()) {  // create (sometimes empty)
      const std::string path = RandomFilePath(rng);
      const size_t size = rng() % 5 == 0 ? 0 : rng() % (64 << 10);
      WriteFile(root + "/" + path, RandomBytes(rng, size));
      return absl::StrCat("create ", path, " (", size, " B)");
    }
    const std::string victim = files[rng() % files.size()];
    if (kind <= 6) {  // edit: rewrite part or all of the file
      const std::string path = root + "/" + victim;
      const uintmax_t size = std::filesystem::file_size(path);
      if (size > (1 << 20)) {  // big file: overwrite 64 KiB in the middle
        std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(static_cast<std::streamoff>(size / 2));
        const std::string patch = RandomBytes(rng, 64 << 10);
        f.write(patch.data(), static_cast<std::streamsize>(patch.size()));
      } else {
        WriteFile(path, RandomBytes(rng, rng() % (32 << 10) + 1));
      }
      return absl::StrCat("edit ", victim);
    }
    if (kind <= 8) {  // delete a file
      if (std::filesystem::file_size(root + "/" + victim) > (1 << 20)) return "keep the big file";
      std::filesystem::remove(root + "/" + victim);
      return absl::StrCat("delete ", victim);
    }
    // make an empty nested directory, or delete a directory tree without the big file
    if (rng() % 2 == 0 || dirs.empty()) {
      const std::string dir = absl::StrCat("d", rng() % 4, "/e", rng() % 3);
      std::filesystem::create_directories(root + "/" + dir);
      return absl::StrCat("mkdir ", dir);
    }
    const std::string dir = dirs[rng() % dirs.size()];
    for (const auto& e : std::filesystem::recursive_directory_iterator(root + "/" + dir)) {
      if (e.is_regular_file() && e.file_size() > (1 << 20)) return "keep the big file's directory";
    }
    std::filesystem::remove_all(root + "/" + dir);
    return absl::StrCat("rmtree ", dir);
  }

  uint64_t seed_ = 0;
  std::unique_ptr<Cluster> cluster_;
};

TEST_F(E2eSyncTest, ThreeEnginesConvergeOnRandomOperations) {
  SCOPED_TRACE(absl::StrCat("seed ", seed_, " (replay with CONVERGE_E2E_SEED=", seed_, ")"));
  std::mt19937_64 rng(seed_);

  // A 50 MiB file from device 0 first.
  WriteFile(cluster_->folder(0) + "/big/video.bin", RandomBytes(rng, kBigFileBytes));
  absl::Status converged = cluster_->WaitConverged(absl::Seconds(120));
  ASSERT_TRUE(converged.ok()) << converged << "; logs in " << cluster_->logs_dir();

  for (int round = 0; round < kRounds; ++round) {
    std::string ops;
    for (int i = 0; i < kOpsPerRound; ++i) {
      const int engine = static_cast<int>(rng() % kEngines);
      absl::StrAppend(&ops, "  device", engine, ": ", RandomOp(rng, engine), "\n");
    }
    converged = cluster_->WaitConverged(absl::Seconds(90));
    ASSERT_TRUE(converged.ok()) << "round " << round << ":\n" << ops << converged
                                << "; logs in " << cluster_->logs_dir();
  }

  auto final_state = Cluster::SnapshotFolder(cluster_->folder(0));
  ASSERT_TRUE(final_state.ok());
  EXPECT_EQ(final_state->count("big/video.bin"), 1u);
  for (int i = 0; i < kEngines; ++i) {
    EXPECT_TRUE(std::filesystem::is_empty(cluster_->folder(i) + "/.converge/tmp"))
        << "temp files left behind in folder " << i;
  }
  std::cout << "converged on " << final_state->size() << " entries" << std::endl;
}

}  // namespace
}  // namespace converge::testing

namespace converge::testing {
namespace {

class E2eScenarioTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ClusterOptions options;
    options.dir = std::string(getenv("TEST_TMPDIR")) + "/" +
                  ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(options.dir);
    auto cluster = Cluster::Start(options);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = std::move(*cluster);
    ASSERT_TRUE(cluster_->AddEngine("alpha").ok());
    ASSERT_TRUE(cluster_->AddEngine("beta").ok());
  }

  std::string Read(int engine, const std::string& path) {
    std::ifstream in(cluster_->folder(engine) + "/" + path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

  std::unique_ptr<Cluster> cluster_;
};

TEST_F(E2eScenarioTest, ConcurrentEditsKeepBothVersions) {
  WriteFile(cluster_->folder(0) + "/notes.txt", "original");
  ASSERT_TRUE(cluster_->WaitConverged(absl::Seconds(30)).ok());

  cluster_->PauseEngine(1);  // beta is offline while both edit
  WriteFile(cluster_->folder(0) + "/notes.txt", "alpha's edit");
  WriteFile(cluster_->folder(1) + "/notes.txt", "beta's edit");
  cluster_->ResumeEngine(1);
  absl::Status converged = cluster_->WaitConverged(absl::Seconds(30));
  ASSERT_TRUE(converged.ok()) << converged << "; logs in " << cluster_->logs_dir();

  auto snap = Cluster::SnapshotFolder(cluster_->folder(0));
  ASSERT_TRUE(snap.ok());
  ASSERT_EQ(snap->size(), 2u) << "expected notes.txt and one conflict copy";
  std::string conflict;
  for (const auto& [path, hash] : *snap) {
    if (path != "notes.txt") conflict = path;
  }
  // Named by the device that kept it: its registered name, then its id.
  EXPECT_TRUE(conflict.rfind("notes (conflict alpha dev-", 0) == 0 || conflict.rfind("notes (conflict beta dev-", 0) == 0)
      << conflict;
  EXPECT_EQ(conflict.substr(conflict.size() - 6), "Z).txt") << conflict;
  // Nothing lost: one side's edit under the name, the other's in the conflict copy.
  std::vector<std::string> contents = {Read(0, "notes.txt"), Read(0, conflict)};
  std::sort(contents.begin(), contents.end());
  EXPECT_EQ(contents, (std::vector<std::string>{"alpha's edit", "beta's edit"}));
}

TEST_F(E2eScenarioTest, KilledDownloadResumesWithoutRefetchingAndDedupAcrossFiles) {
  std::mt19937_64 rng(99);
  std::string big;
  // Kill beta (-9) once its partial download holds some verified chunks. On a loaded machine the
  // test may look only after beta installed the file: then it tries again with another file.
  const std::string tmp = cluster_->folder(1) + "/.converge/tmp";
  bool interrupted = false;
  for (int attempt = 0; attempt < 3 && !interrupted; ++attempt) {
    big = RandomBytes(rng, 96 << 20);
    WriteFile(cluster_->folder(0) + "/big.bin", big);
    bool killed = false;
    for (int i = 0; i < 3000 && !killed; ++i) {
      std::error_code ec;
      for (const auto& e : std::filesystem::directory_iterator(tmp, ec)) {
        if (e.path().filename().string().rfind("partial-", 0) == 0 && e.file_size(ec) >= (8u << 20)) {
          cluster_->StopEngine(1, /*kill=*/true);
          killed = true;
          break;
        }
      }
      absl::SleepFor(absl::Milliseconds(5));
    }
    ASSERT_TRUE(killed) << "beta finished before it could be killed; logs in " << cluster_->logs_dir();
    interrupted = !std::filesystem::exists(cluster_->folder(1) + "/big.bin") || Read(1, "big.bin") != big;
    ASSERT_TRUE(cluster_->StartEngine(1).ok());
    absl::Status converged = cluster_->WaitConverged(absl::Seconds(60));
    ASSERT_TRUE(converged.ok()) << converged << "; logs in " << cluster_->logs_dir();
  }
  ASSERT_TRUE(interrupted) << "beta installed the file before the kill three times";
  EXPECT_EQ(Read(1, "big.bin"), big);
  std::ifstream log(cluster_->logs_dir() + "/engine-beta.log");
  const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("resuming the download of 'big.bin' after"), std::string::npos);

  // A copy of the file on beta is committed without uploading its chunks again, and alpha
  // builds its copy from its own big.bin.
  auto store_bytes = [&](const char* direction) {
    auto scrape = cluster_->ServiceMetrics("store");
    return scrape.ok() ? Cluster::MetricValue(*scrape, absl::StrCat("converge_store_chunk_bytes_total{direction=\"",
                                                                     direction, "\"}"))
                       : -1;
  };
  const double in_before = store_bytes("in"), out_before = store_bytes("out");
  std::filesystem::copy_file(cluster_->folder(1) + "/big.bin", cluster_->folder(1) + "/copy.bin");
  absl::Status converged = cluster_->WaitConverged(absl::Seconds(60));
  ASSERT_TRUE(converged.ok()) << converged;
  EXPECT_EQ(Read(0, "copy.bin"), big);
  EXPECT_EQ(store_bytes("in"), in_before);    // nothing uploaded: dedup across files
  EXPECT_EQ(store_bytes("out"), out_before);  // nothing downloaded: alpha had every chunk
}

TEST_F(E2eScenarioTest, KilledUploadResumesWithoutResendingWhatTheStoreHas) {
  auto store_in = [&]() {  // 0 until the store has received a chunk
    auto scrape = cluster_->ServiceMetrics("store");
    EXPECT_TRUE(scrape.ok()) << scrape.status();
    return scrape.ok() ? std::max(0.0, Cluster::MetricValue(*scrape, "converge_store_chunk_bytes_total{direction=\"in\"}"))
                       : -1;
  };
  std::mt19937_64 rng(7);
  constexpr double kMiB = 1 << 20;
  const std::string big = RandomBytes(rng, 192 << 20);
  const double in_start = store_in();
  ASSERT_GE(in_start, 0);
  WriteFile(cluster_->folder(0) + "/big.bin", big);
  // Kill alpha (-9) once the store has received a quarter of the file.
  double in_at_kill = in_start;
  for (int i = 0; i < 6000 && in_at_kill - in_start < 48 * kMiB; ++i) {
    absl::SleepFor(absl::Milliseconds(2));
    in_at_kill = store_in();
  }
  cluster_->StopEngine(0, /*kill=*/true);
  absl::SleepFor(absl::Milliseconds(200));
  const double received = store_in() - in_start;
  ASSERT_GE(received, 48 * kMiB) << "the upload never got going; logs in " << cluster_->logs_dir();
  ASSERT_LT(received, 184 * kMiB) << "alpha finished before it could be killed; logs in " << cluster_->logs_dir();
  ASSERT_TRUE(cluster_->StartEngine(0).ok());
  absl::Status converged = cluster_->WaitConverged(absl::Seconds(60));
  ASSERT_TRUE(converged.ok()) << converged << "; logs in " << cluster_->logs_dir();
  EXPECT_TRUE(Read(1, "big.bin") == big);
  // What the store had stored before the kill was not sent again: at most the batch in flight
  // (8 MiB) travels twice, not the tens of MiB received before.
  const double total = store_in() - in_start;
  std::cout << "the store received " << received / kMiB << " MiB before the kill, " << total / kMiB << " MiB in all"
            << std::endl;
  EXPECT_LE(total, (192 + 16) * kMiB) << "received " << received / kMiB << " MiB before the kill, "
                                      << total / kMiB << " MiB in all";
}

TEST_F(E2eScenarioTest, NameDifferingOnlyInCaseStaysLocalAndIsReported) {
  WriteFile(cluster_->folder(0) + "/Report.txt", "upper");
  ASSERT_TRUE(cluster_->WaitConverged(absl::Seconds(30)).ok());
  // beta (Linux) can hold both names; a Mac or Windows device could not: the store refuses the
  // second, and beta keeps it local and says so.
  WriteFile(cluster_->folder(1) + "/report.txt", "lower");
  std::string status;
  for (int i = 0; i < 100; ++i) {
    status = cluster_->EngineCommand({"status", "--folder=" + cluster_->folder(1)}).out;
    if (status.find("report.txt") != std::string::npos) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_NE(status.find("not synced 1 local name(s) differing only in case from synced ones (rename to sync): "
                        "report.txt"),
            std::string::npos)
      << status;
  auto store = cluster_->SnapshotStore();
  ASSERT_TRUE(store.ok());
  EXPECT_EQ(store->count("report.txt"), 0u);
  EXPECT_EQ(store->count("Report.txt"), 1u);
  EXPECT_FALSE(std::filesystem::exists(cluster_->folder(0) + "/report.txt"));
  EXPECT_EQ(Read(1, "Report.txt"), "upper");  // untouched

  // Renamed, it syncs.
  std::filesystem::rename(cluster_->folder(1) + "/report.txt", cluster_->folder(1) + "/report (beta).txt");
  absl::Status converged = cluster_->WaitConverged(absl::Seconds(30));
  ASSERT_TRUE(converged.ok()) << converged << "; logs in " << cluster_->logs_dir();
  EXPECT_EQ(Read(0, "report (beta).txt"), "lower");
}

TEST_F(E2eScenarioTest, StoreRestoredFromAnOlderBackupLosesNothing) {
  WriteFile(cluster_->folder(0) + "/a.txt", "one");
  WriteFile(cluster_->folder(0) + "/same.txt", "never changes");
  ASSERT_TRUE(cluster_->WaitConverged(absl::Seconds(30)).ok());
  // A consistent backup: the store stopped, its data directory copied.
  const std::string backup = cluster_->StoreDataDir() + "-backup";
  cluster_->StopStore();
  std::filesystem::copy(cluster_->StoreDataDir(), backup, std::filesystem::copy_options::recursive);
  ASSERT_TRUE(cluster_->StartStore().ok());
  // Changes the backup does not have.
  WriteFile(cluster_->folder(0) + "/a.txt", "two, after the backup");
  WriteFile(cluster_->folder(0) + "/from-alpha.txt", "made after the backup");
  WriteFile(cluster_->folder(1) + "/from-beta.txt", "beta, after the backup");
  absl::Status converged = cluster_->WaitConverged(absl::Seconds(30));
  ASSERT_TRUE(converged.ok()) << converged;

  // The store comes back from the backup: it is behind both engines.
  cluster_->StopStore();
  std::filesystem::remove_all(cluster_->StoreDataDir());
  std::filesystem::copy(backup, cluster_->StoreDataDir(), std::filesystem::copy_options::recursive);
  ASSERT_TRUE(cluster_->StartStore().ok());
  converged = cluster_->WaitConverged(absl::Seconds(60));
  ASSERT_TRUE(converged.ok()) << converged << "; logs in " << cluster_->logs_dir();
  // Nothing lost, no conflict copies: the engines' newer files won and the store caught up.
  for (int e = 0; e < 2; ++e) {
    EXPECT_EQ(Read(e, "a.txt"), "two, after the backup");
    EXPECT_EQ(Read(e, "from-alpha.txt"), "made after the backup");
    EXPECT_EQ(Read(e, "from-beta.txt"), "beta, after the backup");
    EXPECT_EQ(Read(e, "same.txt"), "never changes");
    auto snap = Cluster::SnapshotFolder(cluster_->folder(e));
    ASSERT_TRUE(snap.ok());
    EXPECT_EQ(snap->size(), 4u) << DescribeDifference(*snap, {});
  }
  // An engine found the store behind it and re-synced. Which one depends on timing: the first
  // to re-sync uploads what the store lost and may move its head past the other's cursor.
  std::string text;
  for (const char* name : {"alpha", "beta"}) {
    std::ifstream log(cluster_->logs_dir() + "/engine-" + name + ".log");
    text.append((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  }
  EXPECT_NE(text.find("the store is behind this device"), std::string::npos);
}

TEST(E2eAllInOneTest, ConvergeServerSyncsEngines) {
  ClusterOptions options;
  options.dir = std::string(getenv("TEST_TMPDIR")) + "/all-in-one";
  options.all_in_one = true;
  std::filesystem::remove_all(options.dir);
  auto cluster = Cluster::Start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  ASSERT_TRUE((*cluster)->AddEngine("one").ok());
  ASSERT_TRUE((*cluster)->AddEngine("two").ok());
  WriteFile((*cluster)->folder(0) + "/docs/a.txt", "from one");
  WriteFile((*cluster)->folder(1) + "/b.bin", std::string(3 << 20, 'b'));
  absl::Status converged = (*cluster)->WaitConverged(absl::Seconds(30));
  ASSERT_TRUE(converged.ok()) << converged << "; logs in " << (*cluster)->logs_dir();
  auto snap = Cluster::SnapshotFolder((*cluster)->folder(1));
  ASSERT_TRUE(snap.ok());
  EXPECT_EQ(snap->size(), 3u);  // docs, docs/a.txt, b.bin
}

TEST_F(E2eScenarioTest, IgnoredFilesStayLocalOnEveryDevice) {
  // The rules file is synced like any file, so beta ignores the same paths.
  WriteFile(cluster_->folder(0) + "/.convergeignore", "# build output and editor leftovers\n*.tmp\ncache/\n");
  WriteFile(cluster_->folder(0) + "/kept.txt", "synced");
  WriteFile(cluster_->folder(0) + "/draft.tmp", "alpha's scratch");
  WriteFile(cluster_->folder(0) + "/cache/blob", std::string(100000, 'c'));
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline && (Read(1, "kept.txt") != "synced" || Read(1, ".convergeignore").empty())) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_EQ(Read(1, "kept.txt"), "synced");
  WriteFile(cluster_->folder(1) + "/beta.tmp", "beta's scratch");
  WriteFile(cluster_->folder(1) + "/after.txt", "synced too");
  while (absl::Now() < deadline && Read(0, "after.txt") != "synced too") absl::SleepFor(absl::Milliseconds(20));
  ASSERT_EQ(Read(0, "after.txt"), "synced too");
  absl::SleepFor(absl::Seconds(1));  // and a full scan or two

  auto store = cluster_->SnapshotStore();
  ASSERT_TRUE(store.ok()) << store.status();
  for (const char* ignored : {"draft.tmp", "cache", "cache/blob", "beta.tmp"}) {
    EXPECT_EQ(store->count(ignored), 0u) << ignored << " reached the store";
  }
  EXPECT_EQ(store->count(".convergeignore"), 1u);
  EXPECT_FALSE(std::filesystem::exists(cluster_->folder(1) + "/draft.tmp"));
  EXPECT_FALSE(std::filesystem::exists(cluster_->folder(1) + "/cache"));
  EXPECT_FALSE(std::filesystem::exists(cluster_->folder(0) + "/beta.tmp"));
  // Each device keeps its own ignored files.
  EXPECT_EQ(Read(0, "draft.tmp"), "alpha's scratch");
  EXPECT_EQ(Read(1, "beta.tmp"), "beta's scratch");
}

TEST_F(E2eScenarioTest, ASubtreeKeptOutOfOneDeviceStaysEverywhereElseAndComesBack) {
  const std::string a = cluster_->folder(0), b = cluster_->folder(1);
  const std::string p1(300000, '1');
  WriteFile(a + "/keep/a.txt", "kept");
  WriteFile(a + "/photos/p1.jpg", p1);
  WriteFile(a + "/photos/2026/p2.jpg", "two");
  ASSERT_TRUE(cluster_->WaitConverged(absl::Seconds(30)).ok());
  auto wait_for = [&](const std::function<bool()>& done) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline && !done()) absl::SleepFor(absl::Milliseconds(20));
    return done();
  };
  auto exists = [](const std::string& path) { return std::filesystem::exists(path); };

  // Beta keeps photos out: its copies go, nobody else loses anything.
  CommandResult select = cluster_->EngineCommand({"select", "--folder=" + b, "--exclude=./photos/"});
  ASSERT_EQ(select.exit_code, 0) << select.err;
  EXPECT_NE(select.out.find("photos"), std::string::npos) << select.out;
  // Children go before their directories: the emptied directory goes last, a moment after them.
  EXPECT_TRUE(wait_for([&] { return !exists(b + "/photos/p1.jpg") && !exists(b + "/photos/2026/p2.jpg") &&
                                    !exists(b + "/photos"); }))
      << "an emptied excluded directory stays behind";
  EXPECT_EQ(Read(1, "keep/a.txt"), "kept");
  // What alpha adds there does not come; what beta makes there does not go up.
  WriteFile(a + "/photos/p3.jpg", "three");
  WriteFile(b + "/photos/beta-local.txt", "beta's own");
  WriteFile(a + "/keep/b.txt", "after");
  WriteFile(b + "/keep/c.txt", "from beta");
  ASSERT_TRUE(wait_for([&] { return Read(1, "keep/b.txt") == "after" && Read(0, "keep/c.txt") == "from beta"; }));
  absl::SleepFor(absl::Seconds(1));  // a verifying scan or two
  EXPECT_FALSE(exists(b + "/photos/p3.jpg"));
  EXPECT_FALSE(exists(a + "/photos/beta-local.txt"));
  auto store = cluster_->SnapshotStore();
  ASSERT_TRUE(store.ok()) << store.status();
  for (const char* kept : {"photos/p1.jpg", "photos/2026/p2.jpg", "photos/p3.jpg"}) {
    EXPECT_EQ(store->count(kept), 1u) << kept << " is gone from the store";
  }
  EXPECT_EQ(store->count("photos/beta-local.txt"), 0u);
  EXPECT_EQ(Read(0, "photos/p1.jpg"), p1);
  EXPECT_EQ(Read(0, "photos/2026/p2.jpg"), "two");
  CommandResult status = cluster_->EngineCommand({"status", "--folder=" + b});
  EXPECT_NE(status.out.find("excluded   photos (kept out of this device only)"), std::string::npos) << status.out;

  // One year back, then all of it, with what came meanwhile; beta's own file then goes up.
  ASSERT_EQ(cluster_->EngineCommand({"select", "--folder=" + b, "--include=photos/2026"}).exit_code, 0);
  ASSERT_TRUE(wait_for([&] { return Read(1, "photos/2026/p2.jpg") == "two"; }));
  EXPECT_FALSE(exists(b + "/photos/p1.jpg"));
  ASSERT_EQ(cluster_->EngineCommand({"select", "--folder=" + b, "--include=photos"}).exit_code, 0);
  ASSERT_TRUE(wait_for([&] { return Read(1, "photos/p1.jpg") == p1 && Read(1, "photos/p3.jpg") == "three"; }));
  ASSERT_TRUE(wait_for([&] { return Read(0, "photos/beta-local.txt") == "beta's own"; }));
  ASSERT_TRUE(cluster_->WaitConverged(absl::Seconds(30)).ok());
  EXPECT_EQ(Read(0, "photos/p1.jpg"), p1);
}

// StartWithFolderType starts a cluster whose engine `name` runs with --folder_type=`type`.
absl::StatusOr<std::unique_ptr<Cluster>> StartWithFolderType(const std::string& name, const std::string& type) {
  ClusterOptions options;
  options.dir = std::string(getenv("TEST_TMPDIR")) + "/" + type;
  std::filesystem::remove_all(options.dir);
  options.engine_args_of[name] = {"--folder_type=" + type};
  return Cluster::Start(options);
}

TEST(E2eOneWayTest, AReceiveOnlyDeviceUploadsNothingAndRevertsWithoutLosingItsOwn) {
  auto cluster = StartWithFolderType("beta", "receive-only");
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  ASSERT_TRUE((*cluster)->AddEngine("alpha").ok());
  ASSERT_TRUE((*cluster)->AddEngine("beta").ok());
  const std::string a = (*cluster)->folder(0), b = (*cluster)->folder(1);
  WriteFile(a + "/a.txt", "a");
  WriteFile(a + "/d/b.txt", "b");
  ASSERT_TRUE(WaitFor([&] { return ReadFile(b + "/a.txt") == "a" && ReadFile(b + "/d/b.txt") == "b"; }, absl::Seconds(30)));

  WriteFile(b + "/a.txt", "beta's a");
  WriteFile(b + "/new.txt", "beta's new");
  WriteFile(a + "/d/b.txt", "b2");
  ASSERT_TRUE(WaitFor([&] { return ReadFile(b + "/d/b.txt") == "b2"; }, absl::Seconds(30)));
  std::string status;
  ASSERT_TRUE(WaitFor([&] {
    status = (*cluster)->EngineCommand({"status", "--folder=" + b}).out;
    return status.find("2 local change(s) not uploaded: a.txt (changed), new.txt (added)") != std::string::npos;
  }, absl::Seconds(30))) << status;
  absl::SleepFor(absl::Seconds(1));  // a verifying scan or two
  EXPECT_EQ(ReadFile(a + "/a.txt"), "a");
  EXPECT_FALSE(std::filesystem::exists(a + "/new.txt"));

  CommandResult reverted = (*cluster)->EngineCommand({"revert", "--folder=" + b});
  ASSERT_EQ(reverted.exit_code, 0) << reverted.err;
  const size_t at = reverted.out.find(b + "/.converge/reverted/");
  ASSERT_NE(at, std::string::npos) << reverted.out;
  const std::string bin = reverted.out.substr(at, reverted.out.find('\n', at) - at);
  EXPECT_EQ(ReadFile(bin + "/a.txt"), "beta's a");
  EXPECT_EQ(ReadFile(bin + "/new.txt"), "beta's new");
  EXPECT_EQ(ReadFile(b + "/a.txt"), "a");
  EXPECT_FALSE(std::filesystem::exists(b + "/new.txt"));
  ASSERT_TRUE((*cluster)->WaitConverged(absl::Seconds(30)).ok());
  CommandResult refused = (*cluster)->EngineCommand({"revert", "--folder=" + a});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("not a receive-only folder"), std::string::npos) << refused.err;
}

TEST(E2eOneWayTest, ASendOnlyDeviceAppliesNothingAndOverridePushesItsFolder) {
  auto cluster = StartWithFolderType("gamma", "send-only");
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  ASSERT_TRUE((*cluster)->AddEngine("alpha").ok());
  const std::string a = (*cluster)->folder(0);
  WriteFile(a + "/a.txt", "alpha's");
  ASSERT_TRUE((*cluster)->AddEngine("gamma").ok());
  const std::string g = (*cluster)->folder(1);
  WriteFile(g + "/g.txt", "gamma's");
  ASSERT_TRUE(WaitFor([&] { return ReadFile(a + "/g.txt") == "gamma's"; }, absl::Seconds(30)));
  std::string status;
  ASSERT_TRUE(WaitFor([&] {
    status = (*cluster)->EngineCommand({"status", "--folder=" + g}).out;
    return status.find("send-only  1 change(s) made elsewhere not applied here: a.txt;") != std::string::npos;
  }, absl::Seconds(30))) << status;
  EXPECT_FALSE(std::filesystem::exists(g + "/a.txt"));

  CommandResult overrode = (*cluster)->EngineCommand({"override", "--folder=" + g});
  ASSERT_EQ(overrode.exit_code, 0) << overrode.err;
  EXPECT_NE(overrode.out.find("0 change(s) made elsewhere left not applied"), std::string::npos) << overrode.out;
  ASSERT_TRUE((*cluster)->WaitConverged(absl::Seconds(30)).ok());
  EXPECT_FALSE(std::filesystem::exists(a + "/a.txt"));  // the namespace is gamma's folder now
  EXPECT_EQ((*cluster)->EngineCommand({"override", "--folder=" + a}).exit_code, 1);
}

TEST_F(E2eScenarioTest, NamesModesTimesAndEmptyDirectoriesArriveAsTheyAre) {
  const std::string a = cluster_->folder(0), b = cluster_->folder(1);
  std::filesystem::create_directories(a + "/empty dir/nested");
  WriteFile(a + "/spaces and ünïcödé ✓.txt", "unicode");
  WriteFile(a + "/odd #&%=;@' name.txt", "punctuation in the name");
  WriteFile(a + "/run.sh", "#!/bin/sh\necho hi\n");
  ASSERT_EQ(chmod((a + "/run.sh").c_str(), 0750), 0);
  struct timespec times[2] = {{0, UTIME_OMIT}, {1577836800, 123456789}};  // 2020-01-01
  ASSERT_EQ(utimensat(AT_FDCWD, (a + "/run.sh").c_str(), times, 0), 0);
  WriteFile(a + "/Readme.md", "case");
  absl::Status converged = cluster_->WaitConverged(absl::Seconds(30));
  ASSERT_TRUE(converged.ok()) << converged;

  struct stat st;
  ASSERT_EQ(stat((b + "/run.sh").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  EXPECT_EQ(st.st_mtim.tv_sec, 1577836800);
  EXPECT_EQ(st.st_mtim.tv_nsec, 123456789);
  EXPECT_TRUE(std::filesystem::is_directory(b + "/empty dir/nested"));
  EXPECT_EQ(Read(1, "odd #&%=;@' name.txt"), "punctuation in the name");
  EXPECT_EQ(Read(1, "spaces and ünïcödé ✓.txt"), "unicode");

  // A case-only rename, and a change of permission bits alone.
  std::filesystem::rename(a + "/Readme.md", a + "/README.md");
  ASSERT_EQ(chmod((a + "/run.sh").c_str(), 0700), 0);
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    ASSERT_EQ(stat((b + "/run.sh").c_str(), &st), 0);
    if (std::filesystem::exists(b + "/README.md") && !std::filesystem::exists(b + "/Readme.md") &&
        (st.st_mode & 07777) == 0700) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(Read(1, "README.md"), "case");
  EXPECT_FALSE(std::filesystem::exists(b + "/Readme.md"));
  EXPECT_EQ(st.st_mode & 07777, 0700u) << "a change of permission bits alone did not arrive";
}

TEST_F(E2eScenarioTest, StoppedEngineCatchesUpFromItsCursor) {
  WriteFile(cluster_->folder(0) + "/a.txt", "one");
  ASSERT_TRUE(cluster_->WaitConverged(absl::Seconds(30)).ok());
  cluster_->StopEngine(1);
  WriteFile(cluster_->folder(0) + "/b/c.txt", "two");
  std::filesystem::remove(cluster_->folder(0) + "/a.txt");
  WriteFile(cluster_->folder(1) + "/offline.txt", "made while beta was stopped");
  ASSERT_TRUE(cluster_->StartEngine(1).ok());
  absl::Status converged = cluster_->WaitConverged(absl::Seconds(30));
  ASSERT_TRUE(converged.ok()) << converged << "; logs in " << cluster_->logs_dir();
  EXPECT_EQ(Read(1, "b/c.txt"), "two");
  EXPECT_EQ(Read(0, "offline.txt"), "made while beta was stopped");
  EXPECT_FALSE(std::filesystem::exists(cluster_->folder(1) + "/a.txt"));
}

}  // namespace
}  // namespace converge::testing

namespace converge::testing {
namespace {

TEST(E2eWatcherTest, ChangesTravelWithoutWaitingForARescan) {
  ClusterOptions options;
  options.dir = std::string(getenv("TEST_TMPDIR")) + "/watcher";
  options.rescan_interval = absl::Seconds(60);  // only the watcher can notice in time
  std::filesystem::remove_all(options.dir);
  auto cluster = Cluster::Start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  ASSERT_TRUE((*cluster)->AddEngine("a").ok());
  ASSERT_TRUE((*cluster)->AddEngine("b").ok());
  // The first scan at start-up finds nothing; everything after it comes from the watcher.
  absl::SleepFor(absl::Seconds(1));
  for (int i = 0; i < 5; ++i) {
    const std::string content = "edit " + std::to_string(i);
    const absl::Time start = absl::Now();
    WriteFile((*cluster)->folder(0) + "/w/file.txt", content);
    std::string got;
    while (absl::Now() - start < absl::Seconds(10)) {
      std::ifstream in((*cluster)->folder(1) + "/w/file.txt", std::ios::binary);
      got.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      if (got == content) break;
      absl::SleepFor(absl::Milliseconds(1));
    }
    ASSERT_EQ(got, content) << "edit " << i << " did not arrive; logs in " << (*cluster)->logs_dir();
    std::cout << "edit " << i << " arrived after " << absl::FormatDuration(absl::Now() - start) << std::endl;
  }
}

}  // namespace
}  // namespace converge::testing
