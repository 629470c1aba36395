// Power cuts under the engine: device B downloads what device A wrote, and its machine dies
// after the Nth change to its folder (every N until the download completes), losing whatever
// was not durable, in the folder and in the engine's index (the last run: right after B got
// through). B restarts and syncs. It must never
// upload an empty, truncated or old file over the good data, and ends with the good content.
// The same run on a disk that ignores fsync does upload bad data: proof the test can tell.
#include <iostream>
#include <map>
#include <set>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/base/clock.h"
#include "common/base/logging.h"
#include "common/base/sha256.h"
#include "engine/sync/chunker.h"
#include "engine/sync/sync_engine.h"
#include "gtest/gtest.h"
#include "tests/sim/sim_device.h"
#include "tests/testing/fake_clock.h"

namespace converge::sim {
namespace {

const engine::ChunkParams kChunkParams{1024, 4096, 16384};

engine::EngineOptions Options() {
  engine::EngineOptions eo;
  eo.chunk_params = kChunkParams;
  return eo;
}

std::string Bytes(size_t n, char seed) {
  std::string s(n, '\0');
  uint32_t x = static_cast<unsigned char>(seed) * 2654435761u + 1;
  for (char& c : s) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<char>('a' + (x >> 24) % 26);
  }
  return s;
}

struct Outcome {
  int cut_points = 0;     // runs whose machine died before the download finished
  int bad_uploads = 0;    // versions of the file the store got that are not good content
  int bad_endings = 0;    // runs where B did not end with the good content
};

// CutEverywhere: A has `before` (synced to B) and then writes `after`; B applies it and dies after N folder
// changes, for every N until B gets through.
Outcome CutEverywhere(const std::map<std::string, std::string>& before, const std::map<std::string, std::string>& after,
            bool ignore_fsync) {
  Outcome out;
  // Every N up to 16, then ever sparser (a large download makes thousands of changes).
  for (int n = 0; n < 1000000; n += n < 16 ? 1 : n / 4) {
    FakeClock clock;
    auto store = SimStore::Create(&clock, {"a", "b"});
    EXPECT_TRUE(store.ok());
    SimDevice a("a", &clock, store->get(), Options()), b("b", &clock, store->get(), Options());
    EXPECT_TRUE(a.Start().ok());
    EXPECT_TRUE(b.Start().ok());
    b.fs().set_ignore_fsync(ignore_fsync);
    std::set<Digest> good;
    for (const auto& [p, c] : before) {
      EXPECT_TRUE(a.fs().UserWrite(p, c).ok());
      good.insert(engine::ChunkBytes(c, kChunkParams).sha256);
    }
    EXPECT_TRUE(a.engine().SyncOnce().ok());
    clock.Advance(absl::Seconds(5));
    EXPECT_TRUE(b.engine().SyncOnce().ok());
    clock.Advance(absl::Seconds(5));
    for (const auto& [p, c] : after) {
      EXPECT_TRUE(a.fs().UserWrite(p, c).ok());
      good.insert(engine::ChunkBytes(c, kChunkParams).sha256);
    }
    EXPECT_TRUE(a.engine().SyncOnce().ok());
    clock.Advance(absl::Seconds(5));

    b.fs().FailAfter(n);
    const absl::Status died = b.engine().SyncOnce();
    // Past the last change, B got through: the power goes right after it.
    const bool last = died.ok();
    ++out.cut_points;
    EXPECT_TRUE(b.PowerCut().ok());
    clock.Advance(absl::Seconds(5));
    for (int round = 0; round < 3; ++round) {
      b.engine().SyncOnce().IgnoreError();
      a.engine().SyncOnce().IgnoreError();
      clock.Advance(absl::Seconds(5));
    }
    // Every version the store holds of these files is good content: nothing bad went up.
    (*store)->log()->ReadSince(SimStore::kNamespace, 0, 0, [&](const Commit& c) {
      for (const FileVersion& v : c.files) {
        if (!v.deleted && v.kind == FileKind::kFile && !good.count(v.content_sha256)) ++out.bad_uploads;
      }
      return true;
    }).IgnoreError();
    std::map<std::string, std::string> want = before;
    for (const auto& [p, c] : after) want[p] = c;
    std::map<std::string, std::string> got = b.fs().Snapshot();
    for (const auto& [p, c] : want) {
      if (got[p] != c) ++out.bad_endings;
    }
    if (last) break;
  }
  std::cout << ::testing::UnitTest::GetInstance()->current_test_info()->name() << ": " << out.cut_points
            << " power cuts, " << out.bad_uploads << " bad uploads, " << out.bad_endings << " bad endings\n";
  return out;
}

class EnginePowerCutTest : public ::testing::Test {
 protected:
  void SetUp() override { InitLogging("off"); }
};

TEST_F(EnginePowerCutTest, ANewSmallFileIsNeverUploadedTruncated) {
  Outcome o = CutEverywhere({}, {{"docs/new.txt", Bytes(3000, 'n')}, {"other", Bytes(10, 'o')}}, false);
  EXPECT_GT(o.cut_points, 3);
  EXPECT_EQ(o.bad_uploads, 0);
  EXPECT_EQ(o.bad_endings, 0);
}

TEST_F(EnginePowerCutTest, AnEditIsNeverUndoneOrUploadedTruncated) {
  Outcome o = CutEverywhere({{"f.txt", Bytes(20000, 'a')}}, {{"f.txt", Bytes(20000, 'a') + Bytes(5000, 'b')}}, false);
  EXPECT_GT(o.cut_points, 3);
  EXPECT_EQ(o.bad_uploads, 0);
  EXPECT_EQ(o.bad_endings, 0);
}

TEST_F(EnginePowerCutTest, ALargeResumableDownloadIsNeverUploadedTruncated) {
  Outcome o = CutEverywhere({}, {{"big.bin", Bytes(9 << 20, 'x')}}, false);
  EXPECT_GT(o.cut_points, 3);
  EXPECT_EQ(o.bad_uploads, 0);
  EXPECT_EQ(o.bad_endings, 0);
}

TEST_F(EnginePowerCutTest, ADiskThatIgnoresFsyncIsCaught) {
  Outcome o = CutEverywhere({{"f.txt", Bytes(20000, 'a')}}, {{"f.txt", Bytes(20000, 'a') + Bytes(5000, 'b')}}, true);
  EXPECT_GT(o.bad_uploads + o.bad_endings, 0) << "the test could not tell a lying disk";
}

}  // namespace
}  // namespace converge::sim
