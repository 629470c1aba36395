// Real processes under kill -9: the store, the notification service and three engines run on
// loopback while each engine's user keeps creating, editing and deleting files, and a seeded
// schedule kills one of them with SIGKILL every few hundred milliseconds and starts it again
// (CONVERGE_CHAOS_KILLS kills, default 36). Once the kills stop, every folder must converge with
// the store, and hold exactly each user's last write of each path: nothing lost, nothing
// resurrected, no half-written file. CONVERGE_CHAOS_SEED replays a schedule.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/cluster.h"

namespace converge::testing {
namespace {

void Write(const std::string& path, const std::string& data) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

std::string Read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = getenv(name);
  return v == nullptr ? fallback : strtoull(v, nullptr, 10);
}

TEST(E2eChaosTest, KilledServicesAndEnginesLoseNothing) {
  const uint64_t seed = EnvOr("CONVERGE_CHAOS_SEED", static_cast<uint64_t>(absl::ToUnixMicros(absl::Now())));
  const int kills = static_cast<int>(EnvOr("CONVERGE_CHAOS_KILLS", 36));
  std::cout << "chaos seed " << seed << " (replay: CONVERGE_CHAOS_SEED=" << seed << ")\n";
  std::mt19937_64 rng(seed);

  ClusterOptions options;
  options.dir = std::string(getenv("TEST_TMPDIR")) + "/chaos";
  options.rescan_interval = absl::Seconds(2);
  std::filesystem::remove_all(options.dir);
  auto cluster = Cluster::Start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  Cluster& c = **cluster;
  for (const char* name : {"a", "b", "c"}) ASSERT_TRUE(c.AddEngine(name).ok());

  // Each user writes under its own directory (so the expected end state is exact); the files
  // are a few bytes to a few MiB (several chunks, a download a kill can cut).
  std::map<std::string, std::string> expected;  // path -> content; absent: deleted
  std::map<std::string, int> writer;            // path -> engine that owns it
  int writes = 0, deletes = 0;
  std::map<std::string, int> killed;
  auto user_step = [&](int step) {
    const int e = static_cast<int>(rng() % 3);
    const std::string path = absl::StrCat("user-", c.name(e), "/dir", rng() % 3, "/file", rng() % 8, ".bin");
    if (expected.count(path) && rng() % 4 == 0) {
      std::filesystem::remove(c.folder(e) + "/" + path);
      expected.erase(path);
      ++deletes;
      return;
    }
    const size_t size = rng() % 10 == 0 ? (1 << 20) + rng() % (3 << 20) : rng() % 5000;
    std::string content = absl::StrCat("seed ", seed, " step ", step, " ");
    content.reserve(size + content.size());
    uint64_t x = rng();
    for (size_t i = 0; i < size; ++i) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      content.push_back(static_cast<char>(x >> 56));
    }
    Write(c.folder(e) + "/" + path, content);
    expected[path] = content;
    writer[path] = e;
    ++writes;
  };

  for (int k = 0; k < kills; ++k) {
    for (int i = 0, n = 1 + static_cast<int>(rng() % 4); i < n; ++i) user_step(k * 10 + i);
    absl::SleepFor(absl::Milliseconds(50 + rng() % 300));
    const int target = static_cast<int>(rng() % 5);  // 0 store, 1 notify, 2..4 engines
    if (target == 0) {
      c.KillStore();
      ++killed["store"];
      absl::SleepFor(absl::Milliseconds(rng() % 200));
      ASSERT_TRUE(c.StartStore().ok());
    } else if (target == 1) {
      c.KillNotify();
      ++killed["notify"];
      absl::SleepFor(absl::Milliseconds(rng() % 200));
      ASSERT_TRUE(c.RestartNotify().ok());
    } else {
      const int e = target - 2;
      c.StopEngine(e, /*kill=*/true);
      ++killed[absl::StrCat("engine ", c.name(e))];
      // The user keeps working while the engine is down.
      if (rng() % 2) user_step(k * 10 + 9);
      absl::SleepFor(absl::Milliseconds(rng() % 200));
      ASSERT_TRUE(c.StartEngine(e).ok());
    }
  }

  ASSERT_TRUE(c.WaitConverged(absl::Seconds(120)).ok()) << "seed " << seed;
  for (int e = 0; e < c.engine_count(); ++e) {
    for (const auto& [path, content] : expected) {
      const std::string got = Read(c.folder(e) + "/" + path);
      EXPECT_EQ(got.size(), content.size()) << "seed " << seed << ": " << path << " on " << c.name(e);
      EXPECT_TRUE(got == content) << "seed " << seed << ": " << path << " on " << c.name(e) << " differs";
    }
    auto snap = Cluster::SnapshotFolder(c.folder(e));
    ASSERT_TRUE(snap.ok());
    for (const auto& [path, hash] : *snap) {
      if (hash == "dir") continue;
      EXPECT_TRUE(expected.count(path)) << "seed " << seed << ": " << path << " on " << c.name(e)
                                        << " was deleted, or is a conflict copy, or a stray file";
    }
  }
  std::string kill_counts;
  int total = 0;
  for (const auto& [who, n] : killed) {
    absl::StrAppend(&kill_counts, " ", who, " x", n);
    total += n;
  }
  std::cout << "chaos: " << total << " kill -9 (" << kill_counts << " ), " << writes << " writes, " << deletes
            << " deletes, " << expected.size() << " files in the end, all identical on 3 engines and the store; data lost: 0\n";
  EXPECT_EQ(total, kills);
}

}  // namespace
}  // namespace converge::testing
