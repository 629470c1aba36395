// Scanner: walks the folder, compares it with the index and returns the local changes to commit.
// Never touches the store. A file whose stat matches the index (and is old enough that a same-
// size rewrite within the clock's granularity could not hide) is not read again.
//
// Thread-compatible.
#ifndef CONVERGE_ENGINE_SYNC_SCANNER_H_
#define CONVERGE_ENGINE_SYNC_SCANNER_H_

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/base/clock.h"
#include "common/model/ignore.h"
#include "engine/sync/selection.h"
#include "engine/fs/filesystem.h"
#include "engine/sync/chunker.h"
#include "engine/sync/local_index.h"

namespace converge::engine {

// A local change ready to commit: `version` carries base_seq and file_id; `local` is the stat
// the version was read from.
struct LocalChange {
  FileVersion version;
  LocalStat local;
  // A move: on a live version, the path it was moved from (it keeps that entry's file_id, and
  // the tombstone of that path follows it at once, with `moved` set: the two travel in one
  // commit, so other devices rename in place).
  std::string moved_from;
  bool moved = false;
};

struct ScanResult {
  // Creations and edits in walk order (each move followed by its source's tombstone), then
  // deletions deepest first.
  std::vector<LocalChange> changes;
  uint64_t moves = 0;                 // files and directories found moved (not re-read)
  std::vector<IndexEntry> refreshed;  // unchanged content, new stat: index only
  uint64_t files_hashed = 0;
  uint64_t entries_seen = 0;
  uint64_t ignored = 0;  // entries left alone by the folder's .convergeignore
  int64_t scanned_at_ns = 0;
  uint64_t handed_over = 0;  // changes a ChangeSink took while the scan went on (not in `changes`)
  bool whole_folder = false;  // ScanPaths: too many to look at alone, the whole folder was scanned
};

// A scan compares what differs in parts of this many walked entries (holding no more at once);
// the paths a targeted scan would look at past it are scanned with the whole folder instead.
inline constexpr size_t kScanPart = 16384;

// Stats whose mtime is this close to when they were recorded are re-read.
inline constexpr absl::Duration kRacyWindow = absl::Milliseconds(50);

// Trusted reports whether `entry.local` can stand for the file's content without reading it.
bool Trusted(const IndexEntry& entry);

// RenamedFrom reports whether the file with stat `st` is the synced file of `entry` under another
// name, unchanged: same inode, size, mtime and permission bits, and a trusted recorded stat (a
// rename keeps all of them; the content need not be read again).
bool RenamedFrom(const IndexEntry& entry, const LocalStat& st);

// ScanFilter: what scans leave out, neither uploaded nor taken as deleted: the folder's ignore
// rules (every device's) and this device's selection (the subtrees it keeps out).
struct ScanFilter {
  IgnoreRules rules;
  Selection selection;
  bool Skipped(absl::string_view path, bool is_dir) const {
    return rules.Ignored(path, is_dir) || selection.Excluded(path);
  }
};

class Scanner {
 public:
  Scanner(Filesystem* fs, LocalIndex* index, Clock* clock, ChunkParams params)
      : fs_(fs), index_(index), clock_(clock), params_(params) {}

  // Scan returns FailedPrecondition if the folder root is missing or replaced (never reported
  // as deletions), and the walk's error if part of the tree could not be read.
  absl::StatusOr<ScanResult> Scan();

  // ScanPaths looks only at `paths` (as a watcher reported them) and, where one is a directory,
  // at everything below it: what is there is compared with the index, known entries that are
  // gone become deletions. Paths no other device could take are ignored.
  absl::StatusOr<ScanResult> ScanPaths(const std::vector<std::string>& paths);

