// End to end, real processes: every convergectl command against running services (output
// checked, not just exit codes), the engine's status/pause/resume, metrics scrapes of every
// service and engine, and revocation with a remote wipe.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/cluster.h"

namespace converge::testing {
namespace {

class E2eOperatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ClusterOptions options;
    options.dir = std::string(getenv("TEST_TMPDIR")) + "/" +
                  ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(options.dir);
    auto cluster = Cluster::Start(options);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    c_ = std::move(*cluster);
    ASSERT_TRUE(c_->AddEngine("laptop").ok());
    ASSERT_TRUE(c_->AddEngine("desktop").ok());
    WriteFile(c_->folder(0) + "/docs/a.txt", "alpha");
    WriteFile(c_->folder(0) + "/docs/b.txt", "alpha");  // same content: one chunk
    WriteFile(c_->folder(1) + "/big.bin", std::string(3 << 20, 'x'));
    absl::Status converged = c_->WaitConverged(absl::Seconds(30));
    ASSERT_TRUE(converged.ok()) << converged << "; logs in " << c_->logs_dir();
  }

  std::unique_ptr<Cluster> c_;
};

TEST_F(E2eOperatorTest, EveryConvergectlCommand) {
  // users
  CommandResult r = c_->Convergectl({"users", "create", "carol", "--display_name=Carol C"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "created user carol\n");
  r = c_->Convergectl({"users", "list"});
  EXPECT_TRUE(absl::StrContains(r.out, "USER   NAME     CREATED")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "carol  Carol C")) << r.out;
  r = c_->Convergectl({"users", "create", "Bad Id"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "INVALID_ARGUMENT")) << r.err;

  // devices: both engines, active, seen, their version, up to date in the namespace
  ASSERT_TRUE(WaitFor([&] { return absl::StrContains(c_->Convergectl({"devices", "list"}).out, "up to date"); },
                      absl::Seconds(10)));
  r = c_->Convergectl({"devices", "list"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const char* want : {"STATE", "LAST SEEN", "VERSION", "CURSOR", "LAG", "laptop", "desktop", "active",
                           "converge-engine/0.4.0", "shared"}) {
    EXPECT_TRUE(absl::StrContains(r.out, want)) << want << " missing from\n" << r.out;
  }
  const std::string laptop = c_->DeviceIdOf("laptop");
  const std::string desktop = c_->DeviceIdOf("desktop");
  ASSERT_FALSE(laptop.empty());
  ASSERT_FALSE(desktop.empty());
  r = c_->Convergectl({"devices", "show", laptop});
  EXPECT_TRUE(absl::StrContains(r.out, laptop) && absl::StrContains(r.out, "laptop")) << r.out;
  EXPECT_FALSE(absl::StrContains(r.out, desktop)) << r.out;
  r = c_->Convergectl({"--json", "devices", "list"});
  EXPECT_TRUE(absl::StrContains(r.out, "\"software_version\": \"converge-engine/0.4.0\"")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "\"state\": \"DEVICE_STATE_ACTIVE\"")) << r.out;
  r = c_->Convergectl({"devices", "show", "dev-nope"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "NOT_FOUND")) << r.err;

  // namespaces: list, status (files, bytes, chunks, dedup), share, members
  r = c_->Convergectl({"namespaces", "status", "shared"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // a.txt and b.txt share a chunk, and big.bin is three identical 1 MiB chunks.
  EXPECT_TRUE(absl::StrContains(r.out, "3 files, 3.0 MiB in 2 chunks of 1.0 MiB (dedup 3.00x)")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "0 open conflicts")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "laptop") && absl::StrContains(r.out, "desktop")) << r.out;
  r = c_->Convergectl({"namespaces", "share", "shared", "--user=carol"});
  EXPECT_EQ(r.out, "namespace shared (owner e2e) is shared with carol\n") << r.err;
  r = c_->Convergectl({"namespaces", "list", "--user=carol"});
  EXPECT_TRUE(absl::StrContains(r.out, "shared     e2e")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "carol")) << r.out;
  r = c_->Convergectl({"namespaces", "share", "shared"});
  EXPECT_EQ(r.exit_code, 2);
  r = c_->Convergectl({"members", "list", "shared"});
  EXPECT_TRUE(absl::StrContains(r.out, laptop) && absl::StrContains(r.out, desktop)) << r.out;
  r = c_->Convergectl({"namespaces", "create", "team", "--owner=carol"});
  EXPECT_EQ(r.out, "created namespace team owned by carol\n") << r.err;
  r = c_->Convergectl({"members", "add", "team", laptop});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "PERMISSION_DENIED")) << r.err;

  // conflicts: make one for real (desktop offline while both edit)
  c_->PauseEngine(1);
  WriteFile(c_->folder(0) + "/docs/a.txt", "laptop's edit");
  WriteFile(c_->folder(1) + "/docs/a.txt", "desktop's edit");
  c_->ResumeEngine(1);
  ASSERT_TRUE(c_->WaitConverged(absl::Seconds(30)).ok());
  r = c_->Convergectl({"conflicts", "list"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "NAMESPACE  PATH")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "shared     docs/a.txt  docs/a (conflict laptop dev-") ||
              absl::StrContains(r.out, "shared     docs/a.txt  docs/a (conflict desktop dev-"))
      << r.out;
  // The device's registered name is shown beside its id.
  EXPECT_TRUE(absl::StrContains(r.out, " laptop ") || absl::StrContains(r.out, " desktop ")) << r.out;
  EXPECT_TRUE(absl::StrContains(c_->Convergectl({"namespaces", "status", "shared"}).out, "1 open conflict\n"));

  // endpoints, health, top
  r = c_->Convergectl({"endpoints"});
  EXPECT_TRUE(absl::StrContains(r.out, "store (shard 0)  127.0.0.1:")) << r.out;
  r = c_->Convergectl({"health"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "management") && absl::StrContains(r.out, "notification")) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 4) << r.out;
  EXPECT_FALSE(absl::StrContains(r.out, "DOWN")) << r.out;
  c_->KillNotify();
  r = c_->Convergectl({"health"});
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "notification") && absl::StrContains(r.out, "DOWN")) << r.out;
  ASSERT_TRUE(c_->RestartNotify().ok());
  r = c_->Convergectl({"top", "--iterations=2", "--interval=100ms"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const std::vector<std::string> frames = absl::StrSplit(r.out, "converge fleet at");
  EXPECT_EQ(frames.size(), 3u) << r.out;  // two refreshes
  EXPECT_TRUE(absl::StrContains(r.out, "shared     e2e    ")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "2/2 up to date")) << r.out;
  // Each device's progress since the last refresh: none needed, both are up to date.
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_TRUE(absl::StrContains(frames[2], "PROGRESS")) << r.out;
  EXPECT_FALSE(absl::StrContains(frames[2], "stalled")) << r.out;

  // help and usage
  r = c_->Convergectl({"devices", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(r.out, "devices revoke <device-id> [--wipe]")) << r.out;
  EXPECT_FALSE(absl::StrContains(r.out, "users create")) << r.out;
  r = c_->Convergectl({"frobnicate"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(r.err, "unknown command: frobnicate")) << r.err;

  // users disable: carol has no devices; she is marked disabled and can register none
  r = c_->Convergectl({"users", "disable", "carol"});
  EXPECT_EQ(r.out, "user carol is disabled; its devices are revoked\n") << r.err;
  EXPECT_TRUE(absl::StrContains(c_->Convergectl({"users", "list"}).out, "disabled"));
}

TEST_F(E2eOperatorTest, EngineStatusPauseAndResume) {
  CommandResult r;
  ASSERT_TRUE(WaitFor([&] {
    r = c_->EngineCommand({"status", "--folder=" + c_->folder(0)});
    return absl::StrContains(r.out, "state      up to date (engine pid ");
  }, absl::Seconds(5))) << r.out << "; logs in " << c_->logs_dir();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "in namespace shared")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "uploads    none waiting")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "conflicts  none")) << r.out;
  // What watches the folder: as root fanotify (no watch per directory), else inotify.
  EXPECT_TRUE(absl::StrContains(r.out, geteuid() == 0 ? "watching   fanotify on the folder's whole filesystem"
                                                      : "watching   inotify, "))
      << r.out;
  r = c_->EngineCommand({"status", "--json", "--folder=" + c_->folder(0)});
  EXPECT_TRUE(absl::StrContains(r.out, "\"state\": \"up to date\"")) << r.out;

  r = c_->EngineCommand({"pause", "--folder=" + c_->folder(0)});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(WaitFor([&] {
    return absl::StrContains(c_->EngineCommand({"status", "--folder=" + c_->folder(0)}).out, "state      paused");
  }, absl::Seconds(5)));
  WriteFile(c_->folder(1) + "/while-paused.txt", "later");
  absl::SleepFor(absl::Seconds(1));
  EXPECT_FALSE(std::filesystem::exists(c_->folder(0) + "/while-paused.txt"));
  r = c_->EngineCommand({"status", "--folder=" + c_->folder(0)});
  EXPECT_TRUE(absl::StrContains(r.out, "commits to download")) << r.out;
  r = c_->EngineCommand({"resume", "--folder=" + c_->folder(0)});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(WaitFor([&] { return ReadFile(c_->folder(0) + "/while-paused.txt") == "later"; }, absl::Seconds(5)));

  r = c_->EngineCommand({"status", "--folder=/nonexistent"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "no engine status")) << r.err;
  r = c_->EngineCommand({"status"});
  EXPECT_EQ(r.exit_code, 2);

  c_->StopEngine(0);
  r = c_->EngineCommand({"status", "--folder=" + c_->folder(0)});
  EXPECT_TRUE(absl::StrContains(r.out, "state      not running")) << r.out;
}

