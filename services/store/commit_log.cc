#include "common/model/store_behind.h"
#include "services/store/commit_log.h"
#include "services/store/cursor_record.h"

#include <rocksdb/write_batch.h>

#include <algorithm>
#include <map>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/coding.h"
#include "common/base/sha256.h"
#include "common/base/status_macros.h"
#include "common/model/conflict_name.h"
#include "common/model/mass_delete.h"
#include "common/model/path.h"

namespace converge::store {
namespace {

// The namespace record's format: head seq, members, live entries. (Format 1, written before
// 0.4, is not read.)
constexpr uint64_t kNamespaceFormat = 2;
constexpr uint64_t kNamespaceEncrypted = 1;  // flags of the namespace record
constexpr uint64_t kNamespaceConverted = 2;  // encrypted since converted_at (plain before)

// CheckSealing: an end-to-end encrypted namespace takes only versions its devices sealed (a
// sealed record, every name lowercase base32, as EncryptingStoreClient writes them); a plain one
// takes none: a device cannot leave plaintext in the one or unreadable versions in the other.
absl::Status CheckSealing(const std::string& ns, bool encrypted, const std::vector<FileVersion>& changes) {
  for (const FileVersion& v : changes) {
    if (!encrypted) {
      if (!v.sealed_record.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(v.path, ": a sealed version, but namespace '", ns, "' is not end-to-end encrypted"));
      }
      continue;
    }
    const bool base32 = std::all_of(v.path.begin(), v.path.end(),
                                    [](char c) { return c == '/' || (c >= 'a' && c <= 'z') || (c >= '2' && c <= '7'); });
    if (v.sealed_record.empty() || !base32) {
      return absl::InvalidArgumentError(absl::StrCat(
          "namespace '", ns, "' is end-to-end encrypted: a version must come sealed by the namespace's devices (",
          v.sealed_record.empty() ? "this one has no sealed record" : "this one has a name in the clear", ")"));
    }
  }
  return absl::OkStatus();
}
// NextChain: the encrypted namespace's chained head after a commit of `device` with `attestation`
// (common/crypto/log_chain.h); InvalidArgument for a missing or malformed one, or one in a plain
// namespace. The signature is the devices' to check: the store holds no keys.
absl::StatusOr<Digest> NextChain(const std::string& ns, const std::string& device, bool encrypted,
                                 const crypto::LogHead& prev, const std::string& attestation) {
  if (!encrypted) {
    if (attestation.empty()) return Digest{};
    return absl::InvalidArgumentError(
        absl::StrCat("a signed commit, but namespace '", ns, "' is not end-to-end encrypted"));
  }
  if (attestation.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("namespace '", ns,
                                                   "' is end-to-end encrypted: a commit must come signed by its device"));
  }
  CONVERGE_ASSIGN_OR_RETURN(crypto::SignedCommit signed_commit, crypto::DecodeAttestation(attestation, ns, device));
  return crypto::NextHead(prev, signed_commit).hash;
}
constexpr size_t kHeldSample = 5;
constexpr size_t kMaxNamedPaths = 20;

// A cursor record: varint seq, then (optional, newer records) varint last-seen ms and the
// length-prefixed software version.
std::string EncodeHeld(const HeldDelete& h) {
  std::string out;
  PutVarint64(&out, static_cast<uint64_t>(h.state));
  PutLengthPrefixed(&out, h.device);
  PutVarint64(&out, static_cast<uint64_t>(h.created_at_unix_ms));
  PutVarint64(&out, static_cast<uint64_t>(h.resolved_at_unix_ms));
  PutVarint64(&out, h.deletes);
  PutVarint64(&out, h.live_entries);
  PutVarint64(&out, h.sample.size());
  for (const std::string& p : h.sample) PutLengthPrefixed(&out, p);
  PutVarint64(&out, h.settled);
  PutVarint64(&out, h.top_folders.size());
  for (const auto& [folder, files] : h.top_folders) {
    PutLengthPrefixed(&out, folder);
    PutVarint64(&out, files);
  }
  return out;
}

absl::StatusOr<HeldDelete> DecodeHeld(absl::string_view ns, absl::string_view id, absl::string_view bytes) {
  Decoder d(bytes);
  HeldDelete h;
  h.namespace_id = std::string(ns);
  h.id = std::string(id);
  uint64_t state, created, resolved, n;
  if (!d.GetVarint64(&state) || state > 4 || !d.GetLengthPrefixed(&h.device) || !d.GetVarint64(&created) ||
      !d.GetVarint64(&resolved) || !d.GetVarint64(&h.deletes) || !d.GetVarint64(&h.live_entries) ||
      !d.GetVarint64(&n) || n > 1000) {
    return absl::DataLossError("corrupt held delete record");
  }
  for (uint64_t i = 0; i < n; ++i) {
    std::string p;
    if (!d.GetLengthPrefixed(&p)) return absl::DataLossError("corrupt held delete record");
    h.sample.push_back(std::move(p));
  }
  if (!d.done()) {  // records written before bursts were one hold end here
    uint64_t folders;
    if (!d.GetVarint64(&h.settled) || !d.GetVarint64(&folders) || folders > 1000) {
      return absl::DataLossError("corrupt held delete record");
    }
    for (uint64_t i = 0; i < folders; ++i) {
      std::string folder;
      uint64_t files;
      if (!d.GetLengthPrefixed(&folder) || !d.GetVarint64(&files)) return absl::DataLossError("corrupt held delete record");
      h.top_folders.emplace_back(std::move(folder), files);
    }
  }
  h.state = static_cast<HeldDelete::State>(state);
  h.created_at_unix_ms = static_cast<int64_t>(created);
  h.resolved_at_unix_ms = static_cast<int64_t>(resolved);
  return h;
}

std::string ActivityKey(absl::string_view ns, absl::string_view device) {
  return absl::StrCat(ns, std::string(1, '\0'), device);
}

std::string NamedPaths(const std::vector<std::string>& paths) {
  std::string out = absl::StrJoin(paths.begin(),
                                  paths.begin() + std::min(paths.size(), kMaxNamedPaths), ", ");
  if (paths.size() > kMaxNamedPaths) absl::StrAppend(&out, " and ", paths.size() - kMaxNamedPaths, " more");
  return out;
}

}  // namespace

