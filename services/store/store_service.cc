#include "services/store/store_service.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/chunk_codec.h"
#include "common/rsync_delta.h"
#include "common/grpc_status.h"
#include "common/store_behind.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/path.h"
#include "common/status_macros.h"
#include "common/version.h"
#include "common/wire.h"

namespace converge::store {
namespace {

constexpr size_t kPutBatchBytes = 8 << 20;
constexpr size_t kListBatchFiles = 1000;
constexpr size_t kMaxVersionsPerCall = 10000;
// Base bytes one GetChunks call may read to make deltas (the rest of its chunks go whole).
constexpr uint64_t kMaxBaseBytesPerCall = 64 << 20;

struct Metrics {
  Counter* commits = DefaultMetrics().AddCounter("converge_store_commits_total", "commits made durable");
  Counter* files = DefaultMetrics().AddCounter("converge_store_committed_files_total",
                                               "file versions in durable commits");
  Counter* bytes_in = DefaultMetrics().AddCounter("converge_store_chunk_bytes_total",
                                                  "chunk bytes received and sent", "direction=\"in\"");
  Counter* bytes_out = DefaultMetrics().AddCounter("converge_store_chunk_bytes_total",
                                                   "chunk bytes received and sent", "direction=\"out\"");
  Counter* delta_saved = DefaultMetrics().AddCounter("converge_store_delta_saved_bytes_total",
                                                     "bytes not sent because a delta against the device's chunk was");
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

// WorkCost: what reading and encoding `bytes` for a caller counts against its call rate (one
// call's worth per 32 KiB: a device's burst buys about 128 MiB of such work, then 64 MiB a second).
double WorkCost(uint64_t bytes) { return static_cast<double>(bytes) / (32 << 10); }

// EachOnce: InvalidArgument if a chunk is asked for twice in one call (engines never do; repeats
// would multiply the work a call buys).
absl::Status EachOnce(const std::vector<Digest>& wanted) {
  absl::flat_hash_set<Digest> seen;
  for (const Digest& d : wanted) {
    if (!seen.insert(d).second) {
      return absl::InvalidArgumentError(absl::StrCat("chunk ", DigestToHex(d), " asked for twice in one call"));
    }
  }
  return absl::OkStatus();
}

// SequenceFromProto: the chunks of a delta's base sequence, 2 to kMaxDeltaBases of them.
absl::StatusOr<std::vector<Digest>> SequenceFromProto(const google::protobuf::RepeatedPtrField<std::string>& in) {
  if (in.size() < 2 || in.size() > static_cast<int>(kMaxDeltaBases)) {
    return absl::InvalidArgumentError(absl::StrCat("a base sequence is 2 to ", kMaxDeltaBases, " chunks, not ", in.size()));
  }
  return wire::DigestsFromProto(in);
}

// ToStore: a chunk received whole, kept zstd-compressed on its own when that pays.
ChunkData ToStore(const Digest& digest, std::string raw) {
  std::optional<std::string> z = CompressIfWorthIt(raw);
  return z.has_value() ? ChunkData{digest, std::move(*z), ChunkEncoding::kZstd}
                       : ChunkData{digest, std::move(raw), ChunkEncoding::kRaw};
}

}  // namespace

absl::StatusOr<StoreService::Caller> StoreService::Authorize(const grpc::ServerContext& ctx, const std::string& ns,
                                                            const std::string& request_device_id) {
  absl::StatusOr<std::string> device = auth_.DeviceOf(ctx, request_device_id);
  if (!device.ok()) return device.status();
  if (absl::Status s = ValidateId("namespace id", ns); !s.ok()) return s;
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
  bool first = true;
  Caller caller;
  std::string first_namespace;
  std::vector<ChunkData> batch;
  size_t batch_bytes = 0;  // as they came over the wire
  size_t held_bytes = 0;   // what the batch holds in memory once decoded (deltas and stream pieces
                           // grow: a few hundred bytes on the wire may be a 4 MiB chunk here)
  StreamDecoder stream;  // the call's CHUNK_ENCODING_ZSTD_STREAM pieces, in order
  auto flush = [&]() -> absl::Status {
    absl::Status s = chunks_->Put(caller.owner, batch);
    if (s.ok()) {
      resp->set_chunks_stored(resp->chunks_stored() + batch.size());
      resp->set_bytes_stored(resp->bytes_stored() + batch_bytes);
    }
    batch.clear();
    batch.shrink_to_fit();
    batch_bytes = 0;
    held_bytes = 0;
    return s;
  };
  while (reader->Read(&req)) {
    if (first) {
      absl::StatusOr<Caller> c = Authorize(*ctx, req.namespace_id(), req.device_id());
      if (!c.ok()) return ToGrpcStatus(c.status());
      caller = std::move(*c);
      first = false;
    } else if (!req.namespace_id().empty() && req.namespace_id() != first_namespace) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "one PutChunks stream uploads to one namespace");
    }
    if (first_namespace.empty()) first_namespace = req.namespace_id();
    absl::StatusOr<Digest> digest = DigestFromBytes(req.sha256());
    if (!digest.ok()) return ToGrpcStatus(digest.status());
    batch_bytes += req.data().size();
    M().bytes_in->Add(req.data().size());
    if (req.encoding() == v1::CHUNK_ENCODING_RSYNC_DELTA) {
      // Rebuild the chunk from the base the store holds (work charged to the device's rate, as
      // reading its bases costs); Put checks the result's hash.
      absl::StatusOr<std::string> raw = RebuildFromDelta(caller.owner, req);
      if (!raw.ok()) return ToGrpcStatus(raw.status());
      const size_t bases = std::max(1, req.base_sequence_size());
      if (absl::Status s = limiter_.Charge(caller.device, WorkCost(raw->size() * (1 + bases))); !s.ok()) {
        return ToGrpcStatus(s);
      }
      batch.push_back(ToStore(*digest, std::move(*raw)));
    } else if (req.encoding() == v1::CHUNK_ENCODING_ZSTD_STREAM) {
      // Stored on its own (compressed again without the stream's context); Put checks the hash.
      absl::StatusOr<std::string> raw = stream.Decode(req.data(), kMaxChunkBytes);
      if (!raw.ok()) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            absl::StrCat("chunk ", DigestToHex(*digest), ": ", raw.status().message()));
      }
      batch.push_back(ToStore(*digest, std::move(*raw)));
    } else if (req.encoding() == v1::CHUNK_ENCODING_RAW || req.encoding() == v1::CHUNK_ENCODING_ZSTD) {
      batch.push_back(ChunkData{*digest, std::move(*req.mutable_data()),
                                req.encoding() == v1::CHUNK_ENCODING_ZSTD ? ChunkEncoding::kZstd : ChunkEncoding::kRaw});
    } else {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "uploaded chunks are raw, zstd, zstd stream or rsync deltas");
    }
    held_bytes += batch.back().data.size();
    if (held_bytes >= kPutBatchBytes) {
      if (absl::Status s = flush(); !s.ok()) return ToGrpcStatus(s);
    }
  }
  if (first) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no chunks sent");
  return ToGrpcStatus(flush());
}

