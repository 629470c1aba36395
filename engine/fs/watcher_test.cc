#include "engine/fs/watcher.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "engine/fs/local_filesystem.h"
#include "gtest/gtest.h"
#include "tests/testing/test_folder.h"

namespace converge::engine {
namespace {

using testing::MakeTestDir;
using testing::WriteFile;

// Collects what a watcher reports: the latest "writing" state of each path.
class Recorder {
 public:
  Watcher::OnEvents Callback() {
    return [this](std::vector<PathEvent> events, bool overflow) {
      absl::MutexLock lock(&mu_);
      for (const PathEvent& e : events) latest_[e.path] = e.writing;
      overflows_ += overflow ? 1 : 0;
    };
  }
  // WaitFor waits up to 2 s until `path` was reported with the given writing state.
  bool WaitFor(const std::string& path, bool writing) {
    absl::MutexLock lock(&mu_);
    auto seen = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      auto it = latest_.find(path);
      return it != latest_.end() && it->second == writing;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&seen), absl::Seconds(2));
  }
  bool Seen(const std::string& path) {
    absl::MutexLock lock(&mu_);
    return latest_.count(path) > 0;
  }
  size_t paths() {
    absl::MutexLock lock(&mu_);
    return latest_.size();
  }
  // The paths last reported as still being written.
  std::vector<std::string> Writing() {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> out;
    for (const auto& [path, writing] : latest_) {
      if (writing) out.push_back(path);
    }
    return out;
  }
  void Clear() {
    absl::MutexLock lock(&mu_);
    latest_.clear();
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, bool> latest_ ABSL_GUARDED_BY(mu_);
  int overflows_ ABSL_GUARDED_BY(mu_) = 0;
};

// Every test runs with each mechanism; fanotify's only where this process may use it (root, Linux
// 5.9 or later), and says so when it is skipped.
class WatcherTest : public ::testing::TestWithParam<Watcher::Backend> {
 protected:
  void SetUp() override {
    if (GetParam() != Watcher::Backend::kFanotify) return;
    auto probe = Watcher::Start(MakeTestDir("probe"), [](std::vector<PathEvent>, bool) {}, GetParam());
    if (!probe.ok()) GTEST_SKIP() << "fanotify is not available here: " << probe.status().message();
  }
};

TEST_P(WatcherTest, AFileTheEngineInstallsIsNotLeftBeingWritten) {
  const std::string root = MakeTestDir();
  std::filesystem::create_directories(root + "/d");
  auto fs = LocalFilesystem::Open(root);
  ASSERT_TRUE(fs.ok()) << fs.status();
  Recorder rec;
  auto watcher = Watcher::Start(root, rec.Callback(), GetParam());
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  for (const char* name : {"d/new", "d/new"}) {  // made, then replaced
    auto temp = (*fs)->CreateTempFor(name);
    ASSERT_TRUE(temp.ok()) << temp.status();
    ASSERT_TRUE((*temp)->Append("content").ok());
    ASSERT_TRUE((*temp)->Install(name, 0644, 1).ok());
  }
  // Installed by a rename: a finished file, not one still being written (which would wait out
  // the write-settle delay, and show as waiting in status).
  EXPECT_TRUE(rec.WaitFor("d/new", false));
  (*watcher)->Flush();
  EXPECT_TRUE(rec.Writing().empty()) << rec.Writing().front();
  // The writes went to a file without a name (the kernel reports it as "d/#<inode>"): only the
  // installed path is reported.
  EXPECT_EQ(rec.paths(), 1u);

  // A real file of such a name is reported, and so are its writes.
  WriteFile(root + "/d/#42", "real");
  EXPECT_TRUE(rec.WaitFor("d/#42", false));
  rec.Clear();
  const int fd = open((root + "/d/#42").c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "more", 4), 4);
  close(fd);
  EXPECT_TRUE(rec.WaitFor("d/#42", false));
}

TEST_P(WatcherTest, ReportsWhatANewDirectoryHeldBeforeItsWatch) {
  const std::string root = MakeTestDir();
  Recorder rec;
  auto watcher = Watcher::Start(root, rec.Callback(), GetParam());
  ASSERT_TRUE(watcher.ok());
  // Filled at once, likely before the thread has read the directory's creation and watched it:
  // each entry is reported by an event of its own or as found in the new directory.
  for (int round = 0; round < 20; ++round) {
    const std::string dir = "new" + std::to_string(round);
    std::filesystem::create_directories(root + "/" + dir + "/sub");
    WriteFile(root + "/" + dir + "/sub/a.txt", "a");
    WriteFile(root + "/" + dir + "/b.txt", "b");
    (*watcher)->Flush();
    for (const std::string& path : {dir, dir + "/sub", dir + "/sub/a.txt", dir + "/b.txt"}) {
      ASSERT_TRUE(rec.WaitFor(path, false)) << path;
    }
  }
}

TEST_P(WatcherTest, FlushReportsWhatIsQueuedBeforeItReturns) {
  const std::string root = MakeTestDir();
  std::filesystem::create_directories(root + "/b");
  WriteFile(root + "/plan.txt", "plan");
  Recorder rec;
  auto watcher = Watcher::Start(root, rec.Callback(), GetParam());
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  for (int round = 0; round < 50; ++round) {
    const std::string from = round % 2 == 0 ? "plan.txt" : "b/plan.txt";
    const std::string to = round % 2 == 0 ? "b/plan.txt" : "plan.txt";
    rec.Clear();
    std::filesystem::rename(root + "/" + from, root + "/" + to);
    (*watcher)->Flush();  // no waiting: both names are known when it returns
    EXPECT_TRUE(rec.Seen(from)) << round;
    EXPECT_TRUE(rec.Seen(to)) << round;
  }
}

