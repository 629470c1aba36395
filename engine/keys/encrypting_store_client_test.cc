#include "engine/keys/encrypting_store_client.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <memory>
#include <string>

#include <unistd.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/model/path.h"
#include "absl/strings/str_split.h"
#include "engine/sync/history.h"
#include "engine/sync/local_index.h"
#include "engine/sync/sync_engine.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/mem_filesystem.h"
#include "tests/testing/power_cut_env.h"
#include "tests/testing/random_bytes_for_test.h"
#include "tests/testing/sim_store.h"

namespace converge::engine {
namespace {

// Members: management's key directory as the log guards read it (every device granted).
class Members : public KeyDirectoryClient {
 public:
  void Add(const std::string& id, const crypto::DevicePublicKey& key) { keys_[id] = key.ToBytes(); }
  void Revoke(const std::string& id) { revoked_.insert(id); }
  absl::StatusOr<KeyListing> List() override {
    KeyListing listing;
    for (const auto& [id, key] : keys_) {
      KeyRecord r;
      r.device_id = id;
      r.public_key = key;
      r.granted = true;
      r.revoked = revoked_.count(id) > 0;
      listing.records.push_back(r);
    }
    return listing;
  }
  absl::StatusOr<KeyRecord> Publish(const std::string&) override { return absl::UnimplementedError("test"); }
  absl::Status Grant(const KeyRecord&) override { return absl::UnimplementedError("test"); }
  absl::StatusOr<KeyRecord> Own() override { return absl::UnimplementedError("test"); }
  absl::Status SetRecovery(const std::string&, const std::string&) override { return absl::UnimplementedError("test"); }
  absl::StatusOr<std::string> GetRecovery() override { return absl::UnimplementedError("test"); }

 private:
  std::map<std::string, std::string> keys_;
  std::set<std::string> revoked_;
};

// Tampering: a store that shows this device what `rewrite` makes of each batch it pulls.
class Tampering : public sim::SimStoreClient {
 public:
  using SimStoreClient::SimStoreClient;
  std::function<void(std::vector<converge::Commit>*)> rewrite;
  absl::Status Pull(uint64_t since_seq, uint32_t max_commits,
                    const std::function<absl::Status(const converge::Commit&)>& fn) override {
    if (!rewrite) return SimStoreClient::Pull(since_seq, max_commits, fn);
    std::vector<converge::Commit> batch;
    CONVERGE_RETURN_IF_ERROR(SimStoreClient::Pull(since_seq, max_commits, [&](const converge::Commit& c) {
      batch.push_back(c);
      return absl::OkStatus();
    }));
    rewrite(&batch);
    for (const converge::Commit& c : batch) CONVERGE_RETURN_IF_ERROR(fn(c));
    return absl::OkStatus();
  }
};

int devices_made = 0;

// One device of an encrypted namespace: its folder in memory, its index, its engine over the
// encrypting client (and its log guard) over the store's logic.
struct Device {
  Device(const std::string& id, FakeClock* clock, sim::SimStore* store, const crypto::Keyring& ring, Members* members)
      : fs(clock), client(store, id), encrypting(&client, ring) {
    const crypto::DeviceKeys keys = crypto::DeviceKeys::Generate();
    device_keys = keys;
    members->Add(id, keys.public_key());
    head_file = absl::StrCat(::testing::TempDir(), "/log_head_", getpid(), "_", ++devices_made);
    absl::StatusOr<std::unique_ptr<LogGuard>> opened_guard = LogGuard::Open(head_file, "ns", id, keys, members);
    EXPECT_TRUE(opened_guard.ok()) << opened_guard.status();
    guard = std::move(*opened_guard);
    encrypting.SetLogGuard(guard.get());
    absl::StatusOr<std::unique_ptr<LocalIndex>> opened = LocalIndex::Open("/index", env.env());
    EXPECT_TRUE(opened.ok()) << opened.status();
    index = std::move(*opened);
    EngineOptions options;
    options.delete_settle = absl::ZeroDuration();
    options.syncable = FitsEncryptedStore;
    engine = std::make_unique<SyncEngine>(&fs, index.get(), &encrypting, clock, id, options);
  }
  // CommitAsMember: `sealed` committed and signed by this device, as a member may.
  absl::StatusOr<uint64_t> CommitAsMember(const std::vector<FileVersion>& sealed) {
    CONVERGE_ASSIGN_OR_RETURN(std::string attestation, guard->Attest(sealed));
    CONVERGE_ASSIGN_OR_RETURN(uint64_t seq, client.CommitSigned(sealed, {}, attestation));
    guard->Committed(seq, attestation);
    return seq;
  }
  std::optional<crypto::DeviceKeys> device_keys;
  std::string head_file;  // the guard's
  PowerCutEnv env;
  MemFilesystem fs;
  Tampering client;
  EncryptingStoreClient encrypting;
  std::unique_ptr<LogGuard> guard;
  std::unique_ptr<LocalIndex> index;
  std::unique_ptr<SyncEngine> engine;
};

class EncryptingStoreClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<sim::SimStore>> store = sim::SimStore::Create(&clock_, {"dev1", "dev2", "dev3"}, {}, /*encrypted=*/true);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    one_ = std::make_unique<Device>("dev1", &clock_, store_.get(), ring_, &members_);
    two_ = std::make_unique<Device>("dev2", &clock_, store_.get(), *crypto::Keyring::Parse(ring_.Serialize()), &members_);
  }

