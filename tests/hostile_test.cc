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
#include <tuple>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/base/sha256.h"
#include "common/codec/chunk_codec.h"
#include "common/codec/rsync_delta.h"
#include "common/wire/wire.h"
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

class HostileBase : public ::testing::Test {
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

  static std::string LongPath() {
    std::string p;
    while (p.size() <= 4100) p += std::string(200, 'p') + "/";
    return p + "f";
  }
  static std::string DeepPath(int components) {
    std::string p = "d";
    for (int i = 0; i < components; ++i) p += "/d";
    return p;
  }

  // GetChunks downloads `digests`; *got: how many chunks arrived.
  grpc::Status GetChunks(const std::string& token, const std::string& ns, const std::vector<std::string>& digests,
                         int* got) {
    sv1::GetChunksRequest req;
    req.set_namespace_id(ns);
    for (const std::string& d : digests) req.add_sha256(d);
    auto ctx = Ctx(token);
    auto reader = store_->GetChunks(ctx.get(), req);
    sv1::GetChunksResponse resp;
    int n = 0;
    while (reader->Read(&resp)) ++n;
    if (got != nullptr) *got = n;
    return reader->Finish();
  }
  // FindMissing asks which of `digests` the store lacks; *missing: how many it named.
  grpc::Status FindMissing(const std::string& token, const std::string& ns, const std::vector<std::string>& digests,
                           int* missing) {
    sv1::FindMissingChunksRequest req;
    req.set_namespace_id(ns);
    for (const std::string& d : digests) req.add_sha256(d);
    sv1::FindMissingChunksResponse resp;
    grpc::Status s = store_->FindMissingChunks(Ctx(token).get(), req, &resp);
    if (missing != nullptr) *missing = resp.missing_sha256_size();
    return s;
  }
  // NoSignatures asks for the signatures of `digests` (each alone, or as one sequence) and
  // expects none.
  grpc::Status NoSignatures(const std::string& token, const std::string& ns, const std::vector<std::string>& digests,
                            bool as_sequence) {
    sv1::GetChunkSignaturesRequest req;
    req.set_namespace_id(ns);
    sv1::ChunkSequence* seq = as_sequence ? req.add_sequences() : nullptr;
    for (const std::string& d : digests) {
      if (seq != nullptr) {
        seq->add_sha256(d);
      } else {
        req.add_sha256(d);
      }
    }
    sv1::GetChunkSignaturesResponse resp;
    grpc::Status s = store_->GetChunkSignatures(Ctx(token).get(), req, &resp);
    EXPECT_EQ(resp.signatures_size(), 0);
    return s;
  }
  // PullNothing and ListNothing read a namespace and expect nothing of it.
  grpc::Status PullNothing(const std::string& token, const std::string& ns) {
    sv1::PullRequest req;
    req.set_namespace_id(ns);
    auto ctx = Ctx(token);
    auto reader = store_->Pull(ctx.get(), req);
    sv1::PullResponse resp;
    EXPECT_FALSE(reader->Read(&resp));
    return reader->Finish();
  }
  grpc::Status ListNothing(const std::string& token, const std::string& ns) {
    sv1::ListFilesRequest req;
    req.set_namespace_id(ns);
    auto ctx = Ctx(token);
    auto reader = store_->ListFiles(ctx.get(), req);
    sv1::ListFilesResponse resp;
    EXPECT_FALSE(reader->Read(&resp));
    return reader->Finish();
  }
  grpc::Status Ack(const std::string& token, const std::string& ns, const std::vector<std::string>& blocked) {
    sv1::AckRequest req;
    req.set_namespace_id(ns);
    req.set_seq(0);
    for (const std::string& b : blocked) req.add_blocked(b);
    sv1::AckResponse resp;
    return store_->Ack(Ctx(token).get(), req, &resp);
  }
  grpc::Status AddDevice(const std::string& token, const std::string& ns, const std::string& device_id) {
    mv1::AddDeviceToNamespaceRequest req;
    req.set_namespace_id(ns);
    req.set_device_id(device_id);
    mv1::AddDeviceToNamespaceResponse resp;
    return management_->AddDeviceToNamespace(Ctx(token).get(), req, &resp);
  }
  grpc::Status ListUsers(const std::string& token) {
    mv1::ListUsersRequest req;
    mv1::ListUsersResponse resp;
    return management_->ListUsers(Ctx(token).get(), req, &resp);
  }
  grpc::Status Register(const std::string& enrollment_token) {
    mv1::RegisterDeviceRequest req;
    req.set_name("intruder");
    req.set_enrollment_token(enrollment_token);
    mv1::RegisterDeviceResponse resp;
    return management_->RegisterDevice(Ctx("").get(), req, &resp);
  }
  std::string EnrollmentToken(const std::string& user) {
    mv1::CreateEnrollmentTokenRequest req;
    req.set_user_id(user);
    mv1::EnrollmentToken token;
    EXPECT_TRUE(management_->CreateEnrollmentToken(Ctx(Cluster::OperatorToken()).get(), req, &token).ok());
    return token.token();
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

Cluster* HostileBase::cluster_ = nullptr;
std::vector<std::string> HostileBase::rows_;

// One hostile input: what it is, the status it must get, and how to send it.
struct Case {
  std::string area;
  std::string what;
  StatusCode want;
  std::function<grpc::Status()> send;
};

// The world the cases run in: alice, a device of user e2e in namespace `ns`, and bob, whose
// namespace `bobs` holds his secret chunk and whose quota is nearly used.
struct World {
  DeviceIdentity alice;
  DeviceIdentity bob;
  std::string ns = "shared";
};

class HostileTest : public HostileBase {
 protected:
  World Prepare() {
    World w;
    w.alice = MakeDevice("e2e", w.ns, false);
    w.bob = MakeDevice("bob", "bobs", true);
    const std::string& t = w.alice.token;
    EXPECT_TRUE(Put(t, w.ns, DigestToBytes(HashOf("case")), "case").ok());
    EXPECT_TRUE(Commit(t, w.ns, {File("Case/Sensitive.txt", "case")}).ok());
    // A file, a symlink and a name in composed form (NFC) for the tree and twin cases.
    FileVersion link = File("link", "");
    link.kind = FileKind::kSymlink;
    link.symlink_target = "/etc";
    link.content_sha256 = HashOf("/etc");
    EXPECT_TRUE(
        Commit(t, w.ns, {File("plain", "case"), link, File("caf\xc3\xa9.txt", "case"), File("k-file", "case")}).ok());
    for (const char* chunk : {"dup", "mine"}) EXPECT_TRUE(Put(t, w.ns, DigestToBytes(HashOf(chunk)), chunk).ok());
    EXPECT_TRUE(Put(w.bob.token, "bobs", DigestToBytes(HashOf("bob's secret")), "bob's secret").ok());
    // Quota: bob may store 20 bytes more than he has.
    mv1::SetUserQuotaRequest q;
    q.set_user_id("bob");
    q.set_quota_bytes(32);
    mv1::User u;
    EXPECT_TRUE(management_->SetUserQuota(Ctx(Cluster::OperatorToken()).get(), q, &u).ok());
    return w;
  }

  // Paths from the network: each is refused before anything is written.
  std::vector<Case> PathCases(const World& w) {
    const std::vector<std::pair<std::string, std::string>> bad = {
        {"`..` escaping the folder", "../escape"},
        {"`..` inside a path", "a/../../b"},
        {"absolute path", "/etc/passwd"},
        {"NUL byte in a name", std::string("a\0b", 3)},
        {"name over 255 bytes", std::string(256, 'n')},
        {"path over 4096 bytes", LongPath()},
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
        {"path over 128 components", DeepPath(128)},
    };
    std::vector<Case> cases;
    for (const auto& [what, path] : bad) {
      cases.push_back({"path", what, StatusCode::INVALID_ARGUMENT, [&w, this, p = path] {
                         return CommitPath(w.alice.token, w.ns, p);
                       }});
    }
    // Paths are proto3 strings: gRPC's parser refuses invalid UTF-8 before any handler runs.
    cases.push_back({"path", "invalid UTF-8 (refused by the protobuf parser)", StatusCode::INTERNAL,
                     [&w, this] { return CommitPath(w.alice.token, w.ns, "bad\xff\xfe"); }});
    const std::vector<std::tuple<std::string, StatusCode, std::vector<FileVersion>>> refused = {
        // Case collisions: a case-insensitive device (macOS, Windows) could not hold both names.
        {"name differing only in case from a live file", StatusCode::ALREADY_EXISTS,
         {File("Case/SENSITIVE.TXT", "case")}},
        {"directory differing only in case from a live one", StatusCode::ALREADY_EXISTS,
         {File("case/other.txt", "case")}},
        {"two names differing only in case in one commit", StatusCode::ALREADY_EXISTS,
         {File("\xc3\x84pfel.txt", "case"), File("\xc3\xa4pfel.txt", "case")}},
        {"decomposed (NFD) twin of a live composed name", StatusCode::ALREADY_EXISTS,
         {File("cafe\xcc\x81.txt", "case")}},
        {"Kelvin-sign twin of a live name (full case folding)", StatusCode::ALREADY_EXISTS,
         {File("\xe2\x84\xaa-file", "case")}},
        // A tree no device could make: every engine would retry it for ever.
        {"a path inside a live file", StatusCode::FAILED_PRECONDITION, {File("plain/child", "case")}},
        {"a path inside a live symlink (`link` -> /etc)", StatusCode::FAILED_PRECONDITION, {File("link/x", "case")}},
        {"a file and a path inside it in one commit", StatusCode::FAILED_PRECONDITION,
         {File("q", "case"), File("q/r", "case")}},
    };
    for (const auto& [what, want, files] : refused) {
      cases.push_back({"path", what, want, [&w, this, f = files] { return Commit(w.alice.token, w.ns, f); }});
    }
    return cases;
  }

  // Commits that break the model's rules.
  std::vector<Case> CommitCases(const World& w) {
    FileVersion sizes = File("sizes.txt", "abc");
    sizes.size = 99;  // chunk sizes sum to 3
    FileVersion suid = File("suid", "dup");
    suid.mode = 04755;
    FileVersion sticky = suid;
    sticky.mode = 01777;
    FileVersion stale = File("stale.txt", "dup");
    stale.base_seq = 12345;  // the path has never been committed
    std::vector<FileVersion> many;
    for (int i = 0; i < 10001; ++i) many.push_back(File(absl::StrCat("m/", i), "dup"));
    // More than one Pull message could carry back: 2,000 versions of ~2.5 KB paths.
    std::vector<FileVersion> wide;
    for (int i = 0; i < 2000; ++i) wide.push_back(File(absl::StrCat(std::string(2500, 'w'), i), "dup"));
    // 301 paths of ~4 KB, each in a chain of 127 directories of its own (checking each name
    // would cost O(depth^2) under the commit lock).
    std::vector<FileVersion> deep;
    for (int i = 0; i < 301; ++i) {
      std::string path = absl::StrCat("t", i);
      for (int d = 0; d < 126; ++d) absl::StrAppend(&path, "/", std::string(30, 'a' + d % 26));
      deep.push_back(File(path + "/f", "dup"));
    }
    const std::vector<std::tuple<std::string, StatusCode, std::vector<FileVersion>>> refused = {
        {"references a chunk never uploaded", StatusCode::FAILED_PRECONDITION, {File("missing.txt", "never uploaded")}},
        {"references another user's chunk (hash known)", StatusCode::FAILED_PRECONDITION,
         {File("stolen.txt", "bob's secret")}},
        {"file size disagrees with its chunks", StatusCode::INVALID_ARGUMENT, {sizes}},
        {"same path twice in one commit", StatusCode::INVALID_ARGUMENT, {File("dup.txt", "dup"), File("dup.txt", "dup")}},
        {"empty commit", StatusCode::INVALID_ARGUMENT, {}},
        {"over 10,000 files in one commit", StatusCode::INVALID_ARGUMENT, many},
        {"setuid mode (04755)", StatusCode::INVALID_ARGUMENT, {suid}},
        {"sticky mode (01777)", StatusCode::INVALID_ARGUMENT, {sticky}},
        {"versions over 4 MiB in one commit", StatusCode::INVALID_ARGUMENT, wide},
        {"301 deep paths in distinct directories", StatusCode::INVALID_ARGUMENT, deep},
        {"stale or invented base_seq", StatusCode::ABORTED, {stale}},
    };
    std::vector<Case> cases;
    for (const auto& [what, want, files] : refused) {
      cases.push_back({"commit", what, want, [&w, this, f = files] { return Commit(w.alice.token, w.ns, f); }});
    }
    common::v1::FileVersion short_id;
    wire::FileVersionToProto(File("id.txt", "dup"), &short_id);
    short_id.set_file_id("short");
    common::v1::FileVersion bad_digest;
    wire::FileVersionToProto(File("digest.txt", "dup"), &bad_digest);
    bad_digest.mutable_chunks(0)->set_sha256("not 32 bytes");
    for (const auto& [what, proto] : {std::pair{"file id of the wrong length", short_id},
                                      std::pair{"chunk digest of the wrong length", bad_digest}}) {
      cases.push_back({"commit", what, StatusCode::INVALID_ARGUMENT, [&w, this, p = proto] {
                         return CommitProto(w.alice.token, w.ns, {p});
                       }});
    }
    return cases;
  }

  // Chunk uploads and downloads that must not be stored or served.
  std::vector<Case> ChunkCases(const World& w) {
    const std::string& t = w.alice.token;
    const std::string& ns = w.ns;
    const std::string y = DigestToBytes(HashOf("y"));
    const std::string secret = DigestToBytes(HashOf("bob's secret"));
    return {
        {"chunks", "bytes that do not match their hash", StatusCode::INVALID_ARGUMENT,
         [=] { return Put(t, ns, DigestToBytes(HashOf("claimed")), "actual"); }},
        {"chunks", "zstd bomb (expands past the chunk limit)", StatusCode::INVALID_ARGUMENT,
         [=] {
           const std::string bomb_raw(64 << 20, 'z');  // 64 MiB of zeros compresses to a few KiB
           return Put(t, ns, DigestToBytes(HashOf(bomb_raw)), Compress(bomb_raw), sv1::CHUNK_ENCODING_ZSTD);
         }},
        {"chunks", "zstd frame followed by a 12 MiB skippable frame", StatusCode::INVALID_ARGUMENT,
         [=] {
           // A 16-byte chunk, then a skippable frame (decoding skips it; storing it would not).
           std::string skippable = {'\x50', '\x2A', '\x4D', '\x18', '\0', '\0', '\xC0', '\0'};
           skippable += std::string(12 << 20, 's');
           const std::string small(16, 'k');
           return Put(t, ns, DigestToBytes(HashOf(small)), Compress(small) + skippable, sv1::CHUNK_ENCODING_ZSTD);
         }},
        {"chunks", "download asking for the same chunk twice", StatusCode::INVALID_ARGUMENT,
         [=] { return GetChunks(t, ns, {DigestToBytes(HashOf("case")), DigestToBytes(HashOf("case"))}, nullptr); }},
        {"chunks", "garbage declared as zstd", StatusCode::INVALID_ARGUMENT,
         [=] { return Put(t, ns, DigestToBytes(HashOf("x")), "not zstd at all", sv1::CHUNK_ENCODING_ZSTD); }},
        {"chunks", "unknown encoding", StatusCode::INVALID_ARGUMENT,
         [=] { return Put(t, ns, DigestToBytes(HashOf("x")), "x", static_cast<sv1::ChunkEncoding>(77)); }},
        {"chunks", "empty chunk", StatusCode::INVALID_ARGUMENT, [=] { return Put(t, ns, DigestToBytes(HashOf("")), ""); }},
        {"chunks", "digest of the wrong length", StatusCode::INVALID_ARGUMENT, [=] { return Put(t, ns, "short", "x"); }},
        {"chunks", "rsync delta against another user's chunk", StatusCode::FAILED_PRECONDITION,
         [=] { return Put(t, ns, y, Compress("ops"), sv1::CHUNK_ENCODING_RSYNC_DELTA, secret); }},
        {"chunks", "rsync delta against a sequence holding another user's chunk", StatusCode::FAILED_PRECONDITION,
         [=] { return Put(t, ns, y, Compress("ops"), sv1::CHUNK_ENCODING_RSYNC_DELTA, "", {secret, secret}); }},
        {"chunks", "rsync delta against a sequence of five chunks", StatusCode::INVALID_ARGUMENT,
         [=] {
           return Put(t, ns, y, Compress("ops"), sv1::CHUNK_ENCODING_RSYNC_DELTA, "", std::vector<std::string>(5, y));
         }},
        {"chunks", "message over the 16 MiB limit", StatusCode::RESOURCE_EXHAUSTED,
         [=] { return Put(t, ns, DigestToBytes(HashOf("big")), std::string(17 << 20, 'b')); }},
        {"chunks", "upload beyond the user's quota", StatusCode::RESOURCE_EXHAUSTED,
         [=, b = w.bob.token] {
           return Put(b, "bobs", DigestToBytes(HashOf(std::string(40, 'q'))), std::string(40, 'q'));
         }},
        {"chunks", "over 100,000 digests in one question", StatusCode::INVALID_ARGUMENT,
         [=] { return FindMissing(t, ns, std::vector<std::string>(100001, std::string(32, 'd')), nullptr); }},
    };
  }

  // Another user's data: not readable, not writable, not even its existence.
  std::vector<Case> TenancyCases(const World& w) {
    const std::string& t = w.alice.token;
    const std::string& ns = w.ns;
    const std::string secret = DigestToBytes(HashOf("bob's secret"));
    return {
        {"tenancy", "download another user's chunk by hash", StatusCode::NOT_FOUND,
         [=] {
           int got = 0;
           grpc::Status s = GetChunks(t, ns, {secret}, &got);
           EXPECT_EQ(got, 0);
           return s;
         }},
        {"tenancy", "probe dedup for another user's chunk (answered: missing)", StatusCode::OK,
         [=] {
           int missing = 0;
           grpc::Status s = FindMissing(t, ns, {secret}, &missing);
           EXPECT_EQ(missing, 1) << "dedup leaked that another user holds the chunk";
           return s;
         }},
        {"tenancy", "signatures of another user's chunk (answered: none)", StatusCode::OK,
         [=] { return NoSignatures(t, ns, {secret}, false); }},
        {"tenancy", "signatures of a sequence of another user's chunks (answered: none)", StatusCode::OK,
         [=] { return NoSignatures(t, ns, {secret, secret}, true); }},
        {"tenancy", "pull another user's namespace", StatusCode::PERMISSION_DENIED, [=] { return PullNothing(t, "bobs"); }},
        {"tenancy", "list another user's namespace", StatusCode::PERMISSION_DENIED, [=] { return ListNothing(t, "bobs"); }},
        {"tenancy", "push a commit into another user's namespace", StatusCode::PERMISSION_DENIED,
         [=] { return Commit(t, "bobs", {File("x.txt", "mine")}); }},
        {"tenancy", "upload chunks into another user's namespace", StatusCode::PERMISSION_DENIED,
         [=] { return Put(t, "bobs", DigestToBytes(HashOf("mine")), "mine"); }},
        {"tenancy", "subscribe to another user's namespace", StatusCode::PERMISSION_DENIED,
         [=] { return Subscribe(t, "bobs"); }},
        {"tenancy", "ack in another user's namespace", StatusCode::PERMISSION_DENIED,
         [=] { return Ack(t, "bobs", {}); }},
        {"tenancy", "request names another device than the token", StatusCode::PERMISSION_DENIED,
         [=, other = w.bob.device_id] {
           sv1::CommitRequest req;
           req.set_namespace_id(ns);
           req.set_device_id(other);  // acting as someone else
           wire::FileVersionToProto(File("impersonate.txt", "mine"), req.add_files());
           sv1::CommitResponse resp;
           return store_->Commit(Ctx(t).get(), req, &resp);
         }},
        {"tenancy", "join another user's namespace (not shared)", StatusCode::PERMISSION_DENIED,
         [=, self = w.alice.device_id] { return AddDevice(t, "bobs", self); }},
        {"tenancy", "a device adding another device to a namespace", StatusCode::PERMISSION_DENIED,
         [=, other = w.bob.device_id] { return AddDevice(t, ns, other); }},
    };
  }

  // Credentials: missing, forged, expired, or of the wrong kind.
  std::vector<Case> AuthCases(const World& w) {
    const std::string& ns = w.ns;
    const std::vector<FileVersion> a = {File("a.txt", "mine")};
    std::string tampered = w.alice.token;
    tampered[tampered.size() / 2] ^= 1;
    absl::StatusOr<std::string> expired = cluster_->SignDeviceToken(w.alice.device_id, "e2e", {ns}, absl::Seconds(-1));
    EXPECT_TRUE(expired.ok());
    return {
        {"auth", "no credential", StatusCode::UNAUTHENTICATED, [=] { return Commit("", ns, a); }},
        {"auth", "garbage bearer token", StatusCode::UNAUTHENTICATED, [=] { return Commit("cvt1.garbage.x", ns, a); }},
        {"auth", "expired device token", StatusCode::UNAUTHENTICATED, [=, e = expired.ok() ? *expired : std::string()] { return Commit(e, ns, a); }},
        {"auth", "device token with a flipped bit", StatusCode::UNAUTHENTICATED, [=] { return Commit(tampered, ns, a); }},
        {"auth", "the operator token used as a device", StatusCode::UNAUTHENTICATED,
         [=] { return Commit(Cluster::OperatorToken(), ns, a); }},
        {"auth", "a device token on the operator API", StatusCode::UNAUTHENTICATED,
         [=, t = w.alice.token] { return ListUsers(t); }},
        {"auth", "no credential on the operator API", StatusCode::UNAUTHENTICATED, [=] { return ListUsers(""); }},
        {"auth", "a device calling a service-only store RPC (no service certificate)", StatusCode::UNAUTHENTICATED,
         [=, t = w.alice.token, self = w.alice.device_id] {
           sv1::RegisterNamespaceRequest req;
           req.set_namespace_id(ns);
           req.set_owner_user_id("mallory");
           req.add_member_device_ids(self);
           sv1::RegisterNamespaceResponse resp;
           return store_->RegisterNamespace(Ctx(t).get(), req, &resp);
         }},
        {"auth", "a device publishing fake heads to notify", StatusCode::UNAUTHENTICATED,
         [=, t = w.alice.token] {
           nv1::PublishRequest pub;
           pub.set_namespace_id(ns);
           pub.set_seq(1u << 30);
           nv1::PublishResponse resp;
           return notify_->Publish(Ctx(t).get(), pub, &resp);
         }},
        {"tenancy", "announce another device's log head to notify", StatusCode::PERMISSION_DENIED,
         [=, t = w.alice.token, other = w.bob.device_id] {
           nv1::AnnounceHeadRequest req;
           req.set_namespace_id(ns);
           req.mutable_head()->set_device_id(other);  // a fork alarm in someone else's name
           req.mutable_head()->set_seq(1);
           req.mutable_head()->set_hash(std::string(32, 'h'));
           req.mutable_head()->set_signature(std::string(64, 's'));
           nv1::AnnounceHeadResponse resp;
           return notify_->AnnounceHead(Ctx(t).get(), req, &resp);
         }},
        {"tenancy", "announce a log head in another user's namespace", StatusCode::PERMISSION_DENIED,
         [=, t = w.alice.token, self = w.alice.device_id] {
           nv1::AnnounceHeadRequest req;
           req.set_namespace_id("bobs");
           req.mutable_head()->set_device_id(self);
           req.mutable_head()->set_seq(1);
           req.mutable_head()->set_hash(std::string(32, 'h'));
           req.mutable_head()->set_signature(std::string(64, 's'));
           nv1::AnnounceHeadResponse resp;
           return notify_->AnnounceHead(Ctx(t).get(), req, &resp);
         }},
        {"auth", "register with an invented enrollment token", StatusCode::UNAUTHENTICATED,
         [=] { return Register("cve1.0000000000000000"); }},
        {"auth", "register with an enrollment token already used", StatusCode::UNAUTHENTICATED,
         [=] {
           const std::string once = EnrollmentToken("bob");
           EXPECT_TRUE(Register(once).ok());
           return Register(once);
         }},
        {"auth", "device token for a wrong device credential", StatusCode::UNAUTHENTICATED,
         [=, self = w.alice.device_id] {
           mv1::IssueDeviceTokenRequest req;
           req.set_device_id(self);
           req.set_credential("wrong");
           mv1::DeviceToken token;
           return management_->IssueDeviceToken(Ctx("").get(), req, &token);
         }},
    };
  }

  // Transport and per-device limits.
  std::vector<Case> LimitCases(const World& w) {
    const std::string& t = w.alice.token;
    const std::string& ns = w.ns;
    return {
        {"limits", "ack reporting 21 blocked versions (20 at most)", StatusCode::INVALID_ARGUMENT,
         [=] { return Ack(t, ns, std::vector<std::string>(21, "x: y")); }},
        {"limits", "ack reporting a blocked version in 513 bytes", StatusCode::INVALID_ARGUMENT,
         [=] { return Ack(t, ns, {std::string(513, 'b')}); }},
        {"transport", "plaintext client against a TLS service", StatusCode::UNAVAILABLE,
         [=] {
           auto plain = sv1::StoreService::NewStub(
               grpc::CreateChannel(cluster_->store_address(), grpc::InsecureChannelCredentials()));
           sv1::FindMissingChunksRequest req;
           req.set_namespace_id(ns);
           sv1::FindMissingChunksResponse resp;
           return plain->FindMissingChunks(Ctx(t).get(), req, &resp);
         }},
        {"limits", "a 9th open notification stream of one device", StatusCode::RESOURCE_EXHAUSTED,
         [=] { return NinthStream(t, ns); }},
    };
  }

  // NinthStream: one device holding more notification streams than an engine ever needs; its
  // 9th is refused while another device of the same user still subscribes.
  grpc::Status NinthStream(const std::string& other_token, const std::string& ns) {
    const DeviceIdentity greedy = MakeDevice("e2e", ns, false);
    std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
    std::vector<std::unique_ptr<grpc::ClientReader<nv1::Event>>> streams;
    nv1::SubscribeRequest req;
    req.add_namespace_ids(ns);
    for (int i = 0; i < 8; ++i) {
      contexts.push_back(Ctx(greedy.token));
      streams.push_back(notify_->Subscribe(contexts.back().get(), req));
      nv1::Event e;
      EXPECT_TRUE(streams.back()->Read(&e)) << "stream " << i;  // open: the head arrived
    }
    grpc::Status ninth = Subscribe(greedy.token, ns);
    int events = 0;
    EXPECT_EQ(Subscribe(other_token, ns, &events).error_code(), StatusCode::DEADLINE_EXCEEDED);
    EXPECT_GE(events, 1) << "another device of the same user could not subscribe";
    for (auto& c : contexts) c->TryCancel();
    for (auto& s : streams) s->Finish().ok();
    return ninth;
  }
};

TEST_F(HostileTest, EveryHostileInputGetsItsStatusAndWritesNothing) {
  const World w = Prepare();
  const uint64_t head0 = Head(w.alice.token, w.ns);
  for (const std::vector<Case>& part :
       {PathCases(w), CommitCases(w), ChunkCases(w), TenancyCases(w), AuthCases(w), LimitCases(w)}) {
    for (const Case& c : part) Check(c.area, c.what, c.want, c.send());
  }
  EXPECT_EQ(Head(w.alice.token, w.ns), head0) << "a refused call advanced the log";
  EXPECT_EQ(Head(w.bob.token, "bobs"), 0u) << "bob's namespace was written";

  printf("\n| # | area | hostile input | status |\n|---|---|---|---|\n");
  for (const std::string& r : rows_) printf("%s\n", r.c_str());
  EXPECT_GE(rows_.size(), 80u);
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
