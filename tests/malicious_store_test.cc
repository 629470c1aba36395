// A malicious (or compromised) store cannot make an engine write outside its folder, overwrite an
// unrelated file, or apply bytes that do not match their hash. The store here is a test double
// (a real store never sends these): it serves scripted commits and chunk bytes over TLS with the
// service certificate, while management and notify are the real services. Each case runs a real
// converge-engine (--once) on a fresh folder next to an "outside" directory holding a file that
// must survive; the case passes when nothing outside changed and the folder holds nothing it
// should not. A control case with honest data proves the double is able to deliver.
#include <grpcpp/grpcpp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/base/sha256.h"
#include "common/codec/chunk_codec.h"
#include "common/security/tls.h"
#include "common/wire/wire.h"
#include "converge/store/v1/store.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/cluster.h"

namespace converge::testing {
namespace {

namespace sv1 = store::v1;

struct ServedChunk {
  std::string data;
  sv1::ChunkEncoding encoding = sv1::CHUNK_ENCODING_RAW;
};

// HostileStore serves whatever it is told to: commits and chunk bytes, unchecked.
class HostileStore final : public sv1::StoreService::Service {
 public:
  void Script(std::vector<common::v1::Commit> commits, std::map<std::string, ServedChunk> chunks) {
    absl::MutexLock lock(&mu_);
    commits_ = std::move(commits);
    chunks_ = std::move(chunks);
  }

  grpc::Status Pull(grpc::ServerContext*, const sv1::PullRequest* req,
                    grpc::ServerWriter<sv1::PullResponse>* writer) override {
    absl::MutexLock lock(&mu_);
    for (const common::v1::Commit& c : commits_) {
      if (c.seq() <= req->since_seq()) continue;
      sv1::PullResponse resp;
      *resp.mutable_commit() = c;
      resp.set_head_seq(commits_.back().seq());
      writer->Write(resp);
    }
    return grpc::Status::OK;
  }
  grpc::Status GetChunks(grpc::ServerContext*, const sv1::GetChunksRequest* req,
                         grpc::ServerWriter<sv1::GetChunksResponse>* writer) override {
    absl::MutexLock lock(&mu_);
    for (const std::string& sha : req->sha256()) {
      auto it = chunks_.find(sha);
      if (it == chunks_.end()) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such chunk");
      sv1::GetChunksResponse resp;
      resp.set_sha256(sha);
      resp.set_data(it->second.data);
      resp.set_encoding(it->second.encoding);
      writer->Write(resp);
    }
    return grpc::Status::OK;
  }
  // Uploads are welcomed: everything is "stored", every commit "accepted".
  grpc::Status FindMissingChunks(grpc::ServerContext*, const sv1::FindMissingChunksRequest*,
                                 sv1::FindMissingChunksResponse*) override {
    return grpc::Status::OK;
  }
  grpc::Status GetChunkSignatures(grpc::ServerContext*, const sv1::GetChunkSignaturesRequest*,
                                  sv1::GetChunkSignaturesResponse*) override {
    return grpc::Status::OK;
  }
  grpc::Status Commit(grpc::ServerContext*, const sv1::CommitRequest*, sv1::CommitResponse* resp) override {
    resp->set_seq(1000);
    return grpc::Status::OK;
  }
  grpc::Status Ack(grpc::ServerContext*, const sv1::AckRequest*, sv1::AckResponse*) override {
    return grpc::Status::OK;
  }

