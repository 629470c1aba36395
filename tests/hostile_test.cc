// Hostile input against real services over TLS: every case gets a specific status and writes
// nothing. The table this test prints is docs/security.md's. Also: tenants are isolated
// (a device of one user cannot list, pull, push or subscribe to another user's namespace), and
// revoking a device closes its open notification stream within a second.
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <thread>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/chunk_codec.h"
#include "common/rsync_delta.h"
#include "common/sha256.h"
#include "common/wire.h"
#include "converge/management/v1/management.grpc.pb.h"
#include "converge/notification/v1/notification.grpc.pb.h"
#include "converge/store/v1/store.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/cluster.h"

namespace converge::testing {
namespace {

namespace mv1 = management::v1;
namespace sv1 = store::v1;
namespace nv1 = notification::v1;
using grpc::StatusCode;

const char* CodeName(StatusCode c) {
  static const std::map<StatusCode, const char*> names = {
      {StatusCode::OK, "OK"}, {StatusCode::CANCELLED, "CANCELLED"}, {StatusCode::INVALID_ARGUMENT, "INVALID_ARGUMENT"},
      {StatusCode::NOT_FOUND, "NOT_FOUND"}, {StatusCode::ALREADY_EXISTS, "ALREADY_EXISTS"},
      {StatusCode::PERMISSION_DENIED, "PERMISSION_DENIED"}, {StatusCode::RESOURCE_EXHAUSTED, "RESOURCE_EXHAUSTED"},
      {StatusCode::FAILED_PRECONDITION, "FAILED_PRECONDITION"}, {StatusCode::ABORTED, "ABORTED"},
      {StatusCode::UNAVAILABLE, "UNAVAILABLE"}, {StatusCode::UNAUTHENTICATED, "UNAUTHENTICATED"},
      {StatusCode::INTERNAL, "INTERNAL"}, {StatusCode::UNKNOWN, "UNKNOWN"},
      {StatusCode::DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED"}};
  auto it = names.find(c);
  return it == names.end() ? "?" : it->second;
}

using DeviceIdentity = TestDevice;

class HostileTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ClusterOptions options;
    options.dir = std::string(getenv("TEST_TMPDIR")) + "/hostile";
    // A lower call rate than the default 2,000/s, so the flood test's limit engages even when the
    // flooding threads get little CPU (a loaded CI machine).
    options.store_args = {"--max_call_rate_per_device=500"};
    auto c = Cluster::Start(options);
    ASSERT_TRUE(c.ok()) << c.status();
    cluster_ = c->release();
  }
  static void TearDownTestSuite() { delete cluster_; }

  void SetUp() override {
    management_ = mv1::ManagementService::NewStub(
        grpc::CreateChannel(cluster_->management_address(), cluster_->DeviceCredentials()));
    store_ = sv1::StoreService::NewStub(grpc::CreateChannel(cluster_->store_address(), cluster_->DeviceCredentials()));
    notify_ = nv1::NotificationService::NewStub(
        grpc::CreateChannel(cluster_->notify_address(), cluster_->DeviceCredentials()));
  }

  std::unique_ptr<grpc::ClientContext> Ctx(const std::string& bearer) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!bearer.empty()) ctx->AddMetadata("authorization", "Bearer " + bearer);
    return ctx;
  }

  DeviceIdentity MakeDevice(const std::string& user, const std::string& ns, bool create) {
    absl::StatusOr<TestDevice> d = cluster_->MakeDevice(user, ns, create);
    EXPECT_TRUE(d.ok()) << d.status();
    return d.ok() ? *d : TestDevice{};
  }

  grpc::Status Put(const std::string& token, const std::string& ns, const std::string& digest_bytes,
                   const std::string& data, sv1::ChunkEncoding encoding = sv1::CHUNK_ENCODING_RAW,
                   const std::string& base = "", const std::vector<std::string>& base_sequence = {}) {
    auto ctx = Ctx(token);
    sv1::PutChunksResponse resp;
    auto writer = store_->PutChunks(ctx.get(), &resp);
    sv1::PutChunksRequest req;
    req.set_namespace_id(ns);
    req.set_sha256(digest_bytes);
    req.set_data(data);
    req.set_encoding(encoding);
    if (!base.empty()) {
      req.set_base_sha256(base);
      req.set_block_bytes(1024);
    }
    for (const std::string& b : base_sequence) req.add_base_sequence(b);
    if (!base_sequence.empty()) req.set_block_bytes(1024);
    writer->Write(req);
    writer->WritesDone();
    return writer->Finish();
  }

  static FileVersion File(const std::string& path, const std::string& content) {
    FileVersion v;
    v.file_id = std::string(kFileIdBytes, 'h');
    v.path = path;
    v.size = content.size();
    v.content_sha256 = HashOf(content);
    if (!content.empty()) v.chunks = {{HashOf(content), static_cast<uint32_t>(content.size())}};
    return v;
  }