  void Sync(std::initializer_list<Device*> devices, int rounds = 3) {
    for (int i = 0; i < rounds; ++i) {
      clock_.Advance(absl::Seconds(2));  // past the stat granularity the index trusts
      for (Device* d : devices) ASSERT_TRUE(d->engine->SyncOnce().ok());
    }
  }

  // StoredNothingOf fails the test if the store's files show any of `plain` (names or bytes).
  void ExpectStoreKnowsNoneOf(const std::map<std::string, std::string>& plain) {
    absl::StatusOr<std::map<std::string, std::string>> stored = store_->Files();
    ASSERT_TRUE(stored.ok()) << stored.status();
    ASSERT_FALSE(stored->empty());
    for (const auto& [path, bytes] : *stored) {
      for (absl::string_view part : absl::StrSplit(path, '/')) {
        for (char c : part) ASSERT_TRUE((c >= 'a' && c <= 'z') || (c >= '2' && c <= '7')) << path;
      }
      for (const auto& [plain_path, plain_bytes] : plain) {
        for (absl::string_view name : absl::StrSplit(plain_path, '/')) EXPECT_FALSE(absl::StrContains(path, name));
        if (plain_bytes.size() >= 16 && plain_bytes != "/") {
          EXPECT_FALSE(absl::StrContains(bytes, plain_bytes.substr(0, 16))) << plain_path;
        }
      }
    }
  }

  FakeClock clock_;
  Members members_;
  const crypto::Keyring ring_ = crypto::Keyring::Create();
  std::unique_ptr<sim::SimStore> store_;
  std::unique_ptr<Device> one_, two_;
};

TEST_F(EncryptingStoreClientTest, DevicesSyncThroughAStoreThatHoldsOnlyCiphertext) {
  ASSERT_TRUE(one_->fs.UserWrite("Docs/plan for 2027.txt", "the secret plan, in plain words").ok());
  ASSERT_TRUE(one_->fs.UserWrite("Photos/big.raw", RandomBytesForTest(3 << 20, 1)).ok());
  ASSERT_TRUE(one_->fs.UserMkdir("Empty folder").ok());
  Sync({one_.get(), two_.get()});
  EXPECT_EQ(two_->fs.Snapshot(), one_->fs.Snapshot());
  EXPECT_EQ(two_->fs.Snapshot()["Docs/plan for 2027.txt"], "the secret plan, in plain words");
  ExpectStoreKnowsNoneOf(one_->fs.Snapshot());

  // Edits, a rename and a delete travel both ways.
  ASSERT_TRUE(two_->fs.UserWrite("Docs/plan for 2027.txt", "revised on two").ok());
  ASSERT_TRUE(two_->fs.UserRename("Photos/big.raw", "Photos/renamed.raw").ok());
  ASSERT_TRUE(one_->fs.UserRemove("Empty folder").ok());
  Sync({one_.get(), two_.get()});
  EXPECT_EQ(one_->fs.Snapshot(), two_->fs.Snapshot());
  EXPECT_EQ(one_->fs.Snapshot()["Docs/plan for 2027.txt"], "revised on two");
  EXPECT_EQ(one_->fs.Snapshot()["Photos/renamed.raw"], RandomBytesForTest(3 << 20, 1));
  EXPECT_FALSE(one_->fs.Snapshot().count("Empty folder"));
  ExpectStoreKnowsNoneOf(one_->fs.Snapshot());
}

