#include "engine/sync/scanner.h"

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/base/logging.h"
#include "common/base/random_id.h"
#include "common/base/status_macros.h"
#include "common/model/path.h"
#include "engine/sync/chunker.h"

namespace converge::engine {
namespace {

std::shared_ptr<spdlog::logger> Log() {
  static auto log = GetLogger("scan");
  return log;
}

// MovedAway is the tombstone of a moved entry's old path.
LocalChange MovedAway(const IndexEntry& e) {
  LocalChange c;
  c.version.file_id = e.version.file_id;
  c.version.path = e.version.path;
  c.version.kind = e.version.kind;
  c.version.deleted = true;
  c.version.base_seq = e.version.seq;
  c.moved = true;
  return c;
}

}  // namespace

bool Trusted(const IndexEntry& entry) {
  // A write after the stat was taken sets mtime to the time of that write: it shows unless the
  // recorded mtime was already that recent (a write in the same clock tick keeps it). A recent
  // ctime alone (a file the applier just installed with its version's mtime, one renamed or
  // chmod'ed just now) does not hide a later write: its mtime moves. Only a writer that puts
  // the old mtime back within the same tick would go unseen.
  return entry.local.mtime_ns + absl::ToInt64Nanoseconds(kRacyWindow) < entry.recorded_at_ns;
}

namespace {

// UnchangedByStat: the live entry `e` need not be read again to know it is unchanged: `st` is of
// its kind and is a directory, or the stat the index recorded and trusts. The scan and the
// verifying scan (Suspects) judge alike by it.
bool UnchangedByStat(const IndexEntry& e, const LocalStat& st) {
  if (e.version.kind != st.kind) return false;
  return st.kind == FileKind::kDirectory || (e.local.Same(st) && Trusted(e));
}

}  // namespace

bool RenamedFrom(const IndexEntry& e, const LocalStat& st) {
  return !e.version.deleted && e.version.kind == FileKind::kFile && st.kind == FileKind::kFile && st.inode != 0 &&
         e.local.inode == st.inode && e.local.size == st.size && e.local.mtime_ns == st.mtime_ns && Trusted(e) &&
         (st.mode & 0777) == (e.version.mode & 0777);
}

namespace {

// SideBySide walks the folder and the index's live entries together, both in path order:
// `walked` gets each walked path with the index's entry of that path (nullptr: none),
// `only_known` each entry the walk did not come to. A walk out of order is an error.
absl::Status SideBySide(Filesystem* fs, LocalIndex* index, const std::function<void(const IndexEntry&)>& only_known,
                        const std::function<void(const std::string&, const LocalStat&, const IndexEntry*)>& walked) {
  CONVERGE_ASSIGN_OR_RETURN(std::unique_ptr<LocalIndex::LiveCursor> known, index->Live());
  auto known_before = [&](const std::string& path) -> absl::Status {  // empty: all that are left
    while (known->Valid() && (path.empty() || known->entry().version.path < path)) {
      only_known(known->entry());
      CONVERGE_RETURN_IF_ERROR(known->Next());
    }
    return absl::OkStatus();
  };
  absl::Status status;
  std::string last;
  CONVERGE_RETURN_IF_ERROR(fs->Walk([&](const std::string& path, const LocalStat& st) {
    if (!status.ok()) return;
    if (!last.empty() && path <= last) {
      status = absl::InternalError(absl::StrCat("the walk came to '", path, "' after '", last, "'"));
      return;
    }
    last = path;
    status = known_before(path);
    if (!status.ok()) return;
    const bool matched = known->Valid() && known->entry().version.path == path;
    walked(path, st, matched ? &known->entry() : nullptr);
    if (matched) status = known->Next();
  }));
  CONVERGE_RETURN_IF_ERROR(status);
  return known_before("");
}

}  // namespace

class Scanner::Comparison {
 public:
  Comparison(Scanner* scanner, const ScanFilter& filter, ScanResult* result)
      : scanner_(scanner), filter_(filter), result_(*result) {}

