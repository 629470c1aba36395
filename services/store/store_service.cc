#include "services/store/store_service.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/base/logging.h"
#include "common/base/metrics.h"
#include "common/base/status_macros.h"
#include "common/base/version.h"
#include "common/codec/chunk_codec.h"
#include "common/codec/rsync_delta.h"
#include "common/model/path.h"
#include "common/model/store_behind.h"
#include "common/rpc/grpc_status.h"
#include "common/wire/store_wire.h"
#include "common/wire/wire.h"

namespace converge::store {
namespace {

constexpr size_t kListBatchFiles = 1000;
constexpr size_t kMaxVersionsPerCall = 10000;

struct Metrics {
  Counter* commits = DefaultMetrics().AddCounter("converge_store_commits_total", "commits made durable");
  Counter* files = DefaultMetrics().AddCounter("converge_store_committed_files_total",
                                               "file versions in durable commits");
};

Metrics& M() {
  static Metrics* m = new Metrics();
  return *m;
}

// Version returns the software version a client sent in its metadata ("" if none), bounded.
std::string Version(const grpc::ServerContext& ctx) {
  auto it = ctx.client_metadata().find(kVersionHeader);
  if (it == ctx.client_metadata().end()) return "";
  return std::string(it->second.data(), std::min<size_t>(it->second.size(), 64));
}

grpc::Status TooMany(const char* what, int n, int limit) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                      absl::StrCat(n, " ", what, " in one call, the limit is ", limit));
}

// SequenceFromProto: the chunks of a delta's base sequence, 2 to kMaxDeltaBases of them.
absl::StatusOr<std::vector<Digest>> SequenceFromProto(const google::protobuf::RepeatedPtrField<std::string>& in) {
  if (in.size() < 2 || in.size() > static_cast<int>(kMaxDeltaBases)) {
    return absl::InvalidArgumentError(absl::StrCat("a base sequence is 2 to ", kMaxDeltaBases, " chunks, not ", in.size()));
  }
  return wire::DigestsFromProto(in);
}

// The store API's encodings as ChunkTransfer's.
absl::StatusOr<TransferEncoding> EncodingFromProto(v1::ChunkEncoding e) {
  switch (e) {
    case v1::CHUNK_ENCODING_RAW: return TransferEncoding::kRaw;
    case v1::CHUNK_ENCODING_ZSTD: return TransferEncoding::kZstd;
    case v1::CHUNK_ENCODING_ZSTD_STREAM: return TransferEncoding::kZstdStream;
    case v1::CHUNK_ENCODING_RSYNC_DELTA: return TransferEncoding::kRsyncDelta;
    default: return absl::InvalidArgumentError("uploaded chunks are raw, zstd, zstd stream or rsync deltas");
  }
}

v1::ChunkEncoding EncodingToProto(TransferEncoding e) {
  switch (e) {
    case TransferEncoding::kZstd: return v1::CHUNK_ENCODING_ZSTD;
    case TransferEncoding::kZstdStream: return v1::CHUNK_ENCODING_ZSTD_STREAM;
    case TransferEncoding::kRsyncDelta: return v1::CHUNK_ENCODING_RSYNC_DELTA;
    case TransferEncoding::kZstdDelta: return v1::CHUNK_ENCODING_ZSTD_DELTA;
    case TransferEncoding::kRaw: break;
  }
  return v1::CHUNK_ENCODING_RAW;
}

// UploadFromProto takes one uploaded chunk (its data moved out of `req`).
absl::StatusOr<TransferChunk> UploadFromProto(v1::PutChunksRequest* req) {
  TransferChunk chunk;
  CONVERGE_ASSIGN_OR_RETURN(chunk.digest, DigestFromBytes(req->sha256()));
  CONVERGE_ASSIGN_OR_RETURN(chunk.encoding, EncodingFromProto(req->encoding()));
  if (chunk.encoding == TransferEncoding::kRsyncDelta) {
    if (req->base_sequence_size() > 0) {
      if (!req->base_sha256().empty()) {
        return absl::InvalidArgumentError("a delta names base_sha256 or base_sequence, not both");
      }
      CONVERGE_ASSIGN_OR_RETURN(chunk.bases, SequenceFromProto(req->base_sequence()));
    } else {
      CONVERGE_ASSIGN_OR_RETURN(Digest base, DigestFromBytes(req->base_sha256()));
      chunk.bases.push_back(base);
    }
    chunk.block_bytes = req->block_bytes();
  }
  chunk.data = std::move(*req->mutable_data());
  return chunk;
}