TEST_F(E2eOperatorTest, MetricsOfEveryProcess) {
  WriteFile(c_->folder(0) + "/m.txt", "metrics");
  ASSERT_TRUE(c_->WaitConverged(absl::Seconds(30)).ok());
  auto engine = c_->EngineMetrics(1);
  ASSERT_TRUE(engine.ok()) << engine.status();
  EXPECT_GE(Cluster::MetricValue(*engine, "converge_engine_commit_to_applied_seconds_count"), 1) << *engine;
  EXPECT_GE(Cluster::MetricValue(*engine, "converge_engine_applied_commits_total"), 1);
  auto store = c_->ServiceMetrics("store");
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_GE(Cluster::MetricValue(*store, "converge_store_commits_total"), 3) << *store;
  EXPECT_GE(Cluster::MetricValue(*store, "converge_rpc_requests_total{method=\"/converge.store.v1.StoreService/Commit\",code=\"OK\"}"), 3);
  // big.bin's three identical 1 MiB chunks of 'x' cross the wire once, zstd-compressed.
  const double in = Cluster::MetricValue(*store, "converge_store_chunk_bytes_total{direction=\"in\"}");
  EXPECT_GT(in, 0);
  EXPECT_LT(in, 4096) << *store;
  EXPECT_GT(Cluster::MetricValue(*store, "converge_store_rocksdb_memtable_bytes"), 0) << *store;
  EXPECT_GE(Cluster::MetricValue(*store, "converge_store_rocksdb_live_bytes"), 0) << *store;
  EXPECT_EQ(Cluster::MetricValue(*store, "converge_store_rocksdb_write_stopped"), 0) << *store;
  auto notify = c_->ServiceMetrics("notify");
  ASSERT_TRUE(notify.ok()) << notify.status();
  EXPECT_EQ(Cluster::MetricValue(*notify, "converge_notify_streams"), 2) << *notify;
  EXPECT_GE(Cluster::MetricValue(*notify, "converge_notify_commit_to_sent_seconds_count"), 3) << *notify;
  auto management = c_->ServiceMetrics("management");
  ASSERT_TRUE(management.ok()) << management.status();
  EXPECT_GE(Cluster::MetricValue(*management, "converge_rpc_requests_total{method=\"/converge.management.v1.ManagementService/RegisterDevice\",code=\"OK\"}"), 2)
      << *management;
}