  // Part takes a part of what was walked (in walk order, after the parts before it) and what
  // the index knows of it, less what the ignore rules leave out: the entries of walked paths
  // for this part, the others (gone from their paths) for the whole scan.
  void Part(std::vector<std::pair<std::string, LocalStat>> part_walked, std::map<std::string, IndexEntry> part_known) {
    parted_ = parted_ || !walked_.empty();
    walked_ = std::move(part_walked);
    const auto ignored = std::remove_if(walked_.begin(), walked_.end(), [&](const auto& w) {
      return filter_.Skipped(w.first, w.second.kind == FileKind::kDirectory);
    });
    result_.ignored += static_cast<uint64_t>(walked_.end() - ignored);
    walked_.erase(ignored, walked_.end());
    seen_.clear();
    seen_.reserve(walked_.size());
    for (const auto& w : walked_) seen_.insert(w.first);  // views into walked_, which stays as it is
    known_.clear();
    for (auto& [path, e] : part_known) {
      // A version a send-only folder never had here is no deletion (nor a move's source).
      const bool never_here = e.not_applied && !e.local.exists;
      if (never_here || filter_.Skipped(path, e.version.kind == FileKind::kDirectory)) continue;
      if (seen_.contains(path)) {
        known_.emplace(path, std::move(e));
        continue;
      }
      // Moves: a known file that is gone from its path, found again at a new path by its inode
      // with the same size and mtime (a rename: not read again), or by its content (a rename
      // that also touched it, a copy then a delete). It keeps its file_id. (Directories are not
      // matched: an inode number is reused once freed, and their files are matched one by one.)
      const IndexEntry& gone = gone_.emplace(path, std::move(e)).first->second;
      if (gone.version.kind != FileKind::kFile) continue;
      if (gone.local.exists && gone.local.inode != 0) gone_by_inode_.emplace(gone.local.inode, &gone);
      if (gone.version.size > 0) gone_by_content_.emplace(DigestToBytes(gone.version.content_sha256), &gone);
    }
    result_.entries_seen += walked_.size();
  }

  const std::vector<std::pair<std::string, LocalStat>>& walked() const { return walked_; }
  // In order so far: no move, no change of kind (see Scanner::ChangeSink).
  bool in_order() const { return in_order_; }
  ScanResult* result() { return &result_; }

  // Walked compares one walked entry with the index and records what changed.
  absl::Status Walked(const std::string& path, const LocalStat& st) {
    auto it = known_.find(path);
    const IndexEntry* entry = it == known_.end() ? nullptr : &it->second;
    std::optional<IndexEntry> tombstone;  // a new path may re-create a deleted one
    if (entry == nullptr) {
      CONVERGE_ASSIGN_OR_RETURN(tombstone, scanner_->index_->Get(path));
      if (tombstone.has_value()) entry = &*tombstone;
    }
    const bool live = entry != nullptr && !entry->version.deleted;
    if (live && UnchangedByStat(*entry, st)) return absl::OkStatus();
    if (!live && entry != nullptr && entry->not_applied && entry->local.exists && entry->local.kind == st.kind &&
        (st.kind == FileKind::kDirectory || entry->local.Same(st))) {
      return absl::OkStatus();  // deleted elsewhere, kept as it was by a send-only folder
    }
    CONVERGE_ASSIGN_OR_RETURN(const bool installed, Installed(path, st));
    if (installed) return absl::OkStatus();
    FileVersion v;
    v.path = path;
    v.kind = st.kind;
    v.mode = st.mode & 0777;
    v.mtime_ns = st.mtime_ns;
    v.base_seq = entry == nullptr ? 0 : entry->version.seq;
    CONVERGE_ASSIGN_OR_RETURN(const IndexEntry* source, RenameSource(path, st, live));
    if (source != nullptr) {
      // Renamed, not rewritten (a rename keeps the inode and mtime): its content is known.
      v.file_id = source->version.file_id;
      v.size = source->version.size;
      v.content_sha256 = source->version.content_sha256;
      v.chunks = source->version.chunks;
      if (scanner_->sync_xattrs_) v.xattrs = source->version.xattrs;  // they move with the inode
      Moved(std::move(v), st, *source);
      return absl::OkStatus();
    }
    const bool same_kind = live && entry->version.kind == st.kind;
    if (live && !same_kind) in_order_ = false;  // its deletions below it come first
    v.file_id = same_kind ? entry->version.file_id : scanner_->NewFileId();
    bool changed = true;
    if (st.kind == FileKind::kSymlink) changed = ReadSymlink(st, same_kind ? entry : nullptr, &v);
    if (st.kind == FileKind::kFile) changed = HashFile(st, same_kind ? entry : nullptr, &v);
    if (!changed) return absl::OkStatus();
    if (st.kind == FileKind::kFile && !live) source = SameContentGone(&v);
    if (source != nullptr) {
      Moved(std::move(v), st, *source);
    } else {
      result_.changes.push_back(LocalChange{std::move(v), st});
    }
    return absl::OkStatus();
  }