std::string CommitLog::EncodeNamespace(const NamespaceState& state) {
  std::string out;
  PutVarint64(&out, kNamespaceFormat);
  PutVarint64(&out, state.head_seq);
  std::vector<std::string> members(state.members.begin(), state.members.end());
  std::sort(members.begin(), members.end());
  PutVarint64(&out, members.size());
  for (const std::string& m : members) PutLengthPrefixed(&out, m);
  PutVarint64(&out, state.live_entries);
  const uint64_t flags = (state.encrypted ? kNamespaceEncrypted : 0) | (state.converted_at > 0 ? kNamespaceConverted : 0);
  PutVarint64(&out, flags);  // absent in older records
  if (state.encrypted) out.append(reinterpret_cast<const char*>(state.chain.data()), state.chain.size());
  if (state.converted_at > 0) PutVarint64(&out, state.converted_at);
  return out;
}

absl::StatusOr<CommitLog::NamespaceState> CommitLog::ReadNamespace(const std::string& ns) {
  std::string value;
  rocksdb::Status s = db_->db()->Get(rocksdb::ReadOptions(), StoreDb::NamespaceKey(ns), &value);
  if (s.IsNotFound()) return absl::NotFoundError(absl::StrCat("unknown namespace '", ns, "'"));
  CONVERGE_RETURN_IF_ERROR(RocksStatus(s, "read namespace"));
  Decoder d(value);
  NamespaceState state;
  uint64_t format, n;
  if (!d.GetVarint64(&format) || format != kNamespaceFormat ||
      !d.GetVarint64(&state.head_seq) || !d.GetVarint64(&n)) {
    return absl::DataLossError(absl::StrCat("corrupt namespace record '", ns, "'"));
  }
  for (uint64_t i = 0; i < n; ++i) {
    std::string member;
    if (!d.GetLengthPrefixed(&member)) return absl::DataLossError("corrupt namespace record");
    state.members.insert(std::move(member));
  }
  uint64_t flags = 0;
  if (!d.GetVarint64(&state.live_entries) || (!d.done() && !d.GetVarint64(&flags))) {
    return absl::DataLossError("corrupt namespace record");
  }
  state.encrypted = (flags & kNamespaceEncrypted) != 0;
  absl::string_view chain;
  if (state.encrypted && !d.done()) {
    if (!d.GetRaw(state.chain.size(), &chain)) return absl::DataLossError("corrupt namespace record: chain");
    std::memcpy(state.chain.data(), chain.data(), chain.size());
  }
  if ((flags & kNamespaceConverted) != 0 && !d.GetVarint64(&state.converted_at)) {
    return absl::DataLossError("corrupt namespace record: conversion");
  }
  if (!d.done()) return absl::DataLossError("corrupt namespace record");
  s = db_->db()->Get(rocksdb::ReadOptions(), StoreDb::NamespaceOwnerKey(ns), &state.owner);
  if (!s.ok() && !s.IsNotFound()) return RocksStatus(s, "read namespace owner");
  std::string compaction;
  s = db_->db()->Get(rocksdb::ReadOptions(), StoreDb::CompactionKey(ns), &compaction);
  if (!s.ok() && !s.IsNotFound()) return RocksStatus(s, "read compaction record");
  if (s.ok()) {
    Decoder c(compaction);
    if (!c.GetFixed64BE(&state.compacted_through) || !c.GetFixed64BE(&state.dropped_through)) {
      return absl::DataLossError(absl::StrCat("corrupt compaction record '", ns, "'"));
    }
  }
  return state;
}

absl::StatusOr<CommitLog::Namespace*> CommitLog::Find(const std::string& ns) {
  absl::MutexLock lock(&mu_);
  auto it = ns_.find(ns);
  if (it != ns_.end()) return it->second.get();
  CONVERGE_ASSIGN_OR_RETURN(NamespaceState state, ReadNamespace(ns));
  auto entry = std::make_unique<Namespace>();
  {
    absl::MutexLock access(&entry->access_mu);
    entry->owner = state.owner;
    entry->members = state.members;
  }
  entry->state = std::move(state);
  return ns_.emplace(ns, std::move(entry)).first->second.get();
}

absl::Status CommitLog::RegisterNamespace(const std::string& ns, const std::string& owner,
                                          const std::vector<std::string>& members, bool encrypted) {
  CONVERGE_RETURN_IF_ERROR(ValidateId("namespace id", ns));
  CONVERGE_RETURN_IF_ERROR(ValidateId("user id", owner));
  for (const std::string& m : members) CONVERGE_RETURN_IF_ERROR(ValidateId("device id", m));
  absl::MutexLock one_at_a_time(&register_mu_);
  absl::StatusOr<Namespace*> found = Find(ns);
  if (!found.ok() && !absl::IsNotFound(found.status())) return found.status();
  NamespaceState next;
  next.members.insert(members.begin(), members.end());
  if (!found.ok()) {
    // A new namespace; Find reads it back.
    next.owner = owner;
    next.encrypted = encrypted;
    rocksdb::WriteBatch batch;
    batch.Put(StoreDb::NamespaceKey(ns), EncodeNamespace(next));
    batch.Put(StoreDb::NamespaceOwnerKey(ns), next.owner);
    CONVERGE_RETURN_IF_ERROR(RocksStatus(db_->WriteSynced(&batch), "write namespace"));
    return Find(ns).status();
  }
  Namespace* n = *found;
  absl::MutexLock lock(&n->mu);
  NamespaceState* current = &n->state;
  next.head_seq = current->head_seq;
  next.live_entries = current->live_entries;
  next.owner = current->owner;
  next.encrypted = current->encrypted;
  next.chain = current->chain;
  next.converted_at = current->converted_at;
  if (owner != next.owner) {
    return absl::FailedPreconditionError(absl::StrCat("namespace '", ns, "' belongs to another user"));
  }
  if (current->encrypted && !encrypted) {
    return absl::FailedPreconditionError(
        absl::StrCat("namespace '", ns, "' is end-to-end encrypted; it cannot be made plain again"));
  }
  if (encrypted && !current->encrypted) {
    // Converted: from its head on only sealed versions, signed and chained from a zero hash;
    // what came before stays in the table and the history as it was (devices that sync it
    // sealed start after it: StoreService).
    next.encrypted = true;
    next.converted_at = current->head_seq;  // 0 for an empty one: as if made encrypted
  }
  rocksdb::WriteBatch batch;
  batch.Put(StoreDb::NamespaceKey(ns), EncodeNamespace(next));
  CONVERGE_RETURN_IF_ERROR(RocksStatus(db_->WriteSynced(&batch), "write namespace"));
  current->members = next.members;
  current->owner = next.owner;
  current->encrypted = next.encrypted;
  current->converted_at = next.converted_at;
  absl::MutexLock access(&n->access_mu);
  n->members = std::move(next.members);
  n->owner = std::move(next.owner);
  return absl::OkStatus();
}

