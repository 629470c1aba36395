#include "services/store/chunk_transfer.h"

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/codec/chunk_codec.h"
#include "common/codec/rsync_delta.h"
#include "common/model/model.h"
#include "gtest/gtest.h"
#include "services/store/chunk_store.h"
#include "services/store/store_db.h"
#include "tests/testing/random_bytes_for_test.h"

namespace converge::store {
namespace {

constexpr CallLimiter::Limits kGenerous{0, 1e6, 1e6};

class ChunkTransferTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/chunk_transfer_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    absl::StatusOr<std::unique_ptr<StoreDb>> db = StoreDb::Open(dir_);
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
    chunks_ = std::make_unique<ChunkStore>(db_.get());
  }

  // Stores `raw` for the owner, uploaded whole.
  Digest PutRaw(const std::string& raw) {
    ChunkTransfer transfer(chunks_.get(), &limiter_);
    ChunkTransfer::Upload upload = transfer.StartUpload("alice", "dev1");
    TransferChunk chunk{HashOf(raw), TransferEncoding::kRaw, raw, {}, 0};
    EXPECT_TRUE(upload.Add(chunk).ok());
    EXPECT_TRUE(upload.Finish().ok());
    return chunk.digest;
  }

  std::vector<TransferChunk> Download(ChunkTransfer& transfer, const std::vector<ChunkWant>& wanted, bool stream,
                                      absl::Status* status) {
    std::vector<TransferChunk> got;
    *status = transfer.Download("alice", "dev1", wanted, stream, [&](TransferChunk c) {
      got.push_back(std::move(c));
      return true;
    });
    return got;
  }

  std::string dir_;
  std::unique_ptr<StoreDb> db_;
  std::unique_ptr<ChunkStore> chunks_;
  CallLimiter limiter_{kGenerous};
};

TEST_F(ChunkTransferTest, UploadsEveryEncodingAndStoresTheRawBytes) {
  const std::string base = RandomBytesForTest(64 << 10, 1);
  const Digest base_digest = PutRaw(base);
  std::string edited = base;
  edited.replace(1000, 5, "EDIT!");
  const std::string text(32 << 10, 'a');

  ChunkTransfer transfer(chunks_.get(), &limiter_);
  ChunkTransfer::Upload upload = transfer.StartUpload("alice", "dev1");
  const uint32_t block = BlockBytesFor(base.size());
  TransferChunk delta{HashOf(edited), TransferEncoding::kRsyncDelta,
                      Compress(MakeDelta(edited, MakeSignature(base, block))), {base_digest}, block};
  const size_t delta_wire = delta.data.size();
  ASSERT_TRUE(upload.Add(delta).ok());
  StreamEncoder encoder;
  absl::StatusOr<std::string> piece = encoder.Encode(text);
  ASSERT_TRUE(piece.ok());
  ASSERT_TRUE(upload.Add({HashOf(text), TransferEncoding::kZstdStream, *piece, {}, 0}).ok());
  ASSERT_TRUE(upload.Finish().ok());

  EXPECT_EQ(upload.chunks_stored(), 2u);
  EXPECT_EQ(upload.bytes_stored(), delta_wire + piece->size());
  EXPECT_LT(delta_wire, 4096u);  // the edit, not the chunk
  EXPECT_EQ(*chunks_->Get("alice", HashOf(edited)), edited);
  EXPECT_EQ(*chunks_->Get("alice", HashOf(text)), text);
}

TEST_F(ChunkTransferTest, RefusesWhatDevicesMayNotUploadAndBytesThatAreNotTheChunk) {
  ChunkTransfer transfer(chunks_.get(), &limiter_);
  ChunkTransfer::Upload upload = transfer.StartUpload("alice", "dev1");
  EXPECT_TRUE(absl::IsInvalidArgument(upload.Add({HashOf("x"), TransferEncoding::kZstdDelta, "x", {}, 0})));
  EXPECT_TRUE(absl::IsInvalidArgument(upload.Add({HashOf("x"), TransferEncoding::kZstdStream, "not zstd", {}, 0})));
  // A delta against a base this owner does not hold.
  EXPECT_FALSE(upload.Add({HashOf("y"), TransferEncoding::kRsyncDelta, Compress("y"), {HashOf("base")}, 512}).ok());
  // Raw bytes under another chunk's digest: refused when written, nothing stored.
  ASSERT_TRUE(upload.Add({HashOf("right"), TransferEncoding::kRaw, "wrong", {}, 0}).ok());
  EXPECT_FALSE(upload.Finish().ok());
  EXPECT_FALSE(chunks_->Get("alice", HashOf("right")).ok());
}

