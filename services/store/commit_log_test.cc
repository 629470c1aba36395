#include "services/store/commit_log.h"

#include <rocksdb/perf_context.h>
#include <rocksdb/perf_level.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/model/mass_delete.h"

#include <atomic>
#include <cstdlib>
#include <thread>
#include <filesystem>
#include <memory>

#include "gtest/gtest.h"
#include "services/store/store_test_fixture.h"
#include "tests/testing/fake_clock.h"

namespace converge::store {
namespace {

class CommitLogTest : public StoreTest {};

TEST_F(CommitLogTest, AppendAssignsConsecutiveSeqsAndSurvivesReopen) {
  PutChunk("one");
  PutChunk("two");
  auto c1 = log_->Append("ns", "dev1", {File("a.txt", "one", 0)});
  ASSERT_TRUE(c1.ok()) << c1.status();
  EXPECT_EQ(c1->seq, 1u);
  auto c2 = log_->Append("ns", "dev2", {File("a.txt", "two", 1), File("b.txt", "one", 0)});
  ASSERT_TRUE(c2.ok()) << c2.status();
  EXPECT_EQ(c2->seq, 2u);
  EXPECT_EQ(c2->files[0].origin_device, "dev2");

  Open();  // everything acknowledged is on disk
  auto head = log_->HeadSeq("ns");
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(*head, 2u);
  std::vector<uint64_t> seqs;
  ASSERT_TRUE(log_->ReadSince("ns", 0, 0, [&](const Commit& c) {
                    seqs.push_back(c.seq);
                    return true;
                  }).ok());
  EXPECT_EQ(seqs, (std::vector<uint64_t>{1, 2}));
  std::vector<std::string> files;
  ASSERT_TRUE(log_->ListFiles("ns", [&](const FileVersion& v) {
                    files.push_back(v.path + "@" + std::to_string(v.seq));
                  }).ok());
  EXPECT_EQ(files, (std::vector<std::string>{"a.txt@2", "b.txt@2"}));
}

TEST_F(CommitLogTest, StaleBaseSeqIsAbortedNamingFilesAndWritesNothing) {
  PutChunk("one");
  ASSERT_TRUE(log_->Append("ns", "dev1", {File("a.txt", "one", 0)}).ok());
  ASSERT_TRUE(log_->Append("ns", "dev1", {File("a.txt", "one", 1)}).ok());
  // dev2 edited on top of seq 1, but a.txt is at seq 2 now; c.txt is new and fine.
  auto stale = log_->Append("ns", "dev2", {File("c.txt", "one", 0), File("a.txt", "one", 1)});
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kAborted);
  EXPECT_NE(stale.status().message().find("a.txt"), absl::string_view::npos);
  EXPECT_EQ(stale.status().message().find("c.txt"), absl::string_view::npos);
  EXPECT_EQ(*log_->HeadSeq("ns"), 2u);
  int files = 0;
  ASSERT_TRUE(log_->ListFiles("ns", [&](const FileVersion&) { ++files; }).ok());
  EXPECT_EQ(files, 1);  // c.txt was not written
  // A new path with a non-zero base is stale too.
  EXPECT_EQ(log_->Append("ns", "dev1", {File("new.txt", "one", 5)}).status().code(),
            absl::StatusCode::kAborted);
}

TEST_F(CommitLogTest, MissingChunksAreRefused) {
  auto r = log_->Append("ns", "dev1", {File("a.txt", "never uploaded", 0)});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(*log_->HeadSeq("ns"), 0u);
}

TEST_F(CommitLogTest, EmptyFilesDirectoriesAndTombstones) {
  FileVersion dir = File("d", "", 0);
  dir.kind = FileKind::kDirectory;
  auto c1 = log_->Append("ns", "dev1", {dir, File("d/empty", "", 0)});
  ASSERT_TRUE(c1.ok()) << c1.status();
  FileVersion gone = File("d/empty", "", c1->seq);
  gone.deleted = true;
  gone.content_sha256 = Digest{};
  auto c2 = log_->Append("ns", "dev1", {gone});
  ASSERT_TRUE(c2.ok()) << c2.status();
  auto stats = log_->Stats("ns");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->live_files, 0u);
  // Re-creating the path is made on top of the tombstone's seq.
  EXPECT_TRUE(log_->Append("ns", "dev2", {File("d/empty", "", c2->seq)}).ok());
}

