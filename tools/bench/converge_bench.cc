// converge-bench: load generator for the benchmark harness (tools/bench/bench.py).
//
//   converge-bench ingest --store=ADDR --service_token=T --mib=256 --streams=2 --commits=2000 --threads=8
//     New chunk data through PutChunks made durable by a synced Commit (MB/s), then small
//     one-file commits from several threads (commits/s). Prints one JSON object.
//   converge-bench fanout --notify=ADDR --service_token=T --subscribers=1000 --events=5
//   converge-bench history --store=ADDR --service_token=T --token_signing_key=K --namespace_id=NS
//       --user_id=U --commits=5000 --mib=2048 --files=50000
//     A namespace that has been in use: --commits commits of mixed files (mostly small, a few of
//     MiBs; new files, edits and deletions) holding --files live files and --mib MiB of chunk
//     data written over its history, made as a device of its own. Prints one JSON object.
//   converge-bench verify --folder=PATH
//     The engine's verifying scan (Scanner::Suspects) of a synced folder whose engine is not
//     running: seconds, suspects and peak RSS. Prints one JSON object.
//   converge-bench chunking [--file=PATH | --mib=512]
//   converge-bench compression --file=PATH [--call_mib=32]
//     Holds N Subscribe streams (one connection each, like N engines), publishes events and
//     measures the time until every subscriber has each one. Prints one JSON object.
#include <grpcpp/grpcpp.h>

#include <cstring>
#include <sys/resource.h>

#include <fstream>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/base/sha256.h"
#include "common/codec/chunk_codec.h"
#include "common/model/model.h"
#include "engine/fs/local_filesystem.h"
#include "engine/sync/local_index.h"
#include "engine/sync/scanner.h"
#include "common/security/device_token.h"
#include "common/security/tls.h"
#include "common/wire/wire.h"
#include "converge/notification/v1/notification.grpc.pb.h"
#include "converge/store/v1/store.grpc.pb.h"
#include "engine/sync/chunker.h"

ABSL_FLAG(std::string, store, "", "converge-store address (ingest)");
ABSL_FLAG(std::string, notify, "", "converge-notify address (fanout)");
ABSL_FLAG(std::string, service_token, "", "service token of the deployment (plaintext deployments)");
ABSL_FLAG(std::string, token_signing_key, "",
          "management's token signing key: the load generator mints device tokens for its simulated devices");
ABSL_FLAG(std::string, namespace_id, "bench-load", "namespace to use");
ABSL_FLAG(int, mib, 256, "ingest: MiB of new chunk data");
ABSL_FLAG(int, streams, 2, "ingest: parallel PutChunks streams");
ABSL_FLAG(int, commits, 2000, "ingest: number of small commits");
ABSL_FLAG(int, threads, 8, "ingest: threads making small commits");
ABSL_FLAG(int, files, 50000, "history: live files at the end");
ABSL_FLAG(std::string, user_id, "bench-load", "ingest, history: the namespace's owner");
ABSL_FLAG(int, subscribers, 1000, "fanout: subscriber streams");
ABSL_FLAG(int, events, 5, "fanout: events to publish");
ABSL_FLAG(std::string, file, "", "chunking: a file to chunk (default: --mib of random bytes); compression: the file");
ABSL_FLAG(std::string, folder, "", "verify: a folder an engine synced");
ABSL_FLAG(int, call_mib, 32, "compression: MiB of chunks per call (one zstd stream each)");

namespace {

namespace store_v1 = converge::store::v1;
namespace notify_v1 = converge::notification::v1;
using converge::Digest;

constexpr char kDevice[] = "bench-device";

std::shared_ptr<grpc::Channel> OwnChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection of its own
  args.SetMaxSendMessageSize(16 << 20);
  args.SetMaxReceiveMessageSize(16 << 20);
  // TLS with the service certificate (--tls_ca/--tls_cert/--tls_key), as the services use.
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds = converge::ChannelCredentials(converge::TlsFromFlags());
  if (!creds.ok()) {
    std::cerr << "converge-bench: " << creds.status().message() << "\n";
    exit(2);
  }
  return grpc::CreateCustomChannel(address, *creds, args);
}

