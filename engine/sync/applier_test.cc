#include <functional>
#include <sys/stat.h>
#include "engine/sync/applier.h"

#include <unistd.h>

#include <filesystem>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "engine/fs/local_filesystem.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/test_folder.h"

namespace converge::engine {
namespace {

using testing::MakeTestDir;
using testing::ReadFile;
using testing::WriteFile;

// Chunks from memory; `corrupt` makes it hand out wrong bytes (a hostile or broken store).
class MemoryChunks : public ChunkSource {
 public:
  void Add(const std::string& data) { chunks_[DigestToBytes(HashOf(data))] = data; }
  using ChunkSource::Fetch;
  absl::Status Fetch(const std::vector<ChunkWant>& wants, const BaseReader&, const Sink& sink) override {
    if (on_fetch) on_fetch();
    for (const ChunkWant& w : wants) {
      const Digest& d = w.sha256;
      if (fail_after >= 0 && fetched >= fail_after) return absl::UnavailableError("connection cut");
      ++fetched;
      if (!w.bases.empty()) {
        ++with_base;
        last_bases = w.bases;
      }
      auto it = chunks_.find(DigestToBytes(d));
      if (it == chunks_.end()) return absl::NotFoundError("no chunk");
      absl::Status s = sink(d, corrupt ? it->second + "!" : it->second);
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }
  bool corrupt = false;
  std::function<void()> on_fetch;  // runs as each Fetch starts
  int fetched = 0;
  int fail_after = -1;  // fail every fetch once this many chunks were handed out
  int with_base = 0;
  std::vector<Digest> last_bases;

 private:
  std::map<std::string, std::string> chunks_;
};

class ApplierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = MakeTestDir();
    auto fs = LocalFilesystem::Open(root_);
    ASSERT_TRUE(fs.ok());
    fs_ = std::move(*fs);
    auto index = LocalIndex::Open(MakeTestDir(".index"));
    ASSERT_TRUE(index.ok());
    index_ = std::move(*index);
    applier_ = std::make_unique<Applier>(fs_.get(), index_.get(), &chunks_, &clock_, "devB");
  }

  // A commit of one file version with content split in `chunk`-byte chunks.
  Commit FileCommit(uint64_t seq, const std::string& path, const std::string& content,
                    bool deleted = false, size_t chunk = 4) {
    FileVersion v;
    v.file_id = std::string(kFileIdBytes, 'f');
    v.path = path;
    v.seq = seq;
    v.mtime_ns = 1600000000000000000;
    v.deleted = deleted;
    if (!deleted) {
      v.size = content.size();
      for (size_t i = 0; i < content.size(); i += chunk) {
        const std::string piece = content.substr(i, chunk);
        chunks_.Add(piece);
        v.chunks.push_back({HashOf(piece), static_cast<uint32_t>(piece.size())});
      }
      v.content_sha256 = ContentDigest(v.chunks);
    }
    Commit c;
    c.namespace_id = "ns";
    c.seq = seq;
    c.files = {v};
    return c;
  }