absl::StatusOr<std::string> CommitLog::OwnerOf(const std::string& ns) {
  CONVERGE_ASSIGN_OR_RETURN(Namespace * n, Find(ns));
  absl::MutexLock access(&n->access_mu);
  return n->owner;
}

absl::Status CommitLog::CheckAccess(const std::string& ns, const std::string& device) {
  return OwnerFor(ns, device).status();
}

absl::StatusOr<std::string> CommitLog::OwnerFor(const std::string& ns, const std::string& device) {
  CONVERGE_ASSIGN_OR_RETURN(Namespace * n, Find(ns));
  absl::MutexLock access(&n->access_mu);
  if (!device.empty() && !n->members.contains(device)) {
    return absl::PermissionDeniedError(
        absl::StrCat("device '", device, "' is not a member of namespace '", ns, "'"));
  }
  return n->owner;
}

absl::StatusOr<Commit> CommitLog::Append(const std::string& ns, const std::string& device,
                                         std::vector<FileVersion> changes, std::string attestation) {
  CONVERGE_RETURN_IF_ERROR(ValidateChanges(changes));
  CONVERGE_ASSIGN_OR_RETURN(Namespace * n, Find(ns));
  absl::ReaderMutexLock not_sweeping(&sweep_mu_);
  absl::MutexLock lock(&n->mu);
  NamespaceState* const state = &n->state;
  CONVERGE_RETURN_IF_ERROR(CheckGate(ns, /*writing=*/true));
  if (!state->members.contains(device) && device != kConsoleOrigin) {
    return absl::PermissionDeniedError(
        absl::StrCat("device '", device, "' is not a member of namespace '", ns, "'"));
  }
  CONVERGE_RETURN_IF_ERROR(CheckSealing(ns, state->encrypted, changes));
  CONVERGE_ASSIGN_OR_RETURN(const Digest chain, NextChain(ns, device, state->encrypted,
                                                          crypto::LogHead{state->head_seq, state->chain}, attestation));
  CONVERGE_ASSIGN_OR_RETURN(const Bases bases, CheckBasesLocked(ns, *state, changes));
  CONVERGE_RETURN_IF_ERROR(CheckChunksStoredLocked(*state, changes));
  // Before the tree checks: a folder whose files a pending hold keeps joins that hold.
  rocksdb::WriteBatch batch;
  bool approved = false;
  CONVERGE_RETURN_IF_ERROR(CheckMassDeleteLocked(ns, device, state, changes, bases.live_deletes, &batch, &approved));
  CONVERGE_RETURN_IF_ERROR(CheckDirectoryDeletesLocked(ns, changes));
  CONVERGE_RETURN_IF_ERROR(CheckCaseCollisionsLocked(ns, changes, &batch));
  CONVERGE_RETURN_IF_ERROR(CheckTreeLocked(ns, changes));

  Commit commit;
  commit.namespace_id = ns;
  commit.seq = state->head_seq + 1;
  commit.origin_device = device;
  commit.committed_at_unix_ms = absl::ToUnixMillis(clock_->Now());
  commit.files = std::move(changes);
  commit.attestation = std::move(attestation);
  for (FileVersion& v : commit.files) {
    v.seq = commit.seq;
    v.origin_device = device;
    batch.Put(StoreDb::FileKey(ns, v.path), EncodeFileVersion(v));
  }
  batch.Put(StoreDb::LogKey(ns, commit.seq), EncodeCommit(commit));
  CONVERGE_RETURN_IF_ERROR(RecordHistory(
      db_, commit, [&](const std::string& p) { return bases.live_before.contains(p); }, &batch));
  NamespaceState next;
  next.head_seq = commit.seq;
  next.members = state->members;
  next.owner = state->owner;
  next.encrypted = state->encrypted;
  next.converted_at = state->converted_at;
  next.chain = chain;
  next.live_entries =
      static_cast<uint64_t>(std::max<int64_t>(0, static_cast<int64_t>(state->live_entries) + bases.live_delta));
  batch.Put(StoreDb::NamespaceKey(ns), EncodeNamespace(next));
  CONVERGE_RETURN_IF_ERROR(RocksStatus(db_->WriteSynced(&batch), "write commit"));
  state->head_seq = commit.seq;
  state->chain = chain;
  state->live_entries = next.live_entries;
  // Approved deletions are settled: they do not count against the device's next ones.
  if (bases.live_deletes > 0 && !approved) state->recent_deletes[device].emplace_back(clock_->Now(), bases.live_deletes);
  return commit;
}

absl::StatusOr<CommitLog::Bases> CommitLog::CheckBasesLocked(const std::string& ns, const NamespaceState& state,
                                                             const std::vector<FileVersion>& changes) {
  // Optimistic concurrency: each change must be made on top of the path's current version.
  Bases bases;
  std::vector<std::string> stale;
  // A move is a tombstone and a live version with the same file_id in one commit: not a delete.
  absl::flat_hash_set<std::string> live_ids;
  for (const FileVersion& v : changes) {
    if (!v.deleted) live_ids.insert(v.file_id);
  }
  for (const FileVersion& v : changes) {
    std::string value;
    rocksdb::Status s = db_->db()->Get(rocksdb::ReadOptions(), StoreDb::FileKey(ns, v.path), &value);
    uint64_t current_seq = 0;
    bool was_live = false;
    if (s.ok()) {
      CONVERGE_ASSIGN_OR_RETURN(FileVersion current, DecodeFileVersion(value));
      current_seq = current.seq;
      was_live = !current.deleted;
    } else if (!s.IsNotFound()) {
      return RocksStatus(s, "read file table");
    }
    if (was_live) bases.live_before.insert(v.path);
    // A device may still know a tombstone compaction dropped: made on top of it is current.
    const bool dropped_tombstone = s.IsNotFound() && v.base_seq <= state.dropped_through;
    if (v.base_seq != current_seq && !dropped_tombstone) stale.push_back(v.path);
    if (v.deleted && was_live && !live_ids.contains(v.file_id)) ++bases.live_deletes;
    bases.live_delta += (v.deleted ? 0 : 1) - (was_live ? 1 : 0);
  }
  if (!stale.empty()) {
    return absl::AbortedError(absl::StrCat("stale base_seq (pull and retry) for: ", NamedPaths(stale)));
  }
  return bases;
}