  // CommitProto commits raw protos (so invalid ones reach the wire).
  grpc::Status CommitProto(const std::string& token, const std::string& ns,
                           const std::vector<common::v1::FileVersion>& files) {
    sv1::CommitRequest req;
    req.set_namespace_id(ns);
    for (const auto& f : files) *req.add_files() = f;
    sv1::CommitResponse resp;
    return store_->Commit(Ctx(token).get(), req, &resp);
  }
  grpc::Status Commit(const std::string& token, const std::string& ns, const std::vector<FileVersion>& files) {
    std::vector<common::v1::FileVersion> protos;
    for (const FileVersion& v : files) {
      common::v1::FileVersion p;
      wire::FileVersionToProto(v, &p);
      protos.push_back(p);
    }
    return CommitProto(token, ns, protos);
  }
  grpc::Status CommitPath(const std::string& token, const std::string& ns, const std::string& path) {
    common::v1::FileVersion p;
    wire::FileVersionToProto(File("placeholder", "x"), &p);
    p.set_path(path);
    return CommitProto(token, ns, {p});
  }

  uint64_t Head(const std::string& token, const std::string& ns) {
    sv1::PullRequest req;
    req.set_namespace_id(ns);
    req.set_since_seq(1u << 30);
    auto ctx = Ctx(token);
    auto reader = store_->Pull(ctx.get(), req);
    sv1::PullResponse resp;
    while (reader->Read(&resp)) {
    }
    reader->Finish();
    sv1::ListFilesRequest lreq;
    lreq.set_namespace_id(ns);
    auto lctx = Ctx(token);
    auto lreader = store_->ListFiles(lctx.get(), lreq);
    sv1::ListFilesResponse l;
    uint64_t head = 0;
    while (lreader->Read(&l)) head = l.head_seq();
    lreader->Finish();
    return head;
  }

  grpc::Status Subscribe(const std::string& token, const std::string& ns, int* events = nullptr) {
    auto ctx = Ctx(token);
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(1500));
    nv1::SubscribeRequest req;
    req.add_namespace_ids(ns);
    auto reader = notify_->Subscribe(ctx.get(), req);
    nv1::Event e;
    int n = 0;
    while (reader->Read(&e)) ++n;
    if (events != nullptr) *events = n;
    return reader->Finish();
  }

  // Check records a case: what was sent, the status it got, and whether that was the one expected.
  void Check(const std::string& area, const std::string& what, StatusCode want, const grpc::Status& got) {
    rows_.push_back(absl::StrCat("| ", rows_.size() + 1, " | ", area, " | ", what, " | `", CodeName(got.error_code()),
                                 "` |"));
    EXPECT_EQ(got.error_code(), want) << what << ": " << got.error_message();
  }

  static Cluster* cluster_;
  static std::vector<std::string> rows_;
  std::unique_ptr<mv1::ManagementService::Stub> management_;
  std::unique_ptr<sv1::StoreService::Stub> store_;
  std::unique_ptr<nv1::NotificationService::Stub> notify_;
};

Cluster* HostileTest::cluster_ = nullptr;
std::vector<std::string> HostileTest::rows_;