// WantsFromProto: the wanted chunks and, parallel to them, the device's bases of each (none,
// one, or a sequence).
absl::StatusOr<std::vector<ChunkWant>> WantsFromProto(const v1::GetChunksRequest& req) {
  CONVERGE_ASSIGN_OR_RETURN(std::vector<Digest> digests, wire::DigestsFromProto(req.sha256()));
  if (req.base_sha256_size() != 0 && req.base_sha256_size() != req.sha256_size()) {
    return absl::InvalidArgumentError("base_sha256 must be empty or parallel to sha256");
  }
  if (req.base_sequences_size() != 0 &&
      (req.base_sequences_size() != req.sha256_size() || req.base_sha256_size() != 0)) {
    return absl::InvalidArgumentError("base_sequences must be empty or parallel to sha256, and then base_sha256 empty");
  }
  std::vector<ChunkWant> wanted(digests.size());
  for (size_t i = 0; i < digests.size(); ++i) {
    wanted[i].digest = digests[i];
    if (req.base_sha256_size() > 0 && !req.base_sha256(i).empty()) {
      CONVERGE_ASSIGN_OR_RETURN(Digest base, DigestFromBytes(req.base_sha256(i)));
      wanted[i].bases.push_back(base);
    } else if (req.base_sequences_size() > 0 && req.base_sequences(i).sha256_size() > 0) {
      const int n = req.base_sequences(i).sha256_size();
      if (n > static_cast<int>(kMaxDeltaBases)) {
        return absl::InvalidArgumentError(
            absl::StrCat(n, " base chunks for one chunk in one call, the limit is ", kMaxDeltaBases));
      }
      CONVERGE_ASSIGN_OR_RETURN(wanted[i].bases, wire::DigestsFromProto(req.base_sequences(i).sha256()));
    }
  }
  return wanted;
}

void DownloadToProto(TransferChunk chunk, v1::GetChunksResponse* resp) {
  resp->set_sha256(DigestToBytes(chunk.digest));
  resp->set_encoding(EncodingToProto(chunk.encoding));
  if (chunk.encoding == TransferEncoding::kZstdDelta) {
    if (chunk.bases.size() == 1) {
      resp->set_base_sha256(DigestToBytes(chunk.bases[0]));
    } else {
      for (const Digest& d : chunk.bases) resp->add_base_sequence(DigestToBytes(d));
    }
  }
  resp->set_data(std::move(chunk.data));
}

void SignedBaseToProto(const SignedBase& b, v1::ChunkSignature* out) {
  if (b.base.size() == 1) {
    out->set_sha256(DigestToBytes(b.base[0]));
  } else {
    for (const Digest& d : b.base) out->add_sequence(DigestToBytes(d));
  }
  out->set_block_bytes(b.signature.block_bytes);
  out->set_length(b.signature.length);
  for (uint32_t w : b.signature.weak) out->add_weak(w);
  for (uint64_t st : b.signature.strong) out->add_strong(st);
}

}  // namespace

absl::StatusOr<StoreService::Caller> StoreService::Authorize(
const grpc::ServerContext& ctx, const std::string& ns,
                                                            const std::string& request_device_id) {
  absl::StatusOr<std::string> device = auth_.DeviceOf(ctx, request_device_id);
  if (!device.ok()) return device.status();
  if (absl::Status s = ValidateId("namespace id", ns); !s.ok()) return s;
  // Moving between shards: writes wait for the switch in the commit log; moved, or still
  // arriving, the namespace is not served here.
  if (absl::Status s = log_->CheckGate(ns, /*writing=*/false); !s.ok()) return s;
  absl::StatusOr<std::string> owner = log_->OwnerFor(ns, *device);
  if (!owner.ok()) return owner.status();
  absl::StatusOr<CallLimiter::Slot> slot = limiter_.Acquire(*device);
  if (!slot.ok()) return slot.status();
  return Caller{std::move(*device), std::move(*owner), std::move(*slot)};
}

grpc::Status StoreService::FindMissingChunks(grpc::ServerContext* ctx,
                                             const v1::FindMissingChunksRequest* req,
                                             v1::FindMissingChunksResponse* resp) {
  absl::StatusOr<Caller> caller = Authorize(*ctx, req->namespace_id(), req->device_id());
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  if (req->sha256_size() > kMaxDigestsPerCall) {
    return TooMany("digests", req->sha256_size(), kMaxDigestsPerCall);
  }
  absl::StatusOr<std::vector<Digest>> wanted = wire::DigestsFromProto(req->sha256());
  if (!wanted.ok()) return ToGrpcStatus(wanted.status());
  absl::StatusOr<std::vector<Digest>> missing = chunks_->FindMissing(caller->owner, *wanted);
  if (!missing.ok()) return ToGrpcStatus(missing.status());
  for (const Digest& d : *missing) resp->add_missing_sha256(DigestToBytes(d));
  return grpc::Status::OK;
}