absl::Status CommitLog::CheckChunksStoredLocked(const NamespaceState& state, const std::vector<FileVersion>& changes) {
  // Every chunk a live file references must already be stored.
  std::vector<Digest> referenced;
  for (const FileVersion& v : changes) {
    if (v.deleted || v.kind != FileKind::kFile) continue;
    for (const ChunkRef& c : v.chunks) {
      if (!c.hole()) referenced.push_back(c.sha256);  // a hole is not stored
    }
  }
  CONVERGE_ASSIGN_OR_RETURN(std::vector<Digest> missing, chunks_->FindMissing(state.owner, referenced));
  if (missing.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat(missing.size(), " referenced chunk(s) not uploaded, first ", DigestToHex(missing.front())));
}

absl::Status CommitLog::CheckDirectoryDeletesLocked(const std::string& ns, const std::vector<FileVersion>& changes) {
  // A directory may be deleted only with everything in it.
  absl::flat_hash_set<std::string> deleted_here;
  for (const FileVersion& v : changes) {
    if (v.deleted) deleted_here.insert(v.path);
  }
  for (const FileVersion& v : changes) {
    if (!v.deleted || v.kind != FileKind::kDirectory) continue;
    PrefixIterator it(db_->db(), StoreDb::FileKey(ns, absl::StrCat(v.path, "/")));
    for (; it.Valid(); it.Next()) {
      CONVERGE_ASSIGN_OR_RETURN(FileVersion child, DecodeFileVersion(View(it.value())));
      if (!child.deleted && !deleted_here.contains(child.path)) {
        return absl::FailedPreconditionError(absl::StrCat("cannot delete directory '", v.path, "': '", child.path,
                                                          "' in it is not deleted"));
      }
    }
    CONVERGE_RETURN_IF_ERROR(RocksStatus(it.status(), "read file table"));
  }
  return absl::OkStatus();
}

namespace {

// The first `depth` components of `path`.
absl::string_view FirstComponents(absl::string_view path, size_t depth) {
  size_t pos = 0;
  for (size_t i = 1; i <= depth; ++i) {
    const size_t slash = path.find('/', pos);
    if (slash == absl::string_view::npos) return path;
    if (i == depth) return path.substr(0, slash);
    pos = slash + 1;
  }
  return path;
}

// The directory names one commit's case check may look up, in bytes: a commit of many deep paths
// in distinct directories is refused before it costs more (ordinary commits share directories).
constexpr size_t kMaxCaseCheckBytes = 16 << 20;

}  // namespace

absl::Status CommitLog::CheckCaseCollisionsLocked(const std::string& ns, const std::vector<FileVersion>& changes,
                                                  rocksdb::WriteBatch* batch) {
  absl::flat_hash_set<absl::string_view> deleted_here;
  for (const FileVersion& v : changes) {
    if (v.deleted) deleted_here.insert(v.path);
  }
  // The spelling a live entry (not deleted here) gives a name `depth` components deep whose
  // fold is `folded`: as an entry itself, or as a directory above entries (directories need not
  // be entries). "" if none.
  auto live_spelling = [&](size_t depth, absl::string_view folded) -> absl::StatusOr<std::string> {
    std::string holder;
    rocksdb::Status s = db_->db()->Get(rocksdb::ReadOptions(), StoreDb::CaseKey(ns, folded), &holder);
    if (s.ok() && !deleted_here.contains(holder)) return holder;
    if (!s.ok() && !s.IsNotFound()) return RocksStatus(s, "case index");
    PrefixIterator it(db_->db(), StoreDb::CaseKey(ns, absl::StrCat(folded, "/")));
    for (; it.Valid(); it.Next()) {
      const absl::string_view live = View(it.value());
      if (!deleted_here.contains(live)) return std::string(FirstComponents(live, depth));
    }
    CONVERGE_RETURN_IF_ERROR(RocksStatus(it.status(), "case index"));
    return std::string();
  };
  // fold -> the name that holds it after this commit, for every name checked so far. A name
  // found here had its directories checked already, so a walk up from a path stops at it: the
  // work is linear in the distinct directories the commit names.
  absl::flat_hash_map<std::string, std::string> claimed;
  size_t looked_up = 0;
  std::vector<std::string> folds;  // of each live change, in order
  for (const FileVersion& v : changes) {
    if (v.deleted) continue;
    folds.push_back(CaseFold(v.path));
    const std::string& folded = folds.back();
    size_t depth = 1 + std::count(v.path.begin(), v.path.end(), '/');
    for (; depth > 0; --depth) {
      const absl::string_view name = FirstComponents(v.path, depth);
      const absl::string_view fold = FirstComponents(folded, depth);
      auto found = claimed.find(fold);
      if (found != claimed.end()) {
        if (found->second == name) break;  // checked, with the directories above it
        return absl::AlreadyExistsError(absl::StrCat("case collision: '", name, "' differs only in case from '",
                                                     found->second, "' (a case-insensitive device could not hold both)"));
      }
      looked_up += fold.size();
      if (looked_up > kMaxCaseCheckBytes) {
        return absl::InvalidArgumentError(absl::StrCat("a commit may name at most ", kMaxCaseCheckBytes,
                                                       " bytes of distinct directories: split it"));
      }
      CONVERGE_ASSIGN_OR_RETURN(std::string holder, live_spelling(depth, fold));
      if (!holder.empty() && holder != name) {
        return absl::AlreadyExistsError(absl::StrCat("case collision: '", name, "' differs only in case from '",
                                                     holder, "' (a case-insensitive device could not hold both)"));
      }
      claimed.emplace(std::string(fold), std::string(name));
    }
  }
  // Deletions first: a case-only rename deletes and re-adds the same fold in one batch.
  for (const FileVersion& v : changes) {
    if (!v.deleted) continue;
    const std::string key = StoreDb::CaseKey(ns, CaseFold(v.path));
    std::string holder;
    rocksdb::Status s = db_->db()->Get(rocksdb::ReadOptions(), key, &holder);
    if (s.ok() && holder == v.path) batch->Delete(key);
    if (!s.ok() && !s.IsNotFound()) return RocksStatus(s, "case index");
  }
  size_t next_fold = 0;
  for (const FileVersion& v : changes) {
    if (!v.deleted) batch->Put(StoreDb::CaseKey(ns, folds[next_fold++]), v.path);
  }
  return absl::OkStatus();
}