TEST_F(E2eOperatorTest, RevokeWithWipeDeletesSyncedFilesOnlyAndStopsTheEngine) {
  const std::string desktop = c_->DeviceIdOf("desktop");
  ASSERT_FALSE(desktop.empty());
  // A file the desktop never synced: written while it is paused, so it cannot upload it.
  c_->PauseEngine(1);
  WriteFile(c_->folder(1) + "/docs/private-draft.txt", "never synced");
  CommandResult r = c_->Convergectl({"devices", "revoke", desktop, "--wipe"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "is wipe pending")) << r.out;
  c_->ResumeEngine(1);
  absl::StatusOr<int> code = c_->EngineExit(1, absl::Seconds(20));
  ASSERT_TRUE(code.ok()) << code.status() << "; logs in " << c_->logs_dir();
  EXPECT_EQ(*code, 3);
  EXPECT_FALSE(std::filesystem::exists(c_->folder(1) + "/docs/a.txt"));
  EXPECT_FALSE(std::filesystem::exists(c_->folder(1) + "/big.bin"));
  EXPECT_FALSE(std::filesystem::exists(c_->folder(1) + "/.converge"));
  EXPECT_EQ(ReadFile(c_->folder(1) + "/docs/private-draft.txt"), "never synced");
  EXPECT_TRUE(WaitFor([&] { return absl::StrContains(c_->Convergectl({"devices", "show", desktop}).out, "wiped"); },
                      absl::Seconds(5)));
  // The laptop keeps syncing; the store refuses the revoked device.
  WriteFile(c_->folder(0) + "/after.txt", "still works");
  EXPECT_TRUE(WaitFor([&] { return c_->SnapshotStore().ok() && c_->SnapshotStore()->count("after.txt") == 1; },
                      absl::Seconds(10)));
  EXPECT_TRUE(std::filesystem::exists(c_->folder(0) + "/docs/a.txt"));
  r = c_->Convergectl({"members", "list", "shared"});
  EXPECT_FALSE(absl::StrContains(r.out, desktop)) << r.out;
}