TEST_F(EncryptingStoreClientTest, AnEditSendsOnlyTheChunksItChangedAndEqualChunksAreStoredOnce) {
  std::string big = RandomBytesForTest(4 << 20, 7);
  ASSERT_TRUE(one_->fs.UserWrite("big.bin", big).ok());
  Sync({one_.get(), two_.get()});
  const uint64_t first = one_->engine->upload_stats().bytes_uploaded;
  EXPECT_GE(first, big.size());
  big.replace(1 << 20, 4096, RandomBytesForTest(4096, 8));
  ASSERT_TRUE(one_->fs.UserWrite("big.bin", big).ok());
  Sync({one_.get(), two_.get()});
  EXPECT_EQ(two_->fs.Snapshot()["big.bin"], big);
  EXPECT_LT(one_->engine->upload_stats().bytes_uploaded - first, 2u << 20);  // chunks, not the file
  // A copy made on the other device: its chunks seal to the bytes the store already has.
  const uint64_t two_before = two_->engine->upload_stats().bytes_uploaded;
  ASSERT_TRUE(two_->fs.UserWrite("copy.bin", big).ok());
  Sync({one_.get(), two_.get()});
  EXPECT_EQ(one_->fs.Snapshot()["copy.bin"], big);
  EXPECT_EQ(two_->engine->upload_stats().bytes_uploaded, two_before);
}

TEST_F(EncryptingStoreClientTest, AnInsertedKilobyteGoesUpAsADeltaOfTheSealedChunk) {
  std::string big = RandomBytesForTest(4 << 20, 9);
  ASSERT_TRUE(one_->fs.UserWrite("big.bin", big).ok());
  Sync({one_.get(), two_.get()});
  const uint64_t first = one_->client.bytes_up();
  EXPECT_GE(first, big.size());
  // Inserted mid-file: the chunk around it is new, but seals to the frames it had but one or two.
  big.insert(2 << 20, RandomBytesForTest(1024, 10));
  ASSERT_TRUE(one_->fs.UserWrite("big.bin", big).ok());
  Sync({one_.get(), two_.get()});
  EXPECT_EQ(two_->fs.Snapshot()["big.bin"], big);  // the store rebuilt the sealed chunk, checked by its hash
  EXPECT_LT(one_->client.bytes_up() - first, 96u << 10) << "the changed chunk went whole";
  ExpectStoreKnowsNoneOf(one_->fs.Snapshot());
}

TEST_F(EncryptingStoreClientTest, ThousandsOfDeletionsSplitIntoCommitsTheStoreTakesOnceSealed) {
  // Sealed, a tombstone of a long name takes several times its plain bytes: split as the plain
  // ones would be, 8,000 of them came to more than a commit carries.
  store::MassDeletePolicy no_hold;
  no_hold.min_files = 1u << 30;
  absl::StatusOr<std::unique_ptr<sim::SimStore>> store = sim::SimStore::Create(&clock_, {"dev1", "dev2"}, no_hold, true);
  ASSERT_TRUE(store.ok()) << store.status();
  Device one("dev1", &clock_, store->get(), ring_, &members_);
  const std::string stem(120, 'n');
  for (int i = 0; i < 8000; ++i) ASSERT_TRUE(one.fs.UserWrite(absl::StrCat("Many/", stem, i), "x").ok());
  Sync({&one}, 1);
  ASSERT_TRUE(one.fs.UserRemove("Many").ok());
  clock_.Advance(absl::Seconds(2));
  absl::Status synced = one.engine->SyncOnce();
  EXPECT_TRUE(synced.ok()) << synced;
  absl::StatusOr<std::map<std::string, std::string>> left = (*store)->Files();
  ASSERT_TRUE(left.ok()) << left.status();
  EXPECT_TRUE(left->empty()) << left->size() << " entries left live in the store";
}

TEST_F(EncryptingStoreClientTest, CompressibleContentIsCompressedBeforeItIsSealed) {
  std::string text;
  for (int i = 0; text.size() < (2 << 20); ++i) text += "line " + std::to_string(i % 977) + " of a log that repeats\n";
  ASSERT_TRUE(one_->fs.UserWrite("app.log", text).ok());
  Sync({one_.get(), two_.get()});
  EXPECT_EQ(two_->fs.Snapshot()["app.log"], text);
  EXPECT_LT(one_->client.bytes_up(), text.size() / 4);  // sealed zstd, not the raw bytes
}

TEST_F(EncryptingStoreClientTest, ADeviceThatJoinsLaterGetsTheTreeAndOneWithoutTheKeysGetsNothing) {
  ASSERT_TRUE(one_->fs.UserWrite("a/b/c.txt", "deep").ok());
  ASSERT_TRUE(one_->fs.UserWrite("top.txt", RandomBytesForTest(300 << 10, 3)).ok());
  Sync({one_.get()});
  Device three("dev3", &clock_, store_.get(), *crypto::Keyring::Parse(ring_.Serialize()), &members_);
  Sync({&three});
  EXPECT_EQ(three.fs.Snapshot(), one_->fs.Snapshot());
  // Another keyring (a device the namespace never approved, or a store's invention) opens no
  // version: its engine applies nothing and reports every version as not applied.
  Device stranger("dev2", &clock_, store_.get(), crypto::Keyring::Create(), &members_);
  clock_.Advance(absl::Seconds(2));
  ASSERT_TRUE(stranger.engine->SyncOnce().ok());
  EXPECT_TRUE(stranger.fs.Snapshot().empty());
}

