// Adapter tests: the store's gRPC surface over a real loopback socket.
#include <grpcpp/grpcpp.h>

#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/codec/chunk_codec.h"
#include "common/codec/rsync_delta.h"
#include "common/rpc/grpc_status.h"
#include "common/rpc/server_runner.h"
#include "common/wire/wire.h"
#include "common/model/store_behind.h"
#include "gtest/gtest.h"
#include "services/store/store_db.h"
#include "services/store/store_server.h"
#include "tests/testing/random_bytes_for_test.h"

namespace converge::store {
namespace {

class StoreServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string dir = std::string(getenv("TEST_TMPDIR")) + "/" +
                            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir);
    StoreOptions options;
    options.data_dir = dir;
    options.auth.service_token = "secret";
    auto store = StoreServer::Create(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    auto server = StartServer(ServerOptions{}, {store_->service()});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    stub_ = v1::StoreService::NewStub(
        grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
    ASSERT_TRUE(RegisterMembers({"dev1"}).ok());
  }

  // RegisterMembers registers namespace "ns" of alice with these member devices (`encrypted`:
  // end-to-end encrypted, which converts it if it was plain).
  grpc::Status RegisterMembers(const std::vector<std::string>& devices, bool encrypted = false) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer secret");
    v1::RegisterNamespaceRequest req;
    req.set_namespace_id("ns");
    req.set_owner_user_id("alice");
    for (const std::string& d : devices) req.add_member_device_ids(d);
    req.set_encrypted(encrypted);
    v1::RegisterNamespaceResponse resp;
    return stub_->RegisterNamespace(&ctx, req, &resp);
  }

  // PutRequest: one chunk upload of `data` as the chunk `hash_of` names.
  static v1::PutChunksRequest PutRequest(const std::string& hash_of, const std::string& data,
                                         v1::ChunkEncoding encoding) {
    v1::PutChunksRequest req;
    req.set_namespace_id("ns");
    req.set_device_id("dev1");
    req.set_sha256(DigestToBytes(HashOf(hash_of)));
    req.set_data(data);
    req.set_encoding(encoding);
    return req;
  }

  grpc::Status Send(const v1::PutChunksRequest& req) {
    grpc::ClientContext ctx;
    v1::PutChunksResponse resp;
    auto writer = stub_->PutChunks(&ctx, &resp);
    writer->Write(req);
    writer->WritesDone();
    return writer->Finish();
  }

  grpc::Status Put(const std::string& hash_of, const std::string& data,
                   v1::ChunkEncoding encoding = v1::CHUNK_ENCODING_RAW) {
    return Send(PutRequest(hash_of, data, encoding));
  }

  // PutDelta uploads `delta` (an rsync delta, zstd-compressed) as the chunk `hash_of` names,
  // against base_sha256 and/or base_sequence as given (raw digest bytes; empty: not set).
  grpc::Status PutDelta(const std::string& hash_of, const std::string& delta, const std::string& base_sha256,
                        const std::vector<std::string>& base_sequence, uint32_t block_bytes) {
    v1::PutChunksRequest req = PutRequest(hash_of, delta, v1::CHUNK_ENCODING_RSYNC_DELTA);
    req.set_base_sha256(base_sha256);
    for (const std::string& d : base_sequence) req.add_base_sequence(d);
    req.set_block_bytes(block_bytes);
    return Send(req);
  }

  grpc::Status Commit(const std::string& ns, const std::string& path, const std::string& content,
                      uint64_t base_seq, uint64_t* seq = nullptr) {
    FileVersion v;
    v.file_id = std::string(kFileIdBytes, 'x');
    v.path = path;
    v.size = content.size();
    v.content_sha256 = HashOf(content);
    v.chunks = {{HashOf(content), static_cast<uint32_t>(content.size())}};
    v.base_seq = base_seq;
    v1::CommitRequest req;
    req.set_namespace_id(ns);
    req.set_device_id("dev1");
    wire::FileVersionToProto(v, req.add_files());
    // Bypass the sender's own validation: put the raw path on the wire.
    req.mutable_files(0)->set_path(path);
    grpc::ClientContext ctx;
    v1::CommitResponse resp;
    grpc::Status s = stub_->Commit(&ctx, req, &resp);
    if (seq != nullptr) *seq = resp.seq();
    return s;
  }

  std::unique_ptr<StoreServer> store_;
  std::unique_ptr<RunningServer> server_;
  std::unique_ptr<v1::StoreService::Stub> stub_;
};