  // Suspects: what a full scan would look at closer, told by stat alone (no file is read): the
  // paths that are new, gone, of another kind, or a file or symlink whose stat is not the
  // index's trusted one. Below a suspect directory only the directory is named (a targeted scan
  // of it looks at everything it holds). It walks the folder and reads the index side by side,
  // both in path order, holding nothing per file but the suspects. It only reads, so the
  // engine runs it on a thread of its own while it goes on syncing (the verifying scan beside
  // the rounds): a path that changes meanwhile is at worst named needlessly, and ScanPaths judges
  // each one. `filter` is what scans leave out (filter(), taken on the engine's thread).
  absl::StatusOr<std::vector<std::string>> Suspects(const ScanFilter& filter) const;
  // filter: the rules of the folder's .convergeignore now and the selection (a copy).
  ScanFilter filter() { return ScanFilter{IgnoreRulesNow(), selection_}; }
  // set_selection: the subtrees this device keeps out, from the next scan on.
  void set_selection(Selection selection) { selection_ = std::move(selection); }

  // set_file_ids replaces the random new file ids (kFileIdBytes each) with `next` (a simulation
  // that must replay exactly).
  void set_file_ids(std::function<std::string()> next) { new_file_id_ = std::move(next); }
  // set_sync_xattrs: versions of files carry their "user." extended attributes (the namespace
  // syncs them), and a change of them alone is a change.
  void set_sync_xattrs(bool on) { sync_xattrs_ = on; }
  // set_gear: the chunker's table from now on (between scans).
  void set_gear(std::shared_ptr<const GearTable> gear) { params_.gear = std::move(gear); }
  // set_syncable: paths for which `syncable` says no are left out of scans, like names no other
  // device could take (an encrypted namespace's store holds shorter names than a plain one's).
  void set_syncable(std::function<bool(const std::string&)> syncable) { syncable_ = std::move(syncable); }

  // ChunkSink sees every chunk of every file the scan reads, with its bytes, as it is hashed
  // (the engine uploads what the store lacks from there: files are read once). For a large
  // file it runs on the chunker's hashing thread while the scan waits for that file.
  using ChunkSink =
      std::function<void(const std::string& path, const ChunkRef& ref, uint64_t offset, absl::string_view bytes)>;
  void set_chunk_sink(ChunkSink sink) { chunk_sink_ = std::move(sink); }

  // ChangeSink takes the changes a scan has found so far, while it goes on, once there are
  // `every` of them, as long as each is a new or edited entry of the same kind as before (in
  // walk order: a new directory before what it holds). After a move or a change of kind, the
  // rest stays in the result (ordered with the deletions there). What the sink takes (moves out
  // of the vector) is no longer the scan's; its error ends the scan. A large first copy is thus
  // committed batch by batch as it is read, and other devices start on it before it is all read.
  using ChangeSink = std::function<absl::Status(std::vector<LocalChange>* changes, int64_t scanned_at_ns)>;
  void set_change_sink(size_t every, ChangeSink sink) {
    change_every_ = every;
    change_sink_ = std::move(sink);
  }

 private:
  // IgnoreRulesNow returns the rules of the folder's .convergeignore (none: nothing ignored),
  // read again only when the file changed.
  const IgnoreRules& IgnoreRulesNow();
  class Comparison;
  std::string NewFileId();
  // ComparePart turns a part of what is on disk (`walked`, parents before children, after the
  // parts before) and what the index knows of the same part of the tree (`known`, live entries)
  // into changes; the comparison's Deletions, after the last part, the deletions.
  absl::Status ComparePart(Comparison* comparison, std::vector<std::pair<std::string, LocalStat>> walked,
                           std::map<std::string, IndexEntry> known);

  Filesystem* const fs_;
  LocalIndex* const index_;
  Clock* const clock_;
  ChunkParams params_;  // its gear changes by set_gear only
  std::function<std::string()> new_file_id_;
  ChunkSink chunk_sink_;
  size_t change_every_ = 0;
  ChangeSink change_sink_;
  bool sync_xattrs_ = false;
  std::function<bool(const std::string&)> syncable_;
  LocalStat ignore_stat_;  // of the .convergeignore ignore_rules_ were read from
  IgnoreRules ignore_rules_;
  Selection selection_;
};

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_SYNC_SCANNER_H_