grpc::Status StoreService::PutChunks(grpc::ServerContext* ctx,
                                     grpc::ServerReader<v1::PutChunksRequest>* reader,
                                     v1::PutChunksResponse* resp) {
  v1::PutChunksRequest req;
  if (!reader->Read(&req)) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no chunks sent");
  const std::string ns = req.namespace_id();
  absl::StatusOr<Caller> caller = Authorize(*ctx, ns, req.device_id());
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  ChunkTransfer::Upload upload = transfer_.StartUpload(caller->owner, caller->device);
  do {
    if (!req.namespace_id().empty() && req.namespace_id() != ns) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "one PutChunks stream uploads to one namespace");
    }
    absl::StatusOr<TransferChunk> chunk = UploadFromProto(&req);
    if (!chunk.ok()) return ToGrpcStatus(chunk.status());
    if (absl::Status added = upload.Add(std::move(*chunk)); !added.ok()) return ToGrpcStatus(added);
  } while (reader->Read(&req));
  absl::Status finished = upload.Finish();
  resp->set_chunks_stored(upload.chunks_stored());
  resp->set_bytes_stored(upload.bytes_stored());
  return ToGrpcStatus(finished);
}

grpc::Status StoreService::GetChunkSignatures(grpc::ServerContext* ctx, const v1::GetChunkSignaturesRequest* req,
                                              v1::GetChunkSignaturesResponse* resp) {
  absl::StatusOr<Caller> caller = Authorize(*ctx, req->namespace_id(), req->device_id());
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  int digests = req->sha256_size();
  for (const v1::ChunkSequence& seq : req->sequences()) digests += seq.sha256_size();
  if (digests > kMaxChunksPerGetCall) return TooMany("digests", digests, kMaxChunksPerGetCall);
  absl::StatusOr<std::vector<Digest>> singles = wire::DigestsFromProto(req->sha256());
  if (!singles.ok()) return ToGrpcStatus(singles.status());
  std::vector<std::vector<Digest>> bases;
  for (const Digest& d : *singles) bases.push_back({d});
  for (const v1::ChunkSequence& seq : req->sequences()) {
    absl::StatusOr<std::vector<Digest>> one = SequenceFromProto(seq.sha256());
    if (!one.ok()) return ToGrpcStatus(one.status());
    bases.push_back(std::move(*one));
  }
  absl::StatusOr<std::vector<SignedBase>> signed_bases = transfer_.Sign(caller->owner, caller->device, bases);
  if (!signed_bases.ok()) return ToGrpcStatus(signed_bases.status());
  for (const SignedBase& b : *signed_bases) SignedBaseToProto(b, resp->add_signatures());
  return grpc::Status::OK;
}

absl::Status StoreService::StoreInlineChunks(const Caller& caller, const v1::CommitRequest* req) {
  std::vector<TransferChunk> chunks(req->chunks_size());
  for (int i = 0; i < req->chunks_size(); ++i) {
    CONVERGE_ASSIGN_OR_RETURN(chunks[i].digest, DigestFromBytes(req->chunks(i).sha256()));
    chunks[i].data = req->chunks(i).data();
    chunks[i].encoding = TransferEncoding::kRaw;
  }
  return transfer_.StoreInline(caller.owner, caller.device, std::move(chunks));
}

grpc::Status StoreService::Commit(grpc::ServerContext* ctx, const v1::CommitRequest* req,
                                  v1::CommitResponse* resp) {
  static auto log = GetLogger("store");
  absl::StatusOr<Caller> caller = Authorize(*ctx, req->namespace_id(), req->device_id());
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  std::vector<FileVersion> changes;
  changes.reserve(req->files_size());
  for (const common::v1::FileVersion& f : req->files()) {
    absl::StatusOr<FileVersion> v = wire::FileVersionFromProto(f);
    if (!v.ok()) return ToGrpcStatus(v.status());
    changes.push_back(std::move(*v));
  }
  if (req->chunks_size() > 0) {
    // The change's own small chunks, stored first (a failed commit leaves them to the sweep).
    if (absl::Status stored = StoreInlineChunks(*caller, req); !stored.ok()) return ToGrpcStatus(stored);
  }
  if (req->attestation().size() > kMaxAttestationBytes) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a commit attestation is too large");
  }
  absl::StatusOr<converge::Commit> commit =
      log_->Append(req->namespace_id(), caller->device, std::move(changes), req->attestation());
  if (!commit.ok()) return ToGrpcStatus(commit.status());
  log_->Touch(req->namespace_id(), caller->device, Version(*ctx));
  log->debug("commit {}@{} from {}: {} file(s)", commit->namespace_id, commit->seq,
             commit->origin_device, commit->files.size());
  M().commits->Add();
  M().files->Add(commit->files.size());
  publisher_->Publish(commit->namespace_id, commit->seq, absl::ToUnixMicros(absl::Now()));
  resp->set_seq(commit->seq);
  return grpc::Status::OK;
}