 private:
  absl::Mutex mu_;
  std::vector<common::v1::Commit> commits_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, ServedChunk> chunks_ ABSL_GUARDED_BY(mu_);
};

// Every entry below `dir` (recursively, symlinks not followed) with its content or link target.
std::map<std::string, std::string> Tree(const std::string& dir) {
  std::map<std::string, std::string> out;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    const std::string rel = it->path().string().substr(dir.size());
    if (it->is_symlink()) {
      out[rel] = "-> " + std::filesystem::read_symlink(it->path(), ec).string();
    } else if (it->is_regular_file()) {
      out[rel] = ReadFile(it->path().string());
    } else {
      out[rel] = "dir";
    }
  }
  return out;
}

common::v1::FileVersion FileProto(const std::string& path, const std::string& content) {
  FileVersion v;
  v.file_id = std::string(kFileIdBytes, 'm');
  v.path = "placeholder";
  v.size = content.size();
  v.content_sha256 = HashOf(content);
  v.mode = 0644;
  if (!content.empty()) v.chunks = {{HashOf(content), static_cast<uint32_t>(content.size())}};
  common::v1::FileVersion p;
  wire::FileVersionToProto(v, &p);
  p.set_path(path);  // unchecked: may be anything
  return p;
}

common::v1::Commit CommitOf(uint64_t seq, std::vector<common::v1::FileVersion> files, const std::string& ns = "shared") {
  common::v1::Commit c;
  c.set_namespace_id(ns);
  c.set_seq(seq);
  c.set_origin_device("mallory");
  c.set_committed_at_unix_ms(1);
  for (auto& f : files) *c.add_files() = std::move(f);
  return c;
}

std::map<std::string, ServedChunk> Honest(const std::vector<std::string>& contents) {
  std::map<std::string, ServedChunk> out;
  for (const std::string& c : contents) out[DigestToBytes(HashOf(c))] = {c};
  return out;
}

class MaliciousStoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = std::string(getenv("TEST_TMPDIR")) + "/malicious";
    std::filesystem::remove_all(root_);
    ClusterOptions options;
    options.dir = root_ + "/cluster";
    auto c = Cluster::Start(options);
    ASSERT_TRUE(c.ok()) << c.status();
    cluster_ = c->release();
    store_ = new HostileStore();
    TlsFiles tls{cluster_->tls_dir() + "/ca.crt", cluster_->tls_dir() + "/service.crt",
                 cluster_->tls_dir() + "/service.key"};
    auto creds = ServerCredentials(tls);
    ASSERT_TRUE(creds.ok()) << creds.status();
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", *creds, &port_);
    builder.RegisterService(store_);
    server_ = builder.BuildAndStart().release();
    ASSERT_NE(server_, nullptr);
  }
  static void TearDownTestSuite() {
    server_->Shutdown();
    delete server_;
    delete store_;
    delete cluster_;
  }

  void SetUp() override {
    name_ = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    outside_ = root_ + "/" + name_ + "/outside";
    folder_ = root_ + "/" + name_ + "/folder";
    std::filesystem::create_directories(outside_);
    std::filesystem::create_directories(folder_);
    WriteFile(outside_ + "/victim.txt", "precious, not synced\n");
  }

  // RunEngine syncs the folder once against the hostile store; returns the exit code.
  int RunEngine() {
    before_ = Tree(outside_);
    CommandResult r = cluster_->EngineCommand(
        {"--once", "--folder=" + folder_, "--management=" + cluster_->management_address(),
         "--enroll_token_file=" + cluster_->TokenFile(cluster_->enrollment_token()), "--tls_ca=" + cluster_->tls_dir() + "/ca.crt",
         "--user=e2e", "--namespace_id=shared", "--device_name=" + name_,
         "--store=127.0.0.1:" + std::to_string(port_), "--notify=" + cluster_->notify_address(), "--watch=false"});
    log_ = r.err + r.out;
    return r.exit_code;
  }

  // The invariants of every case: the outside directory is exactly as it was, and no file of
  // the hostile data exists anywhere under the test's root except where a case allows it.
  void ExpectNothingOutsideChanged() {
    EXPECT_EQ(Tree(outside_), before_) << log_;
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(root_, ec);
         it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      EXPECT_NE(it->path().filename(), "pwned.txt") << it->path() << "\n" << log_;
    }
  }

  static std::string root_;
  static Cluster* cluster_;
  static HostileStore* store_;
  static grpc::Server* server_;
  static int port_;
  std::string name_, outside_, folder_, log_;
  std::map<std::string, std::string> before_;
};

std::string MaliciousStoreTest::root_;
Cluster* MaliciousStoreTest::cluster_ = nullptr;
HostileStore* MaliciousStoreTest::store_ = nullptr;
grpc::Server* MaliciousStoreTest::server_ = nullptr;
int MaliciousStoreTest::port_ = 0;

TEST_F(MaliciousStoreTest, ControlHonestDataArrives) {
  store_->Script({CommitOf(1, {FileProto("good.txt", "honest bytes")})}, Honest({"honest bytes"}));
  EXPECT_EQ(RunEngine(), 0) << log_;
  EXPECT_EQ(ReadFile(folder_ + "/good.txt"), "honest bytes");
  ExpectNothingOutsideChanged();
}

TEST_F(MaliciousStoreTest, PathsThatLeaveTheFolderAreRefused) {
  const std::string content = "attacker's bytes";
  for (const std::string& path : {std::string("../outside/pwned.txt"), std::string("a/../../outside/pwned.txt"),
                                  outside_ + "/pwned.txt", std::string(".converge/pwned.txt"),
                                  std::string("a\\..\\..\\outside\\pwned.txt")}) {
    store_->Script({CommitOf(1, {FileProto(path, content)})}, Honest({content}));
    EXPECT_NE(RunEngine(), 0) << path;
    EXPECT_NE(log_.find("INVALID_ARGUMENT"), std::string::npos) << path << "\n" << log_;
    ExpectNothingOutsideChanged();
  }
}

