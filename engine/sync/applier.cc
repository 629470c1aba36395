#include "engine/sync/applier.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/base/coding.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/model/conflict_name.h"
#include "common/model/path.h"
#include "engine/fs/write_behind.h"
#include "engine/sync/chunker.h"
#include "engine/sync/scanner.h"

namespace converge::engine {
namespace {

// RefuseSealed: a version still sealed (end-to-end encrypted; its path names nothing here) is
// never applied. An engine with the namespace's keys opens versions before they come here, so
// one here is a store showing a plain namespace's device what it cannot have committed.
absl::Status RefuseSealed(const std::vector<FileVersion>& versions) {
  for (const FileVersion& v : versions) {
    if (!v.sealed_record.empty()) {
      return absl::InvalidArgumentError("a sealed (end-to-end encrypted) version this device did not open: not applied");
    }
  }
  return absl::OkStatus();
}

// How much of a large file is fetched in one round trip while assembling it: at most this many
// chunks and about this many bytes (fewer round trips; bounded memory).
constexpr size_t kFetchWindow = 256;
constexpr uint64_t kFetchWindowBytes = 32 << 20;
// Downloads at least this large go through a resumable partial file.
constexpr uint64_t kResumableBytes = 8 << 20;
// Bytes of a large download waiting for the writer thread, at most.
constexpr uint64_t kWriteBehindBytes = 64 << 20;
// Small files are written in batches of at most this many files or bytes.
// Each holds an open temp file until renamed (the engine raises its descriptor limit); one
// syncfs per batch, and syncfs also flushes whatever else is dirty on the filesystem, so
// batches are large.
constexpr size_t kBatchedFiles = 1024;
constexpr uint64_t kBatchBytes = 64 << 20;
// The store's limit on digests in one GetChunks call.
constexpr size_t kMaxDigestsPerFetch = 4096;

std::shared_ptr<spdlog::logger> Log() {
  static auto log = GetLogger("apply");
  return log;
}

}  // namespace

std::optional<std::string> Applier::FindLocally(const Digest& d) {
  absl::StatusOr<std::optional<std::string>> path = index_->FindChunk(d);
  if (!path.ok() || !path->has_value()) return std::nullopt;
  absl::StatusOr<std::optional<IndexEntry>> entry = index_->Get(**path);
  if (!entry.ok() || !entry->has_value() || (*entry)->version.deleted) return std::nullopt;
  uint64_t offset = 0;
  const ChunkRef* found = nullptr;
  for (const ChunkRef& c : (*entry)->version.chunks) {
    if (c.sha256 == d) {
      found = &c;
      break;
    }
    offset += c.length;
  }
  if (found == nullptr) return std::nullopt;
  absl::StatusOr<std::unique_ptr<ReadableFile>> f = fs_->OpenRead(**path);
  std::string bytes;
  if (!f.ok() || !(*f)->Read(offset, found->length, &bytes).ok() || HashOf(bytes) != d) return std::nullopt;
  return bytes;
}

absl::Status Applier::MoveAside(const std::string& path) {
  dirs_in_place_.clear();
  const absl::Time now = clock_->Now();
  std::string target = MakeConflictName(path, device_, now, device_name_);
  for (int n = 2; n < 100; ++n) {
    absl::Status s = fs_->Rename(path, target);
    if (s.ok()) {
      ++stats_.conflicts;
      Log()->warn("conflict: kept the local edit of '{}' as '{}'", path, target);
      return absl::OkStatus();
    }
    if (!absl::IsAlreadyExists(s)) return s;
    target = MakeConflictName(path, absl::StrCat(device_, "-", n), now, device_name_);
  }
  return absl::AlreadyExistsError(absl::StrCat("no free conflict name for ", path));
}

// LocalCopy: the synced local copy of a file being downloaded, whose chunks are reused and
// serve as delta bases (a changed chunk is fetched as a delta against the old ones it overlaps).
struct Applier::LocalCopy {
  std::unique_ptr<ReadableFile> file;  // null: no usable local copy
  absl::flat_hash_map<std::string, uint64_t> offsets;  // digest bytes -> offset in the file
  std::vector<std::pair<uint64_t, const ChunkRef*>> chunks;  // where each old chunk starts
  ChunkLayout layout;
  // A local copy unchanged since it was synced (the stat the index trusts) is not hashed again
  // as its chunks are reused; if it changes while being read, nothing is installed.
  bool trusted = false;