grpc::Status StoreService::Pull(grpc::ServerContext* ctx, const v1::PullRequest* req,
                                grpc::ServerWriter<v1::PullResponse>* writer) {
  absl::StatusOr<Caller> caller = Authorize(*ctx, req->namespace_id(), req->device_id());
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  log_->Touch(req->namespace_id(), caller->device, Version(*ctx));
  absl::StatusOr<uint64_t> head = log_->HeadSeq(req->namespace_id());
  if (!head.ok()) return ToGrpcStatus(head.status());
  // A device past the head synced with a newer state of this store: it was restored from an
  // older backup. The device must re-sync (its applied seqs will be reused for other commits).
  if (req->since_seq() > *head) return ToGrpcStatus(StoreBehindError(req->since_seq(), *head));
  absl::StatusOr<CommitLog::Sealing> sealing = log_->SealingOf(req->namespace_id());
  if (!sealing.ok()) return ToGrpcStatus(sealing.status());
  if (sealing->encrypted && !req->sealed()) return ToGrpcStatus(NamespaceConvertedError(req->namespace_id()));
  // A converted namespace's log is plain up to its conversion: a sealed device starts after it,
  // from the table (which lists it only what was written sealed).
  if (req->sealed() && req->since_seq() < sealing->converted_at) {
    return ToGrpcStatus(LogCompactedError(sealing->converted_at + 1));
  }
  bool broken = false;
  uint64_t inline_uncharged = kPullInlineBytes;
  absl::Status s = log_->ReadSince(
      req->namespace_id(), req->since_seq(), req->max_commits(), [&](const converge::Commit& c) {
        if (ctx->IsCancelled()) return false;
        v1::PullResponse resp;
        wire::CommitToProto(c, resp.mutable_commit());
        resp.set_head_seq(*head);
        // A change of metadata alone sends no bytes: the device has the content.
        auto is_new = [&](const FileVersion& v) { return !log_->ContentUnchanged(req->namespace_id(), v); };
        for (TransferChunk& chunk : transfer_.SmallChunksOf(caller->owner, caller->device, c, is_new, &inline_uncharged)) {
          v1::InlineChunk* out = resp.add_chunks();
          out->set_sha256(DigestToBytes(chunk.digest));
          out->set_data(std::move(chunk.data));
        }
        broken = !writer->Write(resp);
        return !broken;
      });
  if (broken || ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "pull cancelled");
  return ToGrpcStatus(s);
}

grpc::Status StoreService::GetChunks(grpc::ServerContext* ctx, const v1::GetChunksRequest* req,
                                     grpc::ServerWriter<v1::GetChunksResponse>* writer) {
  absl::StatusOr<Caller> caller = Authorize(*ctx, req->namespace_id(), req->device_id());
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  if (req->sha256_size() > kMaxChunksPerGetCall) {
    return TooMany("chunks", req->sha256_size(), kMaxChunksPerGetCall);
  }
  absl::StatusOr<std::vector<ChunkWant>> wanted = WantsFromProto(*req);
  if (!wanted.ok()) return ToGrpcStatus(wanted.status());
  absl::Status s = transfer_.Download(caller->owner, caller->device, *wanted, req->accept_zstd_stream(),
                                      [&](TransferChunk chunk) {
                                        if (ctx->IsCancelled()) return false;
                                        v1::GetChunksResponse resp;
                                        DownloadToProto(std::move(chunk), &resp);
                                        return writer->Write(resp);
                                      });
  return ToGrpcStatus(s);
}

