#include "engine/client/grpc_store_client.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/base/version.h"
#include "common/model/store_behind.h"
#include "common/rpc/grpc_status.h"
#include "common/wire/store_wire.h"
#include "common/wire/wire.h"

namespace converge::engine {
namespace {

constexpr size_t kDigestsPerCall = 10000;
constexpr size_t kDigestsPerSignaturesCall = 4096;  // the store's limit for GetChunkSignatures

}  // namespace

GrpcStoreClient::GrpcStoreClient(std::shared_ptr<grpc::Channel> channel, std::string namespace_id,
                                 std::string device_id)
    : stub_(store::v1::StoreService::NewStub(std::move(channel))),
      namespace_id_(std::move(namespace_id)),
      device_id_(std::move(device_id)) {}

store::v1::StoreService::Stub* GrpcStoreClient::stub() {
  absl::MutexLock lock(&stub_mu_);
  return stub_.get();
}

absl::Status GrpcStoreClient::Checked(const grpc::Status& status, const char* what) {
  absl::Status out = FromGrpcStatus(status, what);
  if (!redirect_ || !IsNamespaceMoved(out)) return out;
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = redirect_();
  if (!channel.ok()) return out;  // asked again at the next call
  {
    absl::MutexLock lock(&stub_mu_);
    retired_.push_back(std::move(stub_));
    stub_ = store::v1::StoreService::NewStub(std::move(*channel));
  }
  return absl::UnavailableError(absl::StrCat(out.message(), " (its store shard was asked again: retry)"));
}

void GrpcStoreClient::Prepare(grpc::ClientContext* ctx, absl::Duration deadline) const {
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  ctx->AddMetadata(kVersionHeader, absl::StrCat("converge-engine/", kVersion));
}

absl::StatusOr<std::vector<Digest>> GrpcStoreClient::FindMissing(const std::vector<Digest>& digests) {
  std::vector<Digest> missing;
  for (size_t start = 0; start < digests.size(); start += kDigestsPerCall) {
    grpc::ClientContext ctx;
    Prepare(&ctx, absl::Seconds(30));
    store::v1::FindMissingChunksRequest req;
    req.set_namespace_id(namespace_id_);
    req.set_device_id(device_id_);
    for (size_t i = start; i < std::min(digests.size(), start + kDigestsPerCall); ++i) {
      req.add_sha256(DigestToBytes(digests[i]));
    }
    store::v1::FindMissingChunksResponse resp;
    CONVERGE_RETURN_IF_ERROR(Checked(stub()->FindMissingChunks(&ctx, req, &resp), "store.FindMissingChunks"));
    CONVERGE_ASSIGN_OR_RETURN(std::vector<Digest> part, wire::DigestsFromProto(resp.missing_sha256()));
    missing.insert(missing.end(), part.begin(), part.end());
  }
  return missing;
}

absl::StatusOr<absl::flat_hash_map<std::string, Signature>> GrpcStoreClient::Signatures(
    const std::vector<std::vector<Digest>>& bases) {
  absl::flat_hash_map<std::string, Signature> out;
  for (size_t start = 0; start < bases.size();) {
    grpc::ClientContext ctx;
    Prepare(&ctx, absl::Seconds(60));
    store::v1::GetChunkSignaturesRequest req;
    req.set_namespace_id(namespace_id_);
    req.set_device_id(device_id_);
    // One chunk goes as itself (every store knows that), several as a sequence.
    for (size_t digests = 0;
         start < bases.size() && (digests == 0 || digests + bases[start].size() <= kDigestsPerSignaturesCall); ++start) {
      const std::vector<Digest>& base = bases[start];
      digests += base.size();
      if (base.size() == 1) {
        req.add_sha256(DigestToBytes(base[0]));
      } else if (!base.empty() && base.size() <= kMaxDeltaBases) {
        store::v1::ChunkSequence* seq = req.add_sequences();
        for (const Digest& d : base) seq->add_sha256(DigestToBytes(d));
      }
    }
    store::v1::GetChunkSignaturesResponse resp;
    CONVERGE_RETURN_IF_ERROR(Checked(stub()->GetChunkSignatures(&ctx, req, &resp), "store.GetChunkSignatures"));
    for (const store::v1::ChunkSignature& p : resp.signatures()) {
      // A malformed signature only costs a larger upload: check it is consistent, else skip.
      if (p.block_bytes() == 0 || p.weak_size() != p.strong_size() ||
          static_cast<uint64_t>(p.weak_size()) != (p.length() + p.block_bytes() - 1) / p.block_bytes()) {
        continue;
      }
      Signature sig;
      sig.block_bytes = p.block_bytes();
      sig.length = p.length();
      sig.weak.assign(p.weak().begin(), p.weak().end());
      sig.strong.assign(p.strong().begin(), p.strong().end());
      std::string key = p.sha256();
      for (const std::string& d : p.sequence()) key += d;
      out.emplace(std::move(key), std::move(sig));
    }
  }
  return out;
}

absl::Status GrpcStoreClient::PutChunks(const std::function<absl::StatusOr<bool>(ChunkUpload*)>& next) {
  grpc::ClientContext ctx;
  Prepare(&ctx, absl::Minutes(30));
  store::v1::PutChunksResponse resp;
  std::unique_ptr<grpc::ClientWriter<store::v1::PutChunksRequest>> writer = stub()->PutChunks(&ctx, &resp);
  bool first = true;
  absl::Status produced;
  ChunkUpload chunk;
  std::unique_ptr<StreamEncoder> stream;  // made for the first chunk that may go in it
  while (true) {
    absl::StatusOr<bool> more = next(&chunk);
    if (!more.ok()) {
      produced = more.status();
      ctx.TryCancel();
      break;
    }
    if (!*more) break;
    store::v1::PutChunksRequest req;
    if (first) {
      req.set_namespace_id(namespace_id_);
      req.set_device_id(device_id_);
      first = false;
    }
    req.set_sha256(DigestToBytes(chunk.sha256));
    const bool streamable = chunk.in_stream && !chunk.delta && chunk.encoding == ChunkEncoding::kRaw;
    if (streamable && stream == nullptr) stream = std::make_unique<StreamEncoder>();
    if (streamable && stream->Worth(chunk.data)) {
      absl::StatusOr<std::string> piece = stream->Encode(chunk.data);
      if (!piece.ok()) {
        produced = piece.status();
        ctx.TryCancel();
        break;
      }
      req.set_data(std::move(*piece));
      req.set_encoding(store::v1::CHUNK_ENCODING_ZSTD_STREAM);
      if (!writer->Write(req)) break;
      continue;
    }
    req.set_data(std::move(chunk.data));
    if (chunk.delta) {
      req.set_encoding(store::v1::CHUNK_ENCODING_RSYNC_DELTA);
      if (chunk.bases.size() == 1) {
        req.set_base_sha256(DigestToBytes(chunk.bases[0]));
      } else {
        for (const Digest& d : chunk.bases) req.add_base_sequence(DigestToBytes(d));
      }
      req.set_block_bytes(chunk.block_bytes);
    } else {
      req.set_encoding(chunk.encoding == ChunkEncoding::kZstd ? store::v1::CHUNK_ENCODING_ZSTD
                                                               : store::v1::CHUNK_ENCODING_RAW);
    }
    if (!writer->Write(req)) break;  // the server ended the call: Finish says why
  }
  if (first && produced.ok()) {
    ctx.TryCancel();
    writer->Finish().ok();
    return absl::OkStatus();  // nothing to send
  }
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  CONVERGE_RETURN_IF_ERROR(produced);
  return Checked(s, "store.PutChunks");
}

absl::StatusOr<uint64_t> GrpcStoreClient::Commit(const std::vector<FileVersion>& changes) {
  return CommitWithChunks(changes, {});
}

absl::StatusOr<uint64_t> GrpcStoreClient::CommitWithChunks(const std::vector<FileVersion>& changes,
                                                           const std::vector<InlineChunk>& chunks) {
  return CommitSigned(changes, chunks, "");
}

absl::StatusOr<uint64_t> GrpcStoreClient::CommitSigned(const std::vector<FileVersion>& changes,
                                                       const std::vector<InlineChunk>& chunks,
                                                       const std::string& attestation) {
  grpc::ClientContext ctx;
  Prepare(&ctx, absl::Seconds(60));
  store::v1::CommitRequest req;
  req.set_namespace_id(namespace_id_);
  req.set_device_id(device_id_);
  for (const FileVersion& v : changes) wire::FileVersionToProto(v, req.add_files());
  for (const InlineChunk& c : chunks) {
    store::v1::InlineChunk* out = req.add_chunks();
    out->set_sha256(DigestToBytes(c.sha256));
    out->set_data(c.data);
  }
  req.set_attestation(attestation);
  store::v1::CommitResponse resp;
  CONVERGE_RETURN_IF_ERROR(Checked(stub()->Commit(&ctx, req, &resp), "store.Commit"));
  return resp.seq();
}

void GrpcStoreClient::KeepSentAlong(const store::v1::PullResponse& resp) {
  absl::MutexLock lock(&sent_along_mu_);
  for (const store::v1::InlineChunk& c : resp.chunks()) {
    absl::StatusOr<Digest> d = DigestFromBytes(c.sha256());
    // Never trust the store's bytes: a chunk that does not match its digest is fetched instead.
    if (!d.ok() || c.data().empty() || HashOf(c.data()) != *d) continue;
    if (sent_along_bytes_ + c.data().size() > kSentAlongBytes) return;
    sent_along_bytes_ += c.data().size();
    sent_along_[*d] = c.data();
  }
}

std::vector<std::optional<std::string>> GrpcStoreClient::TakeSentAlong(const std::vector<ChunkWant>& wants) {
  std::vector<std::optional<std::string>> found(wants.size());
  absl::MutexLock lock(&sent_along_mu_);
  for (size_t i = 0; i < wants.size(); ++i) {
    auto it = sent_along_.find(wants[i].sha256);
    if (it == sent_along_.end()) continue;
    sent_along_bytes_ -= it->second.size();
    found[i] = std::move(it->second);
    sent_along_.erase(it);
  }
  return found;
}

absl::Status GrpcStoreClient::Pull(uint64_t since_seq, uint32_t max_commits,
                                   const std::function<absl::Status(const converge::Commit&)>& fn) {
  {
    absl::MutexLock lock(&sent_along_mu_);  // what an earlier pull sent along and nobody asked for
    sent_along_.clear();
    sent_along_bytes_ = 0;
  }
  grpc::ClientContext ctx;
  Prepare(&ctx, absl::Minutes(30));
  store::v1::PullRequest req;
  req.set_namespace_id(namespace_id_);
  req.set_device_id(device_id_);
  req.set_since_seq(since_seq);
  req.set_max_commits(max_commits);
  req.set_sealed(sealed_);
  auto reader = stub()->Pull(&ctx, req);
  store::v1::PullResponse resp;
  absl::Status handled;
  uint64_t expected = since_seq + 1;
  while (handled.ok() && reader->Read(&resp)) {
    absl::StatusOr<converge::Commit> commit = wire::CommitFromProto(resp.commit());
    if (!commit.ok()) {
      handled = commit.status();
    } else if (commit->seq != expected || commit->namespace_id != namespace_id_) {
      handled = absl::DataLossError(absl::StrCat("store sent seq ", commit->seq, " of '",
                                                 commit->namespace_id, "', expected ", expected));
    } else {
      ++expected;
      KeepSentAlong(resp);
      handled = fn(*commit);
    }
  }
  if (!handled.ok()) {
    ctx.TryCancel();
    reader->Finish().ok();
    return handled;
  }
  return Checked(reader->Finish(), "store.Pull");
}

absl::Status GrpcStoreClient::Ack(uint64_t seq, const std::vector<std::string>& blocked) {
  grpc::ClientContext ctx;
  Prepare(&ctx, absl::Seconds(10));
  store::v1::AckRequest req;
  req.set_namespace_id(namespace_id_);
  req.set_device_id(device_id_);
  req.set_seq(seq);
  for (size_t i = 0; i < blocked.size() && i < kMaxBlockedReported; ++i) {
    req.add_blocked(blocked[i].substr(0, kMaxBlockedReportBytes));
  }
  req.set_blocked_count(blocked.size());
  store::v1::AckResponse resp;
  return Checked(stub()->Ack(&ctx, req, &resp), "store.Ack");
}

namespace {

// DecodeChunk returns the raw bytes of a downloaded chunk (its data moved out of `resp`).
absl::StatusOr<std::string> DecodeChunk(store::v1::GetChunksResponse* resp, const ChunkWant& want,
                                        const ChunkSource::BaseReader& read_base, StreamDecoder* stream) {
  switch (resp->encoding()) {
    case store::v1::CHUNK_ENCODING_RAW:
      return std::move(*resp->mutable_data());
    case store::v1::CHUNK_ENCODING_ZSTD:
      return Decompress(resp->data(), kMaxChunkBytes);
    case store::v1::CHUNK_ENCODING_ZSTD_STREAM:
      return stream->Decode(resp->data(), kMaxChunkBytes);
    case store::v1::CHUNK_ENCODING_ZSTD_DELTA: {
      std::string named = resp->base_sha256();  // the base the store used, as SequenceKey
      for (const std::string& d : resp->base_sequence()) named += d;
      if (want.bases.empty() || read_base == nullptr || named != SequenceKey(want.bases)) {
        return absl::DataLossError("store sent a delta against chunks we did not offer");
      }
      std::string base;
      for (const Digest& d : want.bases) {
        CONVERGE_ASSIGN_OR_RETURN(std::string part, read_base(d));
        base += part;
      }
      return DeltaDecode(resp->data(), base, kMaxChunkBytes);
    }
    default:
      return absl::DataLossError("store sent an unknown chunk encoding");
  }
}

}  // namespace

absl::Status GrpcStoreClient::Fetch(const std::vector<ChunkWant>& wants, const BaseReader& read_base,
                                    const Sink& sink) {
  // What a Pull sent along is served from memory; only the rest is asked for, in one call.
  std::vector<std::optional<std::string>> along = TakeSentAlong(wants);
  std::vector<const ChunkWant*> asked;
  for (size_t i = 0; i < wants.size(); ++i) {
    if (!along[i].has_value()) asked.push_back(&wants[i]);
  }
  if (asked.empty()) {
    for (size_t i = 0; i < wants.size(); ++i) CONVERGE_RETURN_IF_ERROR(sink(wants[i].sha256, *std::move(along[i])));
    return absl::OkStatus();
  }
  grpc::ClientContext ctx;
  Prepare(&ctx, absl::Minutes(5));
  store::v1::GetChunksRequest req;
  req.set_namespace_id(namespace_id_);
  req.set_device_id(device_id_);
  req.set_accept_zstd_stream(true);
  StreamDecoder stream;
  // Bases of one chunk go as base_sha256 (every store knows it), of several as base_sequences.
  bool any_base = false;
  bool any_sequence = false;
  for (const ChunkWant* w : asked) {
    any_base = any_base || (!w->bases.empty() && read_base != nullptr);
    any_sequence = any_sequence || (w->bases.size() > 1 && read_base != nullptr);
  }
  for (const ChunkWant* w : asked) {
    req.add_sha256(DigestToBytes(w->sha256));
    if (any_sequence) {
      store::v1::ChunkSequence* seq = req.add_base_sequences();
      for (const Digest& d : w->bases) seq->add_sha256(DigestToBytes(d));
    } else if (any_base) {
      req.add_base_sha256(w->bases.empty() ? "" : DigestToBytes(w->bases[0]));
    }
  }
  auto reader = stub()->GetChunks(&ctx, req);
  store::v1::GetChunksResponse resp;
  size_t received = 0;
  absl::Status handled;
  // In the order asked: each chunk sent along in its place among those the call brings.
  for (size_t i = 0; i < wants.size() && handled.ok(); ++i) {
    if (along[i].has_value()) {
      handled = sink(wants[i].sha256, *std::move(along[i]));
      continue;
    }
    if (!reader->Read(&resp)) break;
    const ChunkWant& want = wants[i];
    ++received;
    // Never trust the store's bytes: decode them and check them against the digest we asked for.
    absl::StatusOr<std::string> raw = DecodeChunk(&resp, want, read_base, &stream);
    if (!raw.ok() || resp.sha256() != DigestToBytes(want.sha256) || HashOf(*raw) != want.sha256) {
      handled = absl::DataLossError(absl::StrCat("store sent bad bytes for chunk ", DigestToHex(want.sha256),
                                                 raw.ok() ? "" : absl::StrCat(": ", raw.status().message())));
      break;
    }
    handled = sink(want.sha256, std::move(*raw));
  }
  if (handled.ok() && received == asked.size() && reader->Read(&resp)) {
    handled = absl::DataLossError("store sent more chunks than asked for");
  }
  if (!handled.ok()) {
    ctx.TryCancel();
    reader->Finish().ok();
    return handled;
  }
  CONVERGE_RETURN_IF_ERROR(Checked(reader->Finish(), "store.GetChunks"));
  if (received != asked.size()) {
    return absl::DataLossError(absl::StrCat("store sent ", received, " of ", asked.size(), " chunks"));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> GrpcStoreClient::ListFiles(const std::function<void(const FileVersion&)>& fn,
                                                   int64_t at_unix_ms) {
  CONVERGE_ASSIGN_OR_RETURN(Table table, List(fn, at_unix_ms));
  return table.seq;
}

absl::StatusOr<StoreClient::Table> GrpcStoreClient::ListTable(const std::function<void(const FileVersion&)>& fn) {
  return List(fn, -1);
}

absl::StatusOr<StoreClient::Table> GrpcStoreClient::List(const std::function<void(const FileVersion&)>& fn,
                                                         int64_t at_unix_ms) {
  grpc::ClientContext ctx;
  Prepare(&ctx, absl::Minutes(30));
  std::unique_ptr<grpc::ClientReaderInterface<store::v1::ListFilesResponse>> reader;
  if (at_unix_ms >= 0) {
    store::v1::ListFilesAtRequest req;
    req.set_namespace_id(namespace_id_);
    req.set_device_id(device_id_);
    req.set_at_unix_ms(at_unix_ms);
    reader = stub()->ListFilesAt(&ctx, req);
  } else {
    store::v1::ListFilesRequest req;
    req.set_namespace_id(namespace_id_);
    req.set_device_id(device_id_);
    req.set_sealed(sealed_);
    reader = stub()->ListFiles(&ctx, req);
  }
  store::v1::ListFilesResponse resp;
  Table head;
  absl::Status handled;
  while (handled.ok() && reader->Read(&resp)) {
    if (resp.head_seq() >= head.seq && resp.chain_head().size() == kDigestSize) {
      absl::StatusOr<Digest> chain = DigestFromBytes(resp.chain_head());
      if (chain.ok()) head.chain = *chain;
    }
    head.seq = std::max(head.seq, resp.head_seq());
    for (const auto& f : resp.files()) {
      absl::StatusOr<FileVersion> v = wire::FileVersionFromProto(f);
      if (!v.ok()) {
        handled = v.status();
        break;
      }
      if (absl::Status valid = ValidateFileVersion(*v); !valid.ok()) {
        handled = valid;
        break;
      }
      fn(*v);
    }
  }
  if (!handled.ok()) {
    ctx.TryCancel();
    reader->Finish().ok();
    return handled;
  }
  CONVERGE_RETURN_IF_ERROR(Checked(reader->Finish(), "store.ListFiles"));
  return head;
}

absl::StatusOr<std::vector<HistoryVersion>> GrpcStoreClient::ListVersions(const std::string& path, uint32_t limit) {
  grpc::ClientContext ctx;
  Prepare(&ctx, absl::Seconds(30));
  store::v1::ListVersionsRequest req;
  req.set_namespace_id(namespace_id_);
  req.set_device_id(device_id_);
  req.set_path(path);
  req.set_limit(limit);
  store::v1::ListVersionsResponse resp;
  CONVERGE_RETURN_IF_ERROR(Checked(stub()->ListVersions(&ctx, req, &resp), "store.ListVersions"));
  std::vector<HistoryVersion> out;
  for (const auto& h : resp.versions()) {
    CONVERGE_ASSIGN_OR_RETURN(HistoryVersion v, wire::HistoryVersionFromProto(h));
    CONVERGE_RETURN_IF_ERROR(ValidateFileVersion(v.version));
    out.push_back(std::move(v));
  }
  return out;
}

absl::StatusOr<std::vector<ConflictRecord>> GrpcStoreClient::ListConflicts(bool include_resolved) {
  grpc::ClientContext ctx;
  Prepare(&ctx, absl::Seconds(30));
  store::v1::ListConflictsRequest req;
  req.set_namespace_id(namespace_id_);
  req.set_device_id(device_id_);
  req.set_include_resolved(include_resolved);
  store::v1::ListConflictsResponse resp;
  CONVERGE_RETURN_IF_ERROR(Checked(stub()->ListConflicts(&ctx, req, &resp), "store.ListConflicts"));
  std::vector<ConflictRecord> out;
  for (const auto& c : resp.conflicts()) out.push_back(wire::ConflictFromProto(namespace_id_, c));
  return out;
}

absl::StatusOr<ConflictRecord> GrpcStoreClient::ResolveConflict(const std::string& copy_path) {
  grpc::ClientContext ctx;
  Prepare(&ctx, absl::Seconds(30));
  store::v1::ResolveConflictRequest req;
  req.set_namespace_id(namespace_id_);
  req.set_device_id(device_id_);
  req.set_copy_path(copy_path);
  store::v1::Conflict resp;
  CONVERGE_RETURN_IF_ERROR(Checked(stub()->ResolveConflict(&ctx, req, &resp), "store.ResolveConflict"));
  return wire::ConflictFromProto(namespace_id_, resp);
}

}  // namespace converge::engine