// The id of the first pending mass delete convergectl lists ("" if none).
std::string PendingDeleteId(Cluster* c) {
  CommandResult r = c->Convergectl({"deletes", "list"});
  for (absl::string_view line : absl::StrSplit(r.out, '\n')) {
    std::vector<std::string> cols = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (cols.size() > 4 && cols[4] == "pending") return cols[1];
  }
  return "";
}

TEST_F(E2eOperatorTest, MassDeleteHeldUntilApprovedOrRejected) {
  for (int i = 0; i < 200; ++i) WriteFile(c_->folder(0) + absl::StrCat("/many/f", i), absl::StrCat("file ", i));
  ASSERT_TRUE(c_->WaitConverged(absl::Seconds(30)).ok());

  // The laptop deletes 150 of them: held, the desktop keeps its copies.
  for (int i = 0; i < 150; ++i) std::filesystem::remove(c_->folder(0) + absl::StrCat("/many/f", i));
  std::string id;
  ASSERT_TRUE(WaitFor([&] { return !(id = PendingDeleteId(c_.get())).empty(); }, absl::Seconds(10)))
      << c_->Convergectl({"deletes", "list", "--all"}).out << "; logs in " << c_->logs_dir();
  CommandResult r = c_->Convergectl({"deletes", "list", "shared"});
  EXPECT_TRUE(absl::StrContains(r.out, "pending  150 of ")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "many/ 150 files")) << r.out;
  ASSERT_TRUE(WaitFor([&] {
    return absl::StrContains(c_->EngineCommand({"status", "--folder=" + c_->folder(0)}).out,
                             "state      waiting for approval");
  }, absl::Seconds(5))) << c_->EngineCommand({"status", "--folder=" + c_->folder(0)}).out;
  EXPECT_TRUE(absl::StrContains(c_->EngineCommand({"status", "--folder=" + c_->folder(0)}).out,
                                "deletes    150 local deletions held by the store"));
  absl::SleepFor(absl::Seconds(1));
  EXPECT_TRUE(std::filesystem::exists(c_->folder(1) + "/many/f0"));
  EXPECT_EQ(c_->SnapshotStore()->count("many/f0"), 1u);

  r = c_->Convergectl({"deletes", "approve", "shared", id});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "is approved")) << r.out;
  ASSERT_TRUE(c_->WaitConverged(absl::Seconds(30)).ok());
  EXPECT_FALSE(std::filesystem::exists(c_->folder(1) + "/many/f0"));
  EXPECT_TRUE(std::filesystem::exists(c_->folder(1) + "/many/f199"));
  EXPECT_TRUE(PendingDeleteId(c_.get()).empty());
  EXPECT_TRUE(absl::StrContains(c_->Convergectl({"deletes", "list", "--all"}).out, "applied"));

  // Now the desktop deletes everything under many/ and the operator rejects it: the desktop
  // gets its files back.
  for (int i = 150; i < 200; ++i) WriteFile(c_->folder(1) + absl::StrCat("/many/g", i), "more");
  ASSERT_TRUE(c_->WaitConverged(absl::Seconds(30)).ok());
  std::filesystem::remove_all(c_->folder(1) + "/many");
  ASSERT_TRUE(WaitFor([&] { return !(id = PendingDeleteId(c_.get())).empty(); }, absl::Seconds(10)));
  r = c_->Convergectl({"deletes", "reject", "shared", id});
  EXPECT_TRUE(absl::StrContains(r.out, "is rejected: the device restores the files")) << r.out << r.err;
  ASSERT_TRUE(WaitFor([&] { return ReadFile(c_->folder(1) + "/many/f199") == "file 199"; }, absl::Seconds(20)))
      << "logs in " << c_->logs_dir();
  ASSERT_TRUE(c_->WaitConverged(absl::Seconds(30)).ok());
  EXPECT_EQ(ReadFile(c_->folder(1) + "/many/g150"), "more");
  EXPECT_EQ(ReadFile(c_->folder(0) + "/many/g150"), "more");
  r = c_->Convergectl({"deletes", "approve", "shared", id});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "FAILED_PRECONDITION")) << r.err;
}