TEST_F(MaliciousStoreTest, AValidPathThroughALocalSymlinkIsNotFollowed) {
  // The user has a symlink in the folder that points outside; the store sends a file "below" it.
  std::filesystem::create_directory_symlink(outside_, folder_ + "/link");
  const std::string content = "through the link";
  store_->Script({CommitOf(1, {FileProto("link/pwned.txt", content)})}, Honest({content}));
  const int exit_code = RunEngine();
  ExpectNothingOutsideChanged();
  EXPECT_TRUE(std::filesystem::is_symlink(folder_ + "/link"));
  // Blocked, not applied, and the sync goes on (a lasting local obstruction holds nothing back).
  EXPECT_EQ(exit_code, 0) << log_;
  EXPECT_NE(log_.find("not applying link/pwned.txt@"), std::string::npos) << log_;
  EXPECT_NE(log_.find("'link' is a file or symlink"), std::string::npos) << log_;
}

TEST_F(MaliciousStoreTest, AHardLinkedFileIsReplacedNotWrittenThrough) {
  // The folder's notes.txt is a hard link to the outside file: writing it in place would change
  // the outside file too. New content must arrive as a new inode.
  ASSERT_EQ(link((outside_ + "/victim.txt").c_str(), (folder_ + "/notes.txt").c_str()), 0);
  const std::string content = "remote notes";
  store_->Script({CommitOf(1, {FileProto("notes.txt", content)})}, Honest({content}));
  const int exit_code = RunEngine();
  ExpectNothingOutsideChanged();
  EXPECT_EQ(ReadFile(outside_ + "/victim.txt"), "precious, not synced\n");
  EXPECT_EQ(exit_code, 0) << log_;
  EXPECT_EQ(ReadFile(folder_ + "/notes.txt"), content);
  struct stat in_folder, outside;
  ASSERT_EQ(stat((folder_ + "/notes.txt").c_str(), &in_folder), 0);
  ASSERT_EQ(stat((outside_ + "/victim.txt").c_str(), &outside), 0);
  EXPECT_NE(in_folder.st_ino, outside.st_ino);
}

TEST_F(MaliciousStoreTest, BytesThatDoNotMatchTheirHashAreNeverApplied) {
  const std::string claimed = "what the commit says";
  std::map<std::string, ServedChunk> chunks;
  chunks[DigestToBytes(HashOf(claimed))] = {"something else entirely"};
  store_->Script({CommitOf(1, {FileProto("wrong.txt", claimed)})}, chunks);
  EXPECT_NE(RunEngine(), 0);
  EXPECT_FALSE(std::filesystem::exists(folder_ + "/wrong.txt")) << ReadFile(folder_ + "/wrong.txt");
  ExpectNothingOutsideChanged();
}

TEST_F(MaliciousStoreTest, ADecompressionBombIsRefused) {
  const std::string claimed = "small file";
  std::map<std::string, ServedChunk> chunks;
  chunks[DigestToBytes(HashOf(claimed))] = {Compress(std::string(256 << 20, '\0')), sv1::CHUNK_ENCODING_ZSTD};
  store_->Script({CommitOf(1, {FileProto("bomb.txt", claimed)})}, chunks);
  EXPECT_NE(RunEngine(), 0);
  EXPECT_FALSE(std::filesystem::exists(folder_ + "/bomb.txt"));
  ExpectNothingOutsideChanged();
}

TEST_F(MaliciousStoreTest, CommitsOfAnotherNamespaceOrOutOfOrderAreRefused) {
  const std::string content = "misdirected";
  store_->Script({CommitOf(1, {FileProto("other-ns.txt", content)}, "someone-elses")}, Honest({content}));
  EXPECT_NE(RunEngine(), 0);
  EXPECT_FALSE(std::filesystem::exists(folder_ + "/other-ns.txt"));
  store_->Script({CommitOf(7, {FileProto("skipped.txt", content)})}, Honest({content}));
  EXPECT_NE(RunEngine(), 0);
  EXPECT_FALSE(std::filesystem::exists(folder_ + "/skipped.txt"));
  ExpectNothingOutsideChanged();
}

TEST_F(MaliciousStoreTest, ADeletionOfAFileNeverSyncedKeepsIt) {
  WriteFile(folder_ + "/mine.txt", "local work");
  common::v1::FileVersion gone = FileProto("mine.txt", "");
  gone.set_deleted(true);
  gone.set_base_seq(0);
  store_->Script({CommitOf(1, {gone})}, {});
  const int exit_code = RunEngine();
  EXPECT_EQ(ReadFile(folder_ + "/mine.txt"), "local work") << log_;
  EXPECT_EQ(exit_code, 0) << log_;
  ExpectNothingOutsideChanged();
}

}  // namespace
}  // namespace converge::testing