TEST_F(EncryptingStoreClientTest, TheLongestNamesAndDeepestPathsTravelSealed) {
  // A 255-byte name seals to 436 characters; 120 one-byte components to over 9,000: past what a
  // plain path may be, within what the store holds sealed.
  const std::string longest = std::string(251, 'n') + ".txt";
  const std::string in_long_dir = std::string(255, 'd') + "/" + std::string(200, 'f');
  std::string deep;
  for (int i = 0; i < 120; ++i) absl::StrAppend(&deep, deep.empty() ? "" : "/", std::string(1, 'a' + i % 26));
  ASSERT_TRUE(one_->fs.UserWrite(longest, "longest").ok());
  ASSERT_TRUE(one_->fs.UserWrite(in_long_dir, "below a long name").ok());
  ASSERT_TRUE(one_->fs.UserWrite(deep, "deep").ok());
  ASSERT_TRUE(one_->fs.UserWrite("short.txt", "travels").ok());
  Sync({one_.get(), two_.get()});
  const std::map<std::string, std::string> two = two_->fs.Snapshot();
  EXPECT_EQ(two.at("short.txt"), "travels");
  EXPECT_EQ(two.at(longest), "longest");
  EXPECT_EQ(two.at(in_long_dir), "below a long name");
  EXPECT_EQ(two.at(deep), "deep");
  std::map<std::string, FileVersion> stored;
  ASSERT_TRUE(one_->client.ListFiles([&](const FileVersion& v) { stored[v.path] = v; }, -1).ok());
  size_t longest_sealed = 0, deepest_sealed = 0;
  for (const auto& [path, v] : stored) {
    deepest_sealed = std::max(deepest_sealed, path.size());
    for (absl::string_view part : absl::StrSplit(path, '/')) longest_sealed = std::max(longest_sealed, part.size());
  }
  EXPECT_GT(longest_sealed, kMaxNameBytes);
  EXPECT_GT(deepest_sealed, kMaxPathBytes);
  // A rename of the long one travels as a rename.
  ASSERT_TRUE(one_->fs.UserRename(longest, std::string(250, 'm') + ".txt").ok());
  Sync({one_.get(), two_.get()});
  EXPECT_EQ(two_->fs.Snapshot(), one_->fs.Snapshot());
}

TEST_F(EncryptingStoreClientTest, AMemberThatWritesWhatDoesNotOpenCannotStopTheOthers) {
  ASSERT_TRUE(one_->fs.UserWrite("before.txt", "before").ok());
  Sync({one_.get(), two_.get()});
  // dev3 writes under keys of its own: its version seals, commits, and opens nowhere else.
  Device rogue("dev3", &clock_, store_.get(), crypto::Keyring::Create(), &members_);
  ASSERT_TRUE(rogue.fs.UserWrite("garbage.txt", "unreadable to the others").ok());
  Sync({&rogue}, 2);
  ASSERT_TRUE(one_->fs.UserWrite("after.txt", "after").ok());
  Sync({one_.get(), two_.get()});
  const std::map<std::string, std::string> two = two_->fs.Snapshot();
  EXPECT_EQ(two.at("after.txt"), "after");
  EXPECT_EQ(two.at("before.txt"), "before");
  EXPECT_FALSE(two.count("garbage.txt"));
  EXPECT_EQ(one_->index->cursor(), two_->index->cursor());  // both got past the rogue commit
  EXPECT_GT(two_->index->cursor(), 2u);
}

TEST_F(EncryptingStoreClientTest, ConflictsAreRecordedByTheStoreUnderEncryptedNamesAndShownInTheClear) {
  ASSERT_TRUE(one_->fs.UserWrite("notes.txt", "v0").ok());
  Sync({one_.get(), two_.get()});
  ASSERT_TRUE(one_->fs.UserWrite("notes.txt", "edited on one").ok());
  ASSERT_TRUE(two_->fs.UserWrite("notes.txt", "edited on two").ok());
  Sync({one_.get(), two_.get()});
  EXPECT_EQ(one_->fs.Snapshot(), two_->fs.Snapshot());
  absl::StatusOr<std::vector<ConflictRecord>> shown = one_->encrypting.ListConflicts(false);
  ASSERT_TRUE(shown.ok()) << shown.status();
  ASSERT_EQ(shown->size(), 1u);
  EXPECT_EQ((*shown)[0].original_path, "notes.txt");
  EXPECT_TRUE(absl::StrContains((*shown)[0].copy_path, "(conflict")) << (*shown)[0].copy_path;
  EXPECT_TRUE(one_->fs.Snapshot().count((*shown)[0].copy_path));
  // What the store holds: the same record under encrypted names.
  absl::StatusOr<std::vector<ConflictRecord>> stored = one_->client.ListConflicts(false);
  ASSERT_TRUE(stored.ok());
  ASSERT_EQ(stored->size(), 1u);
  EXPECT_FALSE(absl::StrContains((*stored)[0].copy_path, "conflict"));
  EXPECT_FALSE(absl::StrContains((*stored)[0].original_path, "notes"));
  // Resolving by its plain name resolves the store's record.
  absl::StatusOr<ConflictRecord> resolved = two_->encrypting.ResolveConflict((*shown)[0].copy_path);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_TRUE(resolved->resolved);
  EXPECT_TRUE(one_->encrypting.ListConflicts(false)->empty());
}