absl::StatusOr<std::string> StoreService::RebuildFromDelta(const std::string& owner, const v1::PutChunksRequest& req) {
  std::vector<Digest> bases;
  if (req.base_sequence_size() > 0) {
    if (!req.base_sha256().empty()) return absl::InvalidArgumentError("a delta names base_sha256 or base_sequence, not both");
    CONVERGE_ASSIGN_OR_RETURN(bases, SequenceFromProto(req.base_sequence()));
  } else {
    CONVERGE_ASSIGN_OR_RETURN(Digest base, DigestFromBytes(req.base_sha256()));
    bases.push_back(base);
  }
  return chunks_->RebuildFromDelta(owner, bases, req.block_bytes(), req.data());
}

grpc::Status StoreService::GetChunkSignatures(grpc::ServerContext* ctx, const v1::GetChunkSignaturesRequest* req,
                                              v1::GetChunkSignaturesResponse* resp) {
  absl::StatusOr<Caller> caller = Authorize(*ctx, req->namespace_id(), req->device_id());
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  int digests = req->sha256_size();
  for (const v1::ChunkSequence& seq : req->sequences()) digests += seq.sha256_size();
  if (digests > kMaxChunksPerGetCall) return TooMany("digests", digests, kMaxChunksPerGetCall);
  absl::StatusOr<std::vector<Digest>> wanted = wire::DigestsFromProto(req->sha256());
  if (!wanted.ok()) return ToGrpcStatus(wanted.status());
  std::vector<std::vector<Digest>> sequences;
  for (const v1::ChunkSequence& seq : req->sequences()) {
    absl::StatusOr<std::vector<Digest>> one = SequenceFromProto(seq.sha256());
    if (!one.ok()) return ToGrpcStatus(one.status());
    sequences.push_back(std::move(*one));
  }
  // Chunks (or sequences) the caller's owner does not hold get no signature.
  // So does one the device's rate cannot pay for now (reading and signing it is the work).
  auto sign = [&](const std::vector<Digest>& base) -> absl::StatusOr<v1::ChunkSignature*> {
    absl::StatusOr<std::string> raw = chunks_->Sequence(caller->owner, base);
    if (absl::IsNotFound(raw.status())) return nullptr;
    if (!raw.ok()) return raw.status();
    if (!limiter_.Charge(caller->device, WorkCost(raw->size())).ok()) return nullptr;
    const Signature sig = MakeSignature(*raw, BlockBytesFor(raw->size()));
    v1::ChunkSignature* out = resp->add_signatures();
    out->set_block_bytes(sig.block_bytes);
    out->set_length(sig.length);
    for (uint32_t w : sig.weak) out->add_weak(w);
    for (uint64_t st : sig.strong) out->add_strong(st);
    return out;
  };
  for (const Digest& d : *wanted) {
    absl::StatusOr<v1::ChunkSignature*> out = sign({d});
    if (!out.ok()) return ToGrpcStatus(out.status());
    if (*out != nullptr) (*out)->set_sha256(DigestToBytes(d));
  }
  for (const std::vector<Digest>& seq : sequences) {
    absl::StatusOr<v1::ChunkSignature*> out = sign(seq);
    if (!out.ok()) return ToGrpcStatus(out.status());
    if (*out != nullptr) {
      for (const Digest& d : seq) (*out)->add_sequence(DigestToBytes(d));
    }
  }
  return grpc::Status::OK;
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
  absl::StatusOr<converge::Commit> commit = log_->Append(req->namespace_id(), caller->device, std::move(changes));
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
  bool broken = false;
  absl::Status s = log_->ReadSince(
      req->namespace_id(), req->since_seq(), req->max_commits(), [&](const converge::Commit& c) {
        if (ctx->IsCancelled()) return false;
        v1::PullResponse resp;
        wire::CommitToProto(c, resp.mutable_commit());
        resp.set_head_seq(*head);
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
  absl::StatusOr<std::vector<Digest>> wanted = wire::DigestsFromProto(req->sha256());
  if (!wanted.ok()) return ToGrpcStatus(wanted.status());
  if (req->base_sha256_size() != 0 && req->base_sha256_size() != req->sha256_size()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "base_sha256 must be empty or parallel to sha256");
  }
  if (req->base_sequences_size() != 0 &&
      (req->base_sequences_size() != req->sha256_size() || req->base_sha256_size() != 0)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "base_sequences must be empty or parallel to sha256, and then base_sha256 empty");
  }
  // The device's bases of each wanted chunk (none, one, or a sequence).
  std::vector<std::vector<Digest>> bases(wanted->size());
  for (size_t i = 0; i < wanted->size(); ++i) {
    if (req->base_sha256_size() > 0 && !req->base_sha256(i).empty()) {
      absl::StatusOr<Digest> base = DigestFromBytes(req->base_sha256(i));
      if (!base.ok()) return ToGrpcStatus(base.status());
      bases[i].push_back(*base);
    } else if (req->base_sequences_size() > 0 && req->base_sequences(i).sha256_size() > 0) {
      if (req->base_sequences(i).sha256_size() > static_cast<int>(kMaxDeltaBases)) {
        return TooMany("base chunks for one chunk", req->base_sequences(i).sha256_size(), kMaxDeltaBases);
      }
      absl::StatusOr<std::vector<Digest>> seq = wire::DigestsFromProto(req->base_sequences(i).sha256());
      if (!seq.ok()) return ToGrpcStatus(seq.status());
      bases[i] = std::move(*seq);
    }
  }
  if (absl::Status once = EachOnce(*wanted); !once.ok()) return ToGrpcStatus(once);
  std::unique_ptr<StreamEncoder> stream;  // made for the first chunk, if the device takes streams
  uint64_t base_bytes = 0;  // read for deltas in this call
  for (size_t i = 0; i < wanted->size(); ++i) {
    const Digest& d = (*wanted)[i];
    if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    // A delta costs its bases' bytes: within the call's budget and charged to the device's rate;
    // past either, the chunk goes whole (the device still gets it).
    const bool has_base = !bases[i].empty() && base_bytes < kMaxBaseBytesPerCall;
    std::string raw;  // wanted only to make a delta
    absl::StatusOr<StoredChunk> stored = chunks_->GetStored(caller->owner, d, has_base ? &raw : nullptr);
    if (!stored.ok()) return ToGrpcStatus(stored.status());
    v1::GetChunksResponse resp;
    resp.set_sha256(DigestToBytes(d));
    resp.set_encoding(stored->encoding == ChunkEncoding::kZstd ? v1::CHUNK_ENCODING_ZSTD : v1::CHUNK_ENCODING_RAW);
    // The device has a similar chunk: send the difference if that is much smaller.
    if (has_base) {
      absl::StatusOr<std::string> base_raw = chunks_->Sequence(caller->owner, bases[i]);
      if (base_raw.ok()) base_bytes += base_raw->size();
      if (base_raw.ok() && limiter_.Charge(caller->device, WorkCost(base_raw->size())).ok()) {
        std::optional<std::string> delta = DeltaEncode(raw, *base_raw, stored->payload.size());
        if (delta.has_value()) {
          M().delta_saved->Add(stored->payload.size() - delta->size());
          resp.set_encoding(v1::CHUNK_ENCODING_ZSTD_DELTA);
          if (bases[i].size() == 1) {
            resp.set_base_sha256(DigestToBytes(bases[i][0]));
          } else {
            for (const Digest& d : bases[i]) resp.add_base_sequence(DigestToBytes(d));
          }
          stored->payload = std::move(*delta);
        }
      }
    }
    if (stream == nullptr && req->accept_zstd_stream()) stream = std::make_unique<StreamEncoder>();
    const std::string& plain = stored->encoding == ChunkEncoding::kRaw ? stored->payload
                               : has_base                              ? raw
                                                                       : stored->decoded;
    if (resp.encoding() != v1::CHUNK_ENCODING_ZSTD_DELTA && stream != nullptr && stream->Worth(plain)) {
      // Compressed (again) with the call's earlier chunks as context (StreamEncoder::Worth).
      absl::StatusOr<std::string> piece = stream->Encode(plain);
      if (!piece.ok()) return ToGrpcStatus(piece.status());
      resp.set_encoding(v1::CHUNK_ENCODING_ZSTD_STREAM);
      stored->payload = std::move(*piece);
    }
    M().bytes_out->Add(stored->payload.size());
    resp.set_data(std::move(stored->payload));
    if (!writer->Write(resp)) return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
  }
  return grpc::Status::OK;
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
  absl::StatusOr<uint64_t> head = log_->HeadSeq(req->namespace_id());
  if (!head.ok()) return ToGrpcStatus(head.status());
  v1::ListFilesResponse batch;
  batch.set_head_seq(*head);
  bool broken = false;
  absl::Status s = log_->ListFiles(req->namespace_id(), [&](const FileVersion& v) {
    if (broken) return;
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
  std::vector<std::string> members(req->member_device_ids().begin(),
                                   req->member_device_ids().end());
  return ToGrpcStatus(log_->RegisterNamespace(req->namespace_id(), req->owner_user_id(), members));
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
  resp->set_head_seq(stats->head_seq);
  resp->set_live_files(stats->live_files);
  resp->set_live_bytes(stats->live_bytes);
  resp->set_unique_chunks(stats->unique_chunks);
  resp->set_unique_chunk_bytes(stats->unique_chunk_bytes);
  resp->set_open_conflicts(stats->open_conflicts);
  resp->set_watermark(stats->watermark);
  resp->set_compacted_through(stats->compacted_through);
  for (const std::string& p : stats->conflict_paths) resp->add_conflict_paths(p);
  for (const DeviceState& d : stats->devices) {
    v1::DeviceCursor* c = resp->add_cursors();
    c->set_device_id(d.device_id);
    c->set_acked_seq(d.acked_seq);
    c->set_last_seen_unix_ms(d.last_seen_unix_ms);
    c->set_software_version(d.software_version);
    c->set_lag_commits(d.lag_commits);
    c->set_lag_bytes(d.lag_bytes);
    c->set_lag_seconds(d.lag_seconds);
    c->set_evicted(d.evicted);
    c->set_pins_watermark(d.pins_watermark);
    c->set_blocked_count(d.blocked.count);
    for (const std::string& b : d.blocked.sample) c->add_blocked(b);
  }
  return grpc::Status::OK;
}

namespace {

void HeldToProto(const HeldDelete& h, v1::HeldDelete* p) {
  p->set_id(h.id);
  p->set_namespace_id(h.namespace_id);
  p->set_device_id(h.device);
  switch (h.state) {
    case HeldDelete::State::kPending: p->set_state(v1::HeldDelete::PENDING); break;
    case HeldDelete::State::kApproved: p->set_state(v1::HeldDelete::APPROVED); break;
    case HeldDelete::State::kRejected: p->set_state(v1::HeldDelete::REJECTED); break;
    case HeldDelete::State::kApplied: p->set_state(v1::HeldDelete::APPLIED); break;
    case HeldDelete::State::kRestored: p->set_state(v1::HeldDelete::RESTORED); break;
  }
  p->set_created_at_unix_ms(h.created_at_unix_ms);
  p->set_resolved_at_unix_ms(h.resolved_at_unix_ms);
  p->set_deletes(h.deletes);
  p->set_live_entries(h.live_entries);
  for (const std::string& s : h.sample) p->add_sample_paths(s);
}

}  // namespace

grpc::Status StoreService::ListHeldDeletes(grpc::ServerContext* ctx, const v1::ListHeldDeletesRequest* req,
                                           v1::ListHeldDeletesResponse* resp) {
  if (absl::Status s = auth_.RequireService(*ctx); !s.ok()) return ToGrpcStatus(s);
  absl::StatusOr<std::vector<HeldDelete>> held = log_->ListHeld(req->namespace_id());
  if (!held.ok()) return ToGrpcStatus(held.status());
  for (const HeldDelete& h : *held) HeldToProto(h, resp->add_held());
  return grpc::Status::OK;
}

grpc::Status StoreService::ResolveHeldDelete(grpc::ServerContext* ctx, const v1::ResolveHeldDeleteRequest* req,
                                             v1::HeldDelete* resp) {
  if (absl::Status s = auth_.RequireService(*ctx); !s.ok()) return ToGrpcStatus(s);
  absl::StatusOr<HeldDelete> held = log_->ResolveHeld(req->namespace_id(), req->id(), req->approve());
  if (!held.ok()) return ToGrpcStatus(held.status());
  HeldToProto(*held, resp);
  return grpc::Status::OK;
}

absl::StatusOr<std::string> StoreService::MemberOrOperator(const grpc::ServerContext& ctx, const std::string& ns,
                                                           const std::string& request_device_id) {
  if (auth_.RequireService(ctx).ok()) {
    CONVERGE_RETURN_IF_ERROR(ValidateId("namespace id", ns));
    CONVERGE_RETURN_IF_ERROR(log_->CheckAccess(ns, ""));
    return std::string("operator");
  }
  absl::StatusOr<Caller> caller = Authorize(ctx, ns, request_device_id);
  if (!caller.ok()) return caller.status();
  return caller->device;
}

namespace {

void ConflictToProto(const ConflictRecord& r, v1::Conflict* p) {
  p->set_copy_path(r.copy_path);
  p->set_original_path(r.original_path);
  p->set_device_id(r.device);
  p->set_seq(r.seq);
  p->set_created_at_unix_ms(r.created_at_unix_ms);
  p->set_resolved(r.resolved);
  p->set_resolved_at_unix_ms(r.resolved_at_unix_ms);
  p->set_resolved_by(r.resolved_by);
}

}  // namespace

grpc::Status StoreService::ListVersions(grpc::ServerContext* ctx, const v1::ListVersionsRequest* req,
                                        v1::ListVersionsResponse* resp) {
  absl::StatusOr<std::string> who = MemberOrOperator(*ctx, req->namespace_id(), req->device_id());
  if (!who.ok()) return ToGrpcStatus(who.status());
  if (absl::Status s = ValidateRelativePath(req->path()); !s.ok()) return ToGrpcStatus(s);
  const size_t limit = req->limit() == 0 || req->limit() > kMaxVersionsPerCall ? kMaxVersionsPerCall : req->limit();
  absl::StatusOr<std::vector<HistoryVersion>> versions = log_->Versions(req->namespace_id(), req->path(), limit);
  if (!versions.ok()) return ToGrpcStatus(versions.status());
  for (const HistoryVersion& h : *versions) {
    v1::HistoryVersion* out = resp->add_versions();
    wire::FileVersionToProto(h.version, out->mutable_version());
    out->set_committed_at_unix_ms(h.committed_at_unix_ms);
  }
  return grpc::Status::OK;
}

grpc::Status StoreService::ListFilesAt(grpc::ServerContext* ctx, const v1::ListFilesAtRequest* req,
                                       grpc::ServerWriter<v1::ListFilesResponse>* writer) {
  absl::StatusOr<std::string> who = MemberOrOperator(*ctx, req->namespace_id(), req->device_id());
  if (!who.ok()) return ToGrpcStatus(who.status());
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
  });
  if (broken) return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
  if (!s.ok()) return ToGrpcStatus(s);
  if (batch.files_size() > 0 && !writer->Write(batch)) return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
  return grpc::Status::OK;
}