TEST_F(ChunkTransferTest, ADeltaUploadIsChargedToTheDevicesRate) {
  const std::string base = RandomBytesForTest(1 << 20, 2);
  const Digest base_digest = PutRaw(base);
  CallLimiter tight({0, 1, 8});  // 8 calls' worth: 256 KiB of work
  absl::StatusOr<CallLimiter::Slot> call = tight.Acquire("dev1");  // work is charged to a call in flight
  ASSERT_TRUE(call.ok()) << call.status();
  ChunkTransfer transfer(chunks_.get(), &tight);
  ChunkTransfer::Upload upload = transfer.StartUpload("alice", "dev1");
  std::string edited = base;
  edited[5] ^= 1;
  const uint32_t block = BlockBytesFor(base.size());
  absl::Status s = upload.Add({HashOf(edited), TransferEncoding::kRsyncDelta,
                               Compress(MakeDelta(edited, MakeSignature(base, block))), {base_digest}, block});
  EXPECT_TRUE(absl::IsResourceExhausted(s)) << s;
}

TEST_F(ChunkTransferTest, DownloadSendsADeltaAgainstTheDevicesBaseWhenSmaller) {
  const std::string base = RandomBytesForTest(256 << 10, 3);
  std::string edited = base;
  edited.replace(100, 4, "edit");
  const Digest base_digest = PutRaw(base);
  const Digest edited_digest = PutRaw(edited);
  const Digest other = PutRaw(RandomBytesForTest(16 << 10, 4));

  ChunkTransfer transfer(chunks_.get(), &limiter_);
  absl::Status s;
  std::vector<TransferChunk> got = Download(transfer, {{edited_digest, {base_digest}}, {other, {}}}, false, &s);
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].encoding, TransferEncoding::kZstdDelta);
  EXPECT_EQ(got[0].bases, std::vector<Digest>{base_digest});
  EXPECT_LT(got[0].data.size(), 4096u);
  EXPECT_EQ(*DeltaDecode(got[0].data, base, kMaxChunkBytes), edited);
  EXPECT_EQ(got[1].encoding, TransferEncoding::kRaw);  // incompressible, no base
  EXPECT_EQ(got[1].digest, other);
}

TEST_F(ChunkTransferTest, DownloadStreamsCompressibleChunksWhenTheDeviceTakesStreams) {
  const std::string a(64 << 10, 'a');
  const std::string b = absl::StrCat(std::string(64 << 10, 'a'), "b");
  const Digest da = PutRaw(a);
  const Digest db = PutRaw(b);
  ChunkTransfer transfer(chunks_.get(), &limiter_);
  absl::Status s;
  std::vector<TransferChunk> got = Download(transfer, {{da, {}}, {db, {}}}, true, &s);
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_EQ(got.size(), 2u);
  StreamDecoder decoder;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].encoding, TransferEncoding::kZstdStream) << i;
    EXPECT_EQ(*decoder.Decode(got[i].data, kMaxChunkBytes), i == 0 ? a : b);
  }
  EXPECT_LT(got[1].data.size(), 1024u);  // the second chunk rides on the first
}

TEST_F(ChunkTransferTest, DownloadRefusesRepeatsUnknownChunksAndStopsWhenTheDeviceGoesAway) {
  const Digest d = PutRaw("chunk");
  ChunkTransfer transfer(chunks_.get(), &limiter_);
  absl::Status s;
  Download(transfer, {{d, {}}, {d, {}}}, false, &s);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  Download(transfer, {{HashOf("absent"), {}}}, false, &s);
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  s = transfer.Download("bob", "dev2", {{d, {}}}, false, [](TransferChunk) { return true; });
  EXPECT_TRUE(absl::IsNotFound(s)) << "another owner's chunk: " << s;
  s = transfer.Download("alice", "dev1", {{d, {}}}, false, [](TransferChunk) { return false; });
  EXPECT_TRUE(absl::IsCancelled(s)) << s;
}

TEST_F(ChunkTransferTest, SignsOnlyTheBasesTheOwnerHolds) {
  const std::string one = RandomBytesForTest(40 << 10, 5);
  const std::string two = RandomBytesForTest(40 << 10, 6);
  const Digest d1 = PutRaw(one);
  const Digest d2 = PutRaw(two);
  ChunkTransfer transfer(chunks_.get(), &limiter_);
  absl::StatusOr<std::vector<SignedBase>> signed_bases =
      transfer.Sign("alice", "dev1", {{d1}, {HashOf("absent")}, {d1, d2}});
  ASSERT_TRUE(signed_bases.ok()) << signed_bases.status();
  ASSERT_EQ(signed_bases->size(), 2u);
  EXPECT_EQ((*signed_bases)[0].base, std::vector<Digest>{d1});
  EXPECT_EQ((*signed_bases)[0].signature.length, one.size());
  EXPECT_EQ((*signed_bases)[1].signature.length, one.size() + two.size());
  const Signature expected = MakeSignature(one + two, BlockBytesFor(one.size() + two.size()));
  EXPECT_EQ((*signed_bases)[1].signature.strong, expected.strong);
}

}  // namespace
}  // namespace converge::store
