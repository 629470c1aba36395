#include "services/store/chunk_store.h"

#include <sys/stat.h>

#include <atomic>
#include <fstream>
#include <random>
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

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(rng());
  return out;
}

uint64_t AllocatedBytes(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_blocks) * 512 : 0;
}

TEST_F(ChunkStoreTest, LargeBatchesGoToPacksAndSweepsGiveTheirSpaceBack) {
  std::vector<std::string> bytes;
  std::vector<ChunkData> batch;
  for (int i = 0; i < 3; ++i) {
    bytes.push_back(RandomBytes(2 << 20, i));
    batch.push_back({HashOf(bytes.back()), bytes.back()});
  }
  ASSERT_TRUE(chunks_->Put("alice", batch).ok());
  absl::StatusOr<std::vector<uint64_t>> packs = db_->packs()->Packs();
  ASSERT_TRUE(packs.ok());
  ASSERT_EQ(packs->size(), 1u);  // 6 MiB new: one pack, not RocksDB
  const std::string pack = absl::StrCat(dir_, "/packs/", (*packs)[0], ".pack");
  const uint64_t before = AllocatedBytes(pack);
  EXPECT_GE(before, 6u << 20);
  Open();  // the places survive a restart
  for (int i = 0; i < 3; ++i) EXPECT_EQ(*chunks_->Get("alice", HashOf(bytes[i])), bytes[i]);
  // Only the first is still referenced: the others' bytes are punched out of the pack.
  absl::flat_hash_map<std::string, absl::flat_hash_set<std::string>> referenced;
  referenced["alice"].insert(DigestToBytes(HashOf(bytes[0])));
  absl::StatusOr<ChunkStore::SweepResult> swept = chunks_->Sweep(referenced, absl::InfiniteFuture());
  ASSERT_TRUE(swept.ok()) << swept.status();
  EXPECT_EQ(swept->chunks_dropped, 2u);
  EXPECT_EQ(chunks_->Get("alice", HashOf(bytes[1])).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(*chunks_->Get("alice", HashOf(bytes[0])), bytes[0]);
  EXPECT_LE(AllocatedBytes(pack), before - (4u << 20));
  // None referenced: the pack goes (no upload writes it since the restart).
  ASSERT_TRUE(chunks_->Sweep({}, absl::InfiniteFuture()).ok());
  EXPECT_TRUE(db_->packs()->Packs()->empty());
  EXPECT_EQ(chunks_->Get("alice", HashOf(bytes[0])).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ChunkStoreTest, APackNeverIndexedIsDeletedWhenTheStoreOpens) {
  // Bytes appended, then the store stopped before indexing them (a crash between the two).
  absl::StatusOr<std::vector<PackPlace>> places = db_->packs()->Append({"orphan bytes"});
  ASSERT_TRUE(places.ok());
  db_->packs()->Unpin((*places)[0].pack);
  ASSERT_EQ(db_->packs()->Packs()->size(), 1u);
  Open();
  EXPECT_TRUE(db_->packs()->Packs()->empty());
}

TEST_F(ChunkStoreTest, APackChunkDamagedOnDiskIsRefused) {
  const std::string big = RandomBytes(3 << 20, 7);  // first in the pack, at offset 0
  const std::string other = RandomBytes(2 << 20, 8);
  ASSERT_TRUE(chunks_->Put("alice", {{HashOf(big), big}, {HashOf(other), other}}).ok());
  const std::string pack = absl::StrCat(dir_, "/packs/", (*db_->packs()->Packs())[0], ".pack");
  {
    std::fstream f(pack, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(1 << 20);
    f.put('\x5a' ^ big[1 << 20]);
  }
  Open();  // no cached reader
  EXPECT_EQ(chunks_->Get("alice", HashOf(big)).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(*chunks_->Get("alice", HashOf(other)), other);
}

}  // namespace
}  // namespace converge::store