// DeviceToken mints a token for a simulated device (empty without --token_signing_key).
std::string DeviceToken(const std::string& device, const std::string& ns) {
  static std::unique_ptr<converge::TokenSigner> signer = [] {
    const std::string key = absl::GetFlag(FLAGS_token_signing_key);
    if (key.empty()) return std::unique_ptr<converge::TokenSigner>();
    auto s = converge::TokenSigner::FromPemFile(key);
    if (!s.ok()) {
      std::cerr << "converge-bench: " << s.status().message() << "\n";
      exit(2);
    }
    return std::move(*s);
  }();
  if (signer == nullptr) return "";
  converge::DeviceClaims claims;
  claims.device_id = device;
  claims.user_id = absl::GetFlag(FLAGS_user_id);
  claims.namespaces = {ns};
  claims.issued_at = absl::Now();
  claims.expires_at = claims.issued_at + absl::Minutes(30);
  absl::StatusOr<std::string> token = signer->Sign(claims);
  return token.ok() ? *token : "";
}

// AsDevice authorizes a call as the simulated device `kDevice` of `ns`.
void AsDevice(grpc::ClientContext* ctx, const std::string& ns) {
  static const std::string token = DeviceToken(kDevice, ns);
  if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
}

void Die(const std::string& what, const grpc::Status& s) {
  std::cerr << "converge-bench: " << what << ": " << s.error_message() << "\n";
  exit(1);
}

std::string Random(std::mt19937_64& rng, size_t n) {
  std::string out(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    memcpy(out.data() + i, &v, std::min<size_t>(8, n - i));
  }
  return out;
}

converge::FileVersion FileOf(const std::string& path, const std::vector<converge::ChunkRef>& chunks, uint64_t size) {
  converge::FileVersion v;
  v.file_id = std::string(converge::kFileIdBytes, 'b');
  v.path = path;
  v.size = size;
  v.content_sha256 = converge::ContentDigest(chunks);
  v.chunks = chunks;
  return v;
}

// PutChunk uploads one chunk (its own call) as the bench's device.
void PutChunk(store_v1::StoreService::Stub* stub, const std::string& ns, const std::string& data) {
  grpc::ClientContext ctx;
  AsDevice(&ctx, ns);
  store_v1::PutChunksResponse resp;
  auto writer = stub->PutChunks(&ctx, &resp);
  store_v1::PutChunksRequest req;
  req.set_namespace_id(ns);
  req.set_device_id(kDevice);
  req.set_sha256(converge::DigestToBytes(converge::HashOf(data)));
  req.set_data(data);
  writer->Write(req);
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  if (!s.ok()) Die("PutChunks", s);
}

// CommitFile commits one file of `chunks` as the bench's device.
void CommitFile(store_v1::StoreService::Stub* stub, const std::string& ns, const std::string& path,
                const std::vector<converge::ChunkRef>& chunks, uint64_t size) {
  grpc::ClientContext ctx;
  AsDevice(&ctx, ns);
  store_v1::CommitRequest req;
  req.set_namespace_id(ns);
  req.set_device_id(kDevice);
  converge::wire::FileVersionToProto(FileOf(path, chunks, size), req.add_files());
  store_v1::CommitResponse resp;
  grpc::Status s = stub->Commit(&ctx, req, &resp);
  if (!s.ok()) Die("Commit", s);
}

