// The engine's GrpcStoreClient against a real converge-store on loopback: deltas against a
// sequence of chunks, both ways. After an edit, a chunk is cut across two old ones; the engine
// offers both as the base of its upload and of its download, and only about the edit travels.
#include <grpcpp/grpcpp.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "common/base/metrics.h"
#include "common/codec/chunk_codec.h"
#include "common/codec/rsync_delta.h"
#include "common/rpc/server_runner.h"
#include "engine/client/grpc_store_client.h"
#include "gtest/gtest.h"
#include "services/store/store_server.h"
#include "tests/testing/random_bytes_for_test.h"

namespace converge::testing {
namespace {

class StoreClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string dir = std::string(getenv("TEST_TMPDIR")) + "/" +
                            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir);
    store::StoreOptions options;
    options.data_dir = dir;
    options.auth.service_token = "secret";
    auto store = store::StoreServer::Create(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    auto server = StartServer(ServerOptions{}, {store_->service()});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    channel_ = grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
    ASSERT_TRUE(RegisterMembers({"dev1"}).ok());
    client_ = std::make_unique<engine::GrpcStoreClient>(channel_, "ns", "dev1");
  }

  // RegisterMembers registers namespace "ns" of alice with these member devices.
  grpc::Status RegisterMembers(const std::vector<std::string>& devices) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer secret");
    store::v1::RegisterNamespaceRequest req;
    req.set_namespace_id("ns");
    req.set_owner_user_id("alice");
    for (const std::string& d : devices) req.add_member_device_ids(d);
    store::v1::RegisterNamespaceResponse resp;
    return store::v1::StoreService::NewStub(channel_)->RegisterNamespace(&ctx, req, &resp);
  }

  // Put uploads `chunks` whole, or as they are given.
  absl::Status Put(std::vector<engine::ChunkUpload> chunks) {
    size_t next = 0;
    return client_->PutChunks([&](engine::ChunkUpload* out) -> absl::StatusOr<bool> {
      if (next == chunks.size()) return false;
      *out = std::move(chunks[next++]);
      return true;
    });
  }

  std::unique_ptr<store::StoreServer> store_;
  std::unique_ptr<RunningServer> server_;
  std::unique_ptr<engine::GrpcStoreClient> client_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(StoreClientTest, AChunkCutAcrossTwoOldOnesTravelsAsADeltaAgainstBoth) {
  const std::string x = RandomBytesForTest(96 << 10, 1), y = RandomBytesForTest(96 << 10, 2);
  ASSERT_TRUE(Put({engine::ChunkUpload{HashOf(x), x}, engine::ChunkUpload{HashOf(y), y}}).ok());
  const std::string spanning = x.substr(40 << 10) + "an edit" + y.substr(0, 40 << 10);
  const std::vector<Digest> xy = {HashOf(x), HashOf(y)};

  // Upload: the signature of x and y together, and a delta against it.
  absl::StatusOr<absl::flat_hash_map<std::string, Signature>> sigs =
      client_->Signatures({xy, {HashOf(x)}, {HashOf("never stored")}});
  ASSERT_TRUE(sigs.ok()) << sigs.status();
  EXPECT_EQ(sigs->size(), 2u);  // the sequence and x alone
  ASSERT_TRUE(sigs->contains(engine::SequenceKey(xy)));
  const Signature& sig = sigs->at(engine::SequenceKey(xy));
  EXPECT_EQ(sig.length, x.size() + y.size());
  engine::ChunkUpload delta{HashOf(spanning), Compress(MakeDelta(spanning, sig))};
  delta.delta = true;
  delta.bases = xy;
  delta.block_bytes = sig.block_bytes;
  EXPECT_LT(delta.data.size(), 4u << 10);  // against x alone it is over 40 KiB
  ASSERT_TRUE(Put({delta}).ok());
  absl::StatusOr<std::string> stored = store_->chunks()->Get("alice", HashOf(spanning));
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_TRUE(*stored == spanning);

  // Download, by a device holding x and y: a delta against both, decoded with what it reads.
  std::map<std::string, std::string> local = {{DigestToBytes(HashOf(x)), x}, {DigestToBytes(HashOf(y)), y}};
  int bases_read = 0;
  std::string got;
  absl::Status fetched = client_->Fetch(
      {engine::ChunkWant{HashOf(spanning), xy}},
      [&](const Digest& d) -> absl::StatusOr<std::string> {
        ++bases_read;
        auto it = local.find(DigestToBytes(d));
        if (it == local.end()) return absl::NotFoundError("no such base");
        return it->second;
      },
      [&](const Digest& d, std::string bytes) {
        EXPECT_EQ(d, HashOf(spanning));
        got = std::move(bytes);
        return absl::OkStatus();
      });
  ASSERT_TRUE(fetched.ok()) << fetched;
  EXPECT_TRUE(got == spanning);
  EXPECT_EQ(bases_read, 2);  // it came as a delta against x and y

  // A base the device no longer has (its file changed): the fetch fails, nothing is handed on.
  local.erase(DigestToBytes(HashOf(y)));
  got.clear();
  fetched = client_->Fetch({engine::ChunkWant{HashOf(spanning), xy}},
                           [&](const Digest& d) -> absl::StatusOr<std::string> {
                             auto it = local.find(DigestToBytes(d));
                             if (it == local.end()) return absl::NotFoundError("no such base");
                             return it->second;
                           },
                           [&](const Digest&, std::string bytes) {
                             got = std::move(bytes);
                             return absl::OkStatus();
                           });
  EXPECT_FALSE(fetched.ok());
  EXPECT_TRUE(got.empty());
}