  // Deletions: known entries no longer walked, children before their parents.
  absl::Status Deletions() {
    for (auto it = gone_.rbegin(); it != gone_.rend(); ++it) {
      const IndexEntry& e = it->second;
      if (e.version.deleted || moved_away_.contains(e.version.path)) continue;
      CONVERGE_ASSIGN_OR_RETURN(std::optional<FileVersion> intent, scanner_->index_->GetIntent(e.version.path));
      if (intent.has_value() && intent->deleted && intent->seq > e.version.seq) {
        // Removed here by an apply whose record a power cut lost: not a deletion made here.
        result_.refreshed.push_back(IndexEntry{std::move(*intent), LocalStat{}, result_.scanned_at_ns});
        continue;
      }
      FileVersion v;
      v.file_id = e.version.file_id;
      v.path = e.version.path;
      v.kind = e.version.kind;
      v.deleted = true;
      v.base_seq = e.version.seq;
      result_.changes.push_back(LocalChange{std::move(v), LocalStat{}});
    }
    return absl::OkStatus();
  }

 private:
  // Installed: the walked entry is exactly a version an apply meant to install here (its index
  // record was lost to a power cut): recorded as synced, not taken as an edit made here.
  absl::StatusOr<bool> Installed(const std::string& path, const LocalStat& st) {
    CONVERGE_ASSIGN_OR_RETURN(std::optional<FileVersion> intent, scanner_->index_->GetIntent(path));
    if (!intent.has_value() || intent->deleted || intent->kind != st.kind) return false;
    if (st.kind == FileKind::kSymlink) {
      absl::StatusOr<std::string> target = scanner_->fs_->ReadLink(path);
      if (!target.ok() || *target != intent->symlink_target) return false;
    } else if (st.kind == FileKind::kFile) {
      const uint32_t mode = intent->mode == 0 ? 0644 : intent->mode;
      if (st.size != intent->size || st.mtime_ns != intent->mtime_ns || (st.mode & 0777) != (mode & 0777)) return false;
      absl::StatusOr<std::unique_ptr<ReadableFile>> file = scanner_->fs_->OpenRead(path);
      if (!file.ok()) return false;
      absl::StatusOr<FileContent> content = ChunkFile(file->get(), scanner_->params_);
      ++result_.files_hashed;
      if (!content.ok() || content->sha256 != intent->content_sha256) return false;
    }
    result_.refreshed.push_back(IndexEntry{std::move(*intent), st, result_.scanned_at_ns});
    return true;
  }

  const IndexEntry* Claim(const IndexEntry* source) {
    if (source == nullptr || !moved_away_.insert(source->version.path).second) return nullptr;
    return source;
  }

  void Moved(FileVersion v, const LocalStat& st, const IndexEntry& source) {
    in_order_ = false;
    ++result_.moves;
    result_.changes.push_back(LocalChange{std::move(v), st, source.version.path});
    result_.changes.push_back(MovedAway(source));
  }