TEST_F(HostileTest, EveryHostileInputGetsItsStatusAndWritesNothing) {
  const DeviceIdentity alice = MakeDevice("e2e", "shared", false);
  const DeviceIdentity bob = MakeDevice("bob", "bobs", true);
  const std::string ns = "shared";
  ASSERT_TRUE(Put(alice.token, ns, DigestToBytes(HashOf("case")), "case").ok());
  ASSERT_TRUE(Commit(alice.token, ns, {File("Case/Sensitive.txt", "case")}).ok());
  // A file, a symlink and a name in composed form (NFC) for the tree and twin cases below.
  {
    FileVersion link = File("link", "");
    link.kind = FileKind::kSymlink;
    link.symlink_target = "/etc";
    link.content_sha256 = HashOf("/etc");
    ASSERT_TRUE(Commit(alice.token, ns, {File("plain", "case"), link, File("caf\xc3\xa9.txt", "case"),
                                         File("k-file", "case")}).ok());
  }
  const uint64_t head0 = Head(alice.token, ns);

  // Paths from the network.
  const std::vector<std::pair<std::string, std::string>> bad_paths = {
      {"`..` escaping the folder", "../escape"},
      {"`..` inside a path", "a/../../b"},
      {"absolute path", "/etc/passwd"},
      {"NUL byte in a name", std::string("a\0b", 3)},
      {"name over 255 bytes", std::string(256, 'n')},
      {"path over 4096 bytes", [] {
         std::string p;
         while (p.size() <= 4100) p += std::string(200, 'p') + "/";
         return p + "f";
       }()},
      {"the engine's reserved `.converge`", ".converge/index.rocksdb/CURRENT"},
      {"empty path", ""},
      {"`.` component", "./a"},
      {"empty component", "a//b"},
      {"trailing slash", "a/"},
      {"backslash in a name", "a\\..\\b"},
      {"name ending in a dot (Windows drops it: `report.` is `report`)", "report."},
      {"name ending in a space", "notes "},
      {"reserved `.converge` with a trailing space", ".converge /x"},
      {"reserved `.converge` with a trailing dot", ".converge./x"},
      {"Windows device name", "docs/CON.txt"},
      {"character Windows forbids", "a:b"},
      {"control character in a name", "bell\x07"},
      {"path over 128 components", [] {
         std::string p = "d";
         for (int i = 0; i < 128; ++i) p += "/d";
         return p;
       }()},
  };
  for (const auto& [what, path] : bad_paths) Check("path", what, StatusCode::INVALID_ARGUMENT, CommitPath(alice.token, ns, path));
  // Paths are proto3 strings: gRPC's parser refuses invalid UTF-8 before any handler runs.
  Check("path", "invalid UTF-8 (refused by the protobuf parser)", StatusCode::INTERNAL,
        CommitPath(alice.token, ns, "bad\xff\xfe"));

  // Case collisions: a case-insensitive device (macOS, Windows) could not hold both names.
  Check("path", "name differing only in case from a live file", StatusCode::ALREADY_EXISTS,
        Commit(alice.token, ns, {File("Case/SENSITIVE.TXT", "case")}));
  Check("path", "directory differing only in case from a live one", StatusCode::ALREADY_EXISTS,
        Commit(alice.token, ns, {File("case/other.txt", "case")}));
  Check("path", "two names differing only in case in one commit", StatusCode::ALREADY_EXISTS,
        Commit(alice.token, ns, {File("\xc3\x84pfel.txt", "case"), File("\xc3\xa4pfel.txt", "case")}));
  Check("path", "decomposed (NFD) twin of a live composed name", StatusCode::ALREADY_EXISTS,
        Commit(alice.token, ns, {File("cafe\xcc\x81.txt", "case")}));
  Check("path", "Kelvin-sign twin of a live name (full case folding)", StatusCode::ALREADY_EXISTS,
        Commit(alice.token, ns, {File("\xe2\x84\xaa-file", "case")}));
  // A tree no device could make: every engine would retry it for ever.
  Check("path", "a path inside a live file", StatusCode::FAILED_PRECONDITION,
        Commit(alice.token, ns, {File("plain/child", "case")}));
  Check("path", "a path inside a live symlink (`link` -> /etc)", StatusCode::FAILED_PRECONDITION,
        Commit(alice.token, ns, {File("link/x", "case")}));
  Check("path", "a file and a path inside it in one commit", StatusCode::FAILED_PRECONDITION,
        Commit(alice.token, ns, {File("q", "case"), File("q/r", "case")}));

  // Commits.
  Check("commit", "references a chunk never uploaded", StatusCode::FAILED_PRECONDITION,
        Commit(alice.token, ns, {File("missing.txt", "never uploaded")}));
  ASSERT_TRUE(Put(bob.token, "bobs", DigestToBytes(HashOf("bob's secret")), "bob's secret").ok());
  Check("commit", "references another user's chunk (hash known)", StatusCode::FAILED_PRECONDITION,
        Commit(alice.token, ns, {File("stolen.txt", "bob's secret")}));
  {
    FileVersion v = File("sizes.txt", "abc");
    v.size = 99;  // chunk sizes sum to 3
    Check("commit", "file size disagrees with its chunks", StatusCode::INVALID_ARGUMENT, Commit(alice.token, ns, {v}));
  }
  ASSERT_TRUE(Put(alice.token, ns, DigestToBytes(HashOf("dup")), "dup").ok());
  Check("commit", "same path twice in one commit", StatusCode::INVALID_ARGUMENT,
        Commit(alice.token, ns, {File("dup.txt", "dup"), File("dup.txt", "dup")}));
  {
    common::v1::FileVersion p;
    wire::FileVersionToProto(File("id.txt", "dup"), &p);
    p.set_file_id("short");
    Check("commit", "file id of the wrong length", StatusCode::INVALID_ARGUMENT, CommitProto(alice.token, ns, {p}));
    wire::FileVersionToProto(File("digest.txt", "dup"), &p);
    p.mutable_chunks(0)->set_sha256("not 32 bytes");
    Check("commit", "chunk digest of the wrong length", StatusCode::INVALID_ARGUMENT, CommitProto(alice.token, ns, {p}));
  }
  Check("commit", "empty commit", StatusCode::INVALID_ARGUMENT, CommitProto(alice.token, ns, {}));
  {
    std::vector<FileVersion> many;
    for (int i = 0; i < 10001; ++i) many.push_back(File(absl::StrCat("m/", i), "dup"));
    Check("commit", "over 10,000 files in one commit", StatusCode::INVALID_ARGUMENT, Commit(alice.token, ns, many));
  }
  {
    FileVersion v = File("suid", "dup");
    v.mode = 04755;
    Check("commit", "setuid mode (04755)", StatusCode::INVALID_ARGUMENT, Commit(alice.token, ns, {v}));
    v.mode = 01777;
    Check("commit", "sticky mode (01777)", StatusCode::INVALID_ARGUMENT, Commit(alice.token, ns, {v}));
  }
  {
    // More than one Pull message could carry back: 2,000 versions of ~2.5 KB paths.
    std::vector<FileVersion> wide;
    for (int i = 0; i < 2000; ++i) wide.push_back(File(absl::StrCat(std::string(2500, 'w'), i), "dup"));
    Check("commit", "versions over 4 MiB in one commit", StatusCode::INVALID_ARGUMENT, Commit(alice.token, ns, wide));
    // 301 paths of ~4 KB, each in a chain of 127 directories of its own (checking each name
    // would cost O(depth^2) under the commit lock).
    std::vector<FileVersion> deep;
    for (int i = 0; i < 301; ++i) {
      std::string path = absl::StrCat("t", i);
      for (int d = 0; d < 126; ++d) absl::StrAppend(&path, "/", std::string(30, 'a' + d % 26));
      deep.push_back(File(path + "/f", "dup"));
    }
    Check("commit", "301 deep paths in distinct directories", StatusCode::INVALID_ARGUMENT, Commit(alice.token, ns, deep));
  }
  {
    FileVersion v = File("stale.txt", "dup");
    v.base_seq = 12345;  // the path has never been committed
    Check("commit", "stale or invented base_seq", StatusCode::ABORTED, Commit(alice.token, ns, {v}));
  }
  EXPECT_EQ(Head(alice.token, ns), head0) << "a refused commit advanced the log";

  // Chunks.
  Check("chunks", "bytes that do not match their hash", StatusCode::INVALID_ARGUMENT,
        Put(alice.token, ns, DigestToBytes(HashOf("claimed")), "actual"));
  {
    const std::string bomb_raw(64 << 20, 'z');  // 64 MiB of zeros compresses to a few KiB
    Check("chunks", "zstd bomb (expands past the chunk limit)", StatusCode::INVALID_ARGUMENT,
          Put(alice.token, ns, DigestToBytes(HashOf(bomb_raw)), Compress(bomb_raw), sv1::CHUNK_ENCODING_ZSTD));
  }
  {
    // A 16-byte chunk followed by a 12 MiB skippable frame (decoding skips it; storing it would not).
    std::string skippable = {'\x50', '\x2A', '\x4D', '\x18', '\0', '\0', '\xC0', '\0'};
    skippable += std::string(12 << 20, 's');
    const std::string small(16, 'k');
    Check("chunks", "zstd frame followed by a 12 MiB skippable frame", StatusCode::INVALID_ARGUMENT,
          Put(alice.token, ns, DigestToBytes(HashOf(small)), Compress(small) + skippable, sv1::CHUNK_ENCODING_ZSTD));
  }
  {
    sv1::GetChunksRequest req;
    req.set_namespace_id(ns);
    for (int i = 0; i < 2; ++i) req.add_sha256(DigestToBytes(HashOf("case")));
    auto ctx = Ctx(alice.token);
    auto reader = store_->GetChunks(ctx.get(), req);
    sv1::GetChunksResponse resp;
    while (reader->Read(&resp)) {
    }
    Check("chunks", "download asking for the same chunk twice", StatusCode::INVALID_ARGUMENT, reader->Finish());
  }
  Check("chunks", "garbage declared as zstd", StatusCode::INVALID_ARGUMENT,
        Put(alice.token, ns, DigestToBytes(HashOf("x")), "not zstd at all", sv1::CHUNK_ENCODING_ZSTD));
  Check("chunks", "unknown encoding", StatusCode::INVALID_ARGUMENT,
        Put(alice.token, ns, DigestToBytes(HashOf("x")), "x", static_cast<sv1::ChunkEncoding>(77)));
  Check("chunks", "empty chunk", StatusCode::INVALID_ARGUMENT, Put(alice.token, ns, DigestToBytes(HashOf("")), ""));
  Check("chunks", "digest of the wrong length", StatusCode::INVALID_ARGUMENT, Put(alice.token, ns, "short", "x"));
  Check("chunks", "rsync delta against another user's chunk", StatusCode::FAILED_PRECONDITION,
        Put(alice.token, ns, DigestToBytes(HashOf("y")), Compress("ops"), sv1::CHUNK_ENCODING_RSYNC_DELTA,
            DigestToBytes(HashOf("bob's secret"))));
  Check("chunks", "rsync delta against a sequence holding another user's chunk", StatusCode::FAILED_PRECONDITION,
        Put(alice.token, ns, DigestToBytes(HashOf("y")), Compress("ops"), sv1::CHUNK_ENCODING_RSYNC_DELTA, "",
            {DigestToBytes(HashOf("bob's secret")), DigestToBytes(HashOf("bob's secret"))}));
  Check("chunks", "rsync delta against a sequence of five chunks", StatusCode::INVALID_ARGUMENT,
        Put(alice.token, ns, DigestToBytes(HashOf("y")), Compress("ops"), sv1::CHUNK_ENCODING_RSYNC_DELTA, "",
            std::vector<std::string>(5, DigestToBytes(HashOf("y")))));
  Check("chunks", "message over the 16 MiB limit", StatusCode::RESOURCE_EXHAUSTED,
        Put(alice.token, ns, DigestToBytes(HashOf("big")), std::string(17 << 20, 'b')));
  {
    // Quota: bob may store 20 bytes more than he has.
    mv1::SetUserQuotaRequest q;
    q.set_user_id("bob");
    q.set_quota_bytes(32);
    mv1::User u;
    ASSERT_TRUE(management_->SetUserQuota(Ctx(Cluster::OperatorToken()).get(), q, &u).ok());
    Check("chunks", "upload beyond the user's quota", StatusCode::RESOURCE_EXHAUSTED,
          Put(bob.token, "bobs", DigestToBytes(HashOf(std::string(40, 'q'))), std::string(40, 'q')));
  }
  {
    sv1::FindMissingChunksRequest req;
    req.set_namespace_id(ns);
    for (int i = 0; i < 100001; ++i) req.add_sha256(std::string(32, 'd'));
    sv1::FindMissingChunksResponse resp;
    Check("chunks", "over 100,000 digests in one question", StatusCode::INVALID_ARGUMENT,
          store_->FindMissingChunks(Ctx(alice.token).get(), req, &resp));
  }

  // Cross-tenant reads: another user's chunk hash tells nothing.
  {
    sv1::GetChunksRequest req;
    req.set_namespace_id(ns);
    req.add_sha256(DigestToBytes(HashOf("bob's secret")));
    auto ctx = Ctx(alice.token);
    auto reader = store_->GetChunks(ctx.get(), req);
    sv1::GetChunksResponse resp;
    bool got = reader->Read(&resp);
    grpc::Status s = reader->Finish();
    EXPECT_FALSE(got);
    Check("tenancy", "download another user's chunk by hash", StatusCode::NOT_FOUND, s);
  }
  {
    sv1::FindMissingChunksRequest req;
    req.set_namespace_id(ns);
    req.add_sha256(DigestToBytes(HashOf("bob's secret")));
    sv1::FindMissingChunksResponse resp;
    grpc::Status s = store_->FindMissingChunks(Ctx(alice.token).get(), req, &resp);
    EXPECT_EQ(resp.missing_sha256_size(), 1) << "dedup leaked that another user holds the chunk";
    Check("tenancy", "probe dedup for another user's chunk (answered: missing)", StatusCode::OK, s);
  }
  {
    sv1::GetChunkSignaturesRequest req;
    req.set_namespace_id(ns);
    req.add_sha256(DigestToBytes(HashOf("bob's secret")));
    sv1::GetChunkSignaturesResponse resp;
    grpc::Status s = store_->GetChunkSignatures(Ctx(alice.token).get(), req, &resp);
    EXPECT_EQ(resp.signatures_size(), 0);
    Check("tenancy", "signatures of another user's chunk (answered: none)", StatusCode::OK, s);
  }
  {
    sv1::GetChunkSignaturesRequest req;
    req.set_namespace_id(ns);
    sv1::ChunkSequence* seq = req.add_sequences();
    seq->add_sha256(DigestToBytes(HashOf("bob's secret")));
    seq->add_sha256(DigestToBytes(HashOf("bob's secret")));
    sv1::GetChunkSignaturesResponse resp;
    grpc::Status s = store_->GetChunkSignatures(Ctx(alice.token).get(), req, &resp);
    EXPECT_EQ(resp.signatures_size(), 0);
    Check("tenancy", "signatures of a sequence of another user's chunks (answered: none)", StatusCode::OK, s);
  }
  {
    sv1::PullRequest req;
    req.set_namespace_id("bobs");
    auto ctx = Ctx(alice.token);
    auto reader = store_->Pull(ctx.get(), req);
    sv1::PullResponse resp;
    EXPECT_FALSE(reader->Read(&resp));
    Check("tenancy", "pull another user's namespace", StatusCode::PERMISSION_DENIED, reader->Finish());
    sv1::ListFilesRequest lreq;
    lreq.set_namespace_id("bobs");
    auto lctx = Ctx(alice.token);
    auto lreader = store_->ListFiles(lctx.get(), lreq);
    sv1::ListFilesResponse l;
    EXPECT_FALSE(lreader->Read(&l));
    Check("tenancy", "list another user's namespace", StatusCode::PERMISSION_DENIED, lreader->Finish());
  }
  ASSERT_TRUE(Put(alice.token, ns, DigestToBytes(HashOf("mine")), "mine").ok());
  Check("tenancy", "push a commit into another user's namespace", StatusCode::PERMISSION_DENIED,
        Commit(alice.token, "bobs", {File("x.txt", "mine")}));
  Check("tenancy", "upload chunks into another user's namespace", StatusCode::PERMISSION_DENIED,
        Put(alice.token, "bobs", DigestToBytes(HashOf("mine")), "mine"));
  Check("tenancy", "subscribe to another user's namespace", StatusCode::PERMISSION_DENIED, Subscribe(alice.token, "bobs"));
  {
    sv1::AckRequest req;
    req.set_namespace_id(ns);
    req.set_seq(0);
    for (int i = 0; i < 21; ++i) req.add_blocked("x: y");
    sv1::AckResponse resp;
    Check("limits", "ack reporting 21 blocked versions (20 at most)", StatusCode::INVALID_ARGUMENT,
          store_->Ack(Ctx(alice.token).get(), req, &resp));
    req.clear_blocked();
    req.add_blocked(std::string(513, 'b'));
    Check("limits", "ack reporting a blocked version in 513 bytes", StatusCode::INVALID_ARGUMENT,
          store_->Ack(Ctx(alice.token).get(), req, &resp));
  }
  {
    sv1::AckRequest req;
    req.set_namespace_id("bobs");
    req.set_seq(0);
    sv1::AckResponse resp;
    Check("tenancy", "ack in another user's namespace", StatusCode::PERMISSION_DENIED,
          store_->Ack(Ctx(alice.token).get(), req, &resp));
  }
  {
    sv1::CommitRequest req;
    req.set_namespace_id(ns);
    req.set_device_id(bob.device_id);  // acting as someone else
    common::v1::FileVersion p;
    wire::FileVersionToProto(File("impersonate.txt", "mine"), &p);
    *req.add_files() = p;
    sv1::CommitResponse resp;
    Check("tenancy", "request names another device than the token", StatusCode::PERMISSION_DENIED,
          store_->Commit(Ctx(alice.token).get(), req, &resp));
  }
  {
    mv1::AddDeviceToNamespaceRequest req;
    req.set_namespace_id("bobs");
    req.set_device_id(alice.device_id);
    mv1::AddDeviceToNamespaceResponse resp;
    Check("tenancy", "join another user's namespace (not shared)", StatusCode::PERMISSION_DENIED,
          management_->AddDeviceToNamespace(Ctx(alice.token).get(), req, &resp));
    req.set_namespace_id(ns);
    req.set_device_id(bob.device_id);
    Check("tenancy", "a device adding another device to a namespace", StatusCode::PERMISSION_DENIED,
          management_->AddDeviceToNamespace(Ctx(alice.token).get(), req, &resp));
  }

  // Credentials.
  Check("auth", "no credential", StatusCode::UNAUTHENTICATED, Commit("", ns, {File("a.txt", "mine")}));
  Check("auth", "garbage bearer token", StatusCode::UNAUTHENTICATED, Commit("cvt1.garbage.x", ns, {File("a.txt", "mine")}));
  {
    auto expired = cluster_->SignDeviceToken(alice.device_id, "e2e", {ns}, absl::Seconds(-1));
    ASSERT_TRUE(expired.ok());
    Check("auth", "expired device token", StatusCode::UNAUTHENTICATED, Commit(*expired, ns, {File("a.txt", "mine")}));
    std::string tampered = alice.token;
    tampered[tampered.size() / 2] ^= 1;
    Check("auth", "device token with a flipped bit", StatusCode::UNAUTHENTICATED,
          Commit(tampered, ns, {File("a.txt", "mine")}));
  }
  Check("auth", "the operator token used as a device", StatusCode::UNAUTHENTICATED,
        Commit(Cluster::OperatorToken(), ns, {File("a.txt", "mine")}));
  {
    mv1::ListUsersRequest req;
    mv1::ListUsersResponse resp;
    Check("auth", "a device token on the operator API", StatusCode::UNAUTHENTICATED,
          management_->ListUsers(Ctx(alice.token).get(), req, &resp));
    Check("auth", "no credential on the operator API", StatusCode::UNAUTHENTICATED,
          management_->ListUsers(Ctx("").get(), req, &resp));
  }
  {
    sv1::RegisterNamespaceRequest req;
    req.set_namespace_id(ns);
    req.set_owner_user_id("mallory");
    req.add_member_device_ids(alice.device_id);
    sv1::RegisterNamespaceResponse resp;
    Check("auth", "a device calling a service-only store RPC (no service certificate)", StatusCode::UNAUTHENTICATED,
          store_->RegisterNamespace(Ctx(alice.token).get(), req, &resp));
    nv1::PublishRequest pub;
    pub.set_namespace_id(ns);
    pub.set_seq(1u << 30);
    nv1::PublishResponse presp;
    Check("auth", "a device publishing fake heads to notify", StatusCode::UNAUTHENTICATED,
          notify_->Publish(Ctx(alice.token).get(), pub, &presp));
  }
  {
    mv1::RegisterDeviceRequest req;
    req.set_name("intruder");
    req.set_enrollment_token("cve1.0000000000000000");
    mv1::RegisterDeviceResponse resp;
    Check("auth", "register with an invented enrollment token", StatusCode::UNAUTHENTICATED,
          management_->RegisterDevice(Ctx("").get(), req, &resp));
    mv1::CreateEnrollmentTokenRequest e;
    e.set_user_id("bob");
    mv1::EnrollmentToken once;
    ASSERT_TRUE(management_->CreateEnrollmentToken(Ctx(Cluster::OperatorToken()).get(), e, &once).ok());
    req.set_enrollment_token(once.token());
    ASSERT_TRUE(management_->RegisterDevice(Ctx("").get(), req, &resp).ok());
    Check("auth", "register with an enrollment token already used", StatusCode::UNAUTHENTICATED,
          management_->RegisterDevice(Ctx("").get(), req, &resp));
    mv1::IssueDeviceTokenRequest t;
    t.set_device_id(alice.device_id);
    t.set_credential("wrong");
    mv1::DeviceToken token;
    Check("auth", "device token for a wrong device credential", StatusCode::UNAUTHENTICATED,
          management_->IssueDeviceToken(Ctx("").get(), t, &token));
  }
  {
    auto plain = sv1::StoreService::NewStub(grpc::CreateChannel(cluster_->store_address(), grpc::InsecureChannelCredentials()));
    sv1::FindMissingChunksRequest req;
    req.set_namespace_id(ns);
    sv1::FindMissingChunksResponse resp;
    Check("transport", "plaintext client against a TLS service", StatusCode::UNAVAILABLE,
          plain->FindMissingChunks(Ctx(alice.token).get(), req, &resp));
  }
  {
    // One device holding more notification streams than an engine ever needs.
    const DeviceIdentity greedy = MakeDevice("e2e", ns, false);
    std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
    std::vector<std::unique_ptr<grpc::ClientReader<nv1::Event>>> streams;
    nv1::SubscribeRequest req;
    req.add_namespace_ids(ns);
    for (int i = 0; i < 8; ++i) {
      contexts.push_back(Ctx(greedy.token));
      streams.push_back(notify_->Subscribe(contexts.back().get(), req));
      nv1::Event e;
      ASSERT_TRUE(streams.back()->Read(&e)) << "stream " << i;  // open: the head arrived
    }
    Check("limits", "a 9th open notification stream of one device", StatusCode::RESOURCE_EXHAUSTED,
          Subscribe(greedy.token, ns));
    int events = 0;
    EXPECT_EQ(Subscribe(alice.token, ns, &events).error_code(), StatusCode::DEADLINE_EXCEEDED);
    EXPECT_GE(events, 1) << "another device of the same user could not subscribe";
    for (auto& c : contexts) c->TryCancel();
    for (auto& s : streams) s->Finish().ok();
  }
  EXPECT_EQ(Head(alice.token, ns), head0) << "a refused call advanced the log";
  EXPECT_EQ(Head(bob.token, "bobs"), 0u) << "bob's namespace was written";

  printf("\n| # | area | hostile input | status |\n|---|---|---|---|\n");
  for (const std::string& r : rows_) printf("%s\n", r.c_str());
  EXPECT_GE(rows_.size(), 40u);
}