  // TrustedOffset is where a trusted local copy holds chunk `c` (copied as it is, unread).
  std::optional<uint64_t> TrustedOffset(const ChunkRef& c) const {
    if (file == nullptr || !trusted) return std::nullopt;
    auto at = offsets.find(DigestToBytes(c.sha256));
    if (at == offsets.end()) return std::nullopt;
    return at->second;
  }
  // Chunk returns chunk `c`'s bytes if the local copy has them.
  std::optional<std::string> Chunk(const ChunkRef& c) const {
    auto at = offsets.find(DigestToBytes(c.sha256));
    if (file == nullptr || at == offsets.end()) return std::nullopt;
    std::string bytes;
    if (!file->Read(at->second, c.length, &bytes).ok() || bytes.size() != c.length) return std::nullopt;
    if (!trusted && HashOf(bytes) != c.sha256) return std::nullopt;
    return bytes;
  }
  // Base returns an old chunk's bytes, checked against its digest.
  absl::StatusOr<std::string> Base(const Digest& d) const {
    if (file == nullptr || !offsets.contains(DigestToBytes(d))) return absl::NotFoundError("no such base");
    for (const auto& [offset, ref] : chunks) {
      if (ref->sha256 != d) continue;
      std::string bytes;
      CONVERGE_RETURN_IF_ERROR(file->Read(offset, ref->length, &bytes));
      if (HashOf(bytes) != d) return absl::DataLossError("the local base chunk changed");
      return bytes;
    }
    return absl::NotFoundError("no such base");
  }
  std::vector<Digest> BasesFor(uint64_t offset, uint64_t length) const {
    if (file == nullptr) return {};
    return layout.BasesFor(offset, length);
  }
};

Applier::LocalCopy Applier::OpenLocalCopy(const FileVersion& remote, const std::optional<IndexEntry>& entry,
                                          const LocalStat& planned_local) {
  LocalCopy local;
  if (!entry.has_value() || entry->version.deleted || entry->version.kind != FileKind::kFile ||
      !planned_local.exists || planned_local.kind != FileKind::kFile) {
    return local;
  }
  uint64_t offset = 0;
  for (const ChunkRef& c : entry->version.chunks) {
    if (!c.hole()) {
      local.offsets.emplace(DigestToBytes(c.sha256), offset);
      local.chunks.emplace_back(offset, &c);
    }
    offset += c.length;
  }
  absl::StatusOr<std::unique_ptr<ReadableFile>> f = fs_->OpenRead(remote.path);
  if (!f.ok()) return local;
  local.file = std::move(*f);
  local.layout = ChunkLayout(entry->version.chunks);
  local.trusted = entry->local.Same(planned_local) && Trusted(*entry);
  return local;
}

absl::StatusOr<std::unique_ptr<TempFile>> Applier::OpenTarget(const FileVersion& remote, size_t* first) {
  // A large download goes to a partial file named by its content hash: if it is interrupted
  // (killed, disconnected), the next attempt keeps the verified chunks it already has.
  *first = 0;
  if (remote.size < kResumableBytes) return fs_->CreateTempFor(remote.path, remote.mode == 0 ? 0644 : remote.mode);
  uint64_t partial_bytes = 0;
  CONVERGE_ASSIGN_OR_RETURN(std::unique_ptr<TempFile> temp,
                            fs_->OpenPartial(DigestToHex(remote.content_sha256), &partial_bytes));
  uint64_t verified = 0;
  while (*first < remote.chunks.size() && verified + remote.chunks[*first].length <= partial_bytes) {
    if (remote.chunks[*first].hole()) {  // skipped, never written: it is still a hole
      verified += remote.chunks[(*first)++].length;
      continue;
    }
    std::string bytes;
    CONVERGE_RETURN_IF_ERROR(temp->ReadBack(verified, remote.chunks[*first].length, &bytes));
    if (HashOf(bytes) != remote.chunks[*first].sha256) break;
    verified += bytes.size();
    ++*first;
  }
  if (partial_bytes > 0) {
    CONVERGE_RETURN_IF_ERROR(temp->Truncate(verified));
    stats_.bytes_resumed += verified;
    if (progress_) progress_(verified);
    Log()->info("resuming the download of '{}' after {} verified bytes", remote.path, verified);
  }
  return temp;
}

absl::Status Applier::AssembleWindow(const FileVersion& remote, size_t start, size_t end,
                                     const std::vector<uint64_t>& offsets, const LocalCopy& local, TempFile* temp,
                                     WriteBehind* behind) {
  absl::flat_hash_map<std::string, std::string> window;
  absl::flat_hash_map<std::string, uint64_t> in_local;  // copied from the trusted local copy, by digest
  absl::flat_hash_map<std::string, int> uses;  // chunks of the window not yet written, by digest
  for (size_t i = start; i < end; ++i) ++uses[DigestToBytes(remote.chunks[i].sha256)];
  std::vector<ChunkWant> to_fetch;
  absl::flat_hash_set<std::string> asked;
  for (size_t i = start; i < end; ++i) {
    const ChunkRef& c = remote.chunks[i];
    if (c.hole()) continue;  // nothing to find or fetch
    const std::string key = DigestToBytes(c.sha256);
    if (window.contains(key) || in_local.contains(key)) continue;
    if (std::optional<uint64_t> at = local.TrustedOffset(c)) {
      stats_.bytes_reused += c.length;
      if (progress_) progress_(c.length);
      in_local.emplace(key, *at);
      continue;
    }
    // The local copy, or any other synced file of the folder that has it (a copy, a moved
    // file, a shared block).
    std::optional<std::string> found = local.Chunk(c);
    if (!found.has_value()) found = FindLocally(c.sha256);
    if (found.has_value()) {
      stats_.bytes_reused += found->size();
      if (progress_) progress_(found->size());
      window.emplace(key, std::move(*found));
      continue;
    }
    if (asked.insert(key).second) to_fetch.push_back(ChunkWant{c.sha256, local.BasesFor(offsets[i], c.length)});
  }
  // Chunks go into the (partial) file in order as soon as they are there, so an interruption
  // in the middle of a window keeps what arrived.
  size_t next = start;
  auto write_ready = [&]() -> absl::Status {
    for (; next < end; ++next) {
      if (const ChunkRef& c = remote.chunks[next]; c.hole()) {
        CONVERGE_RETURN_IF_ERROR(behind == nullptr ? temp->AppendHole(c.length) : behind->AppendHole(c.length));
        continue;
      }
      const std::string key = DigestToBytes(remote.chunks[next].sha256);
      if (auto at = in_local.find(key); at != in_local.end()) {
        const uint64_t length = remote.chunks[next].length;
        CONVERGE_RETURN_IF_ERROR(behind == nullptr ? temp->AppendFrom(local.file.get(), at->second, length)
                                                   : behind->AppendFrom(local.file.get(), at->second, length));
        continue;
      }
      auto it = window.find(key);
      if (it == window.end()) return absl::OkStatus();
      if (it->second.size() != remote.chunks[next].length) {
        return absl::DataLossError(absl::StrCat(remote.path, ": chunk ", next, " has the wrong length"));
      }
      if (behind == nullptr) {
        CONVERGE_RETURN_IF_ERROR(temp->Append(it->second));
      } else if (--uses[it->first] == 0) {
        CONVERGE_RETURN_IF_ERROR(behind->Append(std::move(it->second)));  // its last place
      } else {
        CONVERGE_RETURN_IF_ERROR(behind->Append(it->second));
      }
    }
    return absl::OkStatus();
  };
  CONVERGE_RETURN_IF_ERROR(write_ready());
  if (!to_fetch.empty()) {
    auto read_base = [&local](const Digest& d) { return local.Base(d); };
    CONVERGE_RETURN_IF_ERROR(chunks_->Fetch(to_fetch, read_base, [&](const Digest& d, std::string bytes) {
      stats_.bytes_fetched += bytes.size();
      if (progress_) progress_(bytes.size());
      window[DigestToBytes(d)] = std::move(bytes);
      return write_ready();
    }));
  }
  if (next != end) return absl::DataLossError(absl::StrCat(remote.path, ": chunk ", next, " was not delivered"));
  return absl::OkStatus();
}

absl::StatusOr<LocalStat> Applier::WriteFile(const FileVersion& remote,
                                             const std::optional<IndexEntry>& entry,
                                             const LocalStat& planned_local) {
  CONVERGE_RETURN_IF_ERROR(fs_->MakeDirs(std::string(ParentPath(remote.path))));
  size_t first = 0;  // chunks already in the partial file, verified
  CONVERGE_ASSIGN_OR_RETURN(std::unique_ptr<TempFile> temp, OpenTarget(remote, &first));
  const LocalCopy local = OpenLocalCopy(remote, entry, planned_local);
  // A large file is written on a second thread while the next chunks arrive and are checked.
  std::optional<WriteBehind> behind;
  if (remote.size >= kResumableBytes) behind.emplace(temp.get(), kWriteBehindBytes);
  std::vector<uint64_t> offsets;  // of each remote chunk
  uint64_t offset = 0;
  for (const ChunkRef& c : remote.chunks) {
    offsets.push_back(offset);
    offset += c.length;
  }
  for (size_t start = first, end = first; start < remote.chunks.size(); start = end) {
    uint64_t window_bytes = 0;
    for (end = start; end < remote.chunks.size() && end - start < kFetchWindow && window_bytes < kFetchWindowBytes;
         ++end) {
      if (!remote.chunks[end].hole()) window_bytes += remote.chunks[end].length;
    }
    CONVERGE_RETURN_IF_ERROR(
        AssembleWindow(remote, start, end, offsets, local, temp.get(), behind.has_value() ? &*behind : nullptr));
  }
  if (behind.has_value()) CONVERGE_RETURN_IF_ERROR(behind->Finish());
  // Every chunk written was verified by its digest as it was read, fetched or resumed.
  if (ContentDigest(remote.chunks) != remote.content_sha256) {
    return absl::DataLossError(absl::StrCat(remote.path, ": the chunk list does not match the content hash"));
  }
  // The user may have edited the file while it downloaded: keep that edit.
  CONVERGE_ASSIGN_OR_RETURN(LocalStat now, fs_->Stat(remote.path));
  if (local.trusted && !now.Same(planned_local)) {
    // Chunks taken from it unhashed may hold the edit: the next attempt checks every chunk.
    return absl::AbortedError(absl::StrCat(remote.path, " changed here while its new version was built; trying again"));
  }
  if (!now.Same(planned_local) && now.exists) CONVERGE_RETURN_IF_ERROR(MoveAside(remote.path));
  if (sync_xattrs_) CONVERGE_RETURN_IF_ERROR(temp->SetXattrs(remote.xattrs));
  CONVERGE_ASSIGN_OR_RETURN(LocalStat installed,
                            temp->Install(remote.path, remote.mode == 0 ? 0644 : remote.mode, remote.mtime_ns));
  ++stats_.files_written;
  return installed;
}

absl::StatusOr<bool> Applier::MakeRoomAbove(const std::string& path, bool local_wins) {
  const std::string parent(ParentPath(path));
  if (parent.empty() || dirs_in_place_.contains(parent)) return true;
  CONVERGE_ASSIGN_OR_RETURN(LocalStat st, fs_->Stat(parent));
  if (st.exists && st.kind == FileKind::kDirectory) {  // the common case
    dirs_in_place_.insert(parent);
    return true;
  }
  for (std::string dir = parent; !dir.empty(); dir = std::string(ParentPath(dir))) {
    CONVERGE_ASSIGN_OR_RETURN(LocalStat at, fs_->Stat(dir));
    if (!at.exists || at.kind == FileKind::kDirectory) continue;
    // A local symlink on the way stays: the version is blocked and reported (never followed).
    if (at.kind == FileKind::kSymlink) return true;
    // A file where another device has a directory with new entries. If it was synced
    // as one (the store's version says so), a later version replaces it; made here, it was
    // made while that directory was still in use elsewhere: it is kept as a conflict copy.
    CONVERGE_ASSIGN_OR_RETURN(std::optional<IndexEntry> e, index_->Get(dir));
    const bool synced_leaf = e.has_value() && !e->version.deleted && e->version.kind != FileKind::kDirectory;
    if (synced_leaf) return true;
    if (local_wins) return false;
    CONVERGE_RETURN_IF_ERROR(MoveAside(dir));
    return true;
  }
  return true;
}

absl::StatusOr<bool> Applier::ClearForTypeChange(const FileVersion& remote, LocalStat* local, bool local_wins) {
  // A file or symlink is replaced by another in one rename; a directory must go first, and
  // only once empty (the commit's deletions below it were applied first): one that still
  // holds entries unknown elsewhere is kept as a conflict copy, or, against this device's own
  // older version, kept as it is.
  if (local->kind != FileKind::kDirectory && remote.kind != FileKind::kDirectory) return true;
  absl::Status removed = fs_->Remove(remote.path);
  if (absl::IsFailedPrecondition(removed)) {
    if (local_wins) return false;
    CONVERGE_RETURN_IF_ERROR(MoveAside(remote.path));
  } else {
    CONVERGE_RETURN_IF_ERROR(removed);
    ++stats_.removed;
  }
  *local = LocalStat{};
  return true;
}

absl::StatusOr<bool> Applier::WriteVersion(const FileVersion& remote, const std::optional<IndexEntry>& entry,
                                           const LocalStat& local, IndexEntry* out, std::vector<PendingWrite>* pending) {
  if (remote.kind == FileKind::kSymlink) {  // synced as a link, never followed
    CONVERGE_RETURN_IF_ERROR(fs_->MakeDirs(std::string(ParentPath(remote.path))));
    CONVERGE_RETURN_IF_ERROR(fs_->MakeSymlink(remote.path, remote.symlink_target));
    CONVERGE_ASSIGN_OR_RETURN(out->local, fs_->Stat(remote.path));
    ++stats_.files_written;
    return true;
  }
  // An edited file of several chunks goes alone: it reuses the chunks its old copy has and
  // fetches the others as deltas against the old chunks at their offsets.
  const bool edit_of_many = remote.chunks.size() > 1 && entry.has_value() && !entry->version.deleted &&
                            entry->version.kind == FileKind::kFile && local.exists;
  if (remote.size > kBatchedFileBytes || edit_of_many) {
    CONVERGE_ASSIGN_OR_RETURN(out->local, WriteFile(remote, entry, local));
    return true;
  }
  // Small files are written in batches: one fetch, one syncfs, one fsync per directory.
  PendingWrite w{&remote, local, std::nullopt};
  // An edited small file: offer the old content as a delta base.
  if (entry.has_value() && !entry->version.deleted && entry->version.kind == FileKind::kFile &&
      entry->version.chunks.size() == 1 && !entry->version.chunks[0].hole() && local.exists && local.kind == FileKind::kFile &&
      local.Same(entry->local)) {
    w.base = entry->version.chunks[0].sha256;
  }
  pending->push_back(w);
  return false;
}

absl::StatusOr<bool> Applier::PrepareFor(Action action, const FileVersion& remote, bool local_wins, LocalStat* local,
                                         IndexEntry* out) {
  if (action == Action::kRemove || action == Action::kReplace) dirs_in_place_.clear();  // (MoveAside's too)
  switch (action) {
    case Action::kSkip:
    case Action::kRecord:
      break;
    case Action::kKeepLocal:
      // The index keeps the tombstone; the scanner sees the local entry as new and re-adds it.
      out->local = LocalStat{};
      if (remote.deleted) {
        Log()->warn("'{}' was deleted elsewhere but edited here: keeping the local edit", remote.path);
      } else {
        Log()->info("'{}': the store's version is older than this device's: keeping the local file", remote.path);
      }
      return false;
    case Action::kRemove: {
      absl::Status s = fs_->Remove(remote.path);
      if (absl::IsFailedPrecondition(s)) {
        // A directory that still holds entries unknown elsewhere stays (and is re-added).
        out->local = LocalStat{};
        break;
      }
      CONVERGE_RETURN_IF_ERROR(s);
      ++stats_.removed;
      out->local = LocalStat{};
      break;
    }
    case Action::kSetMetadata: {
      CONVERGE_ASSIGN_OR_RETURN(out->local, fs_->SetMetadata(remote.path, remote.mode == 0 ? 0644 : remote.mode,
                                                             remote.mtime_ns, sync_xattrs_ ? &remote.xattrs : nullptr));
      ++stats_.metadata_set;
      break;
    }
    case Action::kReplace: {
      CONVERGE_ASSIGN_OR_RETURN(const bool cleared, ClearForTypeChange(remote, local, local_wins));
      if (!cleared) {
        Log()->info("'{}': the store's version is older than this device's: keeping the local directory", remote.path);
        out->local = LocalStat{};
        return false;
      }
      break;
    }
    case Action::kConflictThenMakeDir:
    case Action::kConflictThenWrite:
      CONVERGE_RETURN_IF_ERROR(MoveAside(remote.path));
      *local = LocalStat{};
      break;
    case Action::kMakeDir:
    case Action::kWrite:
      break;
  }
  return true;
}

absl::StatusOr<std::optional<IndexEntry>> Applier::ApplyOne(const FileVersion& remote,
                                                            std::vector<PendingWrite>* pending) {
  CONVERGE_ASSIGN_OR_RETURN(std::optional<IndexEntry> entry, index_->Get(remote.path));
  CONVERGE_ASSIGN_OR_RETURN(LocalStat local, fs_->Stat(remote.path));
  // Materializing: an entry never written here, or gone from here, is written as a new one.
  if (materializing_ && entry.has_value() && (!entry->local.exists || !local.exists)) entry.reset();
  if (catching_up_ && entry.has_value() && entry->not_applied) {
    // What the folder had when the version was recorded: its stat, of no version the remote
    // one could be (so unchanged means replaced, changed means a conflict).
    if (!entry->local.exists) {
      entry.reset();
    } else {
      entry->version = FileVersion{};
      entry->version.path = remote.path;
      entry->version.kind = entry->local.kind;
    }
  }
  auto hash_local = [&]() -> absl::StatusOr<Digest> {
    if (local.kind == FileKind::kSymlink) {  // a link is its target
      CONVERGE_ASSIGN_OR_RETURN(std::string target, fs_->ReadLink(remote.path));
      return HashOf(target);
    }
    CONVERGE_ASSIGN_OR_RETURN(std::unique_ptr<ReadableFile> f, fs_->OpenRead(remote.path));
    CONVERGE_ASSIGN_OR_RETURN(FileContent content, ChunkFile(f.get(), params_));
    return content.sha256;
  };
  // This device's own commit, arriving after a later local edit (its index write had failed, or
  // the reply was lost): the local file is the newer version, not a conflict with itself.
  const bool own = !remote.origin_device.empty() && remote.origin_device == device_;
  const bool local_wins = local_wins_ || own;
  CONVERGE_ASSIGN_OR_RETURN(Action action, Plan(remote, entry, local, hash_local, local_wins));
  if (action == Action::kSkip) return entry;
  IndexEntry out{remote, local, absl::ToUnixNanos(clock_->Now())};
  CONVERGE_ASSIGN_OR_RETURN(const bool goes_on, PrepareFor(action, remote, local_wins, &local, &out));
  if (!goes_on) {
    Log()->debug("{} {}@{}", ActionName(action), remote.path, remote.seq);
    return std::optional<IndexEntry>(std::move(out));
  }
  const bool writes = action == Action::kWrite || action == Action::kConflictThenWrite ||
                      action == Action::kConflictThenMakeDir || action == Action::kMakeDir ||
                      action == Action::kReplace;
  if (writes) {
    CONVERGE_ASSIGN_OR_RETURN(const bool room, MakeRoomAbove(remote.path, local_wins));
    if (!room) {  // a file made here later stands where this older version needs a directory
      Log()->info("'{}': a newer local file stands above it: keeping the local file", remote.path);
      out.local = LocalStat{};
      return std::optional<IndexEntry>(std::move(out));
    }
  }
  if (writes && remote.kind == FileKind::kDirectory) {
    CONVERGE_RETURN_IF_ERROR(fs_->MakeDirs(remote.path));
    CONVERGE_ASSIGN_OR_RETURN(out.local, fs_->Stat(remote.path));
    ++stats_.dirs_made;
    if (!local.exists && installed_.size() < kMaxInstalledKept) installed_.push_back(out);
  } else if (writes) {
    CONVERGE_ASSIGN_OR_RETURN(const bool written, WriteVersion(remote, entry, local, &out, pending));
    if (!written) {
      Log()->debug("{} {}@{} (batched)", ActionName(action), remote.path, remote.seq);
      return std::optional<IndexEntry>();
    }
  }
  Log()->debug("{} {}@{}", ActionName(action), remote.path, remote.seq);
  return std::optional<IndexEntry>(std::move(out));
}

absl::Status Applier::WriteBatch(std::vector<PendingWrite>* pending, std::vector<IndexEntry>* applied) {
  if (pending->empty()) return absl::OkStatus();
  std::vector<PendingWrite> batch;
  batch.swap(*pending);
  // 1. Every chunk the batch needs, in as few round trips as the store allows.
  absl::flat_hash_map<std::string, std::string> chunks;
  CONVERGE_RETURN_IF_ERROR(GatherBatchChunks(batch, &chunks));
  // 2. Temp files, assembled and verified, not yet synced.
  std::vector<std::unique_ptr<TempFile>> temps;
  std::vector<PendingWrite> placeable;  // the batch less what its directory blocks
  for (const PendingWrite& p : batch) {
    const FileVersion& remote = *p.remote;
    if (absl::Status made = fs_->MakeDirs(std::string(ParentPath(remote.path))); !made.ok()) {
      if (Block(remote, made)) continue;
      return made;
    }
    placeable.push_back(p);
    CONVERGE_ASSIGN_OR_RETURN(std::unique_ptr<TempFile> temp,
                              fs_->CreateTempFor(remote.path, remote.mode == 0 ? 0644 : remote.mode));
    for (const ChunkRef& c : remote.chunks) {
      if (c.hole()) {
        CONVERGE_RETURN_IF_ERROR(temp->AppendHole(c.length));
        continue;
      }
      const std::string& bytes = chunks[DigestToBytes(c.sha256)];
      if (bytes.size() != c.length) {
        return absl::DataLossError(absl::StrCat(remote.path, ": a chunk was not delivered"));
      }
      CONVERGE_RETURN_IF_ERROR(temp->Append(bytes));
    }
    // Each chunk was verified by its digest as it was found locally or fetched.
    if (ContentDigest(remote.chunks) != remote.content_sha256) {
      return absl::DataLossError(absl::StrCat(remote.path, ": the chunk list does not match the content hash"));
    }
    if (sync_xattrs_) CONVERGE_RETURN_IF_ERROR(temp->SetXattrs(remote.xattrs));
    CONVERGE_RETURN_IF_ERROR(temp->Finish(remote.mode == 0 ? 0644 : remote.mode, remote.mtime_ns, /*sync=*/false));
    temps.push_back(std::move(temp));
  }
  // 3. All of them durable at once, before any is renamed into place.
  CONVERGE_RETURN_IF_ERROR(fs_->SyncAll());
  // 4. Rename each into place.
  return InstallBatch(placeable, &temps, applied);
}

absl::Status Applier::GatherBatchChunks(const std::vector<PendingWrite>& batch,
                                        absl::flat_hash_map<std::string, std::string>* chunks) {
  // Found locally, or fetched; an edited file's old content is offered as the base of a delta.
  absl::flat_hash_map<std::string, std::string> base_paths;  // base digest -> local path
  std::vector<ChunkWant> wanted;
  for (const PendingWrite& p : batch) {
    for (const ChunkRef& c : p.remote->chunks) {
      if (c.hole() || !chunks->emplace(DigestToBytes(c.sha256), std::string()).second) continue;
      if (std::optional<std::string> found = FindLocally(c.sha256)) {
        stats_.bytes_reused += found->size();
        (*chunks)[DigestToBytes(c.sha256)] = std::move(*found);
        continue;
      }
      std::vector<Digest> bases;
      if (p.base.has_value() && p.remote->chunks.size() == 1) {
        bases.push_back(*p.base);
        base_paths[DigestToBytes(*p.base)] = p.remote->path;
      }
      wanted.push_back(ChunkWant{c.sha256, std::move(bases)});
    }
  }
  ChunkSource::BaseReader read_base = [&](const Digest& d) -> absl::StatusOr<std::string> {
    auto it = base_paths.find(DigestToBytes(d));
    if (it == base_paths.end()) return absl::NotFoundError("no such base");
    CONVERGE_ASSIGN_OR_RETURN(std::unique_ptr<ReadableFile> f, fs_->OpenRead(it->second));
    std::string bytes;
    CONVERGE_RETURN_IF_ERROR(f->Read(0, kMaxChunkBytes, &bytes));
    if (HashOf(bytes) != d) return absl::DataLossError("the local base changed");
    return bytes;
  };
  for (size_t start = 0; start < wanted.size(); start += kMaxDigestsPerFetch) {
    std::vector<ChunkWant> part(wanted.begin() + start,
                                wanted.begin() + std::min(wanted.size(), start + kMaxDigestsPerFetch));
    CONVERGE_RETURN_IF_ERROR(chunks_->Fetch(part, read_base, [&](const Digest& d, std::string bytes) {
      stats_.bytes_fetched += bytes.size();
      if (progress_) progress_(bytes.size());
      (*chunks)[DigestToBytes(d)] = std::move(bytes);
      return absl::OkStatus();
    }));
  }
  return absl::OkStatus();
}

absl::Status Applier::InstallBatch(const std::vector<PendingWrite>& batch,
                                   std::vector<std::unique_ptr<TempFile>>* temps, std::vector<IndexEntry>* applied) {
  // Each goes into place keeping any local edit made meanwhile; then the directories are synced.
  absl::flat_hash_set<std::string> dirs;
  std::vector<IndexEntry> renamed;
  absl::Status status;
  for (size_t i = 0; i < batch.size() && status.ok(); ++i) {
    const FileVersion& remote = *batch[i].remote;
    TempFile* temp = (*temps)[i].get();
    // Nothing was there when planned: placed in one step if that is still so.
    absl::StatusOr<LocalStat> installed = absl::UnimplementedError("not tried");
    if (!batch[i].planned_local.exists) installed = temp->RenameIfAbsent(remote.path);
    if (absl::IsAlreadyExists(installed.status()) || absl::IsUnimplemented(installed.status())) {
      absl::StatusOr<LocalStat> now = fs_->Stat(remote.path);
      if (now.ok() && now->exists && !now->Same(batch[i].planned_local)) status = MoveAside(remote.path);
      if (!now.ok()) status = now.status();
      if (!status.ok()) break;
      installed = temp->Rename(remote.path, /*sync_dir=*/false);
    }
    if (!installed.ok()) {
      if (Block(remote, installed.status())) continue;
      status = installed.status();
      break;
    }
    dirs.insert(std::string(ParentPath(remote.path)));
    renamed.push_back(IndexEntry{remote, *installed, absl::ToUnixNanos(clock_->Now())});
    ++stats_.files_written;
  }
  for (const std::string& dir : dirs) {
    absl::Status synced = fs_->SyncDir(dir);
    if (status.ok() && !synced.ok()) status = synced;
  }
  // Only what is durable in its place is recorded.
  if (status.ok()) {
    if (installed_.size() + renamed.size() <= kMaxInstalledKept) {
      installed_.insert(installed_.end(), renamed.begin(), renamed.end());
    }
    applied->insert(applied->end(), renamed.begin(), renamed.end());
  }
  return status;
}

std::vector<std::pair<std::string, std::string>> Applier::UndoLocalMoves(const Commit& commit) {
  std::vector<std::pair<std::string, std::string>> undone;
  if (local_moves_.empty()) return undone;
  absl::flat_hash_set<std::string> touched;
  for (const FileVersion& v : commit.files) touched.insert(v.path);
  for (const auto& [from, to] : local_moves_) {
    if (!touched.contains(from)) continue;
    absl::StatusOr<LocalStat> at_from = fs_->Stat(from);
    absl::StatusOr<LocalStat> at_to = fs_->Stat(to);
    if (!at_from.ok() || at_from->exists || !at_to.ok() || !at_to->exists) continue;
    if (!fs_->MakeDirs(std::string(ParentPath(from))).ok() || !fs_->Rename(to, from).ok()) continue;
    Log()->info("'{}' changed elsewhere while it was moved here to '{}': applying it, then moving it again",
                from, to);
    undone.emplace_back(from, to);
  }
  return undone;
}

absl::Status Applier::MoveInPlace(const Commit& commit, absl::flat_hash_set<const FileVersion*>* done) {
  absl::flat_hash_map<std::string, const FileVersion*> tombstones;  // file_id -> tombstone
  for (const FileVersion& v : commit.files) {
    if (v.deleted && v.kind == FileKind::kFile) tombstones.emplace(v.file_id, &v);
  }
  if (tombstones.empty()) return absl::OkStatus();
  std::vector<IndexEntry> moved;
  absl::flat_hash_set<std::string> dirs;
  absl::Status status;
  for (const FileVersion& v : commit.files) {
    if (v.deleted || v.kind != FileKind::kFile || selection_.Excluded(v.path)) continue;
    auto t = tombstones.find(v.file_id);
    if (t == tombstones.end() || t->second->path == v.path) continue;
    const std::string& from = t->second->path;
    CONVERGE_ASSIGN_OR_RETURN(std::optional<IndexEntry> entry, index_->Get(from));
    if (!entry.has_value() || entry->version.deleted || entry->version.kind != FileKind::kFile ||
        entry->version.file_id != v.file_id || entry->version.seq >= v.seq) {
      continue;
    }
    CONVERGE_ASSIGN_OR_RETURN(std::optional<IndexEntry> there, index_->Get(v.path));
    if (there.has_value() && !there->version.deleted) continue;  // the new path holds a synced entry
    CONVERGE_ASSIGN_OR_RETURN(LocalStat src, fs_->Stat(from));
    CONVERGE_ASSIGN_OR_RETURN(LocalStat dst, fs_->Stat(v.path));
    if (!src.exists || src.kind != FileKind::kFile || dst.exists) continue;
    bool unchanged = entry->local.Same(src) && Trusted(*entry);
    if (!unchanged) {
      CONVERGE_ASSIGN_OR_RETURN(std::unique_ptr<ReadableFile> f, fs_->OpenRead(from));
      CONVERGE_ASSIGN_OR_RETURN(FileContent content, ChunkFile(f.get(), params_));
      unchanged = content.sha256 == entry->version.content_sha256;
    }
    status = fs_->MakeDirs(std::string(ParentPath(v.path)));
    if (status.ok()) status = fs_->Rename(from, v.path);
    if (absl::IsFailedPrecondition(status)) {
      // Its new directory is a file here until this commit replaces it: written as an edit.
      status = absl::OkStatus();
      continue;
    }
    if (!status.ok()) break;
    dirs.insert(std::string(ParentPath(from)));
    dirs.insert(std::string(ParentPath(v.path)));
    ++stats_.moved;
    const bool same_content = v.content_sha256 == entry->version.content_sha256;
    // An edit made here before the move arrived travels with the file: the index keeps the stat
    // it was synced with, so the next scan uploads the edit at the new path.
    IndexEntry e{same_content ? v : entry->version, entry->local, absl::ToUnixNanos(clock_->Now())};
    e.version.path = v.path;
    if (unchanged) {
      // The moved version's mode and mtime (a copy and delete has a new mtime) are the file's.
      const bool same_meta = (src.mode & 0777) == (v.mode & 0777) && src.mtime_ns == v.mtime_ns;
      absl::StatusOr<LocalStat> now = same_content && !same_meta
                                          ? fs_->SetMetadata(v.path, v.mode == 0 ? 0644 : v.mode, v.mtime_ns)
                                          : fs_->Stat(v.path);
      if (!now.ok()) {
        status = now.status();
        break;
      }
      e.local = *now;
    }
    moved.push_back(std::move(e));
    if (same_content) done->insert(&v);
    Log()->debug("moved {} -> {}@{} in place", from, v.path, v.seq);
  }
  for (const std::string& dir : dirs) {
    absl::Status synced = fs_->SyncDir(dir);
    if (status.ok() && !synced.ok()) status = synced;
  }
  // Recorded once the renames are durable; on error, what was not recorded is found again.
  if (status.ok()) return index_->Update(moved, std::nullopt);
  absl::Status recorded = index_->Update(moved, std::nullopt);
  if (!recorded.ok()) Log()->error("recording moved files failed: {}", recorded.ToString());
  return status;
}

namespace {

constexpr char kBlockedSetting[] = "blocked_versions";
constexpr size_t kMaxBlocked = 10000;  // kept; more are still applied or fail the commit

}  // namespace

absl::Status Applier::LoadBlocked() {
  if (blocked_loaded_) return absl::OkStatus();
  CONVERGE_ASSIGN_OR_RETURN(std::optional<std::string> saved, index_->GetSetting(kBlockedSetting));
  blocked_.clear();
  if (saved.has_value()) {
    Decoder d(*saved);
    uint64_t n = 0;
    if (!d.GetVarint64(&n) || n > kMaxBlocked) return absl::DataLossError("corrupt list of blocked versions");
    for (uint64_t i = 0; i < n; ++i) {
      std::string version, why;
      if (!d.GetLengthPrefixed(&version) || !d.GetLengthPrefixed(&why)) {
        return absl::DataLossError("corrupt list of blocked versions");
      }
      CONVERGE_ASSIGN_OR_RETURN(FileVersion v, DecodeFileVersion(version));
      const std::string path = v.path;
      blocked_[path] = BlockedVersion{std::move(v), std::move(why)};
    }
  }
  blocked_loaded_ = true;
  return absl::OkStatus();
}

absl::Status Applier::SaveBlocked() {
  if (!blocked_dirty_) return absl::OkStatus();
  std::string out;
  PutVarint64(&out, blocked_.size());
  for (const auto& [path, b] : blocked_) {
    PutLengthPrefixed(&out, EncodeFileVersion(b.version));
    PutLengthPrefixed(&out, b.why);
  }
  CONVERGE_RETURN_IF_ERROR(index_->SetSetting(kBlockedSetting, out));
  blocked_dirty_ = false;
  return absl::OkStatus();
}

bool Applier::Block(const FileVersion& v, const absl::Status& why) {
  switch (why.code()) {
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kAlreadyExists:
      break;
    default:
      return false;  // may pass by itself (I/O, a full disk, the store): the commit is retried
  }
  // A folder that is gone or unmounted fails every path: that is no reason to move on.
  if (!fs_->RootIntact().ok() || (blocked_.size() >= kMaxBlocked && blocked_.count(v.path) == 0)) return false;
  auto [it, inserted] = blocked_.try_emplace(v.path);
  if (inserted || it->second.version.seq != v.seq || it->second.why != why.message()) {
    Log()->warn("not applying {}@{} here: {}", v.path, v.seq, why.message());
    it->second = BlockedVersion{v, std::string(why.message())};
    blocked_dirty_ = true;
  }
  return true;
}

absl::StatusOr<std::vector<std::string>> Applier::Blocked() {
  CONVERGE_RETURN_IF_ERROR(LoadBlocked());
  std::vector<std::string> out;
  for (const auto& [path, b] : blocked_) out.push_back(absl::StrCat(path, ": ", b.why));
  return out;
}

absl::Status Applier::RetryBlocked() {
  CONVERGE_RETURN_IF_ERROR(LoadBlocked());
  if (blocked_.empty()) return absl::OkStatus();
  Commit retry;
  for (auto it = blocked_.begin(); it != blocked_.end();) {
    CONVERGE_ASSIGN_OR_RETURN(std::optional<IndexEntry> entry, index_->Get(it->first));
    if (entry.has_value() && entry->version.seq >= it->second.version.seq) {
      blocked_.erase(it++);  // a later version was applied meanwhile
      blocked_dirty_ = true;
      continue;
    }
    retry.files.push_back(it->second.version);
    retry.seq = std::max(retry.seq, it->second.version.seq);
    ++it;
  }
  if (retry.files.empty()) return SaveBlocked();
  return ApplyCommitInPlace(retry, std::nullopt);
}

std::vector<const FileVersion*> Applier::ApplyOrder(const Commit& commit,
                                                    const absl::flat_hash_set<const FileVersion*>& done) {
  // Paths this commit turns into files or symlinks: what it deletes below them goes first (a
  // directory becomes a file only once empty).
  absl::flat_hash_set<absl::string_view> become_leaves;
  for (const FileVersion& v : commit.files) {
    if (!v.deleted && v.kind != FileKind::kDirectory) become_leaves.insert(v.path);
  }
  auto below_leaf = [&](const FileVersion* v) {
    if (!v->deleted) return false;
    for (absl::string_view dir = ParentPath(v->path); !dir.empty(); dir = ParentPath(dir)) {
      if (become_leaves.contains(dir)) return true;
    }
    return false;
  };
  // Then creations parents first, then the other deletions children first.
  auto rank = [&](const FileVersion* v) { return below_leaf(v) ? 0 : v->deleted ? 2 : 1; };
  std::vector<std::pair<int, const FileVersion*>> ranked;
  for (const FileVersion& v : commit.files) {
    if (!done.contains(&v)) ranked.emplace_back(rank(&v), &v);
  }
  std::stable_sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
    if (a.first != b.first) return a.first < b.first;
    return a.second->deleted ? a.second->path > b.second->path : a.second->path < b.second->path;
  });
  std::vector<const FileVersion*> order;
  order.reserve(ranked.size());
  for (const auto& [r, v] : ranked) order.push_back(v);
  return order;
}

