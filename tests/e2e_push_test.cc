// End to end, real processes on loopback: changes reach other devices through the watcher and
// converge-notify's push, with the periodic full scan set to a minute so that only push (and
// its repairs: reconnect pulls, heartbeats) can deliver in time. Covers a notification service
// frozen, killed and restarted under load, events dropped on purpose, an engine killed mid-burst,
// and a sustained 100 edits/s with no growing lag.
#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/cluster.h"

namespace converge::testing {
namespace {

// WaitForContent waits until `path` holds `content`; returns how long that took, or nullopt.
std::optional<absl::Duration> WaitForContent(const std::string& path, const std::string& content,
                                             absl::Duration limit) {
  const absl::Time start = absl::Now();
  while (absl::Now() - start < limit) {
    if (ReadFile(path) == content) return absl::Now() - start;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return std::nullopt;
}

std::unique_ptr<Cluster> StartCluster(const std::string& name, std::vector<std::string> notify_args,
                                      std::vector<std::string> engine_args) {
  ClusterOptions options;
  options.dir = std::string(getenv("TEST_TMPDIR")) + "/" + name;
  options.rescan_interval = absl::Seconds(60);  // only push can deliver within the test
  options.notify_args = std::move(notify_args);
  options.engine_args = std::move(engine_args);
  std::filesystem::remove_all(options.dir);
  auto cluster = Cluster::Start(options);
  EXPECT_TRUE(cluster.ok()) << cluster.status();
  if (!cluster.ok()) return nullptr;
  for (const char* engine : {"a", "b"}) {
    auto added = (*cluster)->AddEngine(engine);
    EXPECT_TRUE(added.ok()) << added.status();
  }
  return std::move(*cluster);
}

// FullScans reads how many full scans an engine made (its first one is at start-up).
double FullScans(Cluster* c, int engine) {
  auto scrape = c->EngineMetrics(engine);
  if (!scrape.ok()) return -1;
  return Cluster::MetricValue(*scrape, "converge_engine_scans_total{kind=\"full\"}");
}

TEST(E2ePushTest, FrozenThenRestartedNotificationServiceLosesNothing) {
  auto c = StartCluster("notify-restart", {}, {"--heartbeat=200ms"});
  ASSERT_NE(c, nullptr);
  WriteFile(c->folder(0) + "/warmup.txt", "w");
  ASSERT_TRUE(WaitForContent(c->folder(1) + "/warmup.txt", "w", absl::Seconds(10)));

  // Frozen: streams go silent; engines notice within a few heartbeats and reconnect. Edits made
  // meanwhile are committed (the store is up) and reach B once notify thaws and B reconnects.
  c->PauseNotify();
  absl::SleepFor(absl::Seconds(1));
  for (int i = 0; i < 20; ++i) WriteFile(c->folder(0) + absl::StrCat("/frozen/f", i), absl::StrCat("frozen ", i));
  absl::SleepFor(absl::Milliseconds(500));
  c->ResumeNotify();
  ASSERT_TRUE(WaitForContent(c->folder(1) + "/frozen/f19", "frozen 19", absl::Seconds(10)))
      << "logs in " << c->logs_dir();
  // B may have the files before its reconnect (a pull of its own round can fetch them first);
  // the reconnect itself must still come within a few heartbeats of the thaw.
  double reconnects = -1;
  std::string last_scrape;
  for (const absl::Time until = absl::Now() + absl::Seconds(5); reconnects < 1 && absl::Now() < until;) {
    auto scrape = c->EngineMetrics(1);
    ASSERT_TRUE(scrape.ok());
    last_scrape = *scrape;
    reconnects = Cluster::MetricValue(last_scrape, "converge_engine_notify_reconnects_total");
    if (reconnects < 1) absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_GE(reconnects, 1) << last_scrape << "\n" << c->EngineLog(1);

  // Killed under load and restarted on the same port: a writer keeps editing on A throughout.
  std::atomic<bool> done{false};
  std::atomic<int> written{0};
  std::thread writer([&] {
    for (int i = 0; i < 150; ++i) {
      WriteFile(c->folder(0) + absl::StrCat("/load/f", i % 30), absl::StrCat("version ", i));
      written = i + 1;
      absl::SleepFor(absl::Milliseconds(20));
    }
    done = true;
  });
  absl::SleepFor(absl::Seconds(1));
  c->KillNotify();
  absl::SleepFor(absl::Seconds(1));
  ASSERT_TRUE(c->RestartNotify().ok());
  writer.join();
  absl::Status converged = c->WaitConverged(absl::Seconds(15));
  ASSERT_TRUE(converged.ok()) << converged << "; logs in " << c->logs_dir();
  EXPECT_EQ(ReadFile(c->folder(1) + "/load/f29"), "version 149");
  // No engine fell back on a full rescan: one full scan each, at start-up.
  EXPECT_EQ(FullScans(c.get(), 0), 1);
  EXPECT_EQ(FullScans(c.get(), 1), 1);
}

TEST(E2ePushTest, DroppedEventsAreRepairedByHeartbeats) {
  // converge-notify drops every event on purpose: only heartbeats carry the head.
  auto c = StartCluster("dropped", {"--fault_drop_events=1"}, {"--heartbeat=200ms"});
  ASSERT_NE(c, nullptr);
  absl::SleepFor(absl::Milliseconds(500));
  for (int i = 0; i < 5; ++i) {
    const std::string content = absl::StrCat("edit ", i);
    WriteFile(c->folder(0) + "/doc.txt", content);
    std::optional<absl::Duration> took = WaitForContent(c->folder(1) + "/doc.txt", content, absl::Seconds(10));
    ASSERT_TRUE(took.has_value()) << "edit " << i << " never arrived; logs in " << c->logs_dir();
    // A heartbeat is due within 200 ms of the stream going quiet.
    EXPECT_LT(*took, absl::Seconds(2)) << "edit " << i;
    std::cout << "edit " << i << " arrived after " << absl::FormatDuration(*took) << " with every event dropped"
              << std::endl;
  }
  EXPECT_EQ(FullScans(c.get(), 1), 1);
}

TEST(E2ePushTest, KilledEnginesResumeFromTheirCursors) {
  auto c = StartCluster("killed", {}, {});
  ASSERT_NE(c, nullptr);
  WriteFile(c->folder(0) + "/first.txt", "1");
  ASSERT_TRUE(WaitForContent(c->folder(1) + "/first.txt", "1", absl::Seconds(10)));

  // A burst on A; B is killed (-9) while applying it, A while still uploading the rest.
  std::thread burst([&] {
    for (int i = 0; i < 300; ++i) WriteFile(c->folder(0) + absl::StrCat("/burst/f", i), std::string(4096 + i, 'x'));
  });
  for (int i = 0; i < 2000 && !std::filesystem::exists(c->folder(1) + "/burst"); ++i) {
    absl::SleepFor(absl::Milliseconds(2));
  }
  c->StopEngine(1, /*kill=*/true);
  c->StopEngine(0, /*kill=*/true);
  burst.join();
  ASSERT_TRUE(c->StartEngine(0).ok());
  ASSERT_TRUE(c->StartEngine(1).ok());
  absl::Status converged = c->WaitConverged(absl::Seconds(30));
  ASSERT_TRUE(converged.ok()) << converged << "; logs in " << c->logs_dir();
  auto snap = Cluster::SnapshotFolder(c->folder(1));
  ASSERT_TRUE(snap.ok());
  EXPECT_EQ(snap->size(), 302u);  // first.txt, burst/, 300 files
  // The restarted B picked up from the cursor it had durably recorded, not from zero.
  const std::string log = ReadFile(c->logs_dir() + "/engine-b.log");
  const size_t restart = log.rfind("from cursor ");
  ASSERT_NE(restart, std::string::npos);
  EXPECT_NE(log.substr(restart, 14), "from cursor 0 ") << log.substr(restart, 40);
}

TEST(E2ePushTest, SustainedHundredEditsPerSecondWithoutGrowingLag) {
  auto c = StartCluster("sustained", {}, {});
  ASSERT_NE(c, nullptr);
  absl::SleepFor(absl::Milliseconds(500));
  constexpr int kEdits = 500;  // 5 s at 100/s
  std::vector<absl::Time> written(kEdits);
  std::thread writer([&] {
    const absl::Time start = absl::Now();
    for (int i = 0; i < kEdits; ++i) {
      absl::SleepFor(start + absl::Milliseconds(10 * i) - absl::Now());
      written[i] = absl::Now();
      WriteFile(c->folder(0) + absl::StrCat("/s/f", i), absl::StrCat("edit ", i));
    }
  });
  // B applies commits in order: watch for each file in turn.
  std::vector<absl::Duration> lag(kEdits);
  const absl::Time limit = absl::Now() + absl::Seconds(30);
  int next = 0;
  while (next < kEdits && absl::Now() < limit) {
    if (std::filesystem::exists(c->folder(1) + absl::StrCat("/s/f", next))) {
      const absl::Time now = absl::Now();
      // A file can show up before the writer thread records its time only if it raced; clamp.
      for (; next < kEdits && std::filesystem::exists(c->folder(1) + absl::StrCat("/s/f", next)); ++next) {
        lag[next] = std::max(absl::ZeroDuration(), now - written[next]);
      }
      continue;
    }
    absl::SleepFor(absl::Microseconds(500));
  }
  writer.join();
  ASSERT_EQ(next, kEdits) << "only " << next << " edits arrived; logs in " << c->logs_dir();
  auto p = [](std::vector<absl::Duration> v, double q) {
    std::sort(v.begin(), v.end());
    return v[static_cast<size_t>(q * (v.size() - 1))];
  };
  std::vector<absl::Duration> first(lag.begin(), lag.begin() + 100), last(lag.end() - 100, lag.end());
  std::cout << "lag p50 " << absl::FormatDuration(p(lag, 0.5)) << " p99 " << absl::FormatDuration(p(lag, 0.99))
            << "; first second p95 " << absl::FormatDuration(p(first, 0.95)) << ", last second p95 "
            << absl::FormatDuration(p(last, 0.95)) << std::endl;
  // No growing lag: the last second is no worse than the first by more than noise, and every
  // edit lands well within a second.
  EXPECT_LT(p(last, 0.95), std::max(p(first, 0.95) * 3, absl::Milliseconds(150)));
  EXPECT_LT(p(lag, 0.99), absl::Milliseconds(500));
}

}  // namespace
}  // namespace converge::testing