// IngestChunks uploads `mib` random 1 MiB chunks over parallel streams, then commits them as
// one file; returns the seconds it took.
double IngestChunks(const std::string& address, const std::string& ns, int mib, int streams, std::mt19937_64* rng) {
  std::vector<std::string> chunks(mib);
  std::vector<converge::ChunkRef> refs(mib);
  for (int i = 0; i < mib; ++i) {
    chunks[i] = Random(*rng, 1 << 20);
    refs[i] = {converge::HashOf(chunks[i]), 1u << 20};
  }
  const absl::Time t0 = absl::Now();
  std::vector<std::thread> senders;
  for (int s = 0; s < streams; ++s) {
    senders.emplace_back([&, s] {
      auto own = store_v1::StoreService::NewStub(OwnChannel(address));
      grpc::ClientContext ctx;
      AsDevice(&ctx, ns);
      store_v1::PutChunksResponse resp;
      auto writer = own->PutChunks(&ctx, &resp);
      for (int i = s; i < mib; i += streams) {
        store_v1::PutChunksRequest req;
        req.set_namespace_id(ns);
        req.set_device_id(kDevice);
        req.set_sha256(converge::DigestToBytes(refs[i].sha256));
        req.set_data(chunks[i]);
        if (!writer->Write(req)) break;
      }
      writer->WritesDone();
      grpc::Status st = writer->Finish();
      if (!st.ok()) Die("PutChunks", st);
    });
  }
  for (auto& t : senders) t.join();
  auto stub = store_v1::StoreService::NewStub(OwnChannel(address));
  CommitFile(stub.get(), ns, absl::StrCat("ingest/", absl::ToUnixNanos(t0), ".bin"), refs,
             static_cast<uint64_t>(mib) << 20);
  return absl::ToDoubleSeconds(absl::Now() - t0);
}

// SmallCommits makes `commits` commits of one 1 KiB file each from `threads` threads; returns
// their latencies (ms, sorted) and *seconds, the time they took together.
std::vector<double> SmallCommits(const std::string& address, const std::string& ns, int commits, int threads,
                                 std::mt19937_64* rng, double* seconds) {
  const std::string small = Random(*rng, 1024);
  const converge::ChunkRef small_ref{converge::HashOf(small), 1024};
  PutChunk(store_v1::StoreService::NewStub(OwnChannel(address)).get(), ns, small);
  std::atomic<int> next{0};
  std::vector<double> latencies_ms(commits);
  const absl::Time t1 = absl::Now();
  std::vector<std::thread> committers;
  for (int t = 0; t < threads; ++t) {
    committers.emplace_back([&] {
      auto own = store_v1::StoreService::NewStub(OwnChannel(address));
      for (int i = next++; i < commits; i = next++) {
        const absl::Time start = absl::Now();
        CommitFile(own.get(), ns, absl::StrCat("small/", absl::ToUnixNanos(t1), "/", i), {small_ref}, 1024);
        latencies_ms[i] = absl::ToDoubleMilliseconds(absl::Now() - start);
      }
    });
  }
  for (auto& t : committers) t.join();
  *seconds = absl::ToDoubleSeconds(absl::Now() - t1);
  std::sort(latencies_ms.begin(), latencies_ms.end());
  return latencies_ms;
}

// RegisterAsMember registers `ns` with the bench's device as its member (owner --user_id).
void RegisterAsMember(store_v1::StoreService::Stub* stub, const std::string& ns) {
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + absl::GetFlag(FLAGS_service_token));
  store_v1::RegisterNamespaceRequest req;
  req.set_namespace_id(ns);
  req.set_owner_user_id(absl::GetFlag(FLAGS_user_id));
  req.add_member_device_ids(kDevice);
  store_v1::RegisterNamespaceResponse resp;
  grpc::Status s = stub->RegisterNamespace(&ctx, req, &resp);
  if (!s.ok()) Die("RegisterNamespace", s);
}

// UploadContents uploads every chunk of `changes` (contents[i] is changes[i]'s bytes) in one call.
void UploadContents(store_v1::StoreService::Stub* stub, const std::string& ns,
                    const std::vector<converge::FileVersion>& changes, const std::vector<std::string>& contents) {
  grpc::ClientContext ctx;
  AsDevice(&ctx, ns);
  store_v1::PutChunksResponse resp;
  auto writer = stub->PutChunks(&ctx, &resp);
  for (size_t f = 0; f < contents.size(); ++f) {
    uint64_t at = 0;
    for (const converge::ChunkRef& ref : changes[f].chunks) {
      store_v1::PutChunksRequest req;
      req.set_namespace_id(ns);
      req.set_device_id(kDevice);
      req.set_sha256(converge::DigestToBytes(ref.sha256));
      req.set_data(contents[f].substr(at, ref.length));
      at += ref.length;
      if (!writer->Write(req)) break;
    }
  }
  writer->WritesDone();
  if (grpc::Status s = writer->Finish(); !s.ok()) Die("PutChunks", s);
}