grpc::Status StoreService::ListConflicts(grpc::ServerContext* ctx, const v1::ListConflictsRequest* req,
                                         v1::ListConflictsResponse* resp) {
  absl::StatusOr<std::string> who = MemberOrOperator(*ctx, req->namespace_id(), req->device_id());
  if (!who.ok()) return ToGrpcStatus(who.status());
  absl::StatusOr<std::vector<ConflictRecord>> conflicts = log_->ListConflicts(req->namespace_id(), req->include_resolved());
  if (!conflicts.ok()) return ToGrpcStatus(conflicts.status());
  for (const ConflictRecord& r : *conflicts) ConflictToProto(r, resp->add_conflicts());
  return grpc::Status::OK;
}

grpc::Status StoreService::ResolveConflict(grpc::ServerContext* ctx, const v1::ResolveConflictRequest* req,
                                           v1::Conflict* resp) {
  absl::StatusOr<std::string> who = MemberOrOperator(*ctx, req->namespace_id(), req->device_id());
  if (!who.ok()) return ToGrpcStatus(who.status());
  if (absl::Status s = ValidateRelativePath(req->copy_path()); !s.ok()) return ToGrpcStatus(s);
  absl::StatusOr<ConflictRecord> r = log_->ResolveConflict(req->namespace_id(), req->copy_path(), *who);
  if (!r.ok()) return ToGrpcStatus(r.status());
  ConflictToProto(*r, resp);
  return grpc::Status::OK;
}