TEST_F(StoreClientTest, SmallFilesAPullCarriesOnlyInPartArriveOnceEach) {
  ASSERT_TRUE(RegisterMembers({"dev1", "dev2"}).ok());
  // 40 files of 32 KiB: a pull carries 1 MiB of them along with their commit, not all.
  std::vector<engine::ChunkUpload> uploads;
  std::vector<FileVersion> versions;
  std::vector<engine::ChunkWant> wants;
  uint64_t total = 0;
  for (int i = 0; i < 40; ++i) {
    const std::string data = RandomBytesForTest(32 << 10, 100 + i);
    uploads.push_back(engine::ChunkUpload{HashOf(data), data});
    FileVersion v;
    v.file_id = std::string(kFileIdBytes - 2, 'f') + static_cast<char>('a' + i / 26) + static_cast<char>('a' + i % 26);
    v.path = "small/" + std::to_string(i);
    v.size = data.size();
    v.content_sha256 = HashOf(data);
    v.chunks = {{HashOf(data), static_cast<uint32_t>(data.size())}};
    versions.push_back(v);
    wants.push_back(engine::ChunkWant{HashOf(data), {}});
    total += data.size();
  }
  ASSERT_TRUE(Put(uploads).ok());
  ASSERT_TRUE(client_->Commit(versions).ok());
  engine::GrpcStoreClient other(channel_, "ns", "dev2");
  Counter* sent = DefaultMetrics().AddCounter("converge_store_chunk_bytes_total", "chunk bytes received and sent",
                                             "direction=\"out\"");
  const uint64_t before = sent->value();
  std::vector<Digest> got;
  absl::Status fetched;
  ASSERT_TRUE(other.Pull(0, 0, [&](const Commit& c) {
    EXPECT_EQ(c.files.size(), 40u);
    fetched = other.Fetch(wants, nullptr, [&](const Digest& d, std::string bytes) {
      EXPECT_EQ(HashOf(bytes), d);
      got.push_back(d);
      return absl::OkStatus();
    });
    return absl::OkStatus();
  }).ok());
  ASSERT_TRUE(fetched.ok()) << fetched;
  ASSERT_EQ(got.size(), wants.size());
  for (size_t i = 0; i < wants.size(); ++i) EXPECT_EQ(got[i], wants[i].sha256) << i;  // in order
  // What the pull carried came once; only the rest was asked for.
  EXPECT_GE(sent->value() - before, total);
  EXPECT_LT(sent->value() - before, total + (64 << 10));
}

}  // namespace
}  // namespace converge::testing
