#include "engine/watcher.h"

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include "engine/test_folder.h"
#include "gtest/gtest.h"

namespace converge::engine {
namespace {

using testing::MakeTestDir;
using testing::WriteFile;

// Waits up to `limit` for the counter to move past `from`.
bool MovedPast(const std::atomic<int>& counter, int from, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (counter.load() > from) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return counter.load() > from;
}

TEST(WatcherTest, ReportsChangesIncludingInNewDirectories) {
  const std::string root = MakeTestDir();
  std::filesystem::create_directories(root + "/.converge");
  std::filesystem::create_directories(root + "/old/deep");
  std::atomic<int> changes{0};
  auto watcher = Watcher::Start(root, [&] { ++changes; });
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  EXPECT_EQ((*watcher)->watched_directories(), 3u);  // root, old, old/deep: not .converge

  int seen = changes.load();
  WriteFile(root + "/old/deep/a.txt", "a");
  EXPECT_TRUE(MovedPast(changes, seen, std::chrono::milliseconds(2000)));

  // A directory made now is watched too, and so is one moved in with its contents.
  std::filesystem::create_directories(root + "/new");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  seen = changes.load();
  WriteFile(root + "/new/b.txt", "b");
  EXPECT_TRUE(MovedPast(changes, seen, std::chrono::milliseconds(2000)));
  const std::string outside = MakeTestDir(".outside");
  std::filesystem::create_directories(outside + "/tree/sub");
  std::filesystem::rename(outside + "/tree", root + "/tree");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  seen = changes.load();
  WriteFile(root + "/tree/sub/c.txt", "c");
  EXPECT_TRUE(MovedPast(changes, seen, std::chrono::milliseconds(2000)));
}

TEST(WatcherTest, IgnoresTheEngineStateDir) {
  const std::string root = MakeTestDir();
  std::filesystem::create_directories(root + "/.converge/tmp");
  std::atomic<int> changes{0};
  auto watcher = Watcher::Start(root, [&] { ++changes; });
  ASSERT_TRUE(watcher.ok());
  WriteFile(root + "/.converge/tmp/t-1", "temp");
  std::filesystem::remove(root + "/.converge/tmp/t-1");
  EXPECT_FALSE(MovedPast(changes, 0, std::chrono::milliseconds(200)));
}

}  // namespace
}  // namespace converge::engine