grpc::Status StoreService::Ack(grpc::ServerContext* ctx, const v1::AckRequest* req, v1::AckResponse*) {
  absl::StatusOr<Caller> caller = Authorize(*ctx, req->namespace_id(), req->device_id());
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  if (req->blocked_size() > static_cast<int>(kMaxBlockedReported)) {
    return TooMany("blocked versions reported", req->blocked_size(), kMaxBlockedReported);
  }
  std::vector<std::string> blocked;
  for (const std::string& b : req->blocked()) {
    if (b.size() > kMaxBlockedReportBytes) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("a blocked version is reported in at most ", kMaxBlockedReportBytes, " bytes"));
    }
    blocked.push_back(b);
  }
  return ToGrpcStatus(log_->Ack(req->namespace_id(), caller->device, req->seq(), Version(*ctx),
                                Blocked{req->blocked_count(), std::move(blocked)}));
}

grpc::Status StoreService::ListFiles(grpc::ServerContext* ctx, const v1::ListFilesRequest* req,
                                     grpc::ServerWriter<v1::ListFilesResponse>* writer) {
  absl::StatusOr<Caller> caller = Authorize(*ctx, req->namespace_id(), req->device_id());
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  absl::StatusOr<CommitLog::Sealing> sealing = log_->SealingOf(req->namespace_id());
  if (!sealing.ok()) return ToGrpcStatus(sealing.status());
  if (sealing->encrypted && !req->sealed() && !caller->device.empty()) {
    return ToGrpcStatus(NamespaceConvertedError(req->namespace_id()));
  }
  absl::StatusOr<crypto::LogHead> head = log_->Chain(req->namespace_id());
  if (!head.ok()) return ToGrpcStatus(head.status());
  v1::ListFilesResponse batch;
  batch.set_head_seq(head->seq);
  batch.set_chain_head(DigestToBytes(head->hash));
  bool broken = false;
  absl::Status s = log_->ListFiles(req->namespace_id(), [&](const FileVersion& v) {
    if (broken) return;
    if (req->sealed() && v.sealed_record.empty()) return;  // from before the conversion
    wire::FileVersionToProto(v, batch.add_files());
    if (batch.files_size() >= static_cast<int>(kListBatchFiles)) {
      broken = !writer->Write(batch);
      batch.clear_files();
    }
  });
  if (!s.ok()) return ToGrpcStatus(s);
  if (broken || !writer->Write(batch)) return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
  return grpc::Status::OK;
}

grpc::Status StoreService::RegistryRead(grpc::ServerContext* ctx, const v1::RegistryReadRequest* req,
                                        v1::RegistryReadResponse* resp) {
  if (absl::Status s = auth_.RequireService(*ctx); !s.ok()) return ToGrpcStatus(s);
  if (registry_ == nullptr) return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no registry here");
  if (!req->key().empty()) {
    absl::StatusOr<std::string> value = registry_->Get(req->key());
    if (!value.ok()) return ToGrpcStatus(value.status());
    v1::RegistryRecord* r = resp->add_records();
    r->set_key(req->key());
    r->set_value(*value);
    return grpc::Status::OK;
  }
  return ToGrpcStatus(registry_->Scan(req->prefix(), [&](const std::string& key, const std::string& value) {
    v1::RegistryRecord* r = resp->add_records();
    r->set_key(key);
    r->set_value(value);
  }));
}

grpc::Status StoreService::RegistryWrite(grpc::ServerContext* ctx, const v1::RegistryWriteRequest* req,
                                         v1::RegistryWriteResponse*) {
  if (absl::Status s = auth_.RequireService(*ctx); !s.ok()) return ToGrpcStatus(s);
  if (registry_ == nullptr) return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no registry here");
  std::vector<std::pair<std::string, std::string>> puts;
  for (const v1::RegistryRecord& r : req->put()) {
    if (r.key().empty()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "empty registry key");
    puts.emplace_back(r.key(), r.value());
  }
  std::vector<std::string> deletes(req->delete_().begin(), req->delete_().end());
  return ToGrpcStatus(registry_->Write(req->holder(), puts, deletes));
}

grpc::Status StoreService::RegistryLock(grpc::ServerContext* ctx, const v1::RegistryLockRequest* req,
                                        v1::RegistryLockResponse* resp) {
  if (absl::Status s = auth_.RequireService(*ctx); !s.ok()) return ToGrpcStatus(s);
  if (registry_ == nullptr) return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no registry here");
  if (req->holder().empty() || req->holder().size() > 128) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "registry lock holder must have 1..128 bytes");
  }
  if (req->release()) {
    registry_->Release(req->holder());
    return grpc::Status::OK;
  }
  resp->set_acquired(registry_->Lock(req->holder(), absl::Milliseconds(req->lease_ms())));
  return grpc::Status::OK;
}