// rm -rf of a folder too big for one commit (the engine commits deletions in batches of
// kMaxFilesPerCommit): one hold, listed with its total and the folder it empties, and one
// approval releases all of it.
TEST_F(E2eOperatorTest, ABurstOfDeletionsIsOneHoldAndOneApproval) {
  constexpr int kFiles = 12500;
  for (int i = 0; i < kFiles; ++i) WriteFile(c_->folder(0) + absl::StrCat("/ob/d", i % 50, "/f", i), "x");
  WriteFile(c_->folder(0) + "/keep/a", "kept");
  ASSERT_TRUE(c_->WaitConverged(absl::Seconds(120)).ok()) << "logs in " << c_->logs_dir();

  std::filesystem::remove_all(c_->folder(0) + "/ob");
  std::string id;
  ASSERT_TRUE(WaitFor([&] { return !(id = PendingDeleteId(c_.get())).empty(); }, absl::Seconds(30)))
      << c_->Convergectl({"deletes", "list", "--all"}).out << "; logs in " << c_->logs_dir();
  // Every batch joins the one hold: 12,500 files, 50 folders and ob itself.
  CommandResult r;
  ASSERT_TRUE(WaitFor([&] {
    r = c_->Convergectl({"deletes", "list", "shared"});
    return absl::StrContains(r.out, "pending  12,551 of ");
  }, absl::Seconds(30))) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "ob/ 12,500 files")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, " laptop  pending")) << "the device's name: " << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 2) << "one hold: " << r.out;

  r = c_->Convergectl({"deletes", "approve", "shared", id});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(WaitFor([&] { return !std::filesystem::exists(c_->folder(1) + "/ob"); }, absl::Seconds(60)))
      << c_->Convergectl({"deletes", "list", "--all"}).out << "; logs in " << c_->logs_dir();
  ASSERT_TRUE(c_->WaitConverged(absl::Seconds(60)).ok());
  EXPECT_EQ(ReadFile(c_->folder(1) + "/keep/a"), "kept");
  EXPECT_TRUE(PendingDeleteId(c_.get()).empty()) << c_->Convergectl({"deletes", "list", "--all"}).out;
  r = c_->Convergectl({"deletes", "list", "--all"});
  EXPECT_TRUE(absl::StrContains(r.out, "applied")) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 2) << "still one hold: " << r.out;
}

}  // namespace
// A change one device cannot apply for a local reason (here: the directory is immutable on the
// desktop, chattr +i) holds nothing else back: the rest arrives, the device and operators see
// what is blocked, and it arrives once the obstruction is gone.
TEST_F(E2eOperatorTest, AChangeALocalObstructionBlocksIsShownAndHoldsNothingBack) {
  const std::string laptop = c_->folder(0), desktop = c_->folder(1);
  const std::string locked = desktop + "/docs";
  if (std::system(("chattr +i '" + locked + "' 2>/dev/null").c_str()) != 0) {
    GTEST_SKIP() << "chattr +i is not available on this filesystem";
  }
  WriteFile(laptop + "/docs/new.txt", "blocked on the desktop");
  WriteFile(laptop + "/free.txt", "arrives");
  CommandResult status;
  const bool shown = WaitFor([&] {
    status = c_->EngineCommand({"status", "--folder=" + desktop});
    return absl::StrContains(status.out, "blocked    1 remote change(s) not applied here") &&
           absl::StrContains(status.out, "docs/new.txt: ");
  }, absl::Seconds(30));
  EXPECT_TRUE(shown) << status.out << "; logs in " << c_->logs_dir();
  EXPECT_EQ(ReadFile(desktop + "/free.txt"), "arrives");
  // Later changes keep arriving.
  WriteFile(laptop + "/later.txt", "later");
  EXPECT_TRUE(WaitFor([&] { return ReadFile(desktop + "/later.txt") == "later"; }, absl::Seconds(30)));
  // Operators see it too.
  CommandResult ns;
  EXPECT_TRUE(WaitFor([&] {
    ns = c_->Convergectl({"namespaces", "status", "shared"});
    return absl::StrContains(ns.out, "blocked on desktop: docs/new.txt: ");
  }, absl::Seconds(30))) << ns.out;
  // A commit of the desktop's own (its ack replaces what the store was told) keeps it in view.
  WriteFile(desktop + "/from-desktop.txt", "mine");
  EXPECT_TRUE(WaitFor([&] { return ReadFile(laptop + "/from-desktop.txt") == "mine"; }, absl::Seconds(30)));
  absl::SleepFor(absl::Milliseconds(500));
  ns = c_->Convergectl({"namespaces", "status", "shared"});
  EXPECT_TRUE(absl::StrContains(ns.out, "blocked on desktop: docs/new.txt: ")) << ns.out;

  // The obstruction goes: the change arrives and nothing is blocked any more.
  ASSERT_EQ(std::system(("chattr -i '" + locked + "'").c_str()), 0);
  EXPECT_TRUE(WaitFor([&] { return ReadFile(desktop + "/docs/new.txt") == "blocked on the desktop"; }, absl::Seconds(30)));
  EXPECT_TRUE(WaitFor([&] {
    status = c_->EngineCommand({"status", "--folder=" + desktop});
    ns = c_->Convergectl({"namespaces", "status", "shared"});
    return !absl::StrContains(status.out, "blocked") && !absl::StrContains(ns.out, "blocked on");
  }, absl::Seconds(30))) << status.out << ns.out;
  absl::Status converged = c_->WaitConverged(absl::Seconds(30));
  EXPECT_TRUE(converged.ok()) << converged;
}

}  // namespace converge::testing