TEST_P(WatcherTest, ReportsPathsIncludingInNewMovedAndRenamedDirectories) {
  const std::string root = MakeTestDir();
  std::filesystem::create_directories(root + "/.converge");
  std::filesystem::create_directories(root + "/old/deep");
  Recorder rec;
  auto watcher = Watcher::Start(root, rec.Callback(), GetParam());
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  EXPECT_EQ((*watcher)->backend(), GetParam());
  if (GetParam() == Watcher::Backend::kInotify) {
    // root, old, old/deep: not .converge
    EXPECT_NE((*watcher)->Describe().find("inotify, 3 directories watched"), std::string::npos) << (*watcher)->Describe();
  }

  WriteFile(root + "/old/deep/a.txt", "a");
  EXPECT_TRUE(rec.WaitFor("old/deep/a.txt", false));

  // A directory made now is watched too, and so is one moved in with its contents.
  std::filesystem::create_directories(root + "/new");
  EXPECT_TRUE(rec.WaitFor("new", false));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  WriteFile(root + "/new/b.txt", "b");
  EXPECT_TRUE(rec.WaitFor("new/b.txt", false));
  const std::string outside = MakeTestDir(".outside");
  std::filesystem::create_directories(outside + "/tree/sub");
  std::filesystem::rename(outside + "/tree", root + "/tree");
  EXPECT_TRUE(rec.WaitFor("tree", false));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  WriteFile(root + "/tree/sub/c.txt", "c");
  EXPECT_TRUE(rec.WaitFor("tree/sub/c.txt", false));

  // A renamed directory reports both names, and later events use the new one.
  std::filesystem::rename(root + "/old", root + "/renamed");
  EXPECT_TRUE(rec.WaitFor("old", false));
  EXPECT_TRUE(rec.WaitFor("renamed", false));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  WriteFile(root + "/renamed/deep/d.txt", "d");
  EXPECT_TRUE(rec.WaitFor("renamed/deep/d.txt", false));
}

TEST_P(WatcherTest, SaysAFileIsBeingWrittenUntilItIsClosed) {
  const std::string root = MakeTestDir();
  Recorder rec;
  auto watcher = Watcher::Start(root, rec.Callback(), GetParam());
  ASSERT_TRUE(watcher.ok());
  const int fd = open((root + "/log.txt").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "part one", 8), 8);
  EXPECT_TRUE(rec.WaitFor("log.txt", true));
  ASSERT_EQ(write(fd, " part two", 9), 9);
  fchmod(fd, 0600);  // an attribute change while open does not end the write
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_TRUE(rec.WaitFor("log.txt", true));
  close(fd);
  EXPECT_TRUE(rec.WaitFor("log.txt", false));

  // Editor pattern: write a temp file, rename it over the original.
  WriteFile(root + "/doc.txt.tmp", "saved");
  std::filesystem::rename(root + "/doc.txt.tmp", root + "/doc.txt");
  EXPECT_TRUE(rec.WaitFor("doc.txt", false));
  EXPECT_TRUE(rec.WaitFor("doc.txt.tmp", false));
}

TEST_P(WatcherTest, IgnoresTheEngineStateDir) {
  const std::string root = MakeTestDir();
  std::filesystem::create_directories(root + "/.converge/tmp");
  Recorder rec;
  auto watcher = Watcher::Start(root, rec.Callback(), GetParam());
  ASSERT_TRUE(watcher.ok());
  WriteFile(root + "/.converge/tmp/t-1", "temp");
  std::filesystem::remove(root + "/.converge/tmp/t-1");
  WriteFile(root + "/visible", "v");
  EXPECT_TRUE(rec.WaitFor("visible", false));
  EXPECT_EQ(rec.paths(), 1u);
}

TEST_P(WatcherTest, ReportsEveryEntryOfADeepTreeMadeAtOnce) {
  const std::string root = MakeTestDir();
  Recorder rec;
  auto watcher = Watcher::Start(root, rec.Callback(), GetParam());
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  // 200 directories, 8 deep, each with a file, made as fast as the filesystem allows.
  std::vector<std::string> paths;
  for (int branch = 0; branch < 25; ++branch) {
    std::string dir = "b" + std::to_string(branch);
    for (int depth = 0; depth < 8; ++depth) {
      std::filesystem::create_directories(root + "/" + dir);
      WriteFile(root + "/" + dir + "/f", "x");
      paths.push_back(dir);
      paths.push_back(dir + "/f");
      dir += "/d" + std::to_string(depth);
    }
  }
  (*watcher)->Flush();
  for (const std::string& path : paths) EXPECT_TRUE(rec.WaitFor(path, false)) << path;
  EXPECT_EQ(rec.paths(), paths.size());
  EXPECT_TRUE(rec.Writing().empty());
}

INSTANTIATE_TEST_SUITE_P(Mechanisms, WatcherTest,
                         ::testing::Values(Watcher::Backend::kInotify, Watcher::Backend::kFanotify),
                         [](const ::testing::TestParamInfo<Watcher::Backend>& info) {
                           return std::string(info.param == Watcher::Backend::kInotify ? "Inotify" : "Fanotify");
                         });

}  // namespace
}  // namespace converge::engine