  // RenameSource: the known file that a new file at `path` was renamed from, by its inode.
  absl::StatusOr<const IndexEntry*> RenameSource(const std::string& path, const LocalStat& st, bool live) {
    if (live || st.kind != FileKind::kFile || st.inode == 0) return nullptr;
    auto by_inode = gone_by_inode_.find(st.inode);
    if (by_inode != gone_by_inode_.end()) {
      return RenamedFrom(*by_inode->second, st) ? Claim(by_inode->second) : nullptr;
    }
    // Its old name may not be among the paths this scan looks at (the watcher reported the two
    // ends of a move in separate batches): ask the index where this inode was synced.
    CONVERGE_ASSIGN_OR_RETURN(std::optional<std::string> was, scanner_->index_->FindInode(st.inode));
    if (!was.has_value() || *was == path || seen_.contains(*was) || moved_away_.contains(*was)) return nullptr;
    CONVERGE_ASSIGN_OR_RETURN(elsewhere_, scanner_->index_->Get(*was));
    CONVERGE_ASSIGN_OR_RETURN(LocalStat there, scanner_->fs_->Stat(*was));
    // A scan in parts has not the walk of other parts at hand: an old path still there is then
    // left to its own part.
    if (elsewhere_.has_value() && RenamedFrom(*elsewhere_, st) &&
        (!there.exists || (!parted_ && there.inode != st.inode)) &&
        !filter_.Skipped(*was, false)) {
      return Claim(&*elsewhere_);
    }
    return nullptr;
  }

  // ReadSymlink fills a symlink's target; false if it is gone or unchanged (then refreshed).
  bool ReadSymlink(const LocalStat& st, const IndexEntry* same_kind, FileVersion* v) {
    absl::StatusOr<std::string> target = scanner_->fs_->ReadLink(v->path);
    if (!target.ok() || target->empty()) return false;  // gone meanwhile: the next scan sees it
    if (same_kind != nullptr && same_kind->version.symlink_target == *target) {
      result_.refreshed.push_back(IndexEntry{same_kind->version, st, result_.scanned_at_ns});
      return false;
    }
    v->symlink_target = std::move(*target);
    v->content_sha256 = HashOf(v->symlink_target);
    v->mode = 0777;
    return true;
  }

  // HashFile reads and chunks a file; false if it vanished, is being written, or neither its
  // content, mode nor mtime changed (then refreshed).
  bool HashFile(const LocalStat& st, const IndexEntry* same_kind, FileVersion* v) {
    absl::StatusOr<std::unique_ptr<ReadableFile>> file = scanner_->fs_->OpenRead(v->path);
    if (!file.ok()) return false;  // vanished or unreadable: the next scan sees it again
    ChunkVisitor visit;
    if (scanner_->chunk_sink_) {
      visit = [this, &v](const ChunkRef& ref, uint64_t offset, absl::string_view bytes) {
        scanner_->chunk_sink_(v->path, ref, offset, bytes);
      };
    }
    absl::StatusOr<FileContent> content = ChunkFile(file->get(), scanner_->params_, visit);
    ++result_.files_hashed;
    if (!content.ok()) return false;
    // A file that changed while it was read is being written: take it on a later scan.
    if (scanner_->sync_xattrs_) {
      absl::StatusOr<std::vector<Xattr>> xattrs = (*file)->UserXattrs();
      if (!xattrs.ok()) return false;  // unreadable now: the next scan sees it again
      v->xattrs = std::move(*xattrs);
    }
    absl::StatusOr<LocalStat> after = scanner_->fs_->Stat(v->path);
    if (!after.ok() || !after->Same(st) || content->size != st.size) return false;
    // Same bytes, permission bits, mtime (and extended attributes, when synced): only the
    // inode's other fields changed (a hard link, a rename over it). A new mtime alone is a
    // change (touch -d): committed, no bytes move; so is a new attribute (setfattr).
    if (same_kind != nullptr && content->sha256 == same_kind->version.content_sha256 &&
        (st.mode & 0777) == (same_kind->version.mode & 0777) && st.mtime_ns == same_kind->local.mtime_ns &&
        (!scanner_->sync_xattrs_ || v->xattrs == same_kind->version.xattrs)) {
      result_.refreshed.push_back(IndexEntry{same_kind->version, st, result_.scanned_at_ns});
      return false;
    }
    v->size = content->size;
    v->content_sha256 = content->sha256;
    v->chunks = std::move(content->chunks);
    return true;
  }