absl::Status Applier::ApplyCommit(const Commit& commit) { return ApplyWithMoves(commit, commit.seq); }

absl::Status Applier::ApplyPart(const Commit& part) { return ApplyWithMoves(part, std::nullopt); }

absl::Status Applier::ApplyWithMoves(const Commit& commit, std::optional<uint64_t> cursor) {
  CONVERGE_RETURN_IF_ERROR(LoadBlocked());
  // A local move undone for this commit is made again afterwards, whether or not it applied.
  const std::vector<std::pair<std::string, std::string>> redo = UndoLocalMoves(commit);
  absl::Status applied = ApplyCommitInPlace(commit, cursor);
  for (const auto& [from, to] : redo) {
    absl::StatusOr<LocalStat> at_from = fs_->Stat(from);
    absl::StatusOr<LocalStat> at_to = fs_->Stat(to);
    if (!at_from.ok() || !at_from->exists || !at_to.ok() || at_to->exists) continue;
    if (fs_->MakeDirs(std::string(ParentPath(to))).ok()) (void)fs_->Rename(from, to);
  }
  return applied;
}

absl::Status Applier::ApplyCommitInPlace(const Commit& commit, std::optional<uint64_t> cursor) {
  if (absl::Status s = RefuseSealed(commit.files); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("apply@", commit.seq, ": ", s.message()));
  }
  dirs_in_place_.clear();
  absl::flat_hash_set<const FileVersion*> done;
  std::vector<IndexEntry> applied;
  if (absl::Status s = RecordNotApplied(commit, &done, &applied); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("apply@", commit.seq, ": ", s.message()));
  }
  // What this commit may install is recorded first: a power cut before the index records it
  // must not make the installed files look like edits made here.
  std::vector<FileVersion> intents;
  for (const FileVersion& v : commit.files) {
    if ((v.origin_device.empty() || v.origin_device != device_) && !done.contains(&v)) intents.push_back(v);
  }
  if (absl::Status s = index_->RecordIntents(intents); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("apply@", commit.seq, ": ", s.message()));
  }
  // The directories of the commit's files are opened once for all of them.
  FilesystemBatch batch(fs_);
  if (absl::Status s = send_only_ ? absl::OkStatus() : MoveInPlace(commit, &done); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("apply moves@", commit.seq, ": ", s.message()));
  }
  RecordExcluded(commit, &done, &applied);
  const std::vector<const FileVersion*> order = ApplyOrder(commit, done);
  std::vector<PendingWrite> pending;
  // Removals, directories, links and conflict renames made outside a batch are durable only
  // after a sync: the index must not record them before (a power cut would bring back a removed
  // file the index calls deleted, and the scan would take it for a file made here).
  bool unsynced = false;
  auto record = [&](std::optional<uint64_t> to) {
    if (unsynced) CONVERGE_RETURN_IF_ERROR(fs_->SyncAll());
    unsynced = false;
    return index_->Update(applied, to);
  };
  auto fail = [&](const std::string& what, const absl::Status& s) {
    absl::Status recorded = record(std::nullopt);
    if (!recorded.ok()) Log()->error("recording applied files failed: {}", recorded.ToString());
    return absl::Status(s.code(), absl::StrCat("apply ", what, "@", commit.seq, ": ", s.message()));
  };
  auto batch_bytes = [&]() {
    uint64_t total = 0;
    for (const PendingWrite& p : pending) total += p.remote->size;
    return total;
  };
  for (const FileVersion* v : order) {
    // Writes of the batch land before any deletion (deletions come last in the order).
    if ((v->deleted && !pending.empty()) || pending.size() >= kBatchedFiles ||
        batch_bytes() >= kBatchBytes) {
      if (absl::Status s = WriteBatch(&pending, &applied); !s.ok()) return fail("a batch of files", s);
    }
    absl::StatusOr<std::optional<IndexEntry>> entry = ApplyOne(*v, &pending);
    if (!entry.ok()) {
      if (Block(*v, entry.status())) continue;
      return fail(v->path, entry.status());
    }
    if (entry->has_value()) {
      unsynced = true;
      applied.push_back(std::move(**entry));
    }
  }
  if (absl::Status s = WriteBatch(&pending, &applied); !s.ok()) return fail("a batch of files", s);
  // What applied is no longer blocked; what stays blocked is saved before the cursor moves.
  for (const IndexEntry& e : applied) blocked_dirty_ |= blocked_.erase(e.version.path) > 0;
  if (absl::Status s = SaveBlocked(); !s.ok()) return fail("the blocked list", s);
  if (absl::Status s = batch.End(); !s.ok()) return fail("the batch's directories", s);
  return record(cursor);
}