// Latencies (ms) of `n` small calls of a device, sorted.
std::vector<double> SmallCallLatencies(sv1::StoreService::Stub* store, const std::string& token, const std::string& ns,
                                       int n, int* failures) {
  std::vector<double> ms;
  sv1::FindMissingChunksRequest req;
  req.set_namespace_id(ns);
  req.add_sha256(std::string(32, 's'));
  for (int i = 0; i < n; ++i) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + token);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    sv1::FindMissingChunksResponse resp;
    const absl::Time t0 = absl::Now();
    if (!store->FindMissingChunks(&ctx, req, &resp).ok()) ++*failures;
    ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
  }
  std::sort(ms.begin(), ms.end());
  return ms;
}

TEST_F(HostileTest, AFloodOfCallsFromOneDeviceLeavesOthersServed) {
  const DeviceIdentity flooder = MakeDevice("e2e", "shared", false);
  const DeviceIdentity victim = MakeDevice("carol", "carols", true);
  int victim_failures = 0;
  const std::vector<double> before = SmallCallLatencies(store_.get(), victim.token, "carols", 200, &victim_failures);

  // 64 threads on 4 connections, each making small calls as fast as it can. They run at the
  // lowest CPU priority: the flooding device stands for a machine of its own, and on this host
  // its client work would otherwise be charged to the service it attacks.
  sv1::FindMissingChunksRequest small;
  small.set_namespace_id("shared");
  small.add_sha256(std::string(32, 'f'));
  std::atomic<bool> stop{false};
  std::atomic<int> served{0}, refused{0}, other{0};
  std::vector<std::thread> threads;
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int c = 0; c < 4; ++c) {
    grpc::ChannelArguments args;
    args.SetInt("converge.flood.channel", c);  // distinct connections
    channels.push_back(grpc::CreateCustomChannel(cluster_->store_address(), cluster_->DeviceCredentials(), args));
  }
  const absl::Time flood_start = absl::Now();
  for (int t = 0; t < 64; ++t) {
    threads.emplace_back([&, t] {
      setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 19);
      auto stub = sv1::StoreService::NewStub(channels[t % channels.size()]);
      while (!stop.load() && absl::Now() - flood_start < absl::Seconds(30)) {
        auto ctx = Ctx(flooder.token);
        sv1::FindMissingChunksResponse resp;
        const grpc::Status s = stub->FindMissingChunks(ctx.get(), small, &resp);
        (s.ok() ? served : s.error_code() == StatusCode::RESOURCE_EXHAUSTED ? refused : other)++;
      }
    });
  }
  absl::SleepFor(absl::Milliseconds(500));  // the flood is under way
  const std::vector<double> during = SmallCallLatencies(store_.get(), victim.token, "carols", 200, &victim_failures);
  // Let it run until the limit has engaged (bounded).
  while (refused.load() == 0 && absl::Now() - flood_start < absl::Seconds(15)) absl::SleepFor(absl::Milliseconds(50));
  stop = true;
  for (std::thread& t : threads) t.join();
  const double flood_seconds = absl::ToDoubleSeconds(absl::Now() - flood_start);

  auto pct = [](const std::vector<double>& v, double p) { return v[static_cast<size_t>(p * (v.size() - 1))]; };
  printf("flood: %d calls served, %d refused (RESOURCE_EXHAUSTED), %d other errors in %.1f s\n", served.load(),
         refused.load(), other.load(), flood_seconds);
  printf("another user's small call: p50 %.2f ms, p99 %.2f ms before; p50 %.2f ms, p99 %.2f ms during the flood\n",
         pct(before, 0.5), pct(before, 0.99), pct(during, 0.5), pct(during, 0.99));
  EXPECT_EQ(victim_failures, 0) << "the flood made another device's calls fail";
  EXPECT_GT(served.load(), 0);
  EXPECT_GT(refused.load(), 0) << "a flood of one device was never limited";
  EXPECT_EQ(other.load(), 0);
  EXPECT_LT(pct(during, 0.99), 500) << "another device waited too long during the flood";
}