grpc::Status StoreService::RegisterNamespace(grpc::ServerContext* ctx,
                                             const v1::RegisterNamespaceRequest* req,
                                             v1::RegisterNamespaceResponse*) {
  if (absl::Status s = auth_.RequireService(*ctx); !s.ok()) return ToGrpcStatus(s);
  if (absl::Status s = log_->CheckGate(req->namespace_id(), /*writing=*/true); !s.ok()) return ToGrpcStatus(s);
  std::vector<std::string> members(req->member_device_ids().begin(),
                                   req->member_device_ids().end());
  return ToGrpcStatus(log_->RegisterNamespace(req->namespace_id(), req->owner_user_id(), members, req->encrypted()));
}

grpc::Status StoreService::SetQuota(grpc::ServerContext* ctx, const v1::SetQuotaRequest* req,
                                    v1::SetQuotaResponse* resp) {
  if (absl::Status s = auth_.RequireService(*ctx); !s.ok()) return ToGrpcStatus(s);
  if (absl::Status s = ValidateId("user id", req->user_id()); !s.ok()) return ToGrpcStatus(s);
  absl::StatusOr<uint64_t> used = chunks_->SetQuota(req->user_id(), req->quota_bytes());
  if (!used.ok()) return ToGrpcStatus(used.status());
  resp->set_used_bytes(*used);
  return grpc::Status::OK;
}

grpc::Status StoreService::GetNamespaceStats(grpc::ServerContext* ctx,
                                             const v1::GetNamespaceStatsRequest* req,
                                             v1::GetNamespaceStatsResponse* resp) {
  if (absl::Status s = auth_.RequireService(*ctx); !s.ok()) return ToGrpcStatus(s);
  absl::StatusOr<NamespaceStats> stats = log_->Stats(req->namespace_id());
  if (!stats.ok()) return ToGrpcStatus(stats.status());
  wire::NamespaceStatsToProto(*stats, resp);
  return grpc::Status::OK;
}


grpc::Status StoreService::ListHeldDeletes(grpc::ServerContext* ctx, const v1::ListHeldDeletesRequest* req,
                                           v1::ListHeldDeletesResponse* resp) {
  if (absl::Status s = auth_.RequireService(*ctx); !s.ok()) return ToGrpcStatus(s);
  absl::StatusOr<std::vector<HeldDelete>> held = log_->ListHeld(req->namespace_id());
  if (!held.ok()) return ToGrpcStatus(held.status());
  for (const HeldDelete& h : *held) wire::HeldDeleteToProto(h, resp->add_held());
  return grpc::Status::OK;
}

grpc::Status StoreService::ResolveHeldDelete(grpc::ServerContext* ctx, const v1::ResolveHeldDeleteRequest* req,
                                             v1::HeldDelete* resp) {
  if (absl::Status s = auth_.RequireService(*ctx); !s.ok()) return ToGrpcStatus(s);
  absl::StatusOr<HeldDelete> held = log_->ResolveHeld(req->namespace_id(), req->id(), req->approve());
  if (!held.ok()) return ToGrpcStatus(held.status());
  wire::HeldDeleteToProto(*held, resp);
  return grpc::Status::OK;
}

absl::StatusOr<std::string> StoreService::MemberOrOperator(const grpc::ServerContext& ctx, const std::string& ns,
                                                           const std::string& request_device_id) {
  if (auth_.RequireService(ctx).ok()) {
    CONVERGE_RETURN_IF_ERROR(ValidateId("namespace id", ns));
    CONVERGE_RETURN_IF_ERROR(log_->CheckGate(ns, /*writing=*/false));
    CONVERGE_RETURN_IF_ERROR(log_->CheckAccess(ns, ""));
    return std::string("operator");
  }
  absl::StatusOr<Caller> caller = Authorize(ctx, ns, request_device_id);
  if (!caller.ok()) return caller.status();
  return caller->device;
}


grpc::Status StoreService::ListVersions(grpc::ServerContext* ctx, const v1::ListVersionsRequest* req,
                                        v1::ListVersionsResponse* resp) {
  absl::StatusOr<std::string> who = MemberOrOperator(*ctx, req->namespace_id(), req->device_id());
  if (!who.ok()) return ToGrpcStatus(who.status());
  if (absl::Status s = ValidateStoredPath(req->path()); !s.ok()) return ToGrpcStatus(s);
  const size_t limit = req->limit() == 0 || req->limit() > kMaxVersionsPerCall ? kMaxVersionsPerCall : req->limit();
  absl::StatusOr<std::vector<HistoryVersion>> versions = log_->Versions(req->namespace_id(), req->path(), limit);
  if (!versions.ok()) return ToGrpcStatus(versions.status());
  for (const HistoryVersion& h : *versions) {
    wire::HistoryVersionToProto(h, resp->add_versions());
  }
  return grpc::Status::OK;
}

