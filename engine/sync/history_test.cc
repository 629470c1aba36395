#include "engine/sync/history.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/sim_store.h"

namespace converge::engine {
namespace {

// Over the store's real logic (in process): what a device commits, then restores.
class HistoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    clock_.Advance(absl::Hours(24 * 365 * 50));
    auto store = sim::SimStore::Create(&clock_, {"dev1"});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    client_ = std::make_unique<sim::SimStoreClient>(store_.get(), "dev1");
    history_ = std::make_unique<FolderHistory>(client_.get(), [this] {
      std::string id = absl::StrCat("dir-id-", ++ids_);
      id.resize(kFileIdBytes, '.');
      return id;
    });
  }

  // Commit puts `path` with `content` (or a directory, or deletes it) on top of what the store has.
  uint64_t Put(const std::string& path, std::optional<std::string> content, FileKind kind = FileKind::kFile) {
    std::optional<FileVersion> now = Current(path);
    FileVersion v;
    v.file_id = now.has_value() && !now->deleted ? now->file_id : absl::StrCat("file-id-", ++ids_, ".....");
    v.file_id.resize(kFileIdBytes, '.');
    v.path = path;
    v.kind = kind;
    v.base_seq = now.has_value() ? now->seq : 0;
    if (!content.has_value()) {
      v.deleted = true;
      if (now.has_value()) v.kind = now->kind;
    } else if (kind == FileKind::kFile) {
      v.size = content->size();
      v.content_sha256 = HashOf(*content);
      if (!content->empty()) {
        v.chunks = {{HashOf(*content), static_cast<uint32_t>(content->size())}};
        EXPECT_TRUE(store_->chunks()->Put(sim::SimStore::kOwner, {{HashOf(*content), *content}}).ok());
      }
    }
    absl::StatusOr<uint64_t> seq = client_->Commit({v});
    EXPECT_TRUE(seq.ok()) << seq.status();
    clock_.Advance(absl::Minutes(1));
    return seq.ok() ? *seq : 0;
  }

  std::optional<FileVersion> Current(const std::string& path) {
    std::optional<FileVersion> found;
    EXPECT_TRUE(client_->ListFiles([&](const FileVersion& v) {
                                      if (v.path == path) found = v;
                                    }, -1).ok());
    return found;
  }

  // Live returns the live files of the store: path -> content hash (directories: "dir").
  std::map<std::string, std::string> Live() {
    std::map<std::string, std::string> out;
    EXPECT_TRUE(client_->ListFiles([&](const FileVersion& v) {
                                      if (v.deleted) return;
                                      out[v.path] = v.kind == FileKind::kDirectory ? "dir" : DigestToHex(v.content_sha256);
                                    }, -1).ok());
    return out;
  }

  FakeClock clock_;
  std::unique_ptr<sim::SimStore> store_;
  std::unique_ptr<sim::SimStoreClient> client_;
  std::unique_ptr<FolderHistory> history_;
  int ids_ = 0;
};

TEST_F(HistoryTest, AFileGoesBackToAnOlderVersionByItsSeqOrATime) {
  const uint64_t v1 = Put("notes.txt", "first draft");
  const absl::Time after_v1 = clock_.Now() - absl::Seconds(1);  // before the next commit
  Put("notes.txt", "second draft");
  Put("notes.txt", "ruined");
  auto versions = history_->Versions("notes.txt", 0);
  ASSERT_TRUE(versions.ok()) << versions.status();
  ASSERT_EQ(versions->size(), 3u);
  EXPECT_EQ((*versions)[2].version.seq, v1);

  auto restored = history_->RestorePath("notes.txt", v1, absl::InfinitePast());
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(restored->commits.size(), 1u);
  EXPECT_EQ(Live()["notes.txt"], DigestToHex(HashOf("first draft")));
  // Restoring is a commit: the ruined version is still in history.
  versions = history_->Versions("notes.txt", 0);
  ASSERT_TRUE(versions.ok());
  EXPECT_EQ(versions->size(), 4u);
  EXPECT_EQ((*versions)[1].version.content_sha256, HashOf("ruined"));
  // Again: it is already so.
  EXPECT_TRUE(absl::IsFailedPrecondition(history_->RestorePath("notes.txt", v1, absl::InfinitePast()).status()));
  // By time: the version current then.
  Put("notes.txt", "third");
  ASSERT_TRUE(history_->RestorePath("notes.txt", std::nullopt, after_v1).ok());
  EXPECT_EQ(Live()["notes.txt"], DigestToHex(HashOf("first draft")));
  EXPECT_TRUE(absl::IsNotFound(history_->RestorePath("notes.txt", 999, absl::InfinitePast()).status()));
  EXPECT_TRUE(absl::IsNotFound(history_->RestorePath("never.txt", 1, absl::InfinitePast()).status()));
  EXPECT_FALSE(history_->Versions("../escape", 0).ok());
}

TEST_F(HistoryTest, ADeletedFileComesBackWithItsDeletedDirectory) {
  Put("photos", std::string(), FileKind::kDirectory);
  const uint64_t kept = Put("photos/cat.jpg", "meow");
  Put("photos/cat.jpg", std::nullopt);
  Put("photos", std::nullopt);
  EXPECT_EQ(Live().count("photos/cat.jpg"), 0u);
  auto restored = history_->RestorePath("photos/cat.jpg", kept, absl::InfinitePast());
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(Live(), (std::map<std::string, std::string>{{"photos", "dir"}, {"photos/cat.jpg", DigestToHex(HashOf("meow"))}}));
}

TEST_F(HistoryTest, TheWholeFolderGoesBackToATime) {
  Put("a.txt", "a1");
  Put("docs", std::string(), FileKind::kDirectory);
  Put("docs/b.txt", "b1");
  Put("gone.txt", "g");
  const absl::Time then = clock_.Now() - absl::Seconds(1);
  const std::map<std::string, std::string> before = Live();
  Put("a.txt", "a2");
  Put("docs/b.txt", std::nullopt);
  Put("gone.txt", std::nullopt);
  Put("new", std::string(), FileKind::kDirectory);
  Put("new/c.txt", "c");
  auto restored = history_->RestoreFolder(then, 2);
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(restored->restored, 3u);  // a.txt, docs/b.txt, gone.txt
  EXPECT_EQ(restored->deleted, 2u);   // new/c.txt, new
  EXPECT_EQ(restored->commits.size(), 3u);  // at most 2 changes a commit
  EXPECT_EQ(Live(), before);
  // What was made after the time is still in history.
  auto c = history_->Versions("new/c.txt", 0);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->size(), 2u);
}

TEST_F(HistoryTest, ConflictCopiesAreListedAndResolved) {
  Put("plan.md", "theirs");
  Put("plan (conflict dev1 20261127T101500Z).md", "mine");
  auto open = history_->Conflicts(false);
  ASSERT_TRUE(open.ok()) << open.status();
  ASSERT_EQ(open->size(), 1u);
  EXPECT_EQ((*open)[0].original_path, "plan.md");
  auto resolved = history_->Resolve("plan (conflict dev1 20261127T101500Z).md");
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_TRUE(resolved->resolved);
  EXPECT_EQ(resolved->resolved_by, "dev1");
  open = history_->Conflicts(false);
  ASSERT_TRUE(open.ok());
  EXPECT_TRUE(open->empty());
}

}  // namespace
}  // namespace converge::engine