grpc::Status StoreService::Compact(grpc::ServerContext* ctx, const v1::CompactRequest* req, v1::CompactResponse* resp) {
  if (absl::Status s = auth_.RequireService(*ctx); !s.ok()) return ToGrpcStatus(s);
  absl::StatusOr<CompactionResult> r = log_->Compact(req->namespace_id(), retention_);
  if (!r.ok()) return ToGrpcStatus(r.status());
  absl::StatusOr<ChunkStore::SweepResult> swept = log_->CollectGarbage(chunk_grace_);
  if (!swept.ok()) return ToGrpcStatus(swept.status());
  resp->set_watermark(r->watermark);
  resp->set_compacted_through(r->compacted_through);
  resp->set_log_entries_dropped(r->log_entries_dropped);
  resp->set_versions_dropped(r->versions_dropped);
  resp->set_tombstones_dropped(r->tombstones_dropped);
  for (const std::string& d : r->pinned_by) resp->add_pinned_by(d);
  resp->set_chunks_dropped(swept->chunks_dropped);
  resp->set_bytes_dropped(swept->bytes_dropped);
  return grpc::Status::OK;
}

grpc::Status StoreService::EvictDevice(grpc::ServerContext* ctx, const v1::EvictDeviceRequest* req,
                                       v1::EvictDeviceResponse*) {
  if (absl::Status s = auth_.RequireService(*ctx); !s.ok()) return ToGrpcStatus(s);
  return ToGrpcStatus(log_->Evict(req->namespace_id(), req->evict_device_id()));
}

}  // namespace converge::store