absl::Status Applier::Restore(std::vector<FileVersion> versions) {
  CONVERGE_RETURN_IF_ERROR(RefuseSealed(versions));
  std::sort(versions.begin(), versions.end(),
            [](const FileVersion& a, const FileVersion& b) { return a.path < b.path; });
  std::vector<IndexEntry> restored;
  for (const FileVersion& v : versions) {
    CONVERGE_ASSIGN_OR_RETURN(LocalStat now, fs_->Stat(v.path));
    if (now.exists) continue;  // back already (or something new is there): the scan decides
    if (v.kind == FileKind::kDirectory) {
      CONVERGE_RETURN_IF_ERROR(fs_->MakeDirs(v.path));
      CONVERGE_ASSIGN_OR_RETURN(LocalStat st, fs_->Stat(v.path));
      restored.push_back(IndexEntry{v, st, absl::ToUnixNanos(clock_->Now())});
      continue;
    }
    LocalStat installed;
    if (v.kind == FileKind::kSymlink) {
      CONVERGE_RETURN_IF_ERROR(fs_->MakeDirs(std::string(ParentPath(v.path))));
      CONVERGE_RETURN_IF_ERROR(fs_->MakeSymlink(v.path, v.symlink_target));
      CONVERGE_ASSIGN_OR_RETURN(installed, fs_->Stat(v.path));
    } else {
      CONVERGE_ASSIGN_OR_RETURN(installed, WriteFile(v, std::nullopt, LocalStat{}));
    }
    ++stats_.files_written;
    restored.push_back(IndexEntry{v, installed, absl::ToUnixNanos(clock_->Now())});
  }
  Log()->info("restored {} of {} entries", restored.size(), versions.size());
  return index_->Update(restored, std::nullopt);
}