  // SameContentGone: a known file gone from its path with this content (it keeps its file_id).
  const IndexEntry* SameContentGone(FileVersion* v) {
    auto by_content = gone_by_content_.find(DigestToBytes(v->content_sha256));
    if (by_content == gone_by_content_.end()) return nullptr;
    const IndexEntry* source = Claim(by_content->second);
    if (source != nullptr) v->file_id = source->version.file_id;
    return source;
  }

  Scanner* const scanner_;
  const ScanFilter& filter_;
  ScanResult& result_;
  std::vector<std::pair<std::string, LocalStat>> walked_;
  std::map<std::string, IndexEntry> known_;      // the entries of walked_'s paths
  std::map<std::string, IndexEntry> gone_;       // entries not walked, of every part so far
  absl::flat_hash_set<absl::string_view> seen_;  // the paths of walked_
  absl::flat_hash_map<uint64_t, const IndexEntry*> gone_by_inode_;
  absl::flat_hash_map<std::string, const IndexEntry*> gone_by_content_;
  absl::flat_hash_set<std::string> moved_away_;  // paths whose tombstone follows their move
  std::optional<IndexEntry> elsewhere_;           // a rename source outside this scan's paths
  bool in_order_ = true;
  bool parted_ = false;  // more than one part
};

absl::StatusOr<ScanResult> Scanner::Scan() {
  CONVERGE_RETURN_IF_ERROR(fs_->RootIntact());
  ScanResult result;
  result.scanned_at_ns = absl::ToUnixNanos(clock_->Now());

  // The folder's walk and the index's live entries side by side: an entry its stat shows
  // unchanged is settled at once; what differs is compared part by part as the walk goes
  // (a large new folder is never held whole); what is gone is kept to the end (a new path may
  // be a gone one moved, and deletions go deepest first).
  const ScanFilter filter = this->filter();
  Comparison comparison(this, filter, &result);
  std::vector<std::pair<std::string, LocalStat>> walked;  // what differs, in this part
  std::map<std::string, IndexEntry> known;                // its entries, and those gone
  uint64_t unchanged = 0;
  absl::Status compared;
  auto compare_part = [&]() {
    if (compared.ok()) compared = ComparePart(&comparison, std::move(walked), std::move(known));
    walked.clear();
    known.clear();
  };
  CONVERGE_RETURN_IF_ERROR(SideBySide(
      fs_, index_, [&](const IndexEntry& gone) { known.emplace(gone.version.path, gone); },
      [&](const std::string& path, const LocalStat& st, const IndexEntry* entry) {
        const bool syncable = !syncable_ || syncable_(path);
        if (entry != nullptr && syncable && entry->version.kind == st.kind && UnchangedByStat(*entry, st)) {
          // Nothing to compare: counted as the comparison would count it.
          if (filter.Skipped(path, st.kind == FileKind::kDirectory)) {
            ++result.ignored;
          } else {
            ++unchanged;
          }
          return;
        }
        if (syncable) walked.emplace_back(path, st);
        if (entry != nullptr) known.emplace(path, *entry);
        if (walked.size() >= kScanPart) compare_part();
      }));
  compare_part();
  CONVERGE_RETURN_IF_ERROR(compared);
  CONVERGE_RETURN_IF_ERROR(comparison.Deletions());
  result.entries_seen += unchanged;
  return result;
}

absl::StatusOr<ScanResult> Scanner::ScanPaths(const std::vector<std::string>& paths) {
  CONVERGE_RETURN_IF_ERROR(fs_->RootIntact());
  ScanResult result;
  result.scanned_at_ns = absl::ToUnixNanos(clock_->Now());

  // Sorted, so parents come before children; a path below another listed directory is covered
  // by that directory's walk but listing it twice is harmless (maps dedupe).
  std::map<std::string, LocalStat> on_disk;
  std::map<std::string, IndexEntry> known;
  FilesystemBatch batch(fs_);  // each directory opened once for the paths in it
  absl::flat_hash_set<std::string> indexed_parents;  // directories the index has, looked up once
  std::vector<std::string> sorted(paths.begin(), paths.end());
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  auto whole_folder = [&]() -> absl::StatusOr<ScanResult> {
    // A large directory (moved in or away, a new device's installs): the whole folder is
    // scanned instead, side by side with the index and part by part, not held whole here.
    on_disk.clear();
    known.clear();
    CONVERGE_RETURN_IF_ERROR(batch.End());  // the whole folder's walk is of its own
    absl::StatusOr<ScanResult> whole = Scan();
    if (whole.ok()) whole->whole_folder = true;
    return whole;
  };
  for (const std::string& path : sorted) {
    if (!ValidateRelativePath(path).ok() || (syncable_ && !syncable_(path))) continue;
    CONVERGE_ASSIGN_OR_RETURN(std::optional<IndexEntry> entry, index_->Get(path));
    if (entry.has_value() && !entry->version.deleted) known.emplace(path, *entry);
    CONVERGE_ASSIGN_OR_RETURN(LocalStat st, fs_->Stat(path));
    // Only a directory (known or on disk) has a subtree to compare.
    const bool known_dir = entry.has_value() && !entry->version.deleted && entry->version.kind == FileKind::kDirectory;
    if (known_dir || (st.exists && st.kind == FileKind::kDirectory)) {
      CONVERGE_RETURN_IF_ERROR(index_->ForEachLiveUnder(path, [&](const IndexEntry& e) {
        if (known.size() <= kScanPart) known.emplace(e.version.path, e);
      }));
      if (known.size() > kScanPart) return whole_folder();
    }
    if (!st.exists || st.special) continue;
    // A new entry's parent must exist on the other devices first: include parents the index
    // does not know yet (a watcher may report a file before its new directory).
    for (std::string parent(ParentPath(path)); !parent.empty(); parent = std::string(ParentPath(parent))) {
      if (on_disk.count(parent) > 0 || indexed_parents.contains(parent)) break;
      CONVERGE_ASSIGN_OR_RETURN(std::optional<IndexEntry> p, index_->Get(parent));
      if (p.has_value() && !p->version.deleted) {
        indexed_parents.insert(parent);  // and so are its own parents
        break;
      }
      CONVERGE_ASSIGN_OR_RETURN(LocalStat pst, fs_->Stat(parent));
      if (!pst.exists || pst.kind != FileKind::kDirectory) break;
      on_disk.emplace(parent, pst);
    }
    on_disk[path] = st;
    if (st.kind != FileKind::kDirectory) continue;
    bool too_many = false;
    absl::Status walked = fs_->Walk(path, [&](const std::string& p, const LocalStat& s) {
      if (too_many || (too_many = on_disk.size() + known.size() > kScanPart)) return;
      on_disk[p] = s;
    });
    if (!walked.ok() && !absl::IsNotFound(walked)) return walked;
    if (too_many) return whole_folder();
  }
  const ScanFilter filter = this->filter();
  Comparison comparison(this, filter, &result);
  std::vector<std::pair<std::string, LocalStat>> walked(on_disk.begin(), on_disk.end());
  on_disk.clear();
  CONVERGE_RETURN_IF_ERROR(ComparePart(&comparison, std::move(walked), std::move(known)));
  CONVERGE_RETURN_IF_ERROR(comparison.Deletions());
  return result;
}

absl::StatusOr<std::vector<std::string>> Scanner::Suspects(const ScanFilter& filter) const {
  CONVERGE_RETURN_IF_ERROR(fs_->RootIntact());
  // The folder's walk and the index's entries side by side: nothing is held per file but the
  // suspects.
  std::vector<std::string> suspects;
  absl::flat_hash_set<std::string> dirs;  // suspects that are (or were) directories
  auto suspect = [&](const std::string& path, bool dir) {
    suspects.push_back(path);
    if (dir) dirs.insert(path);
  };
  auto was_dir = [](const IndexEntry& e) { return e.version.kind == FileKind::kDirectory; };
  CONVERGE_RETURN_IF_ERROR(SideBySide(
      fs_, index_,
      [&](const IndexEntry& gone) {
        const bool never_here = gone.not_applied && !gone.local.exists;
        if (!never_here && !filter.Skipped(gone.version.path, was_dir(gone))) suspect(gone.version.path, was_dir(gone));
      },
      [&](const std::string& path, const LocalStat& st, const IndexEntry* e) {
        const bool is_dir = st.kind == FileKind::kDirectory;
        const bool counts = (!syncable_ || syncable_(path)) && !filter.Skipped(path, is_dir);
        if (e == nullptr || filter.Skipped(path, was_dir(*e))) {
          if (counts) suspect(path, is_dir);  // new (to the synced set, if its kind changed how it is ruled)
        } else if (!counts) {
          suspect(path, was_dir(*e));  // gone from it
        } else if (!UnchangedByStat(*e, st)) {
          suspect(path, was_dir(*e) || is_dir);
        }
      }));
  std::sort(suspects.begin(), suspects.end());
  std::vector<std::string> named;
  for (std::string& path : suspects) {
    bool below = false;
    for (absl::string_view p = ParentPath(path); !p.empty() && !below; p = ParentPath(p)) {
      below = dirs.contains(p);
    }
    if (!below) named.push_back(std::move(path));
  }
  return named;
}

const IgnoreRules& Scanner::IgnoreRulesNow() {
  absl::StatusOr<LocalStat> st = fs_->Stat(kIgnoreFileName);
  if (!st.ok() || !st->exists || st->kind != FileKind::kFile) {
    ignore_stat_ = LocalStat{};
    ignore_rules_ = IgnoreRules();
    return ignore_rules_;
  }
  if (st->Same(ignore_stat_)) return ignore_rules_;
  absl::StatusOr<std::unique_ptr<ReadableFile>> f = fs_->OpenRead(kIgnoreFileName);
  std::string text;
  if (!f.ok() || !(*f)->Read(0, kMaxIgnoreFileBytes, &text).ok()) return ignore_rules_;  // the next scan tries again
  if (st->size > kMaxIgnoreFileBytes) {
    Log()->warn("{} is over {} bytes: only its start is read", kIgnoreFileName, kMaxIgnoreFileBytes);
  }
  ignore_stat_ = *st;
  ignore_rules_ = IgnoreRules::Parse(text);
  return ignore_rules_;
}

// Comparison: what one scan walked against what the index knows, turned into the scan's
// changes. Ignored paths are neither uploaded nor taken as deleted: they drop out on both sides.
std::string Scanner::NewFileId() { return new_file_id_ ? new_file_id_() : RandomBytes(kFileIdBytes); }

absl::Status Scanner::ComparePart(Comparison* comparison, std::vector<std::pair<std::string, LocalStat>> walked,
                                  std::map<std::string, IndexEntry> known) {
  comparison->Part(std::move(walked), std::move(known));
  ScanResult* result = comparison->result();
  for (const auto& [path, st] : comparison->walked()) {
    CONVERGE_RETURN_IF_ERROR(comparison->Walked(path, st));
    if (change_sink_ && comparison->in_order() && result->changes.size() >= change_every_) {
      const size_t found = result->changes.size();
      CONVERGE_RETURN_IF_ERROR(change_sink_(&result->changes, result->scanned_at_ns));
      result->handed_over += found - result->changes.size();
    }
  }
  return absl::OkStatus();
}

}  // namespace converge::engine
