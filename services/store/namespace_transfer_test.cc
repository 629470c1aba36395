#include "services/store/namespace_transfer.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/model/store_behind.h"
#include "gtest/gtest.h"
#include "services/store/store_test_fixture.h"

namespace converge::store {
namespace {

// A second shard beside the fixture's: the move's target.
class NamespaceTransferTest : public StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    std::filesystem::remove_all(dir_ + "-target");
    auto db = StoreDb::Open(dir_ + "-target");
    ASSERT_TRUE(db.ok()) << db.status();
    target_db_ = std::move(*db);
    target_chunks_ = std::make_unique<ChunkStore>(target_db_.get());
    target_log_ = std::make_unique<CommitLog>(target_db_.get(), target_chunks_.get(), &clock_);
    source_ = std::make_unique<NamespaceTransfer>(db_.get(), chunks_.get(), log_.get());
    target_ = std::make_unique<NamespaceTransfer>(target_db_.get(), target_chunks_.get(), target_log_.get());
  }

  // Copy exports `ns` from the source after `after_seq` and imports it into the target.
  uint64_t Copy(uint64_t after_seq, size_t* pages = nullptr) {
    size_t n = 0;
    absl::StatusOr<uint64_t> head = source_->Export("ns", after_seq, [&](TransferPage&& page) {
      ++n;
      return target_->Import("ns", page);
    });
    EXPECT_TRUE(head.ok()) << head.status();
    if (pages != nullptr) *pages = n;
    return head.ok() ? *head : 0;
  }

  uint64_t Commit(const std::vector<FileVersion>& changes) {
    auto c = log_->Append("ns", "dev1", changes);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? c->seq : 0;
  }

  static std::map<std::string, std::string> Table(CommitLog* log) {
    std::map<std::string, std::string> out;
    EXPECT_TRUE(log->ListFiles("ns", [&](const FileVersion& v) {
                     out[v.path] = absl::StrCat(v.deleted ? "deleted@" : "live@", v.seq, ":", DigestToHex(v.content_sha256));
                   }).ok());
    return out;
  }

  std::unique_ptr<StoreDb> target_db_;
  std::unique_ptr<ChunkStore> target_chunks_;
  std::unique_ptr<CommitLog> target_log_;
  std::unique_ptr<NamespaceTransfer> source_;
  std::unique_ptr<NamespaceTransfer> target_;
};

TEST_F(NamespaceTransferTest, ACopyThenWhatChangedSinceLeavesTheTargetEqualToTheSource) {
  PutChunk("one");
  PutChunk("two");
  const uint64_t s1 = Commit({File("a.txt", "one", 0), File("dir/b.txt", "two", 0)});
  ASSERT_TRUE(log_->Ack("ns", "dev2", s1).ok());
  ASSERT_TRUE(target_log_->SetGate("ns", CommitLog::Gate::kArriving).ok());
  ASSERT_TRUE(log_->SetGate("ns", CommitLog::Gate::kLeaving).ok());
  const uint64_t copied = Copy(0);
  EXPECT_EQ(copied, s1);

  // Devices go on while the copy runs: an edit, a delete, a new file, a case-only rename.
  PutChunk("one, edited");
  PutChunk("three");
  FileVersion gone = File("dir/b.txt", "", s1);
  gone.deleted = true;
  const uint64_t s2 = Commit({File("a.txt", "one, edited", s1), gone, File("c.txt", "three", 0)});
  FileVersion old_name = File("c.txt", "", s2);
  old_name.deleted = true;
  const uint64_t s3 = Commit({old_name, File("C.txt", "three", 0)});
  ASSERT_TRUE(log_->Ack("ns", "dev1", s3).ok());

  // The switch: frozen, the last changes copied, opened there, moved here.
  auto frozen_at = log_->SetGate("ns", CommitLog::Gate::kFrozen);
  ASSERT_TRUE(frozen_at.ok());
  EXPECT_EQ(*frozen_at, s3);
  EXPECT_TRUE(absl::IsUnavailable(log_->Append("ns", "dev1", {File("late.txt", "", 0)}).status()));
  EXPECT_EQ(Copy(copied), s3);
  ASSERT_TRUE(target_log_->SetGate("ns", CommitLog::Gate::kOpen).ok());
  ASSERT_TRUE(target_log_->Reload("ns").ok());
  ASSERT_TRUE(log_->SetGate("ns", CommitLog::Gate::kMoved).ok());

  EXPECT_EQ(Table(target_log_.get()), Table(log_.get()));
  EXPECT_EQ(*target_log_->HeadSeq("ns"), s3);
  EXPECT_TRUE(IsNamespaceMoved(log_->CheckGate("ns", false)));
  // The target serves it: history, chunks, cursors, the case index, the next seq.
  auto versions = target_log_->Versions("ns", "a.txt", 0);
  ASSERT_TRUE(versions.ok());
  EXPECT_EQ(versions->size(), 2u);
  auto bytes = target_chunks_->Get("alice", HashOf("one, edited"));
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, "one, edited");
  auto stats = target_log_->Stats("ns");
  ASSERT_TRUE(stats.ok());
  bool dev2_cursor = false;
  for (const DeviceCursor& c : stats->devices) dev2_cursor |= c.device_id == "dev2" && c.acked_seq == s1;
  EXPECT_TRUE(dev2_cursor);
  EXPECT_TRUE(absl::IsAlreadyExists(target_log_->Append("ns", "dev2", {File("c.TXT", "", 0)}).status()));
  auto next = target_log_->Append("ns", "dev2", {File("d.txt", "", 0)});
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->seq, s3 + 1);

  // The source lets go of its records.
  ASSERT_TRUE(source_->Drop("ns").ok());
  EXPECT_TRUE(Table(log_.get()).empty());
  EXPECT_TRUE(IsNamespaceMoved(log_->CheckGate("ns", false)));
}