  std::vector<std::string> Files() {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::recursive_directory_iterator(root_)) {
      const std::string rel = e.path().string().substr(root_.size() + 1);
      if (rel.rfind(".converge", 0) != 0) out.push_back(rel);
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  std::string root_;
  FakeClock clock_{absl::FromUnixSeconds(1800000000)};
  MemoryChunks chunks_;
  std::unique_ptr<LocalFilesystem> fs_;
  std::unique_ptr<LocalIndex> index_;
  std::unique_ptr<Applier> applier_;
};

TEST_F(ApplierTest, WritesNewFilesDurablyAndMovesTheCursor) {
  ASSERT_TRUE(applier_->ApplyCommit(FileCommit(1, "a/b/hello.txt", "hello world")).ok());
  EXPECT_EQ(ReadFile(root_ + "/a/b/hello.txt"), "hello world");
  EXPECT_EQ(index_->cursor(), 1u);
  auto entry = index_->Get("a/b/hello.txt");
  ASSERT_TRUE(entry.ok() && entry->has_value());
  EXPECT_EQ((*entry)->version.seq, 1u);
  EXPECT_TRUE((*entry)->local.exists);
  EXPECT_EQ((*entry)->local.mtime_ns, 1600000000000000000);  // the remote mtime is kept
  auto st = fs_->Stat("a/b/hello.txt");
  ASSERT_TRUE(st.ok());
  EXPECT_TRUE(st->Same((*entry)->local));
}

TEST_F(ApplierTest, ASealedVersionIsNeverApplied) {
  // A store shows a plain namespace's device a version still sealed (its path is no path here).
  Commit commit = FileCommit(1, "abcdef/ghij", "sealed bytes");
  commit.files[0].sealed_record = "sealed";
  const absl::Status s = applier_->ApplyCommit(commit);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_FALSE(std::filesystem::exists(root_ + "/abcdef"));
  EXPECT_EQ(index_->cursor(), 0u);
}

TEST_F(ApplierTest, ReusesLocalChunksOfThePreviousVersion) {
  // Above the batching threshold, so the file is assembled on its own with chunk reuse.
  const size_t k = 512 << 10;
  const std::string a(k, 'a'), b(k, 'b'), c(k, 'c'), x(k, 'x');
  ASSERT_TRUE(applier_->ApplyCommit(FileCommit(1, "f", a + b + c, false, k)).ok());
  chunks_.fetched = 0;
  ASSERT_TRUE(applier_->ApplyCommit(FileCommit(2, "f", a + x + c, false, k)).ok());
  EXPECT_EQ(ReadFile(root_ + "/f"), a + x + c);
  EXPECT_EQ(chunks_.fetched, 1);  // only the changed chunk crossed the wire
  EXPECT_EQ(chunks_.with_base, 1);  // offered with the old chunk at its offset as a delta base
  EXPECT_EQ(chunks_.last_bases, std::vector<Digest>{HashOf(b)});
  EXPECT_EQ(applier_->stats().bytes_reused, 2 * k);
}

TEST_F(ApplierTest, InterruptedLargeDownloadResumesWithoutRefetching) {
  std::string content;
  for (int i = 0; i < 20; ++i) content += std::string(1 << 20, static_cast<char>('A' + i));
  const Commit commit = FileCommit(1, "big.bin", content, false, 1 << 20);
  chunks_.fail_after = 17;  // the connection drops after 17 of the 20 chunks
  EXPECT_EQ(applier_->ApplyCommit(commit).code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(std::filesystem::exists(root_ + "/big.bin"));  // nothing half-written in place
  EXPECT_EQ(index_->cursor(), 0u);
  chunks_.fail_after = -1;
  chunks_.fetched = 0;
  ASSERT_TRUE(applier_->ApplyCommit(commit).ok());
  EXPECT_EQ(ReadFile(root_ + "/big.bin"), content);
  EXPECT_EQ(chunks_.fetched, 3);  // the 17 chunks that arrived were kept, verified
  EXPECT_EQ(applier_->stats().bytes_resumed, 17u << 20);
  EXPECT_EQ(index_->cursor(), 1u);
}

TEST_F(ApplierTest, CorruptPartialFileIsNotTrusted) {
  std::string content;
  for (int i = 0; i < 10; ++i) content += std::string(1 << 20, static_cast<char>('a' + i));
  const Commit commit = FileCommit(1, "big.bin", content, false, 1 << 20);
  // A partial file from an earlier attempt, damaged in its third chunk.
  std::string damaged = content.substr(0, 4 << 20);
  damaged[(2 << 20) + 5] ^= 1;
  WriteFile(root_ + "/.converge/tmp/partial-" + DigestToHex(commit.files[0].content_sha256), damaged);
  chunks_.fetched = 0;
  ASSERT_TRUE(applier_->ApplyCommit(commit).ok());
  EXPECT_EQ(ReadFile(root_ + "/big.bin"), content);
  EXPECT_EQ(chunks_.fetched, 8);  // only the first two chunks were good
}

TEST_F(ApplierTest, ChunksFromOtherFilesOfTheFolderAreNotFetched) {
  const size_t k = 512 << 10;
  const std::string a(k, 'a'), b(k, 'b'), c(k, 'c');
  ASSERT_TRUE(applier_->ApplyCommit(FileCommit(1, "original.bin", a + b + c, false, k)).ok());
  ASSERT_TRUE(applier_->ApplyCommit(FileCommit(2, "small.txt", "tiny", false, k)).ok());
  chunks_.fetched = 0;
  // A copy elsewhere (large path), and a small file with content the folder has.
  ASSERT_TRUE(applier_->ApplyCommit(FileCommit(3, "dir/copy.bin", c + a + b, false, k)).ok());
  ASSERT_TRUE(applier_->ApplyCommit(FileCommit(4, "again.txt", "tiny", false, k)).ok());
  EXPECT_EQ(ReadFile(root_ + "/dir/copy.bin"), c + a + b);
  EXPECT_EQ(ReadFile(root_ + "/again.txt"), "tiny");
  EXPECT_EQ(chunks_.fetched, 0);
  // Files that changed locally since they were synced are not trusted for their old chunks.
  WriteFile(root_ + "/original.bin", "rewritten locally");
  WriteFile(root_ + "/dir/copy.bin", "rewritten too");
  chunks_.fetched = 0;
  ASSERT_TRUE(applier_->ApplyCommit(FileCommit(5, "third.bin", b + b + a, false, k)).ok());
  EXPECT_EQ(ReadFile(root_ + "/third.bin"), b + b + a);
  EXPECT_EQ(chunks_.fetched, 2);  // b and a, from the store
}

TEST_F(ApplierTest, EditedSmallFilesOfferTheirOldContentAsBase) {
  ASSERT_TRUE(applier_->ApplyCommit(FileCommit(1, "notes.txt", "version one", false, 1 << 20)).ok());
  chunks_.with_base = 0;
  ASSERT_TRUE(applier_->ApplyCommit(FileCommit(2, "notes.txt", "version two", false, 1 << 20)).ok());
  EXPECT_EQ(ReadFile(root_ + "/notes.txt"), "version two");
  EXPECT_EQ(chunks_.with_base, 1);
  EXPECT_EQ(chunks_.last_bases, std::vector<Digest>{HashOf("version one")});
  // A file new to this device has nothing to offer.
  chunks_.with_base = 0;
  ASSERT_TRUE(applier_->ApplyCommit(FileCommit(3, "other.txt", "fresh")).ok());
  EXPECT_EQ(chunks_.with_base, 0);
  // A small edited file of several chunks reuses what it has and offers bases for the rest.
  ASSERT_TRUE(applier_->ApplyCommit(FileCommit(4, "small.txt", "aaaabbbbcccc")).ok());
  chunks_.fetched = 0;
  chunks_.with_base = 0;
  ASSERT_TRUE(applier_->ApplyCommit(FileCommit(5, "small.txt", "aaaaXbbbcccc")).ok());
  EXPECT_EQ(ReadFile(root_ + "/small.txt"), "aaaaXbbbcccc");
  EXPECT_EQ(chunks_.fetched, 1);
  EXPECT_EQ(chunks_.with_base, 1);
  EXPECT_EQ(chunks_.last_bases, std::vector<Digest>{HashOf("bbbb")});
}

TEST_F(ApplierTest, ManySmallFilesInOneCommitAreWrittenAsABatch) {
  Commit c;
  c.namespace_id = "ns";
  c.seq = 1;
  for (int i = 0; i < 2500; ++i) {  // more than one batch
    Commit one = FileCommit(1, "d" + std::to_string(i % 7) + "/f" + std::to_string(i), "content " + std::to_string(i));
    c.files.push_back(one.files[0]);
  }
  WriteFile(root_ + "/d3/f3", "a local file that differs");  // untracked: kept as a conflict copy
  chunks_.fetched = 0;
  ASSERT_TRUE(applier_->ApplyCommit(c).ok());
  EXPECT_EQ(index_->cursor(), 1u);
  EXPECT_EQ(applier_->stats().files_written, 2500u);
  EXPECT_EQ(applier_->stats().conflicts, 1u);
  EXPECT_EQ(ReadFile(root_ + "/d0/f2499"), "content 2499");  // 2499 % 7 == 0
  EXPECT_EQ(ReadFile(root_ + "/d3/f3"), "content 3");
  int live = 0;
  ASSERT_TRUE(index_->ForEachLive([&](const IndexEntry&) { ++live; }).ok());
  EXPECT_EQ(live, 2500);
  EXPECT_TRUE(std::filesystem::is_empty(root_ + "/.converge/tmp"));
}

TEST_F(ApplierTest, AFileMadeHereWhileANewOneIsFetchedIsKeptBeside) {
  Commit c;
  c.namespace_id = "ns";
  c.seq = 1;
  for (int i = 0; i < 3; ++i) {
    c.files.push_back(FileCommit(1, "d/f" + std::to_string(i), "remote " + std::to_string(i)).files[0]);
  }
  std::filesystem::create_directories(root_ + "/d");
  // Nothing is at d/f1 when the batch is planned; the user makes it before it is placed.
  chunks_.on_fetch = [&] {
    chunks_.on_fetch = nullptr;
    WriteFile(root_ + "/d/f1", "made here meanwhile");
  };
  ASSERT_TRUE(applier_->ApplyCommit(c).ok());
  EXPECT_EQ(ReadFile(root_ + "/d/f1"), "remote 1");
  std::vector<std::string> copies;
  for (const std::string& f : Files()) {
    if (absl::StartsWith(f, "d/f1 (conflict devB")) copies.push_back(f);
  }
  ASSERT_EQ(copies.size(), 1u);
  EXPECT_EQ(ReadFile(root_ + "/" + copies[0]), "made here meanwhile");
  EXPECT_EQ(ReadFile(root_ + "/d/f0"), "remote 0");
  EXPECT_EQ(applier_->stats().conflicts, 1u);
}

TEST_F(ApplierTest, AnEditWhileTheNewVersionIsBuiltIsNeverMixedIntoIt) {
  // 300 chunks of 1 KiB: two fetch windows; the second window's chunks are read from the local
  // copy after the first window's changed chunk was fetched.
  std::string v1;
  for (int i = 0; i < 300; ++i) v1 += std::string(1024, static_cast<char>('A' + i % 50)) + std::to_string(i % 10);
  v1.resize(300 * 1024);
  ASSERT_TRUE(applier_->ApplyCommit(FileCommit(1, "f", v1, false, 1024)).ok());
  std::string v2 = v1;
  v2.replace(10 * 1024, 1024, std::string(1024, '#'));
  const std::string edit(v1.size(), 'e');  // the user rewrites the file while it is rebuilt
  chunks_.on_fetch = [&] {
    chunks_.on_fetch = nullptr;
    WriteFile(root_ + "/f", edit);
  };
  absl::Status first = applier_->ApplyCommit(FileCommit(2, "f", v2, false, 1024));
  EXPECT_TRUE(absl::IsAborted(first)) << first;
  EXPECT_TRUE(ReadFile(root_ + "/f") == edit);  // nothing installed over the edit
  EXPECT_EQ(index_->cursor(), 1u);
  // Tried again: every chunk of the local copy is checked; the edit is kept as a copy.
  ASSERT_TRUE(applier_->ApplyCommit(FileCommit(2, "f", v2, false, 1024)).ok());
  EXPECT_TRUE(ReadFile(root_ + "/f") == v2);
  std::vector<std::string> files = Files();
  ASSERT_EQ(files.size(), 2u);
  EXPECT_TRUE(absl::StartsWith(files[1], "f (conflict devB")) << files[1];
  EXPECT_TRUE(ReadFile(root_ + "/" + files[1]) == edit);
}

TEST_F(ApplierTest, LocalEditIsKeptAsConflictCopy) {
  ASSERT_TRUE(applier_->ApplyCommit(FileCommit(1, "doc.txt", "base")).ok());
  WriteFile(root_ + "/doc.txt", "my local edit");
  ASSERT_TRUE(applier_->ApplyCommit(FileCommit(2, "doc.txt", "their edit")).ok());
  EXPECT_EQ(ReadFile(root_ + "/doc.txt"), "their edit");
  std::vector<std::string> files = Files();
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0], "doc (conflict devB 20270115T080000Z).txt");
  EXPECT_EQ(ReadFile(root_ + "/" + files[0]), "my local edit");
  EXPECT_EQ(applier_->stats().conflicts, 1u);
}

TEST_F(ApplierTest, RemoteDeleteRemovesUnchangedButKeepsEditedFiles) {
  ASSERT_TRUE(applier_->ApplyCommit(FileCommit(1, "gone.txt", "bye")).ok());
  ASSERT_TRUE(applier_->ApplyCommit(FileCommit(2, "kept.txt", "v1")).ok());
  WriteFile(root_ + "/kept.txt", "edited here");
  ASSERT_TRUE(applier_->ApplyCommit(FileCommit(3, "gone.txt", "", true)).ok());
  ASSERT_TRUE(applier_->ApplyCommit(FileCommit(4, "kept.txt", "", true)).ok());
  EXPECT_EQ(Files(), std::vector<std::string>{"kept.txt"});
  EXPECT_EQ(ReadFile(root_ + "/kept.txt"), "edited here");
  auto entry = index_->Get("kept.txt");
  ASSERT_TRUE(entry.ok() && entry->has_value());
  EXPECT_TRUE((*entry)->version.deleted);  // the scanner will re-add the edit on top of seq 4
  EXPECT_EQ((*entry)->version.seq, 4u);
}

// MoveCommit: `from` moved to `to` (same file_id, same content) as one commit.
Commit MoveCommit(const Commit& created, uint64_t seq, const std::string& to) {
  Commit c = created;
  c.seq = seq;
  FileVersion moved = created.files[0];
  moved.seq = seq;
  moved.path = to;
  FileVersion gone = created.files[0];
  gone.seq = seq;
  gone.deleted = true;
  gone.chunks.clear();
  gone.size = 0;
  c.files = {moved, gone};
  return c;
}

TEST_F(ApplierTest, AMoveRenamesTheLocalFileInPlaceAndFetchesNothing) {
  const Commit created = FileCommit(1, "a/report.txt", "quarterly numbers");
  ASSERT_TRUE(applier_->ApplyCommit(created).ok());
  struct stat before;
  ASSERT_EQ(stat((root_ + "/a/report.txt").c_str(), &before), 0);
  const int fetched = chunks_.fetched;
  ASSERT_TRUE(applier_->ApplyCommit(MoveCommit(created, 2, "b/c/report.txt")).ok());
  struct stat after;
  ASSERT_EQ(stat((root_ + "/b/c/report.txt").c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino);  // the same file, renamed
  EXPECT_EQ(chunks_.fetched, fetched);
  EXPECT_EQ(applier_->stats().moved, 1u);
  EXPECT_FALSE(std::filesystem::exists(root_ + "/a/report.txt"));
  auto entry = index_->Get("b/c/report.txt");
  ASSERT_TRUE(entry.ok() && entry->has_value());
  EXPECT_EQ((*entry)->version.seq, 2u);
  EXPECT_EQ((*entry)->local.inode, after.st_ino);
  auto old = index_->Get("a/report.txt");
  ASSERT_TRUE(old.ok() && old->has_value());
  EXPECT_TRUE((*old)->version.deleted);
}

TEST_F(ApplierTest, ALocalEditTravelsWithTheMoveAndIsNotOverwritten) {
  const Commit created = FileCommit(1, "notes.txt", "draft");
  ASSERT_TRUE(applier_->ApplyCommit(created).ok());
  WriteFile(root_ + "/notes.txt", "draft, edited here");
  ASSERT_TRUE(applier_->ApplyCommit(MoveCommit(created, 2, "docs/notes.txt")).ok());
  EXPECT_EQ(Files(), (std::vector<std::string>{"docs", "docs/notes.txt"}));
  EXPECT_EQ(ReadFile(root_ + "/docs/notes.txt"), "draft, edited here");
  // The index keeps the synced stat: the scanner sees the edit and uploads it at the new path.
  auto entry = index_->Get("docs/notes.txt");
  ASSERT_TRUE(entry.ok() && entry->has_value());
  auto now = fs_->Stat("docs/notes.txt");
  ASSERT_TRUE(now.ok());
  EXPECT_FALSE((*entry)->local.Same(*now));
  EXPECT_EQ((*entry)->version.seq, 2u);
}

TEST_F(ApplierTest, ALocalMoveTheStoreRefusedIsMadeAgainAfterTheRemoteChange) {
  const Commit created = FileCommit(1, "plan.txt", "v1");
  ASSERT_TRUE(applier_->ApplyCommit(created).ok());
  // Moved here (not yet committed) while another device edited it.
  std::filesystem::create_directories(root_ + "/mine");
  std::filesystem::rename(root_ + "/plan.txt", root_ + "/mine/plan.txt");
  applier_->set_local_moves({{"plan.txt", "mine/plan.txt"}});
  ASSERT_TRUE(applier_->ApplyCommit(FileCommit(2, "plan.txt", "v2 from elsewhere")).ok());
  // The edit was applied to the file, which is back where the user moved it (the next scan
  // commits the move on top of the edit).
  EXPECT_EQ(Files(), (std::vector<std::string>{"mine", "mine/plan.txt"}));
  EXPECT_EQ(ReadFile(root_ + "/mine/plan.txt"), "v2 from elsewhere");
}

TEST_F(ApplierTest, SymlinksAreMadeAsLinksAndAnEditedLinkIsKept) {
  FileVersion link;
  link.file_id = std::string(kFileIdBytes, 'l');
  link.path = "docs/latest";
  link.kind = FileKind::kSymlink;
  link.symlink_target = "../archive/2026.txt";
  link.content_sha256 = HashOf(link.symlink_target);
  link.seq = 1;
  Commit c;
  c.namespace_id = "ns";
  c.seq = 1;
  c.files = {link};
  ASSERT_TRUE(applier_->ApplyCommit(c).ok());
  EXPECT_EQ(std::filesystem::read_symlink(root_ + "/docs/latest").string(), "../archive/2026.txt");
  // Retargeted here and elsewhere at once: the local link is kept as a conflict copy.
  std::filesystem::remove(root_ + "/docs/latest");
  std::filesystem::create_symlink("mine", root_ + "/docs/latest");
  c.seq = 2;
  c.files[0].seq = 2;
  c.files[0].symlink_target = "theirs";
  c.files[0].content_sha256 = HashOf("theirs");
  ASSERT_TRUE(applier_->ApplyCommit(c).ok());
  EXPECT_EQ(std::filesystem::read_symlink(root_ + "/docs/latest").string(), "theirs");
  std::vector<std::string> files = Files();
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files[2].rfind("docs/latest (conflict devB ", 0), 0u) << files[2];
  EXPECT_EQ(std::filesystem::read_symlink(root_ + "/" + files[2]).string(), "mine") << files[2];
}

TEST_F(ApplierTest, BadBytesFromTheStoreNeverReachTheFolder) {
  ASSERT_TRUE(applier_->ApplyCommit(FileCommit(1, "f.txt", "good data")).ok());
  chunks_.corrupt = true;
  absl::Status s = applier_->ApplyCommit(FileCommit(2, "f.txt", "new data!!"));
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_EQ(ReadFile(root_ + "/f.txt"), "good data");
  EXPECT_EQ(index_->cursor(), 1u);  // the commit is retried later
  EXPECT_TRUE(std::filesystem::is_empty(root_ + "/.converge/tmp"));
}

TEST_F(ApplierTest, ARemotePathThroughALocalSymlinkIsBlockedAndTheRestApplies) {
  const std::string outside = MakeTestDir(".outside");
  ASSERT_EQ(symlink(outside.c_str(), (root_ + "/link").c_str()), 0);
  Commit c = FileCommit(1, "link/planted.txt", "evil");
  c.files.push_back(FileCommit(1, "fine.txt", "fine").files[0]);
  c.files.back().file_id = std::string(kFileIdBytes, 'g');
  ASSERT_TRUE(applier_->ApplyCommit(c).ok());
  EXPECT_FALSE(std::filesystem::exists(outside + "/planted.txt"));
  EXPECT_EQ(ReadFile(root_ + "/fine.txt"), "fine");
  EXPECT_EQ(index_->cursor(), 1u);  // the commit does not hold later ones back
  auto blocked = applier_->Blocked();
  ASSERT_TRUE(blocked.ok());
  ASSERT_EQ(blocked->size(), 1u);
  EXPECT_EQ((*blocked)[0].rfind("link/planted.txt: ", 0), 0u) << (*blocked)[0];

  // Kept across a restart, tried again every round: once the obstruction is gone, it applies.
  applier_ = std::make_unique<Applier>(fs_.get(), index_.get(), &chunks_, &clock_, "devB");
  ASSERT_TRUE(applier_->RetryBlocked().ok());
  EXPECT_EQ(applier_->Blocked()->size(), 1u) << absl::StrJoin(*applier_->Blocked(), " | ");
  EXPECT_FALSE(std::filesystem::exists(outside + "/planted.txt"));
  ASSERT_EQ(unlink((root_ + "/link").c_str()), 0);
  ASSERT_TRUE(applier_->RetryBlocked().ok());
  EXPECT_TRUE(applier_->Blocked()->empty());
  EXPECT_EQ(ReadFile(root_ + "/link/planted.txt"), "evil");
  EXPECT_EQ(index_->cursor(), 1u);
  EXPECT_FALSE(std::filesystem::exists(outside + "/planted.txt"));
}

TEST_F(ApplierTest, ABlockedVersionALaterOneReplacedIsDropped) {
  ASSERT_EQ(symlink("/etc", (root_ + "/link").c_str()), 0);
  ASSERT_TRUE(applier_->ApplyCommit(FileCommit(1, "link/a.txt", "one")).ok());
  EXPECT_EQ(applier_->Blocked()->size(), 1u);
  ASSERT_EQ(unlink((root_ + "/link").c_str()), 0);
  ASSERT_TRUE(applier_->ApplyCommit(FileCommit(2, "link/a.txt", "two")).ok());  // applies now
  EXPECT_TRUE(applier_->Blocked()->empty());
  ASSERT_TRUE(applier_->RetryBlocked().ok());
  EXPECT_EQ(ReadFile(root_ + "/link/a.txt"), "two");
}

TEST_F(ApplierTest, PassingFailuresStillFailTheCommit) {
  chunks_.corrupt = true;  // the store sends bad bytes: retried later, never blocked
  EXPECT_EQ(applier_->ApplyCommit(FileCommit(1, "f.txt", "data")).code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(applier_->Blocked()->empty());
  EXPECT_EQ(index_->cursor(), 0u);
}

TEST_F(ApplierTest, AConflictCopyCarriesTheDeviceName) {
  applier_->set_device_name("Anna's laptop");
  ASSERT_TRUE(applier_->ApplyCommit(FileCommit(1, "a/b/report.final.pdf", "base")).ok());
  WriteFile(root_ + "/a/b/report.final.pdf", "my local edit");
  ASSERT_TRUE(applier_->ApplyCommit(FileCommit(2, "a/b/report.final.pdf", "their edit")).ok());
  EXPECT_EQ(ReadFile(root_ + "/a/b/report.final (conflict Anna-s-laptop devB 20270115T080000Z).pdf"), "my local edit");
}

}  // namespace
}  // namespace converge::engine
