#include "engine/scanner.h"

#include <algorithm>
#include <map>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "common/logging.h"
#include "common/path.h"
#include "common/random_id.h"
#include "common/status_macros.h"
#include "engine/chunker.h"

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

bool RenamedFrom(const IndexEntry& e, const LocalStat& st) {
  return !e.version.deleted && e.version.kind == FileKind::kFile && st.kind == FileKind::kFile && st.inode != 0 &&
         e.local.inode == st.inode && e.local.size == st.size && e.local.mtime_ns == st.mtime_ns && Trusted(e) &&
         (st.mode & 0777) == (e.version.mode & 0777);
}

absl::StatusOr<ScanResult> Scanner::Scan() {
  CONVERGE_RETURN_IF_ERROR(fs_->RootIntact());
  ScanResult result;
  result.scanned_at_ns = absl::ToUnixNanos(clock_->Now());

  std::map<std::string, IndexEntry> known;  // live entries only
  CONVERGE_RETURN_IF_ERROR(index_->ForEachLive([&](const IndexEntry& e) { known.emplace(e.version.path, e); }));

  std::vector<std::pair<std::string, LocalStat>> walked;
  CONVERGE_RETURN_IF_ERROR(fs_->Walk([&](const std::string& path, const LocalStat& st) {
    walked.emplace_back(path, st);
  }));
  CONVERGE_RETURN_IF_ERROR(Compare(walked, known, &result));
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
  std::vector<std::string> sorted(paths.begin(), paths.end());
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  for (const std::string& path : sorted) {
    if (!ValidateRelativePath(path).ok()) continue;
    CONVERGE_ASSIGN_OR_RETURN(std::optional<IndexEntry> entry, index_->Get(path));
    if (entry.has_value() && !entry->version.deleted) known.emplace(path, *entry);
    CONVERGE_ASSIGN_OR_RETURN(LocalStat st, fs_->Stat(path));
    // Only a directory (known or on disk) has a subtree to compare.
    const bool known_dir = entry.has_value() && !entry->version.deleted && entry->version.kind == FileKind::kDirectory;
    if (known_dir || (st.exists && st.kind == FileKind::kDirectory)) {
      CONVERGE_RETURN_IF_ERROR(index_->ForEachLiveUnder(path, [&](const IndexEntry& e) {
        known.emplace(e.version.path, e);
      }));
    }
    if (!st.exists || st.special) continue;
    // A new entry's parent must exist on the other devices first: include parents the index
    // does not know yet (a watcher may report a file before its new directory).
    for (std::string parent(ParentPath(path)); !parent.empty(); parent = std::string(ParentPath(parent))) {
      if (on_disk.count(parent) > 0) break;
      CONVERGE_ASSIGN_OR_RETURN(std::optional<IndexEntry> p, index_->Get(parent));
      if (p.has_value() && !p->version.deleted) break;
      CONVERGE_ASSIGN_OR_RETURN(LocalStat pst, fs_->Stat(parent));
      if (!pst.exists || pst.kind != FileKind::kDirectory) break;
      on_disk.emplace(parent, pst);
    }
    on_disk[path] = st;
    if (st.kind != FileKind::kDirectory) continue;
    absl::Status walked = fs_->Walk(path, [&](const std::string& p, const LocalStat& s) { on_disk[p] = s; });
    if (!walked.ok() && !absl::IsNotFound(walked)) return walked;
  }
  std::vector<std::pair<std::string, LocalStat>> walked(on_disk.begin(), on_disk.end());
  CONVERGE_RETURN_IF_ERROR(Compare(walked, known, &result));
  return result;
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

absl::Status Scanner::Compare(const std::vector<std::pair<std::string, LocalStat>>& all_walked,
                              const std::map<std::string, IndexEntry>& all_known, ScanResult* out) {
  ScanResult& result = *out;
  // Ignored paths are neither uploaded nor taken as deleted: they drop out on both sides.
  const IgnoreRules& rules = IgnoreRulesNow();
  std::vector<std::pair<std::string, LocalStat>> walked;
  walked.reserve(all_walked.size());
  for (const auto& w : all_walked) {
    if (rules.Ignored(w.first, w.second.kind == FileKind::kDirectory)) {
      ++result.ignored;
    } else {
      walked.push_back(w);
    }
  }
  std::map<std::string, IndexEntry> known;
  for (const auto& [path, e] : all_known) {
    if (!rules.Ignored(path, e.version.kind == FileKind::kDirectory)) known.emplace(path, e);
  }
  result.entries_seen = walked.size();
  absl::flat_hash_set<std::string> seen;
  for (const auto& w : walked) seen.insert(w.first);

  // Moves: a known file that is gone from its path, found again at a new path by its inode with
  // the same size and mtime (a rename: not read again), or by its content (a rename that also
  // touched it, a copy then a delete). It keeps its file_id. (Directories are not matched: an
  // inode number is reused once freed, and their files are matched one by one anyway.)
  absl::flat_hash_map<uint64_t, const IndexEntry*> gone_by_inode;
  absl::flat_hash_map<std::string, const IndexEntry*> gone_by_content;
  for (const auto& [path, e] : known) {
    if (seen.contains(path) || e.version.kind != FileKind::kFile) continue;
    if (e.local.exists && e.local.inode != 0) gone_by_inode.emplace(e.local.inode, &e);
    if (e.version.size > 0) gone_by_content.emplace(DigestToBytes(e.version.content_sha256), &e);
  }
  absl::flat_hash_set<std::string> moved_away;  // paths whose tombstone follows their move
  auto claim = [&](const IndexEntry* source) -> const IndexEntry* {
    if (source == nullptr || !moved_away.insert(source->version.path).second) return nullptr;
    return source;
  };

  for (const auto& [path, st] : walked) {
    auto it = known.find(path);
    const IndexEntry* entry = it == known.end() ? nullptr : &it->second;
    std::optional<IndexEntry> tombstone;  // a new path may re-create a deleted one
    if (entry == nullptr) {
      CONVERGE_ASSIGN_OR_RETURN(tombstone, index_->Get(path));
      if (tombstone.has_value()) entry = &*tombstone;
    }
    const bool live = entry != nullptr && !entry->version.deleted;
    if (live && entry->version.kind == st.kind) {
      if (st.kind == FileKind::kDirectory) continue;
      if (entry->local.Same(st) && Trusted(*entry)) continue;
    }

    FileVersion v;
    v.path = path;
    v.kind = st.kind;
    v.mode = st.mode & 0777;
    v.mtime_ns = st.mtime_ns;
    v.base_seq = entry == nullptr ? 0 : entry->version.seq;
    const IndexEntry* source = nullptr;  // the known file this one was moved from
    std::optional<IndexEntry> elsewhere;  // a source outside this scan's part of the tree
    if (!live && st.kind == FileKind::kFile && st.inode != 0) {
      auto by_inode = gone_by_inode.find(st.inode);
      if (by_inode != gone_by_inode.end() && RenamedFrom(*by_inode->second, st)) {
        source = claim(by_inode->second);
      } else if (by_inode == gone_by_inode.end()) {
        // Its old name may not be among the paths this scan looks at (the watcher reported the
        // two ends of a move in separate batches): ask the index where this inode was synced.
        CONVERGE_ASSIGN_OR_RETURN(std::optional<std::string> was, index_->FindInode(st.inode));
        if (was.has_value() && *was != path && !seen.contains(*was) && !moved_away.contains(*was)) {
          CONVERGE_ASSIGN_OR_RETURN(elsewhere, index_->Get(*was));
          CONVERGE_ASSIGN_OR_RETURN(LocalStat there, fs_->Stat(*was));
          if (elsewhere.has_value() && RenamedFrom(*elsewhere, st) && (!there.exists || there.inode != st.inode) &&
              !rules.Ignored(*was, false)) {
            source = claim(&*elsewhere);
          }
        }
      }
    }
    if (source != nullptr) {
      // Renamed, not rewritten (a rename keeps the inode and mtime): its content is known.
      v.file_id = source->version.file_id;
      v.size = source->version.size;
      v.content_sha256 = source->version.content_sha256;
      v.chunks = source->version.chunks;
      ++result.moves;
      result.changes.push_back(LocalChange{std::move(v), st, source->version.path});
      result.changes.push_back(MovedAway(*source));
      continue;
    }
    v.file_id = live && entry->version.kind == st.kind ? entry->version.file_id
                : new_file_id_                        ? new_file_id_()
                                                      : RandomBytes(kFileIdBytes);
    if (st.kind == FileKind::kSymlink) {
      absl::StatusOr<std::string> target = fs_->ReadLink(path);
      if (!target.ok() || target->empty()) continue;  // gone meanwhile: the next scan sees it
      if (live && entry->version.kind == FileKind::kSymlink && entry->version.symlink_target == *target) {
        result.refreshed.push_back(IndexEntry{entry->version, st, result.scanned_at_ns});
        continue;
      }
      v.symlink_target = std::move(*target);
      v.content_sha256 = HashOf(v.symlink_target);
      v.mode = 0777;
    }
    if (st.kind == FileKind::kFile) {
      absl::StatusOr<std::unique_ptr<ReadableFile>> file = fs_->OpenRead(path);
      if (!file.ok()) continue;  // vanished or unreadable: the next scan sees it again
      ChunkVisitor visit;
      if (chunk_sink_) {
        const std::string& file_path = path;  // (a structured binding cannot be captured)
        visit = [this, &file_path](const ChunkRef& ref, uint64_t offset, absl::string_view bytes) {
          chunk_sink_(file_path, ref, offset, bytes);
        };
      }
      absl::StatusOr<FileContent> content = ChunkFile(file->get(), params_, visit);
      ++result.files_hashed;
      if (!content.ok()) continue;
      // A file that changed while it was read is being written: take it on a later scan.
      absl::StatusOr<LocalStat> after = fs_->Stat(path);
      if (!after.ok() || !after->Same(st) || content->size != st.size) continue;
      // Same bytes and permission bits: only the stat changed (touched, or rewritten as is).
      if (live && entry->version.kind == FileKind::kFile &&
          content->sha256 == entry->version.content_sha256 && (st.mode & 0777) == (entry->version.mode & 0777)) {
        result.refreshed.push_back(IndexEntry{entry->version, st, result.scanned_at_ns});
        continue;
      }
      v.size = content->size;
      v.content_sha256 = content->sha256;
      v.chunks = std::move(content->chunks);
      if (source == nullptr && !live) {
        auto by_content = gone_by_content.find(DigestToBytes(v.content_sha256));
        if (by_content != gone_by_content.end()) {
          source = claim(by_content->second);
          if (source != nullptr) v.file_id = source->version.file_id;
        }
      }
    }
    if (source != nullptr) {
      ++result.moves;
      result.changes.push_back(LocalChange{std::move(v), st, source->version.path});
      result.changes.push_back(MovedAway(*source));
      continue;
    }
    result.changes.push_back(LocalChange{std::move(v), st});
  }

  // Deletions, children before their parents.
  for (auto it = known.rbegin(); it != known.rend(); ++it) {
    const IndexEntry& e = it->second;
    if (e.version.deleted || seen.contains(e.version.path) || moved_away.contains(e.version.path)) continue;
    FileVersion v;
    v.file_id = e.version.file_id;
    v.path = e.version.path;
    v.kind = e.version.kind;
    v.deleted = true;
    v.base_seq = e.version.seq;
    result.changes.push_back(LocalChange{std::move(v), LocalStat{}});
  }
  return absl::OkStatus();
}

}  // namespace converge::engine