TEST_F(EncryptingStoreClientTest, HistoryListsAndRestoresByPlainNames) {
  ASSERT_TRUE(one_->fs.UserWrite("doc.txt", "first draft").ok());
  Sync({one_.get(), two_.get()});
  clock_.Advance(absl::Minutes(5));
  const absl::Time between = clock_.Now();
  clock_.Advance(absl::Minutes(5));
  ASSERT_TRUE(one_->fs.UserWrite("doc.txt", "second draft").ok());
  ASSERT_TRUE(one_->fs.UserWrite("later.txt", "made after").ok());
  Sync({one_.get(), two_.get()});
  FolderHistory history(&two_->encrypting, [] { return std::string(kFileIdBytes, 'r'); });
  absl::StatusOr<std::vector<HistoryVersion>> versions = history.Versions("doc.txt", 0);
  ASSERT_TRUE(versions.ok()) << versions.status();
  ASSERT_EQ(versions->size(), 2u);
  EXPECT_EQ((*versions)[0].version.path, "doc.txt");
  EXPECT_EQ((*versions)[0].version.size, std::string("second draft").size());  // the real size
  // The whole folder back as it was between the drafts: on every device.
  absl::StatusOr<RestoreResult> restored = history.RestoreFolder(between);
  ASSERT_TRUE(restored.ok()) << restored.status();
  Sync({one_.get(), two_.get()});
  EXPECT_EQ(one_->fs.Snapshot()["doc.txt"], "first draft");
  EXPECT_FALSE(one_->fs.Snapshot().count("later.txt"));
  EXPECT_EQ(one_->fs.Snapshot(), two_->fs.Snapshot());
}

TEST_F(EncryptingStoreClientTest, AMembersSealedDotDotIsSkippedNotAppliedNorAStop) {
  // A member with the keys seals what no engine would: directories "a", "a/.." and "a/../up".
  // The store sees only base32 names and takes them; the others open them and refuse the path.
  std::vector<FileVersion> hostile;
  for (const char* path : {"a", "a/..", "a/../up"}) {
    FileVersion dir;
    dir.file_id = std::string(kFileIdBytes, 'h');
    dir.path = path;
    dir.kind = FileKind::kDirectory;
    dir.mode = 0755;
    absl::StatusOr<FileVersion> sealed = one_->encrypting.Sealed(dir);
    ASSERT_TRUE(sealed.ok()) << sealed.status();
    hostile.push_back(*sealed);
  }
  ASSERT_TRUE(one_->CommitAsMember(hostile).ok());
  ASSERT_TRUE(one_->fs.UserWrite("good.txt", "still arrives").ok());
  Sync({one_.get(), two_.get()});
  const std::map<std::string, std::string> two = two_->fs.Snapshot();
  EXPECT_EQ(two.at("good.txt"), "still arrives");
  EXPECT_FALSE(two.count("up"));
  EXPECT_EQ(two_->index->cursor(), one_->index->cursor());
}

TEST_F(EncryptingStoreClientTest, AVersionTheStoreAlteredOrMovedDoesNotOpen) {
  ASSERT_TRUE(one_->fs.UserWrite("x.txt", "x").ok());
  ASSERT_TRUE(one_->fs.UserWrite("y.txt", "y").ok());
  Sync({one_.get()});
  std::map<std::string, FileVersion> stored;
  ASSERT_TRUE(one_->client.ListFiles([&](const FileVersion& v) { stored[v.path] = v; }, -1).ok());
  ASSERT_EQ(stored.size(), 2u);
  const FileVersion x = stored.begin()->second, y = std::next(stored.begin())->second;
  ASSERT_TRUE(two_->encrypting.Opened(x).ok());
  FileVersion moved = x;  // x's record under y's path
  moved.path = y.path;
  EXPECT_EQ(two_->encrypting.Opened(moved).status().code(), absl::StatusCode::kDataLoss);
  FileVersion undeleted = x;  // the store flips what it may know
  undeleted.deleted = true;
  undeleted.chunks.clear();
  undeleted.size = 0;
  EXPECT_EQ(two_->encrypting.Opened(undeleted).status().code(), absl::StatusCode::kDataLoss);
  FileVersion bare = x;  // written without the keys
  bare.sealed_record.clear();
  EXPECT_EQ(two_->encrypting.Opened(bare).status().code(), absl::StatusCode::kDataLoss);
  FileVersion flipped = x;
  flipped.sealed_record[flipped.sealed_record.size() / 2] ^= 1;
  EXPECT_EQ(two_->encrypting.Opened(flipped).status().code(), absl::StatusCode::kDataLoss);
  // What the store sees of a version: no mode, mtime or size of the file's own.
  EXPECT_EQ(x.mode, 0600u);
  EXPECT_EQ(x.mtime_ns, 0);
  EXPECT_NE(x.size, 1u);
}