TEST_F(NamespaceTransferTest, AGateSurvivesARestart) {
  ASSERT_TRUE(log_->SetGate("ns", CommitLog::Gate::kMoved).ok());
  Open();
  EXPECT_TRUE(IsNamespaceMoved(log_->CheckGate("ns", true)));
  ASSERT_TRUE(log_->SetGate("ns", CommitLog::Gate::kOpen).ok());
  Open();
  EXPECT_TRUE(log_->CheckGate("ns", true).ok());
}

TEST_F(NamespaceTransferTest, ImportRefusesAnotherNamespacesKeysAChunkThatLiesAndANamespaceNotArriving) {
  TransferPage page;
  page.records.push_back({TransferRecord::Op::kPut, StoreDb::NamespaceOwnerKey("ns"), "alice"});
  EXPECT_TRUE(absl::IsFailedPrecondition(target_->Import("ns", page)));
  ASSERT_TRUE(target_log_->SetGate("ns", CommitLog::Gate::kArriving).ok());

  TransferPage other = page;
  other.records.push_back({TransferRecord::Op::kPut, StoreDb::FileKey("other", "x"), "v"});
  EXPECT_TRUE(absl::IsInvalidArgument(target_->Import("ns", other)));
  TransferPage longer;  // "ns2" starts with "ns": still another namespace
  longer.records.push_back({TransferRecord::Op::kPut, StoreDb::NamespaceKey("ns2"), "v"});
  EXPECT_TRUE(absl::IsInvalidArgument(target_->Import("ns", longer)));
  TransferPage registry;
  registry.records.push_back({TransferRecord::Op::kClearPrefix, "R", ""});
  EXPECT_TRUE(absl::IsInvalidArgument(target_->Import("ns", registry)));

  TransferPage lying = page;
  lying.chunks.push_back({HashOf("what it claims"), "what it is"});
  EXPECT_TRUE(absl::IsInvalidArgument(target_->Import("ns", lying)));
  std::string value;
  EXPECT_TRUE(target_db_->db()->Get(rocksdb::ReadOptions(), StoreDb::NamespaceOwnerKey("ns"), &value).IsNotFound());
}

TEST_F(NamespaceTransferTest, WhatChangedSinceIsSmallAndACompactedStartIsRefused) {
  PutChunk("one");
  uint64_t seq = 0;
  for (int i = 0; i < 200; ++i) seq = Commit({File(absl::StrCat("f", i), "one", 0)});
  ASSERT_TRUE(target_log_->SetGate("ns", CommitLog::Gate::kArriving).ok());
  size_t all_pages = 0, since_pages = 0;
  Copy(0, &all_pages);
  const uint64_t last = Commit({File("late", "one", 0)});
  Copy(seq, &since_pages);
  EXPECT_EQ(*target_log_->HeadSeq("ns"), last);
  EXPECT_LE(since_pages, all_pages);
  EXPECT_TRUE(absl::IsOutOfRange(source_->Export("ns", last + 5, [](TransferPage&&) { return absl::OkStatus(); }).status()));
  ASSERT_TRUE(log_->Ack("ns", "dev1", last).ok());
  ASSERT_TRUE(log_->Ack("ns", "dev2", last).ok());
  ASSERT_TRUE(log_->Compact("ns", absl::ZeroDuration()).ok());
  EXPECT_TRUE(absl::IsOutOfRange(source_->Export("ns", 3, [](TransferPage&&) { return absl::OkStatus(); }).status()));
}

}  // namespace
}  // namespace converge::store
