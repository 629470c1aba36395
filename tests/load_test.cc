// Load: many engines (real converge-engine processes) against one store and one notification
// service on loopback, for a bounded time. Engines are grouped in namespaces (one user each);
// a driver writes small files into random engines' folders at a steady rate and times how long
// each takes to reach the first and the last other engine of its namespace (upload, commit,
// push, pull, download). Every 10 s it samples the store's and notify's memory and open file
// descriptors. Pass: every file arrives everywhere, and memory and descriptors stay flat.
//
// CI runs a small load (20 engines, 20 s). The run, by hand (one line):
//   bazel test //tests:load_test --test_output=all --test_timeout=1500
//     --test_env=CONVERGE_LOAD_ENGINES=200 --test_env=CONVERGE_LOAD_SECONDS=600
#include <dirent.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/cluster.h"

namespace converge::testing {
namespace {

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = getenv(name);
  return v == nullptr ? fallback : strtoull(v, nullptr, 10);
}

void WriteAtomically(const std::string& path, const std::string& data) {
  const std::string tmp = path + ".writing~";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
  }
  std::filesystem::rename(tmp, path);
}

// RSS in KiB and open descriptors of a process.
std::pair<uint64_t, uint64_t> Sample(int pid) {
  uint64_t rss = 0, fds = 0;
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) rss = strtoull(line.c_str() + 6, nullptr, 10);
  }
  if (DIR* d = opendir(absl::StrCat("/proc/", pid, "/fd").c_str())) {
    while (readdir(d) != nullptr) ++fds;
    closedir(d);
    fds -= 2;  // . and ..
  }
  return {rss, fds};
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

struct Pending {
  int group;
  int writer;
  std::string path;
  std::string content;
  absl::Time written;
  std::vector<bool> arrived;
  double first_ms = -1;
};