TEST_F(EncryptingStoreClientTest, AVersionUnderANewerEpochIsOpenedOnceTheDeviceTakesIt) {
  ASSERT_TRUE(one_->fs.UserWrite("before.txt", "epoch 1").ok());
  Sync({one_.get(), two_.get()});
  // one rotates (its keyring gains epoch 2, granted to two, which has not taken it yet).
  crypto::Keyring rotated = ring_;
  ASSERT_TRUE(rotated.Rotate().ok());
  one_->encrypting.SetKeyring(rotated);
  int asked = 0;
  two_->encrypting.set_refresh([&] {
    ++asked;
    two_->encrypting.SetKeyring(rotated);
    return true;
  });
  ASSERT_TRUE(one_->fs.UserWrite("after.txt", "sealed under epoch 2").ok());
  Sync({one_.get(), two_.get()});
  EXPECT_EQ(two_->fs.Snapshot()["after.txt"], "sealed under epoch 2");
  EXPECT_EQ(asked, 1);
  // A device that stays at epoch 1 (revoked: nobody grants it epoch 2) opens nothing written since.
  Device revoked("dev3", &clock_, store_.get(), ring_, &members_);
  revoked.encrypting.set_refresh([] { return false; });
  Sync({&revoked}, 2);
  EXPECT_EQ(revoked.fs.Snapshot()["before.txt"], "epoch 1");
  EXPECT_FALSE(revoked.fs.Snapshot().count("after.txt"));
}

// The tamper tests: one commits 3 files, one commit each; the store then shows two what
// `tamper` makes of them. Two must refuse with DataLoss naming what the store did, apply
// nothing of it (nor anything after), and keep refusing.
class TamperTest : public EncryptingStoreClientTest {
 protected:
  void ExpectRefused(const std::function<void(std::vector<Commit>*)>& tamper, absl::string_view what) {
    for (const char* name : {"one.txt", "two.txt", "three.txt"}) {
      ASSERT_TRUE(one_->fs.UserWrite(name, std::string("content of ") + name).ok());
      Sync({one_.get()}, 1);
    }
    ASSERT_EQ(one_->index->cursor(), 3u);
    two_->client.rewrite = tamper;
    clock_.Advance(absl::Seconds(2));
    absl::Status synced = two_->engine->SyncOnce();
    EXPECT_EQ(synced.code(), absl::StatusCode::kDataLoss) << synced;
    EXPECT_TRUE(absl::StrContains(synced.message(), what)) << synced;
    EXPECT_EQ(two_->guard->failure().code(), absl::StatusCode::kDataLoss);
    const uint64_t cursor = two_->index->cursor();
    const std::map<std::string, std::string> shown = two_->fs.Snapshot();
    EXPECT_LT(cursor, 3u);
    // An honest store again: the guard stays stopped until the engine restarts and checks anew.
    two_->client.rewrite = nullptr;
    clock_.Advance(absl::Seconds(2));
    EXPECT_EQ(two_->engine->SyncOnce().code(), absl::StatusCode::kDataLoss);
    EXPECT_EQ(two_->index->cursor(), cursor);
    EXPECT_EQ(two_->fs.Snapshot(), shown);
    // Nor does it commit on a log it cannot trust.
    ASSERT_TRUE(two_->fs.UserWrite("made on two.txt", "waits").ok());
    clock_.Advance(absl::Seconds(2));
    EXPECT_EQ(two_->engine->SyncOnce().code(), absl::StatusCode::kDataLoss);
    EXPECT_EQ(*store_->log()->HeadSeq("ns"), 3u);
  }
};

TEST_F(TamperTest, AFlippedByteIsRefused) {
  ExpectRefused([](std::vector<Commit>* log) {
    FileVersion& v = (*log)[1].files[0];
    v.sealed_record[v.sealed_record.size() / 2] ^= 1;  // still the size: only the signature tells
  }, "not what its device signed");
}