grpc::Status StoreService::ListFilesAt(grpc::ServerContext* ctx, const v1::ListFilesAtRequest* req,
                                       grpc::ServerWriter<v1::ListFilesResponse>* writer) {
  absl::StatusOr<std::string> who = MemberOrOperator(*ctx, req->namespace_id(), req->device_id());
  if (!who.ok()) return ToGrpcStatus(who.status());
  if (!req->prefix().empty() && (req->prefix().back() != '/' ||
                                  !ValidateStoredPath(req->prefix().substr(0, req->prefix().size() - 1)).ok())) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a listing's prefix is a folder's path and '/'");
  }
  absl::StatusOr<uint64_t> head = log_->HeadSeq(req->namespace_id());
  if (!head.ok()) return ToGrpcStatus(head.status());
  v1::ListFilesResponse batch;
  batch.set_head_seq(*head);
  bool broken = false;
  absl::Status s = log_->StateAt(req->namespace_id(), req->at_unix_ms(), [&](const HistoryVersion& h) {
    if (broken) return;
    wire::FileVersionToProto(h.version, batch.add_files());
    if (batch.files_size() >= static_cast<int>(kListBatchFiles)) {
      broken = !writer->Write(batch);
      batch.clear_files();
    }
  }, req->prefix());
  if (broken) return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
  if (!s.ok()) return ToGrpcStatus(s);
  if (batch.files_size() > 0 && !writer->Write(batch)) return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
  return grpc::Status::OK;
}

grpc::Status StoreService::RestoreVersion(grpc::ServerContext* ctx, const v1::RestoreVersionRequest* req,
                                          v1::RestoreVersionResponse* resp) {
  if (absl::Status s = auth_.RequireService(*ctx); !s.ok()) return ToGrpcStatus(s);
  if (absl::Status s = ValidateId("namespace id", req->namespace_id()); !s.ok()) return ToGrpcStatus(s);
  if (absl::Status s = ValidateRelativePath(req->path()); !s.ok()) return ToGrpcStatus(s);
  absl::StatusOr<converge::Commit> commit = log_->Restore(req->namespace_id(), req->path(), req->seq());
  if (!commit.ok()) return ToGrpcStatus(commit.status());
  M().commits->Add();
  publisher_->Publish(commit->namespace_id, commit->seq, absl::ToUnixMicros(absl::Now()));
  resp->set_seq(commit->seq);
  return grpc::Status::OK;
}

grpc::Status StoreService::KeepConflictSide(grpc::ServerContext* ctx, const v1::KeepConflictSideRequest* req,
                                            v1::RestoreVersionResponse* resp) {
  if (absl::Status s = auth_.RequireService(*ctx); !s.ok()) return ToGrpcStatus(s);
  if (absl::Status s = ValidateId("namespace id", req->namespace_id()); !s.ok()) return ToGrpcStatus(s);
  if (absl::Status s = ValidateRelativePath(req->copy_path()); !s.ok()) return ToGrpcStatus(s);
  absl::StatusOr<converge::Commit> commit = log_->KeepConflictSide(req->namespace_id(), req->copy_path(), req->keep_copy());
  if (!commit.ok()) return ToGrpcStatus(commit.status());
  M().commits->Add();
  publisher_->Publish(commit->namespace_id, commit->seq, absl::ToUnixMicros(absl::Now()));
  resp->set_seq(commit->seq);
  return grpc::Status::OK;
}