absl::Status CommitLog::CheckTreeLocked(const std::string& ns, const std::vector<FileVersion>& changes) {
  absl::flat_hash_set<absl::string_view> deleted_here;
  for (const FileVersion& v : changes) {
    if (v.deleted) deleted_here.insert(v.path);
  }
  absl::flat_hash_map<absl::string_view, const FileVersion*> live_here;
  for (const FileVersion& v : changes) {
    if (!v.deleted) live_here.emplace(v.path, &v);
  }
  // A directory above a live entry must not be a file or symlink once this commit is applied
  // (no device could make the tree: it would stall every engine applying it).
  auto must_be_directory = [&](absl::string_view dir, absl::string_view child) -> absl::Status {
    auto here = live_here.find(dir);
    FileKind kind = FileKind::kDirectory;
    if (here != live_here.end()) {
      kind = here->second->kind;
    } else if (!deleted_here.contains(dir)) {
      std::string value;
      rocksdb::Status s = db_->db()->Get(rocksdb::ReadOptions(), StoreDb::FileKey(ns, dir), &value);
      if (!s.ok() && !s.IsNotFound()) return RocksStatus(s, "read file table");
      if (s.ok()) {
        CONVERGE_ASSIGN_OR_RETURN(FileVersion current, DecodeFileVersion(value));
        if (!current.deleted) kind = current.kind;
      }
    }
    if (kind == FileKind::kDirectory) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat("'", child, "' would be inside '", dir, "', which is a ",
                                                      kind == FileKind::kSymlink ? "symlink" : "file"));
  };
  for (const FileVersion& v : changes) {
    if (v.deleted || v.kind == FileKind::kDirectory) continue;
    // ...and a file or symlink has nothing live below it.
    PrefixIterator it(db_->db(), StoreDb::FileKey(ns, absl::StrCat(v.path, "/")));
    for (; it.Valid(); it.Next()) {
      CONVERGE_ASSIGN_OR_RETURN(FileVersion child, DecodeFileVersion(View(it.value())));
      if (child.deleted || deleted_here.contains(child.path)) continue;
      return absl::FailedPreconditionError(
          absl::StrCat("'", v.path, "' cannot become a file or symlink: '", child.path, "' is inside it"));
    }
    CONVERGE_RETURN_IF_ERROR(RocksStatus(it.status(), "read file table"));
  }
  // Each directory once: one already checked had the directories above it checked too (the
  // case check, which runs first, bounds the distinct directories a commit may name).
  absl::flat_hash_set<absl::string_view> checked;
  for (const FileVersion& v : changes) {
    if (v.deleted) continue;
    for (absl::string_view dir = ParentPath(v.path); !dir.empty() && checked.insert(dir).second; dir = ParentPath(dir)) {
      CONVERGE_RETURN_IF_ERROR(must_be_directory(dir, v.path));
    }
  }
  return absl::OkStatus();
}

absl::Status CommitLog::ReadSince(const std::string& ns, uint64_t since_seq, uint32_t max_commits,
                                  const std::function<bool(const Commit&)>& fn) {
  uint64_t compacted_through = 0;
  {
    CONVERGE_ASSIGN_OR_RETURN(Namespace * n, Find(ns));
    absl::MutexLock lock(&n->mu);
    const NamespaceState* state = &n->state;
    compacted_through = state->compacted_through;
  }
  if (since_seq < compacted_through) {
    return LogCompactedError(compacted_through + 1);  // common/model/store_behind.h
  }
  const std::string prefix = StoreDb::LogPrefix(ns);
  std::unique_ptr<rocksdb::Iterator> it(db_->db()->NewIterator(rocksdb::ReadOptions()));
  uint32_t sent = 0;
  for (it->Seek(StoreDb::LogKey(ns, since_seq + 1)); it->Valid() && it->key().starts_with(prefix);
       it->Next()) {
    CONVERGE_ASSIGN_OR_RETURN(Commit c, DecodeCommit(View(it->value())));
    if (!fn(c)) return absl::OkStatus();
    if (max_commits != 0 && ++sent >= max_commits) return absl::OkStatus();
  }
  return RocksStatus(it->status(), "read log");
}

absl::Status CommitLog::ListFiles(const std::string& ns,
                                  const std::function<void(const FileVersion&)>& fn) {
  CONVERGE_RETURN_IF_ERROR(CheckAccess(ns, ""));
  return ScanFileTable(ns, fn);
}

absl::Status CommitLog::ScanFileTable(const std::string& ns, const std::function<void(const FileVersion&)>& fn) {
  const std::string prefix = StoreDb::FilePrefix(ns);
  std::unique_ptr<rocksdb::Iterator> it(db_->db()->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    CONVERGE_ASSIGN_OR_RETURN(FileVersion v, DecodeFileVersion(View(it->value())));
    fn(v);
  }
  return RocksStatus(it->status(), "read file table");
}

absl::Status CommitLog::Ack(const std::string& ns, const std::string& device, uint64_t seq,
                            const std::string& software_version, Blocked blocked) {
  CONVERGE_ASSIGN_OR_RETURN(uint64_t head, HeadSeq(ns));
  CONVERGE_RETURN_IF_ERROR(CheckAccess(ns, device));
  if (seq > head) {
    return absl::InvalidArgumentError(absl::StrCat("ack of seq ", seq, " above head ", head));
  }
  Touch(ns, device, software_version);
  {
    absl::MutexLock lock(&activity_mu_);
    activity_[ActivityKey(ns, device)].blocked = std::move(blocked);
  }
  CONVERGE_ASSIGN_OR_RETURN(Namespace * n, Find(ns));
  absl::MutexLock lock(&n->mu);  // cursor read-modify-write
  CONVERGE_RETURN_IF_ERROR(CheckGate(ns, /*writing=*/true));
  return UpdateCursorLocked(ns, device, /*sync=*/false, [&](CursorRecord* record) {
    record->seq = std::max(record->seq, seq);
    record->evicted = false;  // it is back
    record->last_seen_unix_ms = absl::ToUnixMillis(clock_->Now());
    if (!software_version.empty()) record->software_version = software_version;
  });
}