TEST_F(HostileTest, RevokingADeviceClosesItsStreamAndRefusesItEverywhere) {
  const DeviceIdentity d = MakeDevice("e2e", "shared", false);
  auto ctx = Ctx(d.token);
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  nv1::SubscribeRequest req;
  req.add_namespace_ids("shared");
  auto reader = notify_->Subscribe(ctx.get(), req);
  nv1::Event e;
  ASSERT_TRUE(reader->Read(&e));  // the current head: the stream is open

  mv1::RevokeDeviceRequest revoke;
  revoke.set_device_id(d.device_id);
  mv1::Device revoked;
  const absl::Time t0 = absl::Now();
  ASSERT_TRUE(management_->RevokeDevice(Ctx(Cluster::OperatorToken()).get(), revoke, &revoked).ok());
  while (reader->Read(&e)) {
  }
  const grpc::Status closed = reader->Finish();
  const absl::Duration took = absl::Now() - t0;
  EXPECT_EQ(closed.error_code(), StatusCode::PERMISSION_DENIED) << closed.error_message();
  EXPECT_LT(took, absl::Seconds(1));
  printf("revocation closed the open stream after %s\n", absl::FormatDuration(took).c_str());
  // Its still-unexpired token is refused by notify and store; it gets no new one.
  EXPECT_EQ(Subscribe(d.token, "shared").error_code(), StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Commit(d.token, "shared", {File("late.txt", "mine")}).error_code(), StatusCode::PERMISSION_DENIED);
  mv1::IssueDeviceTokenRequest t;
  t.set_device_id(d.device_id);
  t.set_credential(d.credential);
  mv1::DeviceToken token;
  EXPECT_EQ(management_->IssueDeviceToken(Ctx("").get(), t, &token).error_code(), StatusCode::PERMISSION_DENIED);
  // Management asks its registry too: the unexpired token learns nothing more there.
  mv1::GetEndpointsRequest where;
  mv1::Endpoints endpoints;
  EXPECT_EQ(management_->GetEndpoints(Ctx(d.token).get(), where, &endpoints).error_code(), StatusCode::PERMISSION_DENIED);
}

}  // namespace
}  // namespace converge::testing