TEST_F(TamperTest, ChunksSwappedBetweenFilesAreRefused) {
  ExpectRefused([](std::vector<Commit>* log) {
    std::swap((*log)[0].files[0].chunks, (*log)[1].files[0].chunks);
  }, "not what its device signed");
}

TEST_F(TamperTest, AReplayedCommitIsRefused) {
  ExpectRefused([](std::vector<Commit>* log) {
    Commit again = (*log)[0];  // commit 1 shown again as commit 3
    again.seq = 3;
    for (FileVersion& v : again.files) v.seq = 3;
    (*log)[2] = again;
  }, "replay");
}

TEST_F(TamperTest, ADroppedCommitIsRefused) {
  ExpectRefused([](std::vector<Commit>* log) { log->erase(log->begin() + 1); }, "gap");
}

TEST_F(TamperTest, ReorderedCommitsAreRefused) {
  ExpectRefused([](std::vector<Commit>* log) { std::swap((*log)[0], (*log)[1]); }, "gap");
}

TEST_F(TamperTest, ACommitMovedToAnotherSeqIsRefused) {
  ExpectRefused([](std::vector<Commit>* log) {
    // Commits 1 and 2 swap places under their seqs: each chains on the wrong head.
    std::swap((*log)[0].files, (*log)[1].files);
    std::swap((*log)[0].attestation, (*log)[1].attestation);
  }, "");
}

TEST_F(TamperTest, ACommitFromANonMemberIsRefused) {
  ExpectRefused([](std::vector<Commit>* log) { (*log)[1].origin_device = "intruder"; }, "not a member device");
}

TEST_F(EncryptingStoreClientTest, ARestartedDeviceStillCatchesAReplayOrASwapOfWhatItVerified) {
  for (const char* name : {"one.txt", "two.txt", "three.txt"}) {
    ASSERT_TRUE(one_->fs.UserWrite(name, std::string("content of ") + name).ok());
    Sync({one_.get()}, 1);
  }
  Sync({two_.get()});  // two verifies commits 1 to 3 and keeps its head
  ASSERT_EQ(two_->guard->head().seq, 3u);
  std::vector<Commit> log;
  const auto pull = [&](uint64_t since) {
    log.clear();
    return two_->client.Pull(since, 10, [&](const Commit& c) {
      log.push_back(c);
      return absl::OkStatus();
    });
  };
  ASSERT_TRUE(pull(0).ok());
  ASSERT_EQ(log.size(), 3u);
  const std::vector<Commit> verified = log;
  // The engine restarted: a guard opened anew from what the last one kept.
  const auto restarted = [&]() -> std::unique_ptr<LogGuard> {
    absl::StatusOr<std::unique_ptr<LogGuard>> g = LogGuard::Open(two_->head_file, "ns", "dev2", *two_->device_keys, &members_);
    EXPECT_TRUE(g.ok()) << g.status();
    return g.ok() ? std::move(*g) : nullptr;
  };
  const auto as_seq = [](Commit c, uint64_t seq) {
    c.seq = seq;
    for (FileVersion& v : c.files) v.seq = seq;
    return c;
  };
  std::unique_ptr<LogGuard> guard = restarted();
  ASSERT_NE(guard, nullptr);
  EXPECT_EQ(guard->head().seq, 3u);
  absl::Status s = guard->Check(as_seq(verified[0], 4));  // commit 1 shown again as commit 4
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "replay")) << s;
  guard = restarted();
  s = guard->Check(as_seq(verified[2], 2));  // commit 3 where commit 2 was, pulled again
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "differs from the one verified here before")) << s;
  // The honest log passes a restarted guard, pulled again and onward.
  guard = restarted();
  for (const Commit& c : verified) EXPECT_TRUE(guard->Check(c).ok());
  ASSERT_TRUE(one_->fs.UserWrite("four.txt", "after the restart").ok());
  Sync({one_.get()}, 1);
  ASSERT_TRUE(pull(3).ok());
  ASSERT_EQ(log.size(), 1u);
  EXPECT_TRUE(guard->Check(log[0]).ok());
  EXPECT_EQ(guard->head().seq, 4u);
}