absl::Status CommitLog::UpdateCursorLocked(const std::string& ns, const std::string& device, bool sync,
                                           const std::function<void(CursorRecord*)>& change) {
  const std::string key = StoreDb::CursorKey(ns, device);
  std::string value;
  CursorRecord record;
  rocksdb::Status s = db_->db()->Get(rocksdb::ReadOptions(), key, &value);
  if (s.ok()) {
    CONVERGE_ASSIGN_OR_RETURN(record, DecodeCursor(value));
  } else if (!s.IsNotFound()) {
    return RocksStatus(s, "read cursor");
  }
  change(&record);
  if (sync) return RocksStatus(db_->PutSynced(key, EncodeCursor(record)), "write cursor");
  return RocksStatus(db_->Checked(db_->db()->Put(rocksdb::WriteOptions(), key, EncodeCursor(record))), "write cursor");
}

void CommitLog::Touch(const std::string& ns, const std::string& device, const std::string& software_version) {
  if (device.empty()) return;
  absl::MutexLock lock(&activity_mu_);
  Activity& a = activity_[ActivityKey(ns, device)];
  a.last_seen_unix_ms = absl::ToUnixMillis(clock_->Now());
  if (!software_version.empty()) a.software_version = software_version;
}


absl::Status CommitLog::CheckMassDeleteLocked(const std::string& ns, const std::string& device,
                                              NamespaceState* state, const std::vector<FileVersion>& changes,
                                              uint64_t live_deletes, rocksdb::WriteBatch* batch, bool* approved) {
  if (live_deletes == 0) return absl::OkStatus();
  // Deletions, not moves (a tombstone whose file_id lives on in the same commit).
  absl::flat_hash_set<std::string> live_ids;
  for (const FileVersion& v : changes) {
    if (!v.deleted) live_ids.insert(v.file_id);
  }
  std::vector<std::pair<std::string, bool>> deleted;  // path, is a directory
  for (const FileVersion& v : changes) {
    if (v.deleted && !live_ids.contains(v.file_id)) deleted.emplace_back(v.path, v.kind == FileKind::kDirectory);
  }
  std::sort(deleted.begin(), deleted.end());
  // A burst is one hold: an approved one lets through every deletion it covers, a rejected one
  // turns each back, and while one is pending every deletion of the device joins it.
  CONVERGE_ASSIGN_OR_RETURN(std::vector<HeldDelete> open, OpenHoldsLocked(ns, device));
  for (HeldDelete& h : open) {
    if (h.state == HeldDelete::State::kPending) continue;
    CONVERGE_ASSIGN_OR_RETURN(const uint64_t covered, CoveredByHold(ns, h.id, deleted));
    const bool approved_all = h.state == HeldDelete::State::kApproved && covered == deleted.size();
    if (!approved_all && (h.state != HeldDelete::State::kRejected || covered == 0)) continue;
    rocksdb::WriteBatch settle;
    rocksdb::WriteBatch* into = approved_all ? batch : &settle;  // approved: settled with the commit
    for (const auto& d : deleted) into->Delete(StoreDb::HeldPathKey(ns, h.id, d.first));
    h.settled += covered;
    if (h.settled >= h.deletes) h.state = approved_all ? HeldDelete::State::kApplied : HeldDelete::State::kRestored;
    into->Put(StoreDb::HeldKey(ns, h.id), EncodeHeld(h));
    if (!approved_all) {
      CONVERGE_RETURN_IF_ERROR(RocksStatus(db_->WriteSynced(&settle), "write held delete"));
      return MassDeleteRejectedError(h.id);
    }
    state->recent_deletes[device].clear();  // approved: this burst no longer counts against the device
    *approved = true;
    return absl::OkStatus();
  }
  for (HeldDelete& h : open) {
    if (h.state == HeldDelete::State::kPending) return HoldLocked(ns, &h, deleted, /*fresh=*/false);
  }
  // This device's deletions within the window count together.
  const absl::Time now = clock_->Now();
  auto& recent = state->recent_deletes[device];
  recent.erase(std::remove_if(recent.begin(), recent.end(),
                              [&](const auto& r) { return now - r.first > policy_.window; }),
               recent.end());
  uint64_t windowed = live_deletes;
  for (const auto& r : recent) windowed += r.second;
  const uint64_t base = state->live_entries + (windowed - live_deletes);  // entries before the window's deletions
  if (windowed <= policy_.min_files || static_cast<double>(windowed) <= policy_.share * static_cast<double>(base)) {
    return absl::OkStatus();
  }
  // Over the limit: a new hold, for this burst.
  Sha256 id_hash;
  id_hash.Update(absl::StrCat(device, std::string(1, '\0'), absl::ToUnixNanos(now)));
  for (const auto& d : deleted) id_hash.Update(absl::StrCat(std::string(1, '\0'), d.first));
  HeldDelete held;
  held.id = DigestToHex(id_hash.Finish()).substr(0, 16);
  held.namespace_id = ns;
  held.device = device;
  held.created_at_unix_ms = absl::ToUnixMillis(now);
  held.live_entries = base;
  return HoldLocked(ns, &held, deleted, /*fresh=*/true);
}

absl::StatusOr<std::vector<HeldDelete>> CommitLog::OpenHoldsLocked(const std::string& ns, const std::string& device) {
  std::vector<HeldDelete> open;
  const std::string prefix = StoreDb::HeldPrefix(ns);
  std::unique_ptr<rocksdb::Iterator> it(db_->db()->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    CONVERGE_ASSIGN_OR_RETURN(HeldDelete h, DecodeHeld(ns, View(it->key()).substr(prefix.size()), View(it->value())));
    const bool settled = h.state == HeldDelete::State::kApplied || h.state == HeldDelete::State::kRestored;
    if (h.device == device && !settled) open.push_back(std::move(h));
  }
  CONVERGE_RETURN_IF_ERROR(RocksStatus(it->status(), "read held deletes"));
  return open;
}

