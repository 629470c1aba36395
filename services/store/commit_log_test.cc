#include "services/store/commit_log.h"

#include <cstdlib>
#include <filesystem>
#include <memory>

#include "gtest/gtest.h"

namespace converge::store {
namespace {

class CommitLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::string(getenv("TEST_TMPDIR")) + "/" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    Open();
    ASSERT_TRUE(log_->RegisterNamespace("ns", {"dev1", "dev2"}).ok());
  }

  void Open() {
    log_.reset();
    chunks_.reset();
    db_.reset();
    auto db = StoreDb::Open(dir_);
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
    chunks_ = std::make_unique<ChunkStore>(db_.get());
    log_ = std::make_unique<CommitLog>(db_.get(), chunks_.get(), &clock_);
  }

  FileVersion File(const std::string& path, const std::string& content, uint64_t base_seq) {
    FileVersion v;
    v.file_id = std::string(kFileIdBytes, 'f');
    v.path = path;
    v.size = content.size();
    v.content_sha256 = HashOf(content);
    if (!content.empty()) v.chunks = {{HashOf(content), static_cast<uint32_t>(content.size())}};
    v.base_seq = base_seq;
    return v;
  }

  void PutChunk(const std::string& content) {
    ASSERT_TRUE(chunks_->Put({{HashOf(content), content}}).ok());
  }

  std::string dir_;
  FakeClock clock_;
  std::unique_ptr<StoreDb> db_;
  std::unique_ptr<ChunkStore> chunks_;
  std::unique_ptr<CommitLog> log_;
};

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
  EXPECT_EQ(log_->RegisterNamespace("Bad/Id", {}).code(), absl::StatusCode::kInvalidArgument);
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
  const DeviceState& d1 = stats->devices[0];
  EXPECT_EQ(d1.acked_seq, 1u);
  EXPECT_EQ(d1.lag_commits, 2u);
  EXPECT_EQ(d1.lag_bytes, 1001u);
  EXPECT_DOUBLE_EQ(d1.lag_seconds, 10);  // its oldest unacked commit is 10 s old
  EXPECT_EQ(d1.last_seen_unix_ms, absl::ToUnixMillis(t1));
  EXPECT_EQ(d1.software_version, "converge-engine/test");
  const DeviceState& d2 = stats->devices[1];
  EXPECT_EQ(d2.lag_commits, 3u);
  EXPECT_EQ(d2.lag_bytes, 1003u);
  EXPECT_DOUBLE_EQ(d2.lag_seconds, 40);
  EXPECT_EQ(d2.last_seen_unix_ms, absl::ToUnixMillis(clock_.Now()));
  EXPECT_EQ(d2.software_version, "converge-engine/9.9");
}

TEST_F(CommitLogTest, ChunkStoreVerifiesHashesAndDedups) {
  EXPECT_EQ(chunks_->Put({{HashOf("good"), "evil"}}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(*chunks_->Has(HashOf("good")));
  EXPECT_FALSE(*chunks_->Has(HashOf("evil")));
  PutChunk("good");
  PutChunk("good");
  auto missing = chunks_->FindMissing({HashOf("good"), HashOf("other"), HashOf("other")});
  ASSERT_TRUE(missing.ok());
  ASSERT_EQ(missing->size(), 1u);
  EXPECT_EQ((*missing)[0], HashOf("other"));
  EXPECT_EQ(*chunks_->Get(HashOf("good")), "good");
  EXPECT_EQ(chunks_->Get(HashOf("other")).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace converge::store