TEST(LoadTest, ManyEnginesStayFastAndFlat) {
  const int engines = static_cast<int>(EnvOr("CONVERGE_LOAD_ENGINES", 20));
  const int per_group = static_cast<int>(EnvOr("CONVERGE_LOAD_GROUP", 10));
  const int seconds = static_cast<int>(EnvOr("CONVERGE_LOAD_SECONDS", 20));
  const int rate = static_cast<int>(EnvOr("CONVERGE_LOAD_WRITES_PER_SECOND", 10));
  const int groups = (engines + per_group - 1) / per_group;

  // Every engine watches its folder with its own inotify instance, and the kernel allows a user
  // 128 by default: more engines on one machine (as one user) would fall back to periodic scans.
  // As root, the limit is raised for the run and put back after it.
  const std::string limit_file = "/proc/sys/fs/inotify/max_user_instances";
  const std::string old_limit = ReadFile(limit_file);
  const uint64_t limit = strtoull(old_limit.c_str(), nullptr, 10);
  struct Restore {
    std::string file, value;
    ~Restore() {
      if (!value.empty()) std::ofstream(file) << value;
    }
  } restore{limit_file, ""};
  if (limit > 0 && limit < static_cast<uint64_t>(engines) + 64) {
    std::ofstream(limit_file) << engines + 128;
    if (strtoull(ReadFile(limit_file).c_str(), nullptr, 10) >= static_cast<uint64_t>(engines) + 64) {
      restore.value = old_limit;
      std::cout << "inotify instances per user raised from " << limit << " to " << engines + 128 << " for the run\n";
    } else {
      std::cout << "inotify allows " << limit << " instances per user: engines past it scan every 60 s\n";
    }
  }

  ClusterOptions options;
  options.dir = std::string(getenv("TEST_TMPDIR")) + "/load";
  options.rescan_interval = absl::Seconds(60);  // push must deliver
  std::filesystem::remove_all(options.dir);
  auto started = Cluster::Start(options);
  ASSERT_TRUE(started.ok()) << started.status();
  Cluster& c = **started;

  // Namespaces of `per_group` engines, one user each.
  std::vector<std::vector<int>> members(groups);
  const absl::Time t_start = absl::Now();
  for (int g = 0; g < groups; ++g) {
    const std::string user = absl::StrCat("load", g), ns = absl::StrCat("ns", g);
    ASSERT_EQ(c.Convergectl({"users", "create", user}).exit_code, 0);
    ASSERT_EQ(c.Convergectl({"namespaces", "create", ns, "--owner=" + user}).exit_code, 0);
    CommandResult enroll = c.Convergectl({"users", "enroll", user, absl::StrCat("--uses=", per_group)});
    ASSERT_EQ(enroll.exit_code, 0) << enroll.err;
    std::string token = enroll.out;
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
    for (int i = 0; i < per_group && g * per_group + i < engines; ++i) {
      auto e = c.AddEngine(absl::StrCat("g", g, "e", i), {user, ns, token, ""});
      ASSERT_TRUE(e.ok()) << e.status();
      members[g].push_back(*e);
    }
  }

  std::mutex mu;
  std::vector<Pending> pending;
  std::vector<double> first_ms, all_ms;
  std::vector<std::string> slow;  // deliveries over a second
  int delivered = 0;
  std::atomic<bool> stop{false};
  // The checker: looks for each pending file in the other engines' folders.
  std::thread checker([&] {
    while (!stop) {
      {
        std::lock_guard<std::mutex> l(mu);
        for (auto it = pending.begin(); it != pending.end();) {
          bool all = true;
          for (size_t i = 0; i < members[it->group].size(); ++i) {
            const int e = members[it->group][i];
            if (e == it->writer || it->arrived[i]) continue;
            if (ReadFile(c.folder(e) + "/" + it->path) == it->content) {
              it->arrived[i] = true;
              if (it->first_ms < 0) it->first_ms = absl::ToDoubleMilliseconds(absl::Now() - it->written);
            } else {
              all = false;
            }
          }
          if (all) {
            const double ms = absl::ToDoubleMilliseconds(absl::Now() - it->written);
            if (ms > 1000) {
              slow.push_back(absl::StrCat(it->path, " from ", c.name(it->writer), " at ",
                                          absl::FormatTime("%H:%M:%E3S", it->written, absl::UTCTimeZone()),
                                          ": first ", static_cast<int>(it->first_ms), " ms, all ", static_cast<int>(ms), " ms"));
            }
            first_ms.push_back(it->first_ms);
            all_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - it->written));
            ++delivered;
            it = pending.erase(it);
          } else {
            ++it;
          }
        }
      }
      absl::SleepFor(absl::Milliseconds(2));
    }
  });

  // Warm-up: one file per namespace reaches every member (all engines are up and subscribed).
  std::mt19937_64 rng(1);
  auto write_one = [&](int g, int n, size_t size) {
    const int w = members[g][rng() % members[g].size()];
    Pending p{g, w, absl::StrCat("load-", n, ".txt"), std::string(), absl::Now(),
              std::vector<bool>(members[g].size(), false)};
    p.content = absl::StrCat("file ", n, " from ", c.name(w), " ");
    for (size_t i = 0; i < size; ++i) p.content.push_back(static_cast<char>('a' + rng() % 26));
    std::lock_guard<std::mutex> l(mu);
    p.written = absl::Now();
    WriteAtomically(c.folder(w) + "/" + p.path, p.content);
    pending.push_back(std::move(p));
  };
  int n = 0;
  for (int g = 0; g < groups; ++g) write_one(g, n++, 100);
  const absl::Time warm_deadline = absl::Now() + absl::Seconds(120);
  while (absl::Now() < warm_deadline) {
    {
      std::lock_guard<std::mutex> l(mu);
      if (pending.empty()) break;
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  {
    std::lock_guard<std::mutex> l(mu);
    ASSERT_TRUE(pending.empty()) << "engines did not all come up";
    first_ms.clear();
    all_ms.clear();
    slow.clear();
    delivered = 0;
  }
  std::cout << engines << " engines in " << groups << " namespaces up in "
            << absl::FormatDuration(absl::Trunc(absl::Now() - t_start, absl::Milliseconds(1))) << "\n";

  // The load.
  struct Samples {
    std::vector<std::pair<uint64_t, uint64_t>> store, notify;
  } samples;
  samples.store.push_back(Sample(c.store_pid()));
  samples.notify.push_back(Sample(c.notify_pid()));
  const absl::Time end = absl::Now() + absl::Seconds(seconds);
  absl::Time next_sample = absl::Now() + absl::Seconds(10);
  int writes = 0;
  while (absl::Now() < end) {
    write_one(static_cast<int>(rng() % groups), n++, 1 + rng() % (64 << 10));
    ++writes;
    absl::SleepFor(absl::Seconds(1) / rate);
    if (absl::Now() >= next_sample) {
      samples.store.push_back(Sample(c.store_pid()));
      samples.notify.push_back(Sample(c.notify_pid()));
      next_sample += absl::Seconds(10);
    }
  }
  // What is still in flight gets 30 s.
  const absl::Time drain = absl::Now() + absl::Seconds(30);
  while (absl::Now() < drain) {
    {
      std::lock_guard<std::mutex> l(mu);
      if (pending.empty()) break;
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  samples.store.push_back(Sample(c.store_pid()));
  samples.notify.push_back(Sample(c.notify_pid()));
  stop = true;
  checker.join();

  const int lost = static_cast<int>(pending.size());
  auto describe = [](const std::vector<std::pair<uint64_t, uint64_t>>& s) {
    uint64_t max_rss = 0, max_fds = 0;
    for (const auto& [rss, fds] : s) {
      max_rss = std::max(max_rss, rss);
      max_fds = std::max(max_fds, fds);
    }
    return absl::StrCat("RSS ", s.front().first / 1024, " -> ", s.back().first / 1024, " MiB (max ", max_rss / 1024,
                        "), fds ", s.front().second, " -> ", s.back().second, " (max ", max_fds, ")");
  };
  std::cout << "load: " << engines << " engines, " << groups << " namespaces, " << seconds << " s, " << writes
            << " writes (" << rate << "/s, up to 64 KiB), " << delivered << " delivered to every member, " << lost
            << " not delivered within 30 s (error rate " << (writes ? 100.0 * lost / writes : 0) << "%)\n"
            << "  first other engine: p50 " << Percentile(first_ms, 0.5) << " ms, p99 " << Percentile(first_ms, 0.99)
            << " ms; every other engine: p50 " << Percentile(all_ms, 0.5) << " ms, p99 " << Percentile(all_ms, 0.99)
            << " ms; " << slow.size() << " over 1 s\n  store: " << describe(samples.store) << "\n  notify: " << describe(samples.notify) << "\n";
  for (size_t i = 0; i < slow.size() && i < 10; ++i) std::cout << "  slow: " << slow[i] << "\n";
  EXPECT_EQ(lost, 0);
  EXPECT_EQ(delivered, writes);
  // Flat: no steady growth of descriptors, memory within a bounded working set.
  EXPECT_LE(samples.store.back().second, samples.store.front().second + 2 * static_cast<uint64_t>(engines) + 50);
  EXPECT_LE(samples.notify.back().second, samples.notify.front().second + 20);
  EXPECT_LE(samples.store.back().first, samples.store.front().first * 3 + (256u << 10));
  EXPECT_LE(samples.notify.back().first, samples.notify.front().first * 3 + (64u << 10));
}

}  // namespace
}  // namespace converge::testing