absl::StatusOr<uint64_t> CommitLog::CoveredByHold(const std::string& ns, const std::string& id,
                                                  const std::vector<std::pair<std::string, bool>>& deleted) {
  uint64_t covered = 0;
  std::string value;
  for (const auto& d : deleted) {
    rocksdb::Status s = db_->db()->Get(rocksdb::ReadOptions(), StoreDb::HeldPathKey(ns, id, d.first), &value);
    if (s.ok()) ++covered;
    else if (!s.IsNotFound()) return RocksStatus(s, "read held delete");
  }
  return covered;
}

absl::Status CommitLog::HoldLocked(const std::string& ns, HeldDelete* held,
                                   const std::vector<std::pair<std::string, bool>>& deleted, bool fresh) {
  rocksdb::WriteBatch paths;
  uint64_t added = 0;
  std::string value;
  for (const auto& [path, dir] : deleted) {
    const std::string key = StoreDb::HeldPathKey(ns, held->id, path);
    if (!fresh) {
      rocksdb::Status s = db_->db()->Get(rocksdb::ReadOptions(), key, &value);
      if (s.ok()) continue;  // held already (the device tries the burst again)
      if (!s.IsNotFound()) return RocksStatus(s, "read held delete");
    }
    paths.Put(key, dir ? "d" : "f");
    ++added;
  }
  if (added > 0) {
    held->deletes += added;
    CONVERGE_RETURN_IF_ERROR(RocksStatus(db_->db()->Write(rocksdb::WriteOptions(), &paths), "write held delete"));
    for (const auto& d : deleted) held->sample.push_back(d.first);
    std::sort(held->sample.begin(), held->sample.end());
    held->sample.erase(std::unique(held->sample.begin(), held->sample.end()), held->sample.end());
    if (held->sample.size() > kHeldSample) held->sample.resize(kHeldSample);
    CONVERGE_ASSIGN_OR_RETURN(held->top_folders, TopFolders(ns, held->id));
    // Synced: the paths written just before are durable with it (one log).
    CONVERGE_RETURN_IF_ERROR(
        RocksStatus(db_->PutSynced(StoreDb::HeldKey(ns, held->id), EncodeHeld(*held)), "write held delete"));
  }
  return MassDeleteHeldError(held->id, held->deletes, held->live_entries);
}