TEST_F(StoreServiceTest, UploadCommitPullAndFetch) {
  ASSERT_TRUE(Put("hello", "hello").ok());
  uint64_t seq = 0;
  grpc::Status s = Commit("ns", "dir/a.txt", "hello", 0, &seq);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(seq, 1u);

  grpc::ClientContext pull_ctx;
  v1::PullRequest pull;
  pull.set_namespace_id("ns");
  pull.set_device_id("dev1");
  auto reader = stub_->Pull(&pull_ctx, pull);
  v1::PullResponse commit;
  ASSERT_TRUE(reader->Read(&commit));
  EXPECT_EQ(commit.commit().seq(), 1u);
  EXPECT_EQ(commit.commit().files(0).path(), "dir/a.txt");
  EXPECT_FALSE(reader->Read(&commit));
  ASSERT_TRUE(reader->Finish().ok());

  grpc::ClientContext get_ctx;
  v1::GetChunksRequest get;
  get.set_namespace_id("ns");
  get.set_device_id("dev1");
  get.add_sha256(DigestToBytes(HashOf("hello")));
  auto chunks = stub_->GetChunks(&get_ctx, get);
  v1::GetChunksResponse chunk;
  ASSERT_TRUE(chunks->Read(&chunk));
  EXPECT_EQ(chunk.data(), "hello");
  EXPECT_FALSE(chunks->Read(&chunk));
  EXPECT_TRUE(chunks->Finish().ok());
}

// CommitCarrying: a commit of `path` (content `content`) that carries `chunks` ({hash_of, data}).
v1::CommitRequest CommitCarrying(const std::string& device, const std::string& path, const std::string& content,
                                 const std::vector<std::pair<std::string, std::string>>& chunks) {
  FileVersion v;
  v.file_id = std::string(kFileIdBytes, 'y');
  v.path = path;
  v.size = content.size();
  v.content_sha256 = HashOf(content);
  v.chunks = {{HashOf(content), static_cast<uint32_t>(content.size())}};
  v1::CommitRequest req;
  req.set_namespace_id("ns");
  req.set_device_id(device);
  wire::FileVersionToProto(v, req.add_files());
  for (const auto& [hash_of, data] : chunks) {
    v1::InlineChunk* c = req.add_chunks();
    c->set_sha256(DigestToBytes(HashOf(hash_of)));
    c->set_data(data);
  }
  return req;
}

// PullAll returns the responses of a Pull from seq 0 as `device`.
std::vector<v1::PullResponse> PullAll(v1::StoreService::Stub* stub, const std::string& device) {
  grpc::ClientContext ctx;
  v1::PullRequest pull;
  pull.set_namespace_id("ns");
  pull.set_device_id(device);
  auto reader = stub->Pull(&ctx, pull);
  std::vector<v1::PullResponse> out;
  v1::PullResponse resp;
  while (reader->Read(&resp)) out.push_back(resp);
  EXPECT_TRUE(reader->Finish().ok());
  return out;
}

TEST_F(StoreServiceTest, ASmallChangeGoesInOneCallEachWay) {
  ASSERT_TRUE(RegisterMembers({"dev1", "dev2"}).ok());
  auto commit = [&](const v1::CommitRequest& req) {
    grpc::ClientContext ctx;
    v1::CommitResponse resp;
    return stub_->Commit(&ctx, req, &resp);
  };
  // Bytes that do not match their digest: refused, nothing committed.
  grpc::Status s = commit(CommitCarrying("dev1", "a.txt", "note", {{"note", "forged"}}));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  // More than a commit may carry: refused (upload them with PutChunks).
  const size_t half = kMaxCommitChunkBytes / 2 + 1;
  const std::string big = RandomBytesForTest(half, 1), big2 = RandomBytesForTest(half, 2);
  s = commit(CommitCarrying("dev1", "a.txt", "note", {{big, big}, {big2, big2}}));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  std::vector<std::pair<std::string, std::string>> many;
  for (size_t i = 0; i <= kMaxCommitChunks; ++i) many.emplace_back(absl::StrCat(i), absl::StrCat(i));
  s = commit(CommitCarrying("dev1", "a.txt", "note", many));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_TRUE(PullAll(stub_.get(), "dev1").empty());
  // The file and its chunk in one call, no PutChunks before it.
  s = commit(CommitCarrying("dev1", "a.txt", "note", {{"note", "note"}}));
  ASSERT_TRUE(s.ok()) << s.error_message();
  // The other device gets the small file's bytes with the commit; the author does not.
  std::vector<v1::PullResponse> other = PullAll(stub_.get(), "dev2");
  ASSERT_EQ(other.size(), 1u);
  ASSERT_EQ(other[0].chunks_size(), 1);
  EXPECT_EQ(other[0].chunks(0).sha256(), DigestToBytes(HashOf("note")));
  EXPECT_EQ(other[0].chunks(0).data(), "note");
  std::vector<v1::PullResponse> own = PullAll(stub_.get(), "dev1");
  ASSERT_EQ(own.size(), 1u);
  EXPECT_EQ(own[0].chunks_size(), 0);
}