absl::Status Applier::Materialize(std::vector<FileVersion> versions) {
  if (versions.empty()) return absl::OkStatus();
  Commit commit;
  commit.seq = index_->cursor();
  commit.files = std::move(versions);
  materializing_ = true;
  absl::Status applied = ApplyCommitInPlace(commit, std::nullopt);
  materializing_ = false;
  Log()->info("wrote {} entries back into the folder", commit.files.size());
  return applied;
}

absl::Status Applier::ApplyNotApplied(const std::vector<IndexEntry>& entries) {
  if (entries.empty()) return absl::OkStatus();
  Commit commit;
  commit.seq = index_->cursor();
  for (const IndexEntry& e : entries) commit.files.push_back(e.version);
  catching_up_ = true;
  const bool send_only = std::exchange(send_only_, false);
  absl::Status applied = ApplyCommitInPlace(commit, std::nullopt);
  send_only_ = send_only;
  catching_up_ = false;
  Log()->info("applied {} version(s) this folder had not applied while send-only", entries.size());
  return applied;
}

void Applier::RecordExcluded(const Commit& commit, absl::flat_hash_set<const FileVersion*>* done,
                             std::vector<IndexEntry>* applied) {
  if (selection_.empty() || materializing_) return;
  const int64_t now = absl::ToUnixNanos(clock_->Now());
  for (const FileVersion& v : commit.files) {
    if (done->contains(&v) || !selection_.Excluded(v.path)) continue;
    applied->push_back(IndexEntry{v, LocalStat{}, now});
    done->insert(&v);
  }
}