absl::StatusOr<std::vector<std::pair<std::string, uint64_t>>> CommitLog::TopFolders(const std::string& ns,
                                                                                     const std::string& id) {
  // Each deleted file counts for the topmost deleted folder above it, or, if its folder stays,
  // for that folder.
  absl::flat_hash_set<std::string> dirs;
  std::vector<std::string> files;
  const std::string prefix = StoreDb::HeldPathPrefix(ns, id);
  std::unique_ptr<rocksdb::Iterator> it(db_->db()->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    std::string path(View(it->key()).substr(prefix.size()));
    if (it->value() == "d") dirs.insert(std::move(path));
    else files.push_back(std::move(path));
  }
  CONVERGE_RETURN_IF_ERROR(RocksStatus(it->status(), "read held delete"));
  absl::flat_hash_map<std::string, uint64_t> counts;
  for (const std::string& f : files) {
    std::string folder(ParentPath(f));
    for (size_t slash = f.find('/'); slash != std::string::npos; slash = f.find('/', slash + 1)) {
      if (dirs.contains(absl::string_view(f).substr(0, slash))) {
        folder = f.substr(0, slash);
        break;
      }
    }
    ++counts[folder.empty() ? folder : folder + "/"];
  }
  std::vector<std::pair<std::string, uint64_t>> top(counts.begin(), counts.end());
  std::sort(top.begin(), top.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  if (top.size() > kHeldSample) top.resize(kHeldSample);
  return top;
}

absl::StatusOr<std::vector<HeldDelete>> CommitLog::ListHeld(const std::string& ns) {
  CONVERGE_RETURN_IF_ERROR(CheckAccess(ns, ""));
  std::vector<HeldDelete> out;
  const std::string prefix = StoreDb::HeldPrefix(ns);
  std::unique_ptr<rocksdb::Iterator> it(db_->db()->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    CONVERGE_ASSIGN_OR_RETURN(HeldDelete h, DecodeHeld(ns, View(it->key()).substr(prefix.size()), View(it->value())));
    out.push_back(std::move(h));
  }
  CONVERGE_RETURN_IF_ERROR(RocksStatus(it->status(), "read held deletes"));
  std::sort(out.begin(), out.end(),
            [](const HeldDelete& a, const HeldDelete& b) { return a.created_at_unix_ms < b.created_at_unix_ms; });
  return out;
}

absl::StatusOr<HeldDelete> CommitLog::ResolveHeld(const std::string& ns, const std::string& id, bool approve) {
  CONVERGE_RETURN_IF_ERROR(ValidateId("namespace id", ns));
  CONVERGE_RETURN_IF_ERROR(ValidateId("held delete id", id));
  CONVERGE_ASSIGN_OR_RETURN(Namespace * n, Find(ns));
  absl::MutexLock lock(&n->mu);  // against Append using the hold meanwhile
  CONVERGE_RETURN_IF_ERROR(CheckGate(ns, /*writing=*/true));
  const std::string key = StoreDb::HeldKey(ns, id);
  std::string value;
  rocksdb::Status s = db_->db()->Get(rocksdb::ReadOptions(), key, &value);
  if (s.IsNotFound()) return absl::NotFoundError(absl::StrCat("no held delete '", id, "' in '", ns, "'"));
  CONVERGE_RETURN_IF_ERROR(RocksStatus(s, "read held delete"));
  CONVERGE_ASSIGN_OR_RETURN(HeldDelete held, DecodeHeld(ns, id, value));
  if (held.state != HeldDelete::State::kPending) {
    return absl::FailedPreconditionError(absl::StrCat("held delete '", id, "' is no longer pending"));
  }
  held.state = approve ? HeldDelete::State::kApproved : HeldDelete::State::kRejected;
  held.resolved_at_unix_ms = absl::ToUnixMillis(clock_->Now());
  CONVERGE_RETURN_IF_ERROR(RocksStatus(db_->PutSynced(key, EncodeHeld(held)), "write held delete"));
  return held;
}

absl::StatusOr<uint64_t> CommitLog::HeadSeq(const std::string& ns) {
  CONVERGE_ASSIGN_OR_RETURN(Namespace * n, Find(ns));
  absl::MutexLock lock(&n->mu);
  const NamespaceState* state = &n->state;
  return state->head_seq;
}

absl::StatusOr<crypto::LogHead> CommitLog::Chain(const std::string& ns) {
  CONVERGE_ASSIGN_OR_RETURN(Namespace * n, Find(ns));
  absl::MutexLock lock(&n->mu);
  return crypto::LogHead{n->state.head_seq, n->state.chain};
}

absl::StatusOr<CommitLog::Sealing> CommitLog::SealingOf(const std::string& ns) {
  CONVERGE_ASSIGN_OR_RETURN(Namespace * n, Find(ns));
  absl::MutexLock lock(&n->mu);
  return Sealing{n->state.encrypted, n->state.converted_at};
}

absl::StatusOr<NamespaceStats> CommitLog::Stats(const std::string& ns) {
  NamespaceStats stats;
  std::vector<std::string> members;
  {
    CONVERGE_ASSIGN_OR_RETURN(Namespace * n, Find(ns));
    absl::MutexLock lock(&n->mu);
    stats.head_seq = n->state.head_seq;
    stats.compacted_through = n->state.compacted_through;
    stats.encrypted = n->state.encrypted;
    stats.converted_at = n->state.converted_at;
    members.assign(n->state.members.begin(), n->state.members.end());
  }
  CONVERGE_ASSIGN_OR_RETURN(std::vector<ConflictRecord> open, ListConflicts(ns, false));
  stats.open_conflicts = open.size();
  absl::flat_hash_set<std::string> chunks;
  CONVERGE_RETURN_IF_ERROR(ListFiles(ns, [&](const FileVersion& v) {
    if (v.deleted || v.kind != FileKind::kFile) return;
    ++stats.live_files;
    stats.live_bytes += v.size;
    if (IsConflictCopy(v.path)) stats.conflict_paths.push_back(v.path);
    for (const ChunkRef& c : v.chunks) {
      if (!c.hole() && chunks.insert(DigestToBytes(c.sha256)).second) {
        ++stats.unique_chunks;
        stats.unique_chunk_bytes += c.length;
      }
    }
  }));
  CONVERGE_ASSIGN_OR_RETURN(std::vector<DeviceCursor> devices, Cursors(ns, members, &stats));
  CONVERGE_RETURN_IF_ERROR(AddLag(ns, &devices, stats));
  stats.devices = std::move(devices);
  return stats;
}

absl::StatusOr<std::vector<DeviceCursor>> CommitLog::Cursors(const std::string& ns,
                                                             const std::vector<std::string>& members,
                                                             NamespaceStats* stats) {
  // Every member, with its durable cursor record, then what it did since (in memory).
  std::map<std::string, DeviceCursor> devices;
  for (const std::string& m : members) devices[m].device_id = m;
  const std::string prefix = StoreDb::CursorPrefix(ns);
  std::unique_ptr<rocksdb::Iterator> it(db_->db()->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    CONVERGE_ASSIGN_OR_RETURN(CursorRecord r, DecodeCursor(View(it->value())));
    const std::string id(View(it->key()).substr(prefix.size()));
    DeviceCursor& d = devices[id];
    d.device_id = id;
    d.acked_seq = r.seq;
    d.last_seen_unix_ms = r.last_seen_unix_ms;
    d.software_version = r.software_version;
    d.evicted = r.evicted;
  }
  CONVERGE_RETURN_IF_ERROR(RocksStatus(it->status(), "read cursors"));
  const absl::flat_hash_set<std::string> member_set(members.begin(), members.end());
  stats->watermark = stats->head_seq;
  for (const auto& [id, d] : devices) {
    if (member_set.contains(id) && !d.evicted) stats->watermark = std::min(stats->watermark, d.acked_seq);
  }
  std::vector<DeviceCursor> out;
  absl::MutexLock lock(&activity_mu_);
  for (auto& [id, d] : devices) {
    d.pins_watermark = member_set.contains(id) && !d.evicted && d.acked_seq == stats->watermark &&
                       stats->watermark < stats->head_seq;
    auto a = activity_.find(ActivityKey(ns, id));
    if (a != activity_.end()) {
      d.blocked = a->second.blocked;
      if (a->second.last_seen_unix_ms >= d.last_seen_unix_ms) {
        d.last_seen_unix_ms = a->second.last_seen_unix_ms;
        if (!a->second.software_version.empty()) d.software_version = a->second.software_version;
      }
    }
    out.push_back(std::move(d));
  }
  return out;
}

absl::Status CommitLog::AddLag(const std::string& ns, std::vector<DeviceCursor>* devices,
                               const NamespaceStats& stats) {
  // One pass over the log from the lowest cursor (bounded), then per device.
  uint64_t lowest = stats.head_seq;
  for (const DeviceCursor& d : *devices) lowest = std::min(lowest, d.acked_seq);
  lowest = std::max(lowest, stats.compacted_through);  // the log below is gone
  struct Entry {
    uint64_t seq;
    uint64_t bytes;
    int64_t committed_at_unix_ms;
  };
  std::vector<Entry> tail;
  if (lowest < stats.head_seq) {
    const uint64_t from = stats.head_seq - lowest > kMaxLagScan ? stats.head_seq - kMaxLagScan : lowest;
    CONVERGE_RETURN_IF_ERROR(ReadSince(ns, from, kMaxLagScan, [&](const Commit& c) {
      uint64_t bytes = 0;
      for (const FileVersion& v : c.files) bytes += v.deleted ? 0 : v.size;
      tail.push_back(Entry{c.seq, bytes, c.committed_at_unix_ms});
      return true;
    }));
  }
  const int64_t now_ms = absl::ToUnixMillis(clock_->Now());
  for (DeviceCursor& d : *devices) {
    d.lag_commits = stats.head_seq - std::min(d.acked_seq, stats.head_seq);
    bool first = true;
    for (const Entry& e : tail) {
      if (e.seq <= d.acked_seq) continue;
      d.lag_bytes += e.bytes;
      if (first) d.lag_seconds = std::max<double>(0, (now_ms - e.committed_at_unix_ms) / 1000.0);
      first = false;
    }
  }
  return absl::OkStatus();
}

}  // namespace converge::store