// CommitChanges commits `changes` as the bench's device; returns the seq.
uint64_t CommitChanges(store_v1::StoreService::Stub* stub, const std::string& ns,
                       const std::vector<converge::FileVersion>& changes) {
  grpc::ClientContext ctx;
  AsDevice(&ctx, ns);
  store_v1::CommitRequest req;
  req.set_namespace_id(ns);
  req.set_device_id(kDevice);
  for (const converge::FileVersion& v : changes) converge::wire::FileVersionToProto(v, req.add_files());
  store_v1::CommitResponse resp;
  if (grpc::Status s = stub->Commit(&ctx, req, &resp); !s.ok()) Die("Commit", s);
  return resp.seq();
}

int Ingest() {
  const std::string address = absl::GetFlag(FLAGS_store);
  const std::string ns = absl::GetFlag(FLAGS_namespace_id);
  RegisterAsMember(store_v1::StoreService::NewStub(OwnChannel(address)).get(), ns);
  std::mt19937_64 rng(std::random_device{}());
  // 1) New chunk data, durable; 2) small commits, one 1 KiB file each, from several threads.
  const int mib = absl::GetFlag(FLAGS_mib);
  const double ingest_s = IngestChunks(address, ns, mib, absl::GetFlag(FLAGS_streams), &rng);
  const int commits = absl::GetFlag(FLAGS_commits);
  const int threads = absl::GetFlag(FLAGS_threads);
  double commits_s = 0;
  const std::vector<double> latencies_ms = SmallCommits(address, ns, commits, threads, &rng, &commits_s);
  printf("{\"ingest_mib\": %d, \"ingest_seconds\": %.4f, \"ingest_mb_per_s\": %.1f, "
         "\"commits\": %d, \"commit_threads\": %d, \"commit_seconds\": %.4f, \"commits_per_s\": %.1f, "
         "\"commit_p50_ms\": %.3f, \"commit_p99_ms\": %.3f}\n",
         mib, ingest_s, mib * 1.048576 / ingest_s, commits, threads, commits_s, commits / commits_s,
         latencies_ms[commits / 2], latencies_ms[std::min(commits - 1, commits * 99 / 100)]);
  return 0;
}

// One simulated engine's Subscribe stream.
class Subscriber : public grpc::ClientReadReactor<notify_v1::Event> {
 public:
  Subscriber(notify_v1::NotificationService::Stub* stub, const std::string& ns, int id,
             std::atomic<uint64_t>* reached, absl::Mutex* mu, std::vector<absl::Time>* arrivals)
      : reached_(reached), mu_(mu), arrivals_(arrivals) {
    req_.set_device_id(absl::StrCat("bench-sub-", id));
    req_.add_namespace_ids(ns);
    const std::string token = DeviceToken(req_.device_id(), ns);
    if (!token.empty()) ctx_.AddMetadata("authorization", "Bearer " + token);
    stub->async()->Subscribe(&ctx_, &req_, this);
    StartRead(&event_);
    StartCall();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;
    const absl::Time now = absl::Now();
    if (event_.seq() > seen_) {
      seen_ = event_.seq();
      absl::MutexLock lock(mu_);
      (*arrivals_)[seen_] = std::max((*arrivals_)[seen_], now);
      ++reached_[seen_];
    }
    StartRead(&event_);
  }
  void OnDone(const grpc::Status&) override { done_ = true; }
  void Cancel() { ctx_.TryCancel(); }
  bool done() const { return done_; }

 private:
  grpc::ClientContext ctx_;
  notify_v1::SubscribeRequest req_;
  notify_v1::Event event_;
  uint64_t seen_ = 0;
  std::atomic<uint64_t>* reached_;
  absl::Mutex* mu_;
  std::vector<absl::Time>* arrivals_;
  std::atomic<bool> done_{false};
};