grpc::Status StoreService::ReadVersion(grpc::ServerContext* ctx, const v1::ReadVersionRequest* req,
                                       grpc::ServerWriter<v1::ReadVersionResponse>* writer) {
  if (absl::Status s = auth_.RequireService(*ctx); !s.ok()) return ToGrpcStatus(s);
  if (absl::Status s = ValidateId("namespace id", req->namespace_id()); !s.ok()) return ToGrpcStatus(s);
  if (absl::Status s = ValidateRelativePath(req->path()); !s.ok()) return ToGrpcStatus(s);
  absl::StatusOr<CommitLog::Sealing> sealing = log_->SealingOf(req->namespace_id());
  if (!sealing.ok()) return ToGrpcStatus(sealing.status());
  if (sealing->encrypted) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "an end-to-end encrypted namespace is read on its devices");
  }
  absl::StatusOr<HistoryVersion> kept = log_->VersionAt(req->namespace_id(), req->path(), req->seq());
  if (!kept.ok() && !absl::IsNotFound(kept.status())) return ToGrpcStatus(kept.status());
  const FileVersion* v = kept.ok() ? &kept->version : nullptr;
  if (v == nullptr || v->deleted || v->kind != FileKind::kFile) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, absl::StrCat("'", req->path(), "' has no kept file version ", req->seq()));
  }
  absl::StatusOr<std::string> owner = log_->OwnerOf(req->namespace_id());
  if (!owner.ok()) return ToGrpcStatus(owner.status());
  v1::ReadVersionResponse piece;
  piece.set_size(v->size);
  for (const ChunkRef& c : v->chunks) {
    if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
    if (c.hole()) {
      for (uint32_t left = c.length; left > 0;) {  // zeros, at most 1 MiB a message
        const uint32_t n = std::min<uint32_t>(left, 1 << 20);
        piece.mutable_data()->assign(n, '\0');
        if (!writer->Write(piece)) return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
        piece.clear_size();
        left -= n;
      }
      continue;
    }
    absl::StatusOr<std::string> bytes = chunks_->Get(*owner, c.sha256);
    if (!bytes.ok()) return ToGrpcStatus(bytes.status());
    if (bytes->size() != c.length) return grpc::Status(grpc::StatusCode::DATA_LOSS, "a chunk has another length than its version says");
    *piece.mutable_data() = std::move(*bytes);
    if (!writer->Write(piece)) return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
    piece.clear_size();
  }
  if (v->chunks.empty()) writer->Write(piece);  // an empty file: its size alone
  return grpc::Status::OK;
}

grpc::Status StoreService::ListConflicts(grpc::ServerContext* ctx, const v1::ListConflictsRequest* req,
                                         v1::ListConflictsResponse* resp) {
  absl::StatusOr<std::string> who = MemberOrOperator(*ctx, req->namespace_id(), req->device_id());
  if (!who.ok()) return ToGrpcStatus(who.status());
  absl::StatusOr<std::vector<ConflictRecord>> conflicts = log_->ListConflicts(req->namespace_id(), req->include_resolved());
  if (!conflicts.ok()) return ToGrpcStatus(conflicts.status());
  for (const ConflictRecord& r : *conflicts) wire::ConflictToProto(r, resp->add_conflicts());
  return grpc::Status::OK;
}

grpc::Status StoreService::ResolveConflict(grpc::ServerContext* ctx, const v1::ResolveConflictRequest* req,
                                           v1::Conflict* resp) {
  absl::StatusOr<std::string> who = MemberOrOperator(*ctx, req->namespace_id(), req->device_id());
  if (!who.ok()) return ToGrpcStatus(who.status());
  if (absl::Status s = ValidateStoredPath(req->copy_path()); !s.ok()) return ToGrpcStatus(s);
  absl::StatusOr<ConflictRecord> r = log_->ResolveConflict(req->namespace_id(), req->copy_path(), *who);
  if (!r.ok()) return ToGrpcStatus(r.status());
  wire::ConflictToProto(*r, resp);
  return grpc::Status::OK;
}

grpc::Status StoreService::Compact(grpc::ServerContext* ctx, const v1::CompactRequest* req, v1::CompactResponse* resp) {
  if (absl::Status s = auth_.RequireService(*ctx); !s.ok()) return ToGrpcStatus(s);
  absl::StatusOr<CompactionResult> r = log_->Compact(req->namespace_id(), retention_);
  if (!r.ok()) return ToGrpcStatus(r.status());
  absl::StatusOr<ChunkStore::SweepResult> swept = log_->CollectGarbage(chunk_grace_);
  if (!swept.ok()) return ToGrpcStatus(swept.status());
  r->chunks_dropped = swept->chunks_dropped;
  r->bytes_dropped = swept->bytes_dropped;
  wire::CompactionToProto(*r, resp);
  return grpc::Status::OK;
}

grpc::Status StoreService::EvictDevice(grpc::ServerContext* ctx, const v1::EvictDeviceRequest* req,
                                       v1::EvictDeviceResponse*) {
  if (absl::Status s = auth_.RequireService(*ctx); !s.ok()) return ToGrpcStatus(s);
  return ToGrpcStatus(log_->Evict(req->namespace_id(), req->evict_device_id()));
}

}  // namespace converge::store