TEST_F(CommitLogTest, AccessChecks) {
  PutChunk("x");
  EXPECT_EQ(log_->Append("nope", "dev1", {File("a", "x", 0)}).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(log_->Append("ns", "stranger", {File("a", "x", 0)}).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(log_->CheckAccess("ns", "dev2").code(), absl::StatusCode::kOk);
  EXPECT_EQ(log_->RegisterNamespace("Bad/Id", "alice", {}).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(CommitLogTest, AnEncryptedNamespaceTakesOnlySealedVersionsAndAPlainOneNone) {
  ASSERT_TRUE(log_->RegisterNamespace("vault", "alice", {"dev1"}, /*encrypted=*/true).ok());
  const crypto::DeviceKeys device = crypto::DeviceKeys::Generate();
  const auto attest = [&](const std::string& dev, const crypto::LogHead& seen) {
    crypto::SignedCommit sc{"vault", dev, seen, HashOf("body"), ""};
    crypto::Sign(device, &sc);
    return sc;
  };
  const crypto::SignedCommit first = attest("dev1", {});
  const std::string signed_first = crypto::EncodeAttestation(first);
  PutChunk("x");
  FileVersion plain = File("notes.txt", "x", 0);
  EXPECT_EQ(log_->Append("vault", "dev1", {plain}, signed_first).status().code(), absl::StatusCode::kInvalidArgument);
  FileVersion named = plain;  // sealed, but its name in the clear
  named.sealed_record = "sealed";
  EXPECT_EQ(log_->Append("vault", "dev1", {named}, signed_first).status().code(), absl::StatusCode::kInvalidArgument);
  FileVersion sealed = named;
  sealed.path = "abc234/xyz";
  FileVersion dir = File("abc234", "", 0);
  dir.kind = FileKind::kDirectory;
  dir.sealed_record = "sealed dir";
  // Sealed, but unsigned, or with an attestation that does not parse: refused.
  EXPECT_EQ(log_->Append("vault", "dev1", {dir, sealed}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(log_->Append("vault", "dev1", {dir, sealed}, signed_first.substr(1)).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto c = log_->Append("vault", "dev1", {dir, sealed}, signed_first);
  ASSERT_TRUE(c.ok()) << c.status();
  // A plain namespace takes no sealed version, and no signed commit.
  EXPECT_EQ(log_->Append("ns", "dev1", {named}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(log_->Append("ns", "dev1", {plain}, signed_first).status().code(), absl::StatusCode::kInvalidArgument);
  // Encryption is never undone, and kept across a restart; so is the log's chained head, which
  // the store computes as the devices do, and the attestation of each commit.
  EXPECT_EQ(log_->RegisterNamespace("vault", "alice", {"dev1", "dev2"}, false).code(),
            absl::StatusCode::kFailedPrecondition);
  Open();
  const crypto::LogHead after_first = crypto::NextHead({}, first);
  ASSERT_TRUE(log_->Chain("vault").ok());
  EXPECT_EQ(*log_->Chain("vault"), after_first);
  EXPECT_EQ(log_->Append("vault", "dev1", {File("other", "x", 0)}, signed_first).status().code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(log_->RegisterNamespace("vault", "alice", {"dev1", "dev2"}, true).ok());
  FileVersion again = sealed;
  again.base_seq = c->seq;
  const crypto::SignedCommit second = attest("dev2", after_first);
  EXPECT_TRUE(log_->Append("vault", "dev2", {again}, crypto::EncodeAttestation(second)).ok());
  EXPECT_EQ(*log_->Chain("vault"), crypto::NextHead(after_first, second));
  std::vector<std::string> attestations;
  ASSERT_TRUE(log_->ReadSince("vault", 0, 0, [&](const Commit& kept) {
    attestations.push_back(kept.attestation);
    return true;
  }).ok());
  EXPECT_EQ(attestations, (std::vector<std::string>{signed_first, crypto::EncodeAttestation(second)}));
}

TEST_F(CommitLogTest, APlainNamespaceConvertsAtItsHeadAndKeepsWhatCameBefore) {
  PutChunk("x");
  PutChunk("y");
  ASSERT_TRUE(log_->Append("ns", "dev1", {File("notes.txt", "x", 0)}).ok());
  auto before = log_->Append("ns", "dev1", {File("notes.txt", "y", 1)});
  ASSERT_TRUE(before.ok()) << before.status();
  ASSERT_TRUE(log_->SealingOf("ns").ok());
  EXPECT_FALSE(log_->SealingOf("ns")->encrypted);
  // Registered as encrypted: converted at its head, seq 2.
  ASSERT_TRUE(log_->RegisterNamespace("ns", "alice", {"dev1", "dev2"}, /*encrypted=*/true).ok());
  EXPECT_TRUE(log_->SealingOf("ns")->encrypted);
  EXPECT_EQ(log_->SealingOf("ns")->converted_at, 2u);
  ASSERT_TRUE(log_->RegisterNamespace("ns", "alice", {"dev1", "dev2"}, /*encrypted=*/true).ok());  // idempotent
  EXPECT_EQ(log_->SealingOf("ns")->converted_at, 2u);
  // From now on sealed versions only, signed over a chain that starts at the conversion.
  EXPECT_EQ(log_->Append("ns", "dev1", {File("notes.txt", "x", 2)}).status().code(), absl::StatusCode::kInvalidArgument);
  const crypto::DeviceKeys device = crypto::DeviceKeys::Generate();
  crypto::SignedCommit sc{"ns", "dev1", crypto::LogHead{2, {}}, HashOf("body"), ""};
  crypto::Sign(device, &sc);
  FileVersion sealed = File("abc234", "x", 0);
  sealed.sealed_record = "sealed";
  ASSERT_TRUE(log_->Append("ns", "dev1", {sealed}, crypto::EncodeAttestation(sc)).ok());
  EXPECT_EQ(*log_->Chain("ns"), crypto::NextHead(crypto::LogHead{2, {}}, sc));
  // What came before stays, plain: the table entry and its history.
  auto versions = log_->Versions("ns", "notes.txt", 0);
  ASSERT_TRUE(versions.ok()) << versions.status();
  EXPECT_EQ(versions->size(), 2u);
  // Kept across a restart; never made plain again.
  Open();
  EXPECT_EQ(log_->SealingOf("ns")->converted_at, 2u);
  EXPECT_TRUE(log_->SealingOf("ns")->encrypted);
  EXPECT_EQ(log_->RegisterNamespace("ns", "alice", {"dev1", "dev2"}, false).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(CommitLogTest, CursorsMoveForwardOnly) {
  PutChunk("x");
  ASSERT_TRUE(log_->Append("ns", "dev1", {File("a", "x", 0)}).ok());
  ASSERT_TRUE(log_->Append("ns", "dev1", {File("a", "x", 1)}).ok());
  ASSERT_TRUE(log_->Ack("ns", "dev2", 2).ok());
  ASSERT_TRUE(log_->Ack("ns", "dev2", 1).ok());
  EXPECT_EQ(log_->Ack("ns", "dev2", 3).code(), absl::StatusCode::kInvalidArgument);
  auto stats = log_->Stats("ns");
  ASSERT_TRUE(stats.ok());
  ASSERT_EQ(stats->devices.size(), 2u);  // both members
  EXPECT_EQ(stats->devices[1].device_id, "dev2");
  EXPECT_EQ(stats->devices[1].acked_seq, 2u);
  EXPECT_EQ(stats->devices[0].acked_seq, 0u);
  Open();  // durable
  stats = log_->Stats("ns");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->devices[1].acked_seq, 2u);
}

TEST_F(CommitLogTest, StatsTellLagDedupConflictsAndLastSeen) {
  const std::string big(1000, 'b');
  PutChunk("x");
  PutChunk(big);
  clock_.Advance(absl::Seconds(100));
  const absl::Time t1 = clock_.Now();
  ASSERT_TRUE(log_->Append("ns", "dev1", {File("a", "x", 0), File("copy-of-a", "x", 0)}).ok());
  ASSERT_TRUE(log_->Ack("ns", "dev1", 1, "converge-engine/test").ok());
  clock_.Advance(absl::Seconds(30));
  ASSERT_TRUE(log_->Append("ns", "dev1", {File("big", big, 0)}).ok());
  ASSERT_TRUE(log_->Append("ns", "dev1", {File("notes (conflict dev-abc 20261127T101500Z).txt", "x", 0)}).ok());
  clock_.Advance(absl::Seconds(10));
  log_->Touch("ns", "dev2", "converge-engine/9.9");

  auto stats = log_->Stats("ns");
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->head_seq, 3u);
  EXPECT_EQ(stats->live_files, 4u);
  EXPECT_EQ(stats->live_bytes, 1003u);
  EXPECT_EQ(stats->unique_chunks, 2u);  // "x" three times, big once
  EXPECT_EQ(stats->unique_chunk_bytes, 1001u);
  EXPECT_EQ(stats->conflict_paths, (std::vector<std::string>{"notes (conflict dev-abc 20261127T101500Z).txt"}));
  ASSERT_EQ(stats->devices.size(), 2u);
  const DeviceCursor& d1 = stats->devices[0];
  EXPECT_EQ(d1.acked_seq, 1u);
  EXPECT_EQ(d1.lag_commits, 2u);
  EXPECT_EQ(d1.lag_bytes, 1001u);
  EXPECT_DOUBLE_EQ(d1.lag_seconds, 10);  // its oldest unacked commit is 10 s old
  EXPECT_EQ(d1.last_seen_unix_ms, absl::ToUnixMillis(t1));
  EXPECT_EQ(d1.software_version, "converge-engine/test");
  const DeviceCursor& d2 = stats->devices[1];
  EXPECT_EQ(d2.lag_commits, 3u);
  EXPECT_EQ(d2.lag_bytes, 1003u);
  EXPECT_DOUBLE_EQ(d2.lag_seconds, 40);
  EXPECT_EQ(d2.last_seen_unix_ms, absl::ToUnixMillis(clock_.Now()));
  EXPECT_EQ(d2.software_version, "converge-engine/9.9");
}

// Commits `n` one-chunk files f0..f<n-1> from dev1 (all sharing the chunk "x").
void CommitFiles(CommitLog* log, int n, uint64_t base_seq = 0) {
  std::vector<FileVersion> files;
  for (int i = 0; i < n; ++i) {
    FileVersion v;
    v.file_id = std::string(kFileIdBytes, 'f');
    v.path = absl::StrCat("f", i);
    v.size = 1;
    v.content_sha256 = HashOf("x");
    v.chunks = {{HashOf("x"), 1}};
    v.base_seq = base_seq;
    files.push_back(v);
  }
  ASSERT_TRUE(log->Append("ns", "dev1", files).ok());
}

std::vector<FileVersion> Deletions(int from, int to, uint64_t base_seq) {
  std::vector<FileVersion> out;
  for (int i = from; i < to; ++i) {
    FileVersion v;
    v.file_id = std::string(kFileIdBytes, 'f');
    v.path = absl::StrCat("f", i);
    v.deleted = true;
    v.base_seq = base_seq;
    out.push_back(v);
  }
  return out;
}

TEST_F(CommitLogTest, NamesMadeAgainAfterADeletionDoNotWalkItsMarkers) {
  PutChunk("x");
  CommitFiles(log_.get(), 300);
  auto held = log_->Append("ns", "dev1", Deletions(0, 300, 1));
  ASSERT_TRUE(IsMassDeleteHeld(held.status())) << held.status();
  ASSERT_TRUE(log_->ResolveHeld("ns", log_->ListHeld("ns")->front().id, true).ok());
  auto deleted = log_->Append("ns", "dev1", Deletions(0, 300, 1));
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  // The case index dropped the 300 names. Made again, each name is checked for entries below
  // it ("f7/..."): there are none, and a lookup that walked on past its prefix would step over
  // the deletion markers of every later name (about 45,000 of them).
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kEnableCount);
  rocksdb::get_perf_context()->Reset();
  CommitFiles(log_.get(), 300, deleted->seq);
  const uint64_t stepped_over = rocksdb::get_perf_context()->internal_delete_skipped_count;
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
  EXPECT_EQ(log_->Stats("ns")->live_files, 300u);
  EXPECT_LT(stepped_over, 300u);
}

TEST_F(CommitLogTest, MassDeleteIsHeldUntilApproved) {
  PutChunk("x");
  CommitFiles(log_.get(), 300);
  // 50 of 300: fine.
  ASSERT_TRUE(log_->Append("ns", "dev1", Deletions(0, 50, 1)).ok());
  clock_.Advance(absl::Minutes(5));  // outside the window
  // 200 of 250: held, and held again (same id) when retried.
  auto held = log_->Append("ns", "dev1", Deletions(50, 250, 1));
  ASSERT_TRUE(IsMassDeleteHeld(held.status())) << held.status();
  EXPECT_TRUE(absl::StrContains(held.status().message(), "deletes 200 of 250 entries")) << held.status();
  EXPECT_TRUE(IsMassDeleteHeld(log_->Append("ns", "dev1", Deletions(50, 250, 1)).status()));
  auto list = log_->ListHeld("ns");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  const HeldDelete h = list->front();
  EXPECT_EQ(h.state, HeldDelete::State::kPending);
  EXPECT_EQ(h.device, "dev1");
  EXPECT_EQ(h.deletes, 200u);
  EXPECT_EQ(h.sample.size(), 5u);
  EXPECT_TRUE(absl::StrContains(held.status().message(), h.id));
  // Nothing was deleted meanwhile.
  EXPECT_EQ(log_->Stats("ns")->live_files, 250u);

  auto approved = log_->ResolveHeld("ns", h.id, true);
  ASSERT_TRUE(approved.ok()) << approved.status();
  EXPECT_EQ(log_->ResolveHeld("ns", h.id, false).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(log_->ResolveHeld("ns", "0123456789abcdef", true).status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(log_->Append("ns", "dev1", Deletions(50, 250, 1)).ok());
  EXPECT_EQ(log_->Stats("ns")->live_files, 50u);
  EXPECT_EQ(log_->ListHeld("ns")->front().state, HeldDelete::State::kApplied);
}

TEST_F(CommitLogTest, RejectedMassDeleteTellsTheDeviceToRestore) {
  PutChunk("x");
  CommitFiles(log_.get(), 200);
  auto held = log_->Append("ns", "dev2", Deletions(0, 150, 1));
  ASSERT_TRUE(IsMassDeleteHeld(held.status())) << held.status();
  const std::string id = log_->ListHeld("ns")->front().id;
  ASSERT_TRUE(log_->ResolveHeld("ns", id, false).ok());
  auto again = log_->Append("ns", "dev2", Deletions(0, 150, 1));
  EXPECT_TRUE(IsMassDeleteRejected(again.status())) << again.status();
  EXPECT_EQ(log_->Stats("ns")->live_files, 200u);
  EXPECT_EQ(log_->ListHeld("ns")->front().state, HeldDelete::State::kRestored);
  // Told once; the same deletions made again later are a new request, held again.
  EXPECT_TRUE(IsMassDeleteHeld(log_->Append("ns", "dev2", Deletions(0, 150, 1)).status()));
  EXPECT_EQ(log_->ListHeld("ns")->front().state, HeldDelete::State::kPending);
}

TEST_F(CommitLogTest, DeletionsSplitOverCommitsCountTogether) {
  PutChunk("x");
  CommitFiles(log_.get(), 1000);
  // Ten commits of 90 deletions each: each alone is small, together within a minute they are not.
  int held_at = -1;
  for (int i = 0; i < 10; ++i) {
    auto r = log_->Append("ns", "dev1", Deletions(i * 90, (i + 1) * 90, 1));
    if (!r.ok()) {
      ASSERT_TRUE(IsMassDeleteHeld(r.status())) << r.status();
      held_at = i;
      break;
    }
    clock_.Advance(absl::Seconds(1));
  }
  EXPECT_EQ(held_at, 5);  // 540 of 1000 is the first above half
  // Another device is not affected by dev1's burst. dev1's deletions wait with the burst while
  // it is pending, after the window too; approved, they go through.
  EXPECT_TRUE(log_->Append("ns", "dev2", Deletions(900, 950, 1)).ok());
  clock_.Advance(absl::Minutes(2));
  EXPECT_TRUE(IsMassDeleteHeld(log_->Append("ns", "dev1", Deletions(450, 540, 1)).status()));
  auto list = log_->ListHeld("ns");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  ASSERT_TRUE(log_->ResolveHeld("ns", list->front().id, true).ok());
  EXPECT_TRUE(log_->Append("ns", "dev1", Deletions(450, 540, 1)).ok());
}

// rm -rf of a big folder, committed in batches (deepest first): one hold for the whole burst,
// listed with its total and the folders it empties; one approval lets every batch through.
TEST_F(CommitLogTest, ABurstOfDeletionsIsOneHoldAndOneApproval) {
  PutChunk("x");
  std::vector<FileVersion> files;
  auto add = [&](const std::string& path, bool dir) {
    FileVersion v;
    v.file_id = std::string(kFileIdBytes, 'f');
    v.path = path;
    if (dir) {
      v.kind = FileKind::kDirectory;
    } else {
      v.size = 1;
      v.content_sha256 = HashOf("x");
      v.chunks = {{HashOf("x"), 1}};
    }
    files.push_back(v);
  };
  add("ob", true);
  for (int i = 0; i < 400; ++i) add(absl::StrCat("ob/f", 1000 + i), false);
  add("docs", true);
  for (int i = 0; i < 20; ++i) add(absl::StrCat("docs/d", i), false);
  ASSERT_TRUE(log_->Append("ns", "dev1", files).ok());
  auto deletions = [&](int from, int to) {
    std::vector<FileVersion> out;
    for (int i = from; i < to; ++i) {
      FileVersion v = files[i];
      v.deleted = true;
      v.chunks.clear();
      v.size = 0;
      v.base_seq = 1;
      out.push_back(v);
    }
    return out;
  };
  // Batches of 250, 151 (with the folder itself) and 3 stray files in docs/.
  std::vector<std::vector<FileVersion>> batches = {deletions(151, 401), deletions(0, 151), deletions(402, 405)};
  std::string id;
  for (const auto& b : batches) {
    auto r = log_->Append("ns", "dev1", b);
    ASSERT_TRUE(IsMassDeleteHeld(r.status())) << r.status();
    auto list = log_->ListHeld("ns");
    ASSERT_TRUE(list.ok());
    ASSERT_EQ(list->size(), 1u) << "one hold for the burst";
    if (id.empty()) id = list->front().id;
    EXPECT_EQ(list->front().id, id);
  }
  auto listed = log_->ListHeld("ns");
  ASSERT_TRUE(listed.ok());
  const HeldDelete& h = listed->front();
  EXPECT_EQ(h.deletes, 404u);
  ASSERT_EQ(h.top_folders.size(), 2u);
  EXPECT_EQ(h.top_folders[0], std::make_pair(std::string("ob/"), uint64_t{400}));
  EXPECT_EQ(h.top_folders[1], std::make_pair(std::string("docs/"), uint64_t{3}));

  ASSERT_TRUE(log_->ResolveHeld("ns", id, true).ok());
  for (const auto& b : batches) EXPECT_TRUE(log_->Append("ns", "dev1", b).ok());
  auto after = log_->ListHeld("ns");
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->size(), 1u);
  EXPECT_EQ(after->front().state, HeldDelete::State::kApplied);
  EXPECT_EQ(after->front().settled, 404u);
}

TEST_F(CommitLogTest, LiveCountSurvivesReopen) {
  PutChunk("x");
  CommitFiles(log_.get(), 150);
  Open();
  // Reopened: 120 of 150 is still recognised as a mass delete.
  EXPECT_TRUE(IsMassDeleteHeld(log_->Append("ns", "dev1", Deletions(0, 120, 1)).status()));
}

TEST_F(CommitLogTest, DirectoryIsDeletedOnlyWithItsContents) {
  PutChunk("x");
  FileVersion dir = File("d", "", 0);
  dir.kind = FileKind::kDirectory;
  dir.chunks.clear();
  dir.size = 0;
  dir.content_sha256 = Digest{};
  ASSERT_TRUE(log_->Append("ns", "dev1", {dir, File("d/a", "x", 0), File("d/b", "x", 0)}).ok());
  FileVersion gone_dir = dir;
  gone_dir.deleted = true;
  gone_dir.base_seq = 1;
  FileVersion gone_a = File("d/a", "", 1);
  gone_a.deleted = true;
  gone_a.chunks.clear();
  gone_a.content_sha256 = Digest{};
  auto refused = log_->Append("ns", "dev1", {gone_dir, gone_a});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "'d/b' in it is not deleted")) << refused.status();
  FileVersion gone_b = gone_a;
  gone_b.path = "d/b";
  EXPECT_TRUE(log_->Append("ns", "dev1", {gone_b, gone_a, gone_dir}).ok());
}

TEST_F(CommitLogTest, CaseCollisionsAreRefusedButCaseOnlyRenamesPass) {
  PutChunk("x");
  FileVersion dir = File("Docs", "", 0);
  dir.kind = FileKind::kDirectory;
  ASSERT_TRUE(log_->Append("ns", "dev1", {dir, File("Docs/Readme.md", "x", 0)}).ok());
  for (const std::string& path : {"Docs/README.md", "docs/readme.md", "DOCS/other.md", "docs"}) {
    auto r = log_->Append("ns", "dev2", {File(path, "x", 0)});
    EXPECT_EQ(r.status().code(), absl::StatusCode::kAlreadyExists) << path << ": " << r.status();
  }
  auto twice = log_->Append("ns", "dev2", {File("x.txt", "x", 0), File("X.TXT", "x", 0)});
  EXPECT_EQ(twice.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(absl::StrContains(twice.status().message(), "'X.TXT' differs only in case from 'x.txt'"))
      << twice.status();
  EXPECT_EQ(*log_->HeadSeq("ns"), 1u);

  // A case-only rename deletes the old name and creates the new one in one commit.
  FileVersion old_name = File("Docs/Readme.md", "", 1);
  old_name.deleted = true;
  old_name.chunks.clear();
  old_name.content_sha256 = Digest{};
  ASSERT_TRUE(log_->Append("ns", "dev1", {old_name, File("Docs/README.md", "x", 0)}).ok());
  EXPECT_EQ(log_->Append("ns", "dev2", {File("Docs/Readme.md", "x", 2)}).status().code(),
            absl::StatusCode::kAlreadyExists);
  // Once the holder is deleted the other spelling is free.
  FileVersion gone = old_name;
  gone.path = "Docs/README.md";
  gone.base_seq = 2;
  ASSERT_TRUE(log_->Append("ns", "dev1", {gone}).ok());
  EXPECT_TRUE(log_->Append("ns", "dev2", {File("Docs/readme.MD", "x", 0)}).ok());
}

TEST_F(CommitLogTest, NameTwinsCollideWhateverTheirNormalisationOrCase) {
  PutChunk("x");
  ASSERT_TRUE(log_->Append("ns", "dev1", {File("caf\xc3\xa9.txt", "x", 0), File("k-file", "x", 0),
                                          File("\xce\xa9mega/a", "x", 0)}).ok());
  for (const std::string& twin : {std::string("cafe\xcc\x81.txt"), std::string("CAF\xc3\x89.TXT"),
                                  std::string("\xe2\x84\xaa-file"), std::string("\xcf\x89mega/b")}) {
    EXPECT_EQ(log_->Append("ns", "dev2", {File(twin, "x", 0)}).status().code(), absl::StatusCode::kAlreadyExists)
        << twin;
  }
  EXPECT_EQ(*log_->HeadSeq("ns"), 1u);
}

TEST_F(CommitLogTest, ACommitOfManyDeepDistinctDirectoriesIsRefusedNotWorkedThrough) {
  PutChunk("x");
  // 301 paths of ~4 KB, each in its own chain of 127 directories: checking every directory of
  // every path would look up ~75 MB of names.
  std::vector<FileVersion> hostile;
  for (int i = 0; i < 301; ++i) {
    std::string path = absl::StrCat("t", i);
    for (int d = 0; d < 126; ++d) absl::StrAppend(&path, "/", std::string(30, 'a' + d % 26));
    hostile.push_back(File(path + "/f", "x", 0));
  }
  auto refused = log_->Append("ns", "dev1", hostile);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << refused.status();
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "split it")) << refused.status();
  // The same paths in smaller commits go through, and siblings cost only their own name.
  for (size_t start = 0; start < hostile.size(); start += 50) {
    std::vector<FileVersion> part(hostile.begin() + start, hostile.begin() + std::min(hostile.size(), start + 50));
    ASSERT_TRUE(log_->Append("ns", "dev1", part).ok());
  }
}

TEST_F(CommitLogTest, NoPathMayLieInsideAFileOrSymlink) {
  PutChunk("x");
  FileVersion link = File("l", "", 0);
  link.kind = FileKind::kSymlink;
  link.symlink_target = "/etc";
  link.content_sha256 = HashOf("/etc");
  ASSERT_TRUE(log_->Append("ns", "dev1", {File("p", "x", 0), link, File("d/inner", "x", 0)}).ok());
  for (const char* path : {"p/child", "l/x", "p/a/b"}) {
    EXPECT_EQ(log_->Append("ns", "dev2", {File(path, "x", 0)}).status().code(), absl::StatusCode::kFailedPrecondition)
        << path;
  }
  // Within one commit too, and a file may not take the place of a directory with entries in it.
  EXPECT_EQ(log_->Append("ns", "dev2", {File("q", "x", 0), File("q/r", "x", 0)}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(log_->Append("ns", "dev2", {File("d", "x", 0)}).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(*log_->HeadSeq("ns"), 1u);
  // A file replaced by a directory in the same commit may hold entries.
  FileVersion dir = File("p", "", 1);
  dir.kind = FileKind::kDirectory;
  dir.content_sha256 = Digest{};
  ASSERT_TRUE(log_->Append("ns", "dev1", {dir, File("p/child", "x", 0)}).ok());
}

TEST_F(CommitLogTest, ACommitLargerThanAPullCanCarryIsRefused) {
  PutChunk("x");
  std::vector<FileVersion> big;
  for (int i = 0; i < 2000; ++i) big.push_back(File(absl::StrCat(std::string(2500, 'p'), i), "x", 0));
  EXPECT_EQ(log_->Append("ns", "dev1", big).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*log_->HeadSeq("ns"), 0u);
}

TEST_F(CommitLogTest, ACommitInOneNamespaceDoesNotWaitForAnother) {
  ASSERT_TRUE(log_->RegisterNamespace("other", "bob", {"dev3"}).ok());
  PutChunk("x");
  ASSERT_TRUE(chunks_->Put("bob", {{HashOf("y"), "y"}}).ok());
  // While 'ns' takes commits back to back, 'other' commits and authorizes throughout.
  std::atomic<bool> stop{false};
  std::thread busy([&] {
    for (int i = 0; !stop && i < 2000; ++i) log_->Append("ns", "dev1", {File(absl::StrCat("f", i), "x", 0)}).IgnoreError();
  });
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(log_->Append("other", "dev3", {File(absl::StrCat("g", i), "y", 0)}).ok());
    ASSERT_EQ(*log_->OwnerFor("other", "dev3"), "bob");
  }
  stop = true;
  busy.join();
  EXPECT_EQ(*log_->HeadSeq("other"), 50u);
}

TEST_F(CommitLogTest, DirectoriesThatAreNotEntriesCollideToo) {
  PutChunk("x");
  ASSERT_TRUE(log_->Append("ns", "dev1", {File("Music/Album/song.mp3", "x", 0)}).ok());
  EXPECT_EQ(log_->Append("ns", "dev2", {File("music/other.mp3", "x", 0)}).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(log_->Append("ns", "dev2", {File("Music/ALBUM", "x", 0)}).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(log_->Append("ns", "dev2", {File("Music/Album/other.mp3", "x", 0)}).ok());
}

TEST_F(CommitLogTest, HistoryKeepsEveryVersionAndTheStateAtATime) {
  PutChunk("one");
  PutChunk("two");
  clock_.Advance(absl::Hours(1));
  ASSERT_TRUE(log_->Append("ns", "dev1", {File("a.txt", "one", 0)}).ok());
  const int64_t after_first = absl::ToUnixMillis(clock_.Now());
  clock_.Advance(absl::Minutes(5));
  ASSERT_TRUE(log_->Append("ns", "dev2", {File("a.txt", "two", 1), File("b.txt", "one", 0)}).ok());
  clock_.Advance(absl::Minutes(5));
  FileVersion gone = File("b.txt", "", 2);
  gone.deleted = true;
  gone.chunks.clear();
  ASSERT_TRUE(log_->Append("ns", "dev1", {gone}).ok());

  auto versions = log_->Versions("ns", "a.txt", 0);
  ASSERT_TRUE(versions.ok()) << versions.status();
  ASSERT_EQ(versions->size(), 2u);
  EXPECT_EQ((*versions)[0].version.content_sha256, HashOf("two"));  // newest first
  EXPECT_EQ((*versions)[0].version.origin_device, "dev2");
  EXPECT_EQ((*versions)[1].version.content_sha256, HashOf("one"));
  EXPECT_LT((*versions)[1].committed_at_unix_ms, (*versions)[0].committed_at_unix_ms);
  auto b = log_->Versions("ns", "b.txt", 1);
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(b->size(), 1u);
  EXPECT_TRUE((*b)[0].version.deleted);

  std::map<std::string, FileVersion> then;
  ASSERT_TRUE(log_->StateAt("ns", after_first, [&](const HistoryVersion& h) { then[h.version.path] = h.version; }).ok());
  ASSERT_EQ(then.size(), 1u);  // b.txt did not exist yet
  EXPECT_EQ(then["a.txt"].content_sha256, HashOf("one"));
}

TEST_F(CommitLogTest, TheStateAtATimeCanBeReadForOneFolderOnly) {
  PutChunk("one");
  ASSERT_TRUE(log_->Append("ns", "dev1", {File("a.txt", "one", 0), File("docs/b.txt", "one", 0),
                                          File("docs/sub/c.txt", "one", 0), File("docsx.txt", "one", 0)}).ok());
  std::vector<std::string> paths;
  ASSERT_TRUE(log_->StateAt("ns", absl::ToUnixMillis(clock_.Now()), [&](const HistoryVersion& h) {
    paths.push_back(h.version.path);
  }, "docs/").ok());
  EXPECT_EQ(paths, (std::vector<std::string>{"docs/b.txt", "docs/sub/c.txt"}));
}

TEST_F(CommitLogTest, ARestoreCommitsAKeptVersionAgainAsTheConsole) {
  PutChunk("one");
  PutChunk("two");
  ASSERT_TRUE(log_->Append("ns", "dev1", {File("a.txt", "one", 0)}).ok());
  ASSERT_TRUE(log_->Append("ns", "dev2", {File("a.txt", "two", 1)}).ok());
  auto restored = log_->Restore("ns", "a.txt", 1);
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(restored->seq, 3u);
  EXPECT_EQ(restored->origin_device, kConsoleOrigin);
  ASSERT_EQ(restored->files.size(), 1u);
  EXPECT_EQ(restored->files[0].content_sha256, HashOf("one"));
  EXPECT_EQ(restored->files[0].base_seq, 2u);
  auto versions = log_->Versions("ns", "a.txt", 0);
  ASSERT_TRUE(versions.ok());
  EXPECT_EQ(versions->size(), 3u);  // what it replaced stays in history

  EXPECT_EQ(log_->Restore("ns", "a.txt", 3).status().code(), absl::StatusCode::kFailedPrecondition);  // current
  EXPECT_EQ(log_->Restore("ns", "a.txt", 7).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(log_->Restore("ns", "b.txt", 1).status().code(), absl::StatusCode::kNotFound);
  // A version that was a deletion deletes the path again.
  FileVersion gone = File("a.txt", "", 3);
  gone.deleted = true;
  gone.chunks.clear();
  ASSERT_TRUE(log_->Append("ns", "dev1", {gone}).ok());
  ASSERT_TRUE(log_->Restore("ns", "a.txt", 2).ok());  // back from the dead
  auto deleted_again = log_->Restore("ns", "a.txt", 4);
  ASSERT_TRUE(deleted_again.ok()) << deleted_again.status();
  EXPECT_TRUE(deleted_again->files[0].deleted);
  // "console" is no member: a device could not commit as it (the service checks membership).
  EXPECT_EQ(log_->Append("ns", "console2", {File("c.txt", "one", 0)}).status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(CommitLogTest, KeepingAConflictSideIsOneCommitThatClosesTheRecord) {
  PutChunk("mine");
  PutChunk("theirs");
  ASSERT_TRUE(log_->Append("ns", "dev1", {File("doc.txt", "theirs", 0)}).ok());
  const std::string copy = "doc (conflict dev2 20261127T101500Z).txt";
  const std::string copy2 = "doc (conflict dev2 20261127T101600Z).txt";
  ASSERT_TRUE(log_->Append("ns", "dev2", {File(copy, "mine", 0), File(copy2, "mine", 0)}).ok());
  EXPECT_EQ(log_->KeepConflictSide("ns", "doc.txt", true).status().code(), absl::StatusCode::kNotFound);

  auto kept = log_->KeepConflictSide("ns", copy, /*keep_copy=*/true);
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(kept->origin_device, kConsoleOrigin);
  ASSERT_EQ(kept->files.size(), 2u);
  EXPECT_EQ(kept->files[0].path, "doc.txt");
  EXPECT_EQ(kept->files[0].content_sha256, HashOf("mine"));
  EXPECT_EQ(kept->files[0].base_seq, 1u);
  EXPECT_TRUE(kept->files[1].deleted);
  auto dropped = log_->KeepConflictSide("ns", copy2, /*keep_copy=*/false);
  ASSERT_TRUE(dropped.ok()) << dropped.status();
  ASSERT_EQ(dropped->files.size(), 1u);
  EXPECT_TRUE(dropped->files[0].deleted);
  auto open = log_->ListConflicts("ns", false);
  ASSERT_TRUE(open.ok());
  EXPECT_TRUE(open->empty());
  EXPECT_EQ(log_->KeepConflictSide("ns", copy, true).status().code(), absl::StatusCode::kNotFound);  // settled
}

TEST_F(CommitLogTest, ConflictCopiesAreRecordedUntilResolvedOrDeleted) {
  PutChunk("mine");
  PutChunk("theirs");
  ASSERT_TRUE(log_->Append("ns", "dev1", {File("doc.txt", "theirs", 0)}).ok());
  const std::string copy = "doc (conflict dev2 20261127T101500Z).txt";
  const std::string copy2 = "doc (conflict dev2 20261127T101600Z).txt";
  ASSERT_TRUE(log_->Append("ns", "dev2", {File(copy, "mine", 0), File(copy2, "mine", 0)}).ok());
  auto open = log_->ListConflicts("ns", false);
  ASSERT_TRUE(open.ok()) << open.status();
  ASSERT_EQ(open->size(), 2u);
  EXPECT_EQ((*open)[0].original_path, "doc.txt");
  EXPECT_EQ((*open)[0].device, "dev2");
  EXPECT_EQ((*open)[0].seq, 2u);
  EXPECT_FALSE((*open)[0].resolved);

  // Marked resolved by a user: the copy stays, the record is closed.
  auto resolved = log_->ResolveConflict("ns", copy, "dev1");
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_TRUE(resolved->resolved);
  EXPECT_EQ(resolved->resolved_by, "dev1");
  // Deleting the other copy resolves it.
  FileVersion gone = File(copy2, "", 2);
  gone.deleted = true;
  gone.chunks.clear();
  ASSERT_TRUE(log_->Append("ns", "dev1", {gone}).ok());
  open = log_->ListConflicts("ns", false);
  ASSERT_TRUE(open.ok());
  EXPECT_TRUE(open->empty());
  auto all = log_->ListConflicts("ns", true);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[1].resolved_by, "deleted by dev1");
  EXPECT_TRUE(absl::IsNotFound(log_->ResolveConflict("ns", "nope.txt", "dev1").status()));
  auto stats = log_->Stats("ns");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->open_conflicts, 0u);
}

TEST_F(CommitLogTest, AMoveIsNotCountedAsADeletion) {
  std::vector<FileVersion> files;
  for (int i = 0; i < 150; ++i) {
    FileVersion v = File(absl::StrCat("f", i), "", 0);
    v.file_id = absl::StrCat(std::string(kFileIdBytes - 4, 'i'), absl::Dec(i, absl::kZeroPad4));
    files.push_back(v);
  }
  ASSERT_TRUE(log_->Append("ns", "dev1", files).ok());
  std::vector<FileVersion> moves;
  for (const FileVersion& f : files) {
    FileVersion to = f;
    to.path = "moved/" + f.path;
    to.base_seq = 0;
    FileVersion from = f;
    from.deleted = true;
    from.base_seq = 1;
    moves.push_back(to);
    moves.push_back(from);
  }
  FileVersion dir;
  dir.file_id = std::string(kFileIdBytes, 'd');
  dir.path = "moved";
  dir.kind = FileKind::kDirectory;
  moves.insert(moves.begin(), dir);
  auto c = log_->Append("ns", "dev1", moves);
  EXPECT_TRUE(c.ok()) << c.status();  // 150 "deletions" of 150 entries would be held
}

}  // namespace
}  // namespace converge::store