TEST_F(EncryptingStoreClientTest, AForkIsCaughtWhenTheDevicesCompareTheirHeads) {
  // Each device's verified head goes to the other (the notification service's part), held here
  // until the test passes it on.
  std::vector<LogGuard::SignedHead> to_one, to_two;
  one_->guard->set_announce([&](const LogGuard::SignedHead& h) { to_two.push_back(h); });
  two_->guard->set_announce([&](const LogGuard::SignedHead& h) { to_one.push_back(h); });
  const auto deliver = [](std::vector<LogGuard::SignedHead>* queue, Device* to) {
    absl::Status s;
    for (const LogGuard::SignedHead& h : *queue) s.Update(to->guard->Announced(h));
    queue->clear();
    return s;
  };
  ASSERT_TRUE(one_->fs.UserWrite("shared.txt", "both see this").ok());
  Sync({one_.get(), two_.get()});
  EXPECT_TRUE(deliver(&to_one, one_.get()).ok());  // the same log: the heads agree
  EXPECT_TRUE(deliver(&to_two, two_.get()).ok());
  ASSERT_EQ(one_->guard->head(), two_->guard->head());

  // From seq 2 on the store shows two another log: one's commit 2 hidden, two's own commit
  // (seq 3 in the real log) shown as 2. Alone, each device's chain is sound.
  two_->client.rewrite = [](std::vector<converge::Commit>* log) {
    std::vector<converge::Commit> forked;
    for (converge::Commit c : *log) {
      if (c.seq == 2) continue;
      if (c.seq == 3) {
        c.seq = 2;
        for (FileVersion& v : c.files) v.seq = 2;
      }
      forked.push_back(c);
    }
    *log = forked;
  };
  ASSERT_TRUE(one_->fs.UserWrite("one only.txt", "two never sees this").ok());
  Sync({one_.get()}, 1);
  ASSERT_TRUE(two_->fs.UserWrite("two only.txt", "on the other branch").ok());
  for (int round = 0; round < 2; ++round) {  // commit, then pull it back
    clock_.Advance(absl::Seconds(2));
    ASSERT_TRUE(two_->engine->SyncOnce().ok());
  }
  ASSERT_EQ(two_->guard->head().seq, 2u);
  ASSERT_EQ(one_->guard->head().seq, 2u);
  ASSERT_NE(two_->guard->head().hash, one_->guard->head().hash);
  // The heads cross: each device sees the other holds another log at seq 2.
  absl::Status at_one = deliver(&to_one, one_.get());
  absl::Status at_two = deliver(&to_two, two_.get());
  EXPECT_EQ(at_one.code(), absl::StatusCode::kDataLoss) << at_one;
  EXPECT_EQ(at_two.code(), absl::StatusCode::kDataLoss) << at_two;
  EXPECT_TRUE(absl::StrContains(at_one.message(), "fork")) << at_one;
  // Neither applies anything more: one never gets two's branch.
  clock_.Advance(absl::Seconds(2));
  EXPECT_EQ(one_->engine->SyncOnce().code(), absl::StatusCode::kDataLoss);
  EXPECT_FALSE(one_->fs.Snapshot().count("two only.txt"));
  EXPECT_FALSE(two_->fs.Snapshot().count("one only.txt"));
}

TEST_F(EncryptingStoreClientTest, AStoreThatWithholdsWhatAnotherDeviceVerifiedIsCaught) {
  std::vector<LogGuard::SignedHead> to_two;
  one_->guard->set_announce([&](const LogGuard::SignedHead& h) { to_two.push_back(h); });
  ASSERT_TRUE(one_->fs.UserWrite("first.txt", "1").ok());
  Sync({one_.get(), two_.get()});
  two_->client.rewrite = [](std::vector<converge::Commit>* log) { log->clear(); };  // nothing new for two
  ASSERT_TRUE(one_->fs.UserWrite("second.txt", "2").ok());
  Sync({one_.get()}, 1);
  ASSERT_FALSE(to_two.empty());
  for (const LogGuard::SignedHead& h : to_two) ASSERT_TRUE(two_->guard->Announced(h).ok());  // ahead: kept
  // A revoked device's announcement (its key still verifies its old commits) counts for nothing.
  Device gone("dev3", &clock_, store_.get(), ring_, &members_);
  members_.Revoke("dev3");
  LogGuard::SignedHead from_gone{"dev3", two_->guard->head(), ""};
  from_gone.head.hash[0] ^= 1;  // a "fork" at two's own head
  from_gone.signature = gone.device_keys->Sign(crypto::HeadSigningBytes("ns", "dev3", from_gone.head));
  EXPECT_TRUE(two_->guard->Announced(from_gone).ok());
  // A forged announcement (not signed by a member) is ignored, not believed.
  LogGuard::SignedHead forged = to_two.back();
  forged.head.seq = 99;
  EXPECT_TRUE(two_->guard->Announced(forged).ok());
  EXPECT_EQ(two_->guard->AnnouncedThrough(), 2u);
  clock_.Advance(absl::Seconds(2));
  absl::Status synced = two_->engine->SyncOnce();
  EXPECT_EQ(synced.code(), absl::StatusCode::kDataLoss) << synced;
  EXPECT_TRUE(absl::StrContains(synced.message(), "withheld")) << synced;
}

}  // namespace
}  // namespace converge::engine
