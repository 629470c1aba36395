#include "services/store/chunk_store.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "services/store/store_test_fixture.h"

namespace converge::store {
namespace {

class ChunkStoreTest : public StoreTest {};

TEST_F(ChunkStoreTest, ChunkStoreVerifiesHashesAndDedups) {
  EXPECT_EQ(chunks_->Put("alice", {{HashOf("good"), "evil"}}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(*chunks_->Has("alice", HashOf("good")));
  EXPECT_FALSE(*chunks_->Has("alice", HashOf("evil")));
  PutChunk("good");
  PutChunk("good");
  auto missing = chunks_->FindMissing("alice", {HashOf("good"), HashOf("other"), HashOf("other")});
  ASSERT_TRUE(missing.ok());
  ASSERT_EQ(missing->size(), 1u);
  EXPECT_EQ((*missing)[0], HashOf("other"));
  EXPECT_EQ(*chunks_->Get("alice", HashOf("good")), "good");
  EXPECT_EQ(chunks_->Get("alice", HashOf("other")).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(chunks_->Usage("alice")->first, 4u);  // "good" once
}

TEST_F(ChunkStoreTest, ChunksOfOneOwnerAreInvisibleToAnother) {
  PutChunk("secret");
  // Bob's view: the chunk is missing (no dedup hint), unreadable, and unusable in a commit.
  ASSERT_TRUE(log_->RegisterNamespace("bobs", "bob", {"bob1"}).ok());
  EXPECT_EQ(chunks_->FindMissing("bob", {HashOf("secret")})->size(), 1u);
  EXPECT_EQ(chunks_->Get("bob", HashOf("secret")).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(log_->Append("bobs", "bob1", {File("s", "secret", 0)}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  // Uploading the bytes proves possession: then Bob holds it too, stored once.
  ASSERT_TRUE(chunks_->Put("bob", {{HashOf("secret"), "secret"}}).ok());
  EXPECT_TRUE(log_->Append("bobs", "bob1", {File("s", "secret", 0)}).ok());
  EXPECT_EQ(chunks_->Usage("bob")->first, 6u);
  // A namespace cannot change hands.
  EXPECT_EQ(log_->RegisterNamespace("bobs", "alice", {"bob1"}).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(ChunkStoreTest, QuotaRefusesTheWholeBatchThatWouldExceedIt) {
  ASSERT_EQ(*chunks_->SetQuota("alice", 10), 0u);
  EXPECT_TRUE(chunks_->Put("alice", {{HashOf("123456"), "123456"}}).ok());
  EXPECT_EQ(chunks_->Put("alice", {{HashOf("abc"), "abc"}, {HashOf("defg"), "defg"}}).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_FALSE(*chunks_->Has("alice", HashOf("abc")));  // nothing of the batch stored
  EXPECT_TRUE(chunks_->Put("alice", {{HashOf("123456"), "123456"}, {HashOf("abcd"), "abcd"}}).ok());  // 6 known + 4 new
  EXPECT_EQ(chunks_->Usage("alice")->first, 10u);
  EXPECT_EQ(chunks_->Put("alice", {{HashOf("x"), "x"}}).code(), absl::StatusCode::kResourceExhausted);
  ASSERT_EQ(*chunks_->SetQuota("alice", 0), 10u);  // unlimited again
  EXPECT_TRUE(chunks_->Put("alice", {{HashOf("x"), "x"}}).ok());
}

}  // namespace
}  // namespace converge::store
