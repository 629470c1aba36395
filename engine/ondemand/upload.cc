#include "engine/ondemand/upload.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/model/mass_delete.h"
#include "engine/sync/chunker.h"

namespace converge::engine {
namespace {

// A data file, read with pread.
class DataFile : public ReadableFile {
 public:
  explicit DataFile(int fd) : fd_(fd) {}
  ~DataFile() override { close(fd_); }
  absl::Status Read(uint64_t offset, size_t n, std::string* out) override {
    out->resize(n);
    CONVERGE_ASSIGN_OR_RETURN(size_t got, ReadInto(offset, n, out->data()));
    out->resize(got);
    return absl::OkStatus();
  }
  absl::StatusOr<size_t> ReadInto(uint64_t offset, size_t n, char* dst) override {
    size_t got = 0;
    while (got < n) {
      const ssize_t r = pread(fd_, dst + got, n - got, static_cast<off_t>(offset + got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return absl::InternalError(absl::StrCat("reading a written file: ", std::strerror(errno)));
      if (r == 0) break;
      got += r;
    }
    return got;
  }
  int NativeHandle() const override { return fd_; }

 private:
  const int fd_;
};

// ChunkSender sends chunks the store lacks, in batches, keeping each in the cache.
class ChunkSender {
 public:
  ChunkSender(StoreClient* store, ChunkCache* cache) : store_(store), cache_(cache) {}

  void Add(const Digest& d, absl::string_view bytes) {
    if (!status_.ok() || !seen_.insert(d).second) return;
    batch_.emplace_back(d, std::string(bytes));
    batch_bytes_ += bytes.size();
    if (batch_bytes_ >= kBatchBytes) status_ = Flush();  // kept: Flush reports it at the end
  }

  absl::Status Flush() {
    if (!status_.ok() || batch_.empty()) return status_;
    std::vector<Digest> digests;
    for (const auto& [d, bytes] : batch_) digests.push_back(d);
    absl::StatusOr<std::vector<Digest>> missing = store_->FindMissing(digests);
    if (!missing.ok()) return status_ = missing.status();
    const absl::flat_hash_set<Digest> lacked(missing->begin(), missing->end());
    // The cache takes the batch on another core while it goes to the store.
    std::thread cacher([this] {
      for (const auto& [d, bytes] : batch_) {
        if (absl::Status kept = cache_->Put(d, bytes); !kept.ok()) {
          GetLogger("engine")->debug("caching a written chunk: {}", kept.ToString());
        }
      }
    });
    size_t next = 0;
    status_ = store_->PutChunks([&](ChunkUpload* out) -> absl::StatusOr<bool> {
      while (next < batch_.size() && !lacked.contains(batch_[next].first)) ++next;
      if (next == batch_.size()) return false;
      out->sha256 = batch_[next].first;
      out->data = batch_[next].second;
      out->encoding = ChunkEncoding::kRaw;
      sent_ += out->data.size();
      ++next;
      return true;
    });
    cacher.join();
    batch_.clear();
    batch_bytes_ = 0;
    return status_;
  }
  uint64_t sent() const { return sent_; }

 private:
  static constexpr size_t kBatchBytes = 16 << 20;
  StoreClient* const store_;
  ChunkCache* const cache_;
  absl::flat_hash_set<Digest> seen_;
  std::vector<std::pair<Digest, std::string>> batch_;
  size_t batch_bytes_ = 0;
  uint64_t sent_ = 0;
  absl::Status status_;
};

// Fill completes a written file's version from its data file: size, mtime, chunks, hash.
absl::Status Fill(const std::string& data_path, ChunkSender* sender, FileVersion* v) {
  const int fd = open(data_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::InternalError(absl::StrCat("opening ", data_path, ": ", std::strerror(errno)));
  DataFile file(fd);
  struct stat st {};
  if (fstat(fd, &st) != 0) return absl::InternalError(absl::StrCat("stat ", data_path, ": ", std::strerror(errno)));
  CONVERGE_ASSIGN_OR_RETURN(FileContent content,
                            ChunkFile(&file, ChunkParams{}, [&](const ChunkRef& ref, uint64_t, absl::string_view bytes) {
                              if (!ref.hole()) sender->Add(ref.sha256, bytes);
                            }));
  v->size = content.size;
  v->chunks = std::move(content.chunks);
  v->content_sha256 = content.sha256;
  v->mtime_ns = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
  return absl::OkStatus();
}

bool SameAs(const FileVersion& a, const FileVersion& b) {
  return a.kind == b.kind && a.size == b.size && a.content_sha256 == b.content_sha256 && a.mode == b.mode &&
         a.mtime_ns == b.mtime_ns && a.symlink_target == b.symlink_target;
}

// Batches: edits and moves (each moved file's tombstone beside its new version) in path order,
// then plain deletions and directories' tombstones, deepest first (the store deletes a directory
// only once everything in it is deleted, in that commit or before).
std::vector<std::vector<LocalEdits::Settled>> Batches(std::vector<LocalEdits::Settled> settled) {
  absl::flat_hash_set<std::string> live_ids;
  for (const auto& s : settled) {
    if (!s.change.version.deleted) live_ids.insert(s.change.version.file_id);
  }
  std::vector<LocalEdits::Settled> first, deletions;
  for (auto& s : settled) {
    const FileVersion& v = s.change.version;
    const bool moved = live_ids.contains(v.file_id) && v.kind != FileKind::kDirectory;
    (v.deleted && !moved ? deletions : first).push_back(std::move(s));
  }
  std::reverse(deletions.begin(), deletions.end());
  std::vector<std::vector<LocalEdits::Settled>> out;
  for (auto* group : {&first, &deletions}) {
    for (size_t at = 0; at < group->size(); at += kMaxFilesPerCommit) {
      out.emplace_back(std::make_move_iterator(group->begin() + at),
                       std::make_move_iterator(group->begin() + std::min(group->size(), at + kMaxFilesPerCommit)));
    }
  }
  return out;
}

// Conflicts asks the store for its version of each path of a refused batch, and settles them.
absl::Status Conflicts(StoreClient* store, LocalEdits* edits, const std::vector<LocalEdits::Settled>& batch) {
  absl::flat_hash_map<std::string, std::optional<FileVersion>> current;
  for (const LocalEdits::Settled& s : batch) {
    CONVERGE_ASSIGN_OR_RETURN(std::vector<HistoryVersion> versions, store->ListVersions(s.change.version.path, 1));
    current[s.change.version.path] =
        versions.empty() ? std::nullopt : std::optional<FileVersion>(std::move(versions.front().version));
  }
  edits->Conflicted(current);
  return absl::OkStatus();
}

// Refused: the store will not take the commit as it is (and trying again changes nothing).
bool Refused(const absl::Status& s) {
  return absl::IsInvalidArgument(s) || absl::IsAlreadyExists(s) ||
         (absl::IsFailedPrecondition(s) && !IsMassDeleteHeld(s) && !IsMassDeleteRejected(s));
}

}  // namespace

namespace {

// Prepare completes each settled change (a written file chunked, the chunks the store lacks
// sent), settles those left as they were, refuses what cannot go, and returns the rest.
absl::StatusOr<std::vector<LocalEdits::Settled>> Prepare(StoreClient* store, LocalEdits* edits, OnDemandView* view,
                                                         ChunkCache* cache, std::vector<LocalEdits::Settled> settled,
                                                         UploadOutcome* out) {
  ChunkSender sender(store, cache);
  std::vector<LocalEdits::Settled> unchanged, changed;
  std::vector<FileVersion> as_they_are;
  for (LocalEdits::Settled& s : settled) {
    if (!s.data_path.empty()) {
      if (absl::Status filled = Fill(s.data_path, &sender, &s.change.version); !filled.ok()) {
        edits->Refuse(s, std::string(filled.message()));  // its bytes are unreadable here (say so, go on)
        continue;
      }
    }
    std::optional<FileVersion> remote = view->Remote(s.change.version.path);
    if (!s.change.version.deleted && remote.has_value() && remote->seq == s.change.version.base_seq &&
        SameAs(*remote, s.change.version)) {
      unchanged.push_back(std::move(s));  // opened for writing, or moved back, and left as it was
      as_they_are.push_back(*remote);
      continue;
    }
    if (absl::Status ok = ValidateFileVersion(s.change.version); !ok.ok()) {
      edits->Refuse(s, std::string(ok.message()));
      continue;
    }
    changed.push_back(std::move(s));
  }
  CONVERGE_RETURN_IF_ERROR(sender.Flush());
  out->bytes_sent = sender.sent();
  if (!unchanged.empty()) edits->Committed(unchanged, as_they_are);
  return changed;
}

// CommitAll commits the batches, settling conflicts, holds and refusals as the store answers.
absl::Status CommitAll(StoreClient* store, LocalEdits* edits, std::vector<std::vector<LocalEdits::Settled>> batches,
                       UploadOutcome* out) {
  for (size_t b = 0; b < batches.size(); ++b) {
    std::vector<LocalEdits::Settled> batch = std::move(batches[b]);
    std::vector<FileVersion> versions;
    for (const LocalEdits::Settled& s : batch) versions.push_back(s.change.version);
    absl::StatusOr<uint64_t> seq = store->Commit(versions);
    if (Refused(seq.status())) {
      if (batch.size() == 1) {
        edits->Refuse(batch.front(), std::string(seq.status().message()));
        continue;
      }
      // One of them: each goes alone, so the others are not held back by it.
      for (LocalEdits::Settled& s : batch) batches.push_back({std::move(s)});
      continue;
    }
    if (absl::IsAborted(seq.status())) {
      GetLogger("engine")->info("another device changed some of these paths first ({})", seq.status().message());
      CONVERGE_RETURN_IF_ERROR(Conflicts(store, edits, batch));
      out->conflicts += batch.size();
      continue;
    }
    if (IsMassDeleteHeld(seq.status())) {
      out->held_deletes += batch.size();
      out->held_message = std::string(seq.status().message());
      continue;
    }
    if (IsMassDeleteRejected(seq.status())) {
      GetLogger("engine")->warn("the store rejected {} deletion(s) ({}): restoring them", batch.size(),
                                seq.status().message());
      edits->Restore();
      continue;
    }
    CONVERGE_RETURN_IF_ERROR(seq.status());
    for (FileVersion& v : versions) v.seq = *seq;
    edits->Committed(batch, versions);
    edits->RetryRefused();  // the store changed: what it refused may go now (a directory emptied)
    out->committed += batch.size();
    GetLogger("engine")->info("committed {} local change(s) as seq {}", batch.size(), *seq);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<UploadOutcome> UploadLocalEdits(StoreClient* store, LocalEdits* edits, OnDemandView* view,
                                               ChunkCache* cache, absl::Duration quiet) {
  UploadOutcome out;
  std::vector<LocalEdits::Settled> settled = edits->TakeSettled(quiet);
  if (settled.empty()) return out;
  CONVERGE_ASSIGN_OR_RETURN(std::vector<LocalEdits::Settled> ready,
                            Prepare(store, edits, view, cache, std::move(settled), &out));
  CONVERGE_RETURN_IF_ERROR(CommitAll(store, edits, Batches(std::move(ready)), &out));
  return out;
}

}  // namespace converge::engine