int Fanout() {
  const std::string address = absl::GetFlag(FLAGS_notify);
  const std::string ns = absl::StrCat(absl::GetFlag(FLAGS_namespace_id), "-", absl::ToUnixNanos(absl::Now()));
  const int n = absl::GetFlag(FLAGS_subscribers);
  const int events = absl::GetFlag(FLAGS_events);
  std::vector<std::atomic<uint64_t>> reached(events + 2);
  std::vector<absl::Time> arrivals(events + 2, absl::InfinitePast());
  absl::Mutex mu;
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<notify_v1::NotificationService::Stub>> stubs;
  std::vector<std::unique_ptr<Subscriber>> subs;
  const absl::Time connect_start = absl::Now();
  for (int i = 0; i < n; ++i) {
    channels.push_back(OwnChannel(address));
    stubs.push_back(notify_v1::NotificationService::NewStub(channels.back()));
  }
  // The first publish (seq 1) doubles as "everyone is subscribed": wait for the head event
  // (seq 0 is not counted), so publish seq 1 repeatedly until all have it.
  for (int i = 0; i < n; ++i) {
    subs.push_back(std::make_unique<Subscriber>(stubs[i].get(), ns, i, reached.data(), &mu, &arrivals));
  }
  auto publisher = notify_v1::NotificationService::NewStub(OwnChannel(address));
  auto publish = [&](uint64_t seq) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + absl::GetFlag(FLAGS_service_token));
    notify_v1::PublishRequest req;
    req.set_namespace_id(ns);
    req.set_seq(seq);
    notify_v1::PublishResponse resp;
    grpc::Status s = publisher->Publish(&ctx, req, &resp);
    if (!s.ok()) Die("Publish", s);
    return resp.subscribers_notified();
  };
  // Wait until every stream is registered at the hub (Publish reports how many it reached).
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (publish(1) < static_cast<uint32_t>(n)) {
    if (absl::Now() > deadline) {
      std::cerr << "converge-bench: subscribers did not all connect\n";
      return 1;
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  const double connect_s = absl::ToDoubleSeconds(absl::Now() - connect_start);
  while (reached[1] < static_cast<uint64_t>(n)) absl::SleepFor(absl::Milliseconds(1));

  std::vector<double> fanout_ms;
  for (int e = 2; e < events + 2; ++e) {
    const absl::Time start = absl::Now();
    publish(e);
    const absl::Time limit = start + absl::Seconds(10);
    while (reached[e] < static_cast<uint64_t>(n) && absl::Now() < limit) absl::SleepFor(absl::Microseconds(100));
    absl::Time last;
    {
      absl::MutexLock lock(&mu);
      last = arrivals[e];
    }
    fanout_ms.push_back(reached[e] == static_cast<uint64_t>(n) ? absl::ToDoubleMilliseconds(last - start) : -1);
  }
  std::vector<double> sorted = fanout_ms;
  std::sort(sorted.begin(), sorted.end());
  printf("{\"subscribers\": %d, \"connect_seconds\": %.3f, \"fanout_ms\": [", n, connect_s);
  for (size_t i = 0; i < fanout_ms.size(); ++i) printf("%s%.3f", i ? ", " : "", fanout_ms[i]);
  printf("], \"fanout_median_ms\": %.3f, \"fanout_max_ms\": %.3f}\n", sorted[sorted.size() / 2], sorted.back());
  fflush(stdout);
  for (auto& s : subs) s->Cancel();
  for (auto& s : subs) {
    while (!s->done()) absl::SleepFor(absl::Milliseconds(1));
  }
  return 0;
}

double CpuSeconds() {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// Chunking: throughput of content-defined chunking and SHA-256 on this machine, and how chunk
// size bounds trade metadata (chunks per GiB) for dedup (distinct bytes) on a file.
int Chunking() {
  using converge::DigestToBytes;
  using converge::DigestToHex;
  using converge::HashOf;
  std::string data;
  const std::string path = absl::GetFlag(FLAGS_file);
  if (!path.empty()) {
    std::ifstream in(path, std::ios::binary);
    data.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  } else {
    std::mt19937_64 rng(1);
    data.resize(static_cast<size_t>(absl::GetFlag(FLAGS_mib)) << 20);
    for (size_t i = 0; i + 8 <= data.size(); i += 8) {
      const uint64_t v = rng();
      memcpy(&data[i], &v, 8);
    }
  }
  const double mb = static_cast<double>(data.size()) / 1e6;
  auto rate = [&](absl::Duration d) { return mb / absl::ToDoubleSeconds(d); };
  absl::Time t = absl::Now();
  const converge::Digest whole = HashOf(data);
  const double sha = rate(absl::Now() - t);
  printf("{\"bytes\": %zu, \"sha256_mb_per_s\": %.0f, \"params\": [", data.size(), sha);
  bool first = true;
  for (const converge::engine::ChunkParams& p :
       {converge::engine::ChunkParams{16 << 10, 64 << 10, 256 << 10}, converge::engine::ChunkParams{},
        converge::engine::ChunkParams{256 << 10, 1 << 20, 4 << 20}}) {
    const converge::engine::FastCdc cdc(p);
    t = absl::Now();
    std::vector<size_t> cuts;
    for (size_t pos = 0; pos < data.size();) {
      const size_t len = cdc.Cut(reinterpret_cast<const uint8_t*>(data.data()) + pos, data.size() - pos);
      cuts.push_back(len);
      pos += len;
    }
    const double cut = rate(absl::Now() - t);
    // Cut and hash every chunk, then distinct bytes.
    t = absl::Now();
    absl::flat_hash_set<std::string> seen;
    uint64_t distinct = 0;
    size_t pos = 0;
    for (size_t len : cuts) {
      if (seen.insert(DigestToBytes(HashOf(absl::string_view(data).substr(pos, len)))).second) distinct += len;
      pos += len;
    }
    const double hashed = rate(absl::Now() - t);
    printf("%s{\"min\": %u, \"avg\": %u, \"max\": %u, \"chunks\": %zu, \"mean_bytes\": %.0f, "
           "\"cdc_mb_per_s\": %.0f, \"chunk_sha_mb_per_s\": %.0f, \"distinct_bytes\": %lu, "
           "\"metadata_bytes_per_gib\": %.0f}",
           first ? "" : ", ", p.min_bytes, p.avg_bytes, p.max_bytes, cuts.size(),
           static_cast<double>(data.size()) / cuts.size(), cut, hashed, static_cast<unsigned long>(distinct),
           42.0 * cuts.size() * (1 << 30) / static_cast<double>(data.size()));
    first = false;
  }
  // The engine's own path: ChunkFile (read, cut, chunk hashes on a second core, content digest).
  t = absl::Now();
  const double cpu0 = CpuSeconds();
  const converge::engine::FileContent content = converge::engine::ChunkBytes(data);  // ChunkFile over memory
  const double chunkfile = rate(absl::Now() - t);
  const double chunkfile_cpu = mb / (CpuSeconds() - cpu0);  // per core-second
  if (content.size != data.size() || content.sha256 != converge::ContentDigest(content.chunks)) {
    return 1;
  }
  printf("], \"chunkfile_mb_per_s\": %.0f, \"chunkfile_mb_per_cpu_s\": %.0f, \"whole_sha256\": \"%s\"}\n",
         chunkfile, chunkfile_cpu, DigestToHex(whole).substr(0, 16).c_str());
  return 0;
}

// Compression: the bytes a file's chunks cost on the wire, each compressed on its own
// (CompressIfWorthIt: how chunks rest in the store), in one zstd stream per call of --call_mib
// (every chunk; only the chunks whose samples compress; or as the engine and store send them,
// StreamEncoder::Worth), and zstd over the whole file.
int Compression() {
  const std::string path = absl::GetFlag(FLAGS_file);
  std::ifstream in(path, std::ios::binary);
  if (path.empty() || !in) {
    std::cerr << "compression needs --file\n";
    return 2;
  }
  const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const converge::engine::FileContent content = converge::engine::ChunkBytes(data);
  const uint64_t call_bytes = static_cast<uint64_t>(absl::GetFlag(FLAGS_call_mib)) << 20;
  uint64_t per_chunk = 0, stream = 0, raw_sent = 0, in_call = 0, stream_all = 0, sent = 0;
  size_t pos = 0;
  auto encoder = std::make_unique<converge::StreamEncoder>();
  auto engine = std::make_unique<converge::StreamEncoder>();  // as the engine sends (Worth)
  auto encoder_all = std::make_unique<converge::StreamEncoder>();  // every chunk into the stream
  for (const converge::ChunkRef& c : content.chunks) {
    const absl::string_view bytes = absl::string_view(data).substr(pos, c.length);
    pos += c.length;
    std::optional<std::string> z = converge::CompressIfWorthIt(bytes);
    per_chunk += z.has_value() ? z->size() : bytes.size();
    if (in_call >= call_bytes) {
      encoder = std::make_unique<converge::StreamEncoder>();
      encoder_all = std::make_unique<converge::StreamEncoder>();
      engine = std::make_unique<converge::StreamEncoder>();
      in_call = 0;
    }
    in_call += bytes.size();
    stream_all += encoder_all->Encode(bytes)->size();
    sent += engine->Worth(bytes) ? engine->Encode(bytes)->size() : bytes.size();
    if (converge::LooksCompressible(bytes)) {
      stream += encoder->Encode(bytes)->size();
    } else {
      stream += bytes.size();
      raw_sent += bytes.size();
    }
  }
  printf("{\"bytes\": %zu, \"chunks\": %zu, \"per_chunk_zstd\": %lu, \"stream_of_compressible_chunks\": %lu, "
         "\"sent_raw_by_it\": %lu, \"stream_of_every_chunk\": %lu, \"as_sent\": %lu, \"whole_file_zstd\": %zu}\n",
         data.size(), content.chunks.size(), static_cast<unsigned long>(per_chunk), static_cast<unsigned long>(stream),
         static_cast<unsigned long>(raw_sent), static_cast<unsigned long>(stream_all), static_cast<unsigned long>(sent),
         converge::Compress(data).size());
  return 0;
}

// HistoryFile: a file of the seeded history, as last committed.
struct HistoryFile {
  std::string path;
  std::string file_id;
  uint64_t seq = 0;
};

// HistorySize draws a file size: 85% 1-8 KiB, 14% 8-64 KiB, 1% 1-5 MiB.
size_t HistorySize(std::mt19937_64& rng) {
  const uint64_t r = rng() % 100;
  if (r < 85) return 1024 + rng() % (7 << 10);
  if (r < 99) return (8 << 10) + rng() % (56 << 10);
  return (1 << 20) + rng() % (4 << 20);
}

int History() {
  const std::string ns = absl::GetFlag(FLAGS_namespace_id);
  auto stub = store_v1::StoreService::NewStub(OwnChannel(absl::GetFlag(FLAGS_store)));
  RegisterAsMember(stub.get(), ns);
  const int commits = absl::GetFlag(FLAGS_commits);
  const int target_files = absl::GetFlag(FLAGS_files);
  std::mt19937_64 rng(20261205);
  std::vector<HistoryFile> live;
  uint64_t bytes = 0, versions = 0, deletions = 0, next_file = 0;
  const absl::Time t0 = absl::Now();
  for (int c = 0; c < commits; ++c) {
    // New files to reach the target by the last commit; one edit in two commits, a deletion in ten.
    const int left = commits - c;
    const int wanted = static_cast<int>((target_files - static_cast<int>(live.size()) + left - 1) / left) + 1;
    std::vector<converge::FileVersion> changes;
    std::vector<std::string> contents;
    std::vector<int> slots;  // index into live, -1 for a new file
    auto add_content = [&](converge::FileVersion v) {
      const std::string data = Random(rng, HistorySize(rng));
      const converge::engine::FileContent content = converge::engine::ChunkBytes(data);
      v.size = content.size;
      v.chunks = content.chunks;
      v.content_sha256 = content.sha256;
      v.mtime_ns = absl::ToUnixNanos(t0) + c * 1000000LL;
      bytes += data.size();
      contents.push_back(data);
      changes.push_back(std::move(v));
    };
    for (int i = 0; i < wanted; ++i) {
      converge::FileVersion v;
      v.file_id = Random(rng, converge::kFileIdBytes);
      v.path = absl::StrCat("seed/d", next_file % 200, "/f", next_file, ".bin");
      ++next_file;
      slots.push_back(-1);
      add_content(std::move(v));
    }
    if (!live.empty() && rng() % 2 == 0) {
      const int at = static_cast<int>(rng() % live.size());
      converge::FileVersion v;
      v.file_id = live[at].file_id;
      v.path = live[at].path;
      v.base_seq = live[at].seq;
      slots.push_back(at);
      add_content(std::move(v));
    }
    int deleted = -1;
    if (live.size() > 10 && (rng() % 10 == 0 || changes.empty())) {
      deleted = static_cast<int>(rng() % live.size());
      if (!slots.empty() && slots.back() == deleted) deleted = -1;
    }
    if (!changes.empty()) UploadContents(stub.get(), ns, changes, contents);  // none for a deletion alone
    if (deleted >= 0) {
      converge::FileVersion v;
      v.file_id = live[deleted].file_id;
      v.path = live[deleted].path;
      v.base_seq = live[deleted].seq;
      v.deleted = true;
      changes.push_back(std::move(v));
    }
    const uint64_t seq = CommitChanges(stub.get(), ns, changes);
    versions += changes.size();
    for (size_t f = 0; f < slots.size(); ++f) {
      if (slots[f] < 0) {
        live.push_back(HistoryFile{changes[f].path, changes[f].file_id, seq});
      } else {
        live[slots[f]].seq = seq;
      }
    }
    if (deleted >= 0) {
      live[deleted] = live.back();
      live.pop_back();
      ++deletions;
    }
  }
  printf("{\"commits\": %d, \"versions\": %lu, \"deletions\": %lu, \"live_files\": %zu, \"bytes\": %lu, "
         "\"seconds\": %.1f}\n",
         commits, static_cast<unsigned long>(versions), static_cast<unsigned long>(deletions), live.size(),
         static_cast<unsigned long>(bytes), absl::ToDoubleSeconds(absl::Now() - t0));
  return 0;
}

int Verify() {
  const std::string folder = absl::GetFlag(FLAGS_folder);
  auto fs = converge::engine::LocalFilesystem::Open(folder);
  if (!fs.ok()) {
    std::cerr << fs.status() << "\n";
    return 1;
  }
  auto index = converge::engine::LocalIndex::Open((*fs)->state_dir() + "/index.rocksdb");
  if (!index.ok()) {
    std::cerr << index.status() << "\n";
    return 1;
  }
  converge::engine::Scanner scanner(fs->get(), index->get(), converge::Clock::Real(), converge::engine::ChunkParams{});
  const absl::Time t0 = absl::Now();
  absl::StatusOr<std::vector<std::string>> suspects = scanner.Suspects(converge::engine::ScanFilter{});
  const double seconds = absl::ToDoubleSeconds(absl::Now() - t0);
  if (!suspects.ok()) {
    std::cerr << suspects.status() << "\n";
    return 1;
  }
  // VmHWM: this process's own peak (ru_maxrss would start from the parent's at the fork).
  long peak_kib = 0;
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) peak_kib = strtol(line.c_str() + 6, nullptr, 10);
  }
  printf("{\"seconds\": %.4f, \"suspects\": %zu, \"max_rss_bytes\": %ld}\n", seconds, suspects->size(),
         peak_kib * 1024L);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  const std::string command = args.size() > 1 ? args[1] : "";
  if (command == "ingest") return Ingest();
  if (command == "fanout") return Fanout();
  if (command == "history") return History();
  if (command == "chunking") return Chunking();
  if (command == "compression") return Compression();
  if (command == "verify") return Verify();
  std::cerr << "usage: converge-bench ingest|history|fanout|chunking|compression|verify [flags]  (see --help)\n";
  return 2;
}