absl::Status Applier::RecordNotApplied(const Commit& commit, absl::flat_hash_set<const FileVersion*>* done,
                                       std::vector<IndexEntry>* applied) {
  if (!send_only_ || materializing_) return absl::OkStatus();
  for (const FileVersion& v : commit.files) {
    if (!v.origin_device.empty() && v.origin_device == device_) continue;  // this device's own
    CONVERGE_ASSIGN_OR_RETURN(std::optional<IndexEntry> entry, index_->Get(v.path));
    done->insert(&v);
    if (entry.has_value() && entry->version.seq >= v.seq) continue;
    // What is here stays what it was: the entry keeps the stat it was last synced with.
    IndexEntry e{v, LocalStat{}, 0};
    e.not_applied = true;
    if (entry.has_value()) {
      e.local = entry->local;
      e.recorded_at_ns = entry->recorded_at_ns;
    }
    applied->push_back(std::move(e));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> Applier::StillAsSynced(const IndexEntry& entry, const LocalStat& now) {
  if (!now.exists || now.kind != entry.version.kind) return false;
  if (now.kind == FileKind::kDirectory) return true;
  if (entry.local.Same(now) && Trusted(entry)) return true;
  if (now.kind == FileKind::kSymlink) {
    CONVERGE_ASSIGN_OR_RETURN(std::string target, fs_->ReadLink(entry.version.path));
    return target == entry.version.symlink_target;
  }
  CONVERGE_ASSIGN_OR_RETURN(std::unique_ptr<ReadableFile> f, fs_->OpenRead(entry.version.path));
  CONVERGE_ASSIGN_OR_RETURN(FileContent content, ChunkFile(f.get(), params_));
  return content.sha256 == entry.version.content_sha256;
}

absl::Status Applier::Vacate(std::vector<IndexEntry> entries, uint64_t* kept) {
  // Children before their directories.
  std::sort(entries.begin(), entries.end(),
            [](const IndexEntry& a, const IndexEntry& b) { return a.version.path > b.version.path; });
  std::vector<IndexEntry> vacated;
  const int64_t now = absl::ToUnixNanos(clock_->Now());
  for (const IndexEntry& e : entries) {
    CONVERGE_ASSIGN_OR_RETURN(LocalStat local, fs_->Stat(e.version.path));
    CONVERGE_ASSIGN_OR_RETURN(bool as_synced, StillAsSynced(e, local));
    absl::Status removed = as_synced ? fs_->Remove(e.version.path) : absl::OkStatus();
    if (absl::IsFailedPrecondition(removed)) as_synced = false;  // a directory still holding something
    CONVERGE_RETURN_IF_ERROR(absl::IsFailedPrecondition(removed) ? absl::OkStatus() : removed);
    if (!as_synced && local.exists) {
      ++*kept;
      continue;
    }
    vacated.push_back(IndexEntry{e.version, LocalStat{}, now});
  }
  if (!entries.empty()) {
    Log()->info("{} synced entries taken out of the folder ({} changed here left in place)", vacated.size(), *kept);
  }
  return index_->Update(vacated, std::nullopt);
}

}  // namespace converge::engine