TEST_F(StoreServiceTest, EveryCommitOfAPullCarriesItsSmallFiles) {
  ASSERT_TRUE(RegisterMembers({"dev1", "dev2"}).ok());
  // Three commits of twelve 64 KiB files each: 2.25 MiB in all, more than a call's first MiB.
  constexpr int kCommits = 3, kFiles = 12;
  for (int c = 0; c < kCommits; ++c) {
    v1::CommitRequest req;
    req.set_namespace_id("ns");
    req.set_device_id("dev1");
    for (int f = 0; f < kFiles; ++f) {
      const std::string content = RandomBytesForTest(64 << 10, c * kFiles + f + 1);
      FileVersion v;
      v.file_id = absl::StrCat(std::string(kFileIdBytes - 4, 'y'), absl::Dec(c * kFiles + f, absl::kZeroPad4));
      v.path = absl::StrCat("d", c, "/f", f);
      v.size = content.size();
      v.content_sha256 = HashOf(content);
      v.chunks = {{HashOf(content), static_cast<uint32_t>(content.size())}};
      wire::FileVersionToProto(v, req.add_files());
      v1::InlineChunk* chunk = req.add_chunks();
      chunk->set_sha256(DigestToBytes(HashOf(content)));
      chunk->set_data(content);
    }
    grpc::ClientContext ctx;
    v1::CommitResponse resp;
    grpc::Status s = stub_->Commit(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  // One pull brings every commit with the bytes of every file in it: applying them costs no
  // GetChunks call, however many commits a device is behind.
  std::vector<v1::PullResponse> pulled = PullAll(stub_.get(), "dev2");
  ASSERT_EQ(pulled.size(), static_cast<size_t>(kCommits));
  for (const v1::PullResponse& r : pulled) {
    ASSERT_EQ(r.chunks_size(), kFiles) << "commit " << r.commit().seq();
    for (int f = 0; f < kFiles; ++f) {
      EXPECT_EQ(DigestToBytes(HashOf(r.chunks(f).data())), r.chunks(f).sha256());
    }
  }
}

// Reads one chunk through GetChunks, optionally offering a base.
v1::GetChunksResponse GetOne(v1::StoreService::Stub* stub, const std::string& hash_of, const std::string& base_of) {
  grpc::ClientContext ctx;
  v1::GetChunksRequest get;
  get.set_namespace_id("ns");
  get.set_device_id("dev1");
  get.add_sha256(DigestToBytes(HashOf(hash_of)));
  if (!base_of.empty()) get.add_base_sha256(DigestToBytes(HashOf(base_of)));
  auto reader = stub->GetChunks(&ctx, get);
  v1::GetChunksResponse chunk;
  EXPECT_TRUE(reader->Read(&chunk));
  EXPECT_TRUE(reader->Finish().ok());
  return chunk;
}

TEST_F(StoreServiceTest, CompressedChunksStayCompressedAndDeltasAreSmall) {
  std::string text;
  for (int i = 0; i < 5000; ++i) text += "line " + std::to_string(i) + " of a compressible chunk\n";
  std::optional<std::string> z = CompressIfWorthIt(text);
  ASSERT_TRUE(z.has_value());
  ASSERT_TRUE(Put(text, *z, v1::CHUNK_ENCODING_ZSTD).ok());
  v1::GetChunksResponse got = GetOne(stub_.get(), text, "");
  EXPECT_EQ(got.encoding(), v1::CHUNK_ENCODING_ZSTD);
  EXPECT_EQ(got.data(), *z);

  // An edited version, fetched by a device that has the old one: a delta of about the edit.
  std::string edited = text;
  edited.insert(text.size() / 2, "an inserted sentence that was not there before\n");
  ASSERT_TRUE(Put(edited, edited).ok());
  got = GetOne(stub_.get(), edited, text);
  EXPECT_EQ(got.encoding(), v1::CHUNK_ENCODING_ZSTD_DELTA);
  EXPECT_EQ(got.base_sha256(), DigestToBytes(HashOf(text)));
  EXPECT_LT(got.data().size(), 200u);
  auto back = DeltaDecode(got.data(), text, kMaxChunkBytes);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, edited);
  // A base the store does not have: the plain chunk.
  got = GetOne(stub_.get(), edited, "never stored");
  EXPECT_NE(got.encoding(), v1::CHUNK_ENCODING_ZSTD_DELTA);
}

TEST_F(StoreServiceTest, BadEncodingsAreRefusedAndNothingStored) {
  std::string text(100000, 'q');
  std::optional<std::string> z = CompressIfWorthIt(text);
  ASSERT_TRUE(z.has_value());
  // zstd bytes that decode to something else than the hash says.
  EXPECT_EQ(Put("other", *z, v1::CHUNK_ENCODING_ZSTD).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // Not a zstd frame at all.
  EXPECT_EQ(Put(text, "garbage", v1::CHUNK_ENCODING_ZSTD).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // Deltas are not accepted on upload.
  EXPECT_EQ(Put(text, *z, v1::CHUNK_ENCODING_ZSTD_DELTA).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // A bomb: 5 MiB of zeros (over the chunk limit) compresses to a few hundred bytes.
  const std::string big(5 << 20, '\0');
  EXPECT_EQ(Put(big, *CompressIfWorthIt(big), v1::CHUNK_ENCODING_ZSTD).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_FALSE(*store_->chunks()->Has("alice", HashOf(text)));
  EXPECT_FALSE(*store_->chunks()->Has("alice", HashOf(big)));
}

TEST_F(StoreServiceTest, ZstdStreamChunksUseEarlierOnesAsContext) {
  // Three text chunks that repeat one another, uploaded as one zstd stream.
  std::vector<std::string> texts;
  std::string text;
  for (int i = 0; i < 4000; ++i) text += "line " + std::to_string(i * 31 % 977) + " of a licence text\n";
  texts = {text, text + "one more line\n", "a preamble\n" + text};
  StreamEncoder enc;
  std::vector<std::string> pieces;
  {
    grpc::ClientContext ctx;
    v1::PutChunksResponse resp;
    auto writer = stub_->PutChunks(&ctx, &resp);
    for (const std::string& t : texts) {
      v1::PutChunksRequest req;
      req.set_namespace_id("ns");
      req.set_device_id("dev1");
      req.set_sha256(DigestToBytes(HashOf(t)));
      pieces.push_back(*enc.Encode(t));
      req.set_data(pieces.back());
      req.set_encoding(v1::CHUNK_ENCODING_ZSTD_STREAM);
      ASSERT_TRUE(writer->Write(req));
    }
    writer->WritesDone();
    ASSERT_TRUE(writer->Finish().ok());
    EXPECT_EQ(resp.chunks_stored(), 3u);
  }
  EXPECT_LT(pieces[1].size(), pieces[0].size() / 5);  // the second and third ride on the first
  EXPECT_LT(pieces[2].size(), pieces[0].size() / 5);

  // A device that takes streams gets them; one that does not (an older engine) gets plain zstd.
  for (bool accept : {true, false}) {
    grpc::ClientContext ctx;
    v1::GetChunksRequest get;
    get.set_namespace_id("ns");
    get.set_device_id("dev1");
    get.set_accept_zstd_stream(accept);
    for (const std::string& t : texts) get.add_sha256(DigestToBytes(HashOf(t)));
    auto reader = stub_->GetChunks(&ctx, get);
    StreamDecoder dec;
    v1::GetChunksResponse chunk;
    size_t i = 0, wire = 0;
    for (; reader->Read(&chunk); ++i) {
      ASSERT_LT(i, texts.size());
      absl::StatusOr<std::string> raw;
      if (accept) {
        EXPECT_EQ(chunk.encoding(), v1::CHUNK_ENCODING_ZSTD_STREAM);
        raw = dec.Decode(chunk.data(), kMaxChunkBytes);
      } else {
        EXPECT_EQ(chunk.encoding(), v1::CHUNK_ENCODING_ZSTD);
        raw = Decompress(chunk.data(), kMaxChunkBytes);
      }
      ASSERT_TRUE(raw.ok()) << raw.status();
      EXPECT_EQ(*raw, texts[i]);
      wire += chunk.data().size();
    }
    EXPECT_EQ(i, texts.size());
    EXPECT_TRUE(reader->Finish().ok());
    if (accept) EXPECT_LT(wire, pieces[0].size() * 3 / 2);
  }

  // A piece out of its stream (no context) or not zstd at all: refused, nothing stored.
  const std::string other = text + "a last line\n";
  StreamEncoder enc2;
  ASSERT_TRUE(enc2.Encode(text).ok());
  EXPECT_EQ(Put(other, *enc2.Encode(other), v1::CHUNK_ENCODING_ZSTD_STREAM).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Put(other, "garbage", v1::CHUNK_ENCODING_ZSTD_STREAM).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_FALSE(*store_->chunks()->Has("alice", HashOf(other)));
}

Signature SignatureOf(const v1::ChunkSignature& p) {
  Signature sig;
  sig.block_bytes = p.block_bytes();
  sig.length = p.length();
  sig.weak.assign(p.weak().begin(), p.weak().end());
  sig.strong.assign(p.strong().begin(), p.strong().end());
  return sig;
}

TEST_F(StoreServiceTest, RsyncDeltaUploadsAreRebuiltAndChecked) {
  std::string base;
  for (int i = 0; i < 20000; ++i) base += std::to_string(i * 7919 % 10007) + ",";
  ASSERT_TRUE(Put(base, base).ok());
  grpc::ClientContext sig_ctx;
  v1::GetChunkSignaturesRequest sig_req;
  sig_req.set_namespace_id("ns");
  sig_req.set_device_id("dev1");
  sig_req.add_sha256(DigestToBytes(HashOf(base)));
  sig_req.add_sha256(DigestToBytes(HashOf("not stored")));
  v1::GetChunkSignaturesResponse sigs;
  ASSERT_TRUE(stub_->GetChunkSignatures(&sig_ctx, sig_req, &sigs).ok());
  ASSERT_EQ(sigs.signatures_size(), 1);  // only chunks the store holds
  const v1::ChunkSignature& p = sigs.signatures(0);
  const Signature sig = SignatureOf(p);

  std::string edited = base;
  edited.insert(base.size() / 3, "EDITED HERE");
  const std::string delta = Compress(MakeDelta(edited, sig));
  EXPECT_LT(delta.size(), 2 * p.block_bytes());
  auto put_delta = [&](const std::string& hash_of, const std::string& base_of, uint32_t block) {
    return PutDelta(hash_of, delta, DigestToBytes(HashOf(base_of)), {}, block);
  };
  EXPECT_EQ(put_delta("something else", base, p.block_bytes()).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(put_delta(edited, "unknown base", p.block_bytes()).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(put_delta(edited, base, 3).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_FALSE(*store_->chunks()->Has("alice", HashOf(edited)));
  ASSERT_TRUE(put_delta(edited, base, p.block_bytes()).ok());
  EXPECT_EQ(*store_->chunks()->Get("alice", HashOf(edited)), edited);
}

TEST_F(StoreServiceTest, DeltasAgainstASequenceOfChunksBothWays) {
  // After an edit, a chunk is cut across two old ones: its bytes are the end of one and the
  // start of the next. Against both, the delta is about the edit.
  const std::string x = RandomBytesForTest(64 << 10, 1), y = RandomBytesForTest(64 << 10, 2);
  ASSERT_TRUE(Put(x, x).ok());
  ASSERT_TRUE(Put(y, y).ok());
  const std::string spanning = x.substr(32 << 10) + "an edit" + y.substr(0, 32 << 10);
  const std::vector<std::string> xy = {DigestToBytes(HashOf(x)), DigestToBytes(HashOf(y))};

  // Upload: the signature of the sequence, then a delta against it.
  grpc::ClientContext sig_ctx;
  v1::GetChunkSignaturesRequest sig_req;
  sig_req.set_namespace_id("ns");
  sig_req.set_device_id("dev1");
  for (const std::string& d : xy) sig_req.add_sequences()->add_sha256(d);  // sequences of one: refused
  v1::GetChunkSignaturesResponse sigs;
  EXPECT_EQ(stub_->GetChunkSignatures(&sig_ctx, sig_req, &sigs).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  grpc::ClientContext sig_ctx2;
  sig_req.clear_sequences();
  sig_req.add_sequences()->mutable_sha256()->Add(xy.begin(), xy.end());
  v1::ChunkSequence* unknown = sig_req.add_sequences();
  unknown->add_sha256(xy[0]);
  unknown->add_sha256(DigestToBytes(HashOf("never stored")));
  ASSERT_TRUE(stub_->GetChunkSignatures(&sig_ctx2, sig_req, &sigs).ok());
  ASSERT_EQ(sigs.signatures_size(), 1);  // only sequences the store holds every chunk of
  const v1::ChunkSignature& p = sigs.signatures(0);
  EXPECT_TRUE(std::vector<std::string>(p.sequence().begin(), p.sequence().end()) == xy);
  EXPECT_EQ(p.length(), x.size() + y.size());
  const Signature sig = SignatureOf(p);
  const std::string delta = Compress(MakeDelta(spanning, sig));
  EXPECT_LT(delta.size(), 4u << 10);  // against x alone: over 32 KiB
  auto put_delta = [&](const std::vector<std::string>& sequence, const std::string& single) {
    return PutDelta(spanning, delta, single, sequence, p.block_bytes());
  };
  EXPECT_EQ(put_delta({xy[0]}, "").error_code(), grpc::StatusCode::INVALID_ARGUMENT);  // a sequence of one
  EXPECT_EQ(put_delta({xy[0], xy[1], xy[0], xy[1], xy[0]}, "").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(put_delta(xy, xy[0]).error_code(), grpc::StatusCode::INVALID_ARGUMENT);  // both kinds of base
  EXPECT_EQ(put_delta({xy[1], xy[0]}, "").error_code(), grpc::StatusCode::INVALID_ARGUMENT);  // rebuilt wrong
  EXPECT_EQ(put_delta({xy[0], DigestToBytes(HashOf("never stored"))}, "").error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_FALSE(*store_->chunks()->Has("alice", HashOf(spanning)));
  ASSERT_TRUE(put_delta(xy, "").ok());
  EXPECT_TRUE(*store_->chunks()->Get("alice", HashOf(spanning)) == spanning);

  // Download, by a device that has x and y: a zstd delta against their bytes together.
  auto get = [&](const std::vector<std::string>& bases, bool parallel) {
    grpc::ClientContext ctx;
    v1::GetChunksRequest req;
    req.set_namespace_id("ns");
    req.set_device_id("dev1");
    req.add_sha256(DigestToBytes(HashOf(spanning)));
    v1::ChunkSequence* seq = req.add_base_sequences();
    for (const std::string& d : bases) seq->add_sha256(d);
    if (!parallel) req.add_base_sequences();
    auto reader = stub_->GetChunks(&ctx, req);
    v1::GetChunksResponse chunk;
    if (!reader->Read(&chunk)) chunk.Clear();
    grpc::Status s = reader->Finish();
    return std::make_pair(s, chunk);
  };
  auto [status, got] = get(xy, true);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(got.encoding(), v1::CHUNK_ENCODING_ZSTD_DELTA);
  EXPECT_TRUE(std::vector<std::string>(got.base_sequence().begin(), got.base_sequence().end()) == xy);
  EXPECT_LT(got.data().size(), 4u << 10);
  absl::StatusOr<std::string> back = DeltaDecode(got.data(), x + y, kMaxChunkBytes);
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(*back == spanning);
  EXPECT_EQ(get(xy, false).first.error_code(), grpc::StatusCode::INVALID_ARGUMENT);  // not parallel
  EXPECT_EQ(get({xy[0], xy[1], xy[0], xy[1], xy[0]}, true).first.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(StoreServiceTest, AChunkDamagedOnDiskIsRefusedNotServed) {
  const std::string x = RandomBytesForTest(200 << 10, 7);
  ASSERT_TRUE(Put(x, x).ok());
  rocksdb::DB* db = store_->db()->db();
  const std::string key = StoreDb::ChunkKey(HashOf(x));
  std::string value;
  ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), key, &value).ok());
  EXPECT_EQ(value.size(), x.size() + 5);  // tag, CRC-32C, the bytes
  auto fetch = [&]() {
    grpc::ClientContext ctx;
    v1::GetChunksRequest get;
    get.set_namespace_id("ns");
    get.set_device_id("dev1");
    get.add_sha256(DigestToBytes(HashOf(x)));
    auto reader = stub_->GetChunks(&ctx, get);
    v1::GetChunksResponse chunk;
    const bool got = reader->Read(&chunk);
    grpc::Status s = reader->Finish();
    EXPECT_TRUE(!got || chunk.data() == x) << "damaged bytes served";
    return s;
  };
  ASSERT_TRUE(fetch().ok());

  // One bit flipped in the middle, as a failing disk would.
  std::string damaged = value;
  damaged[damaged.size() / 2] ^= 0x10;
  ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), key, damaged).ok());
  EXPECT_EQ(fetch().error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_TRUE(absl::IsDataLoss(store_->chunks()->Get("alice", HashOf(x)).status()));

  // A value of no format the store writes (its raw bytes alone, even if their hash matches) is
  // corrupt too.
  ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), key, x).ok());
  EXPECT_EQ(fetch().error_code(), grpc::StatusCode::DATA_LOSS);
}

TEST_F(StoreServiceTest, ChunkWhoseBytesDoNotMatchItsHash) {
  grpc::Status s = Put("hello", "tampered");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("do not match"), std::string::npos);
  EXPECT_FALSE(*store_->chunks()->Has("alice", HashOf("hello")));
  EXPECT_FALSE(*store_->chunks()->Has("alice", HashOf("tampered")));
}

TEST_F(StoreServiceTest, CommitReferencingMissingChunks) {
  grpc::Status s = Commit("ns", "a.txt", "never uploaded", 0);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(*store_->log()->HeadSeq("ns"), 0u);
}

TEST_F(StoreServiceTest, PathTraversalAbsoluteAndReserved) {
  ASSERT_TRUE(Put("x", "x").ok());
  for (const char* path : {"../etc/passwd", "a/../../b", "/abs", ".converge/index", "a//b"}) {
    grpc::Status s = Commit("ns", path, "x", 0);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << path;
  }
  EXPECT_EQ(*store_->log()->HeadSeq("ns"), 0u);
}

TEST_F(StoreServiceTest, UnknownNamespaceAndNonMember) {
  ASSERT_TRUE(Put("x", "x").ok());
  EXPECT_EQ(Commit("no-such-ns", "a", "x", 0).error_code(), grpc::StatusCode::NOT_FOUND);
  grpc::ClientContext ctx;
  v1::PullRequest pull;
  pull.set_namespace_id("ns");
  pull.set_device_id("stranger");
  auto reader = stub_->Pull(&ctx, pull);
  v1::PullResponse r;
  EXPECT_FALSE(reader->Read(&r));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(StoreServiceTest, AConvertedNamespaceRefusesPlainDevicesAndStartsSealedOnesAfterItsConversion) {
  ASSERT_TRUE(Put("x", "x").ok());
  ASSERT_TRUE(Commit("ns", "notes.txt", "x", 0).ok());
  // Converted: management registers it again, encrypted.
  ASSERT_TRUE(RegisterMembers({"dev1"}, /*encrypted=*/true).ok());
  const auto pull = [&](bool sealed, uint64_t since, int* commits) {
    grpc::ClientContext ctx;
    v1::PullRequest req;
    req.set_namespace_id("ns");
    req.set_device_id("dev1");
    req.set_since_seq(since);
    req.set_sealed(sealed);
    auto reader = stub_->Pull(&ctx, req);
    v1::PullResponse r;
    *commits = 0;
    while (reader->Read(&r)) ++*commits;
    return reader->Finish();
  };
  const auto list = [&](bool sealed, const std::string& device, int* files) {
    grpc::ClientContext ctx;
    v1::ListFilesRequest req;
    req.set_namespace_id("ns");
    req.set_device_id(device);
    req.set_sealed(sealed);
    auto reader = stub_->ListFiles(&ctx, req);
    v1::ListFilesResponse r;
    *files = 0;
    while (reader->Read(&r)) *files += r.files_size();
    return reader->Finish();
  };
  int n = 0;
  // A device still syncing it plain is told so, whatever it asks.
  grpc::Status s = pull(false, 0, &n);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(IsNamespaceConverted(absl::FailedPreconditionError(s.error_message()))) << s.error_message();
  EXPECT_EQ(list(false, "dev1", &n).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Commit("ns", "more.txt", "x", 0).error_code(), grpc::StatusCode::INVALID_ARGUMENT);  // not sealed
  // A sealed device starts after the conversion: from the table, which lists it nothing plain.
  s = pull(true, 0, &n);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_TRUE(IsLogCompacted(absl::OutOfRangeError(s.error_message()))) << s.error_message();
  EXPECT_TRUE(pull(true, 1, &n).ok());
  EXPECT_EQ(n, 0);
  ASSERT_TRUE(list(true, "dev1", &n).ok());
  EXPECT_EQ(n, 0);
}

TEST_F(StoreServiceTest, StaleBaseSeqIsAbortedNamingTheFile) {
  ASSERT_TRUE(Put("x", "x").ok());
  ASSERT_TRUE(Commit("ns", "shared.txt", "x", 0).ok());
  grpc::Status s = Commit("ns", "shared.txt", "x", 0);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_NE(s.error_message().find("shared.txt"), std::string::npos);
}

TEST_F(StoreServiceTest, ServiceCallsNeedTheToken) {
  grpc::ClientContext ctx;
  v1::RegisterNamespaceRequest req;
  req.set_namespace_id("other");
  v1::RegisterNamespaceResponse resp;
  EXPECT_EQ(stub_->RegisterNamespace(&ctx, req, &resp).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(StoreServiceTest, RestoreVersionNeedsTheServiceTokenAndAValidPath) {
  ASSERT_TRUE(Put("one", "one").ok());
  ASSERT_TRUE(Put("two", "two").ok());
  ASSERT_TRUE(Commit("ns", "a.txt", "one", 0).ok());
  ASSERT_TRUE(Commit("ns", "a.txt", "two", 1).ok());
  auto restore = [&](const std::string& path, bool with_token, v1::RestoreVersionResponse* resp) {
    grpc::ClientContext ctx;
    if (with_token) ctx.AddMetadata("authorization", "Bearer secret");
    v1::RestoreVersionRequest req;
    req.set_namespace_id("ns");
    req.set_path(path);
    req.set_seq(1);
    return stub_->RestoreVersion(&ctx, req, resp);
  };
  v1::RestoreVersionResponse resp;
  EXPECT_EQ(restore("a.txt", false, &resp).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(restore("../a.txt", true, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(restore("a.txt", true, &resp).ok());
  EXPECT_EQ(resp.seq(), 3u);
}

TEST_F(StoreServiceTest, MoveCallsNeedTheServiceTokenAndTheGatesSteerDevices) {
  auto gate = [&](v1::NamespaceGate g, bool with_token) {
    grpc::ClientContext ctx;
    if (with_token) ctx.AddMetadata("authorization", "Bearer secret");
    v1::SetNamespaceGateRequest req;
    req.set_namespace_id("ns");
    req.set_gate(g);
    v1::SetNamespaceGateResponse resp;
    return stub_->SetNamespaceGate(&ctx, req, &resp);
  };
  EXPECT_EQ(gate(v1::NAMESPACE_GATE_MOVED, false).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  {
    grpc::ClientContext ctx;
    v1::ExportNamespaceRequest req;
    req.set_namespace_id("ns");
    auto reader = stub_->ExportNamespace(&ctx, req);
    v1::NamespaceRecords page;
    EXPECT_FALSE(reader->Read(&page));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    grpc::ClientContext ctx;
    v1::ImportNamespaceResponse resp;
    auto writer = stub_->ImportNamespace(&ctx, &resp);
    v1::NamespaceRecords page;
    page.set_namespace_id("ns");
    writer->Write(page);
    writer->WritesDone();
    EXPECT_EQ(writer->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  // Served here and open: it cannot arrive again.
  EXPECT_EQ(gate(v1::NAMESPACE_GATE_ARRIVING, true).error_code(), grpc::StatusCode::FAILED_PRECONDITION);

  ASSERT_TRUE(Put("a", "a").ok());
  ASSERT_TRUE(gate(v1::NAMESPACE_GATE_FROZEN, true).ok());
  EXPECT_EQ(Commit("ns", "a.txt", "a", 0).error_code(), grpc::StatusCode::UNAVAILABLE);  // retried by engines
  ASSERT_TRUE(gate(v1::NAMESPACE_GATE_OPEN, true).ok());
  EXPECT_TRUE(Commit("ns", "a.txt", "a", 0).ok());
  ASSERT_TRUE(gate(v1::NAMESPACE_GATE_MOVED, true).ok());
  grpc::Status moved = Commit("ns", "b.txt", "a", 0);
  EXPECT_EQ(moved.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(IsNamespaceMoved(FromGrpcStatus(moved))) << moved.error_message();
  EXPECT_EQ(RegisterMembers({"dev1", "dev2"}).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(StoreServiceTest, MalformedDigestAndOversizedRequest) {
  grpc::ClientContext ctx;
  v1::FindMissingChunksRequest req;
  req.set_namespace_id("ns");
  req.set_device_id("dev1");
  req.add_sha256("short");
  v1::FindMissingChunksResponse resp;
  EXPECT_EQ(stub_->FindMissingChunks(&ctx, req, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  grpc::ClientContext big_ctx;
  v1::CommitRequest big;
  big.set_namespace_id("ns");
  big.set_device_id("dev1");
  big.add_files()->set_path(std::string(20 << 20, 'a'));  // over the 16 MiB message limit
  v1::CommitResponse big_resp;
  EXPECT_EQ(stub_->Commit(&big_ctx, big, &big_resp).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
}

}  // namespace
}  // namespace converge::store
