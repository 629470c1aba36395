#include "engine/sync/chunker.h"

#include <algorithm>
#include <array>
#include <random>
#include <set>
#include <string>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace converge::engine {
namespace {

std::string Random(std::mt19937_64& rng, size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    const uint64_t v = rng();
    memcpy(&s[i], &v, std::min<size_t>(8, n - i));
  }
  return s;
}

// A file in memory.
class MemoryFile : public ReadableFile {
 public:
  explicit MemoryFile(std::string data) : data_(std::move(data)) {}
  absl::Status Read(uint64_t offset, size_t n, std::string* out) override {
    out->assign(offset >= data_.size() ? "" : data_.substr(offset, n));
    return absl::OkStatus();
  }

 private:
  std::string data_;
};

FileContent Chunks(const std::string& data, const ChunkParams& p = ChunkParams{}) {
  MemoryFile f(data);
  auto c = ChunkFile(&f, p);
  EXPECT_TRUE(c.ok()) << c.status();
  return *c;
}

std::multiset<std::string> Digests(const FileContent& c) {
  std::multiset<std::string> out;
  for (const ChunkRef& r : c.chunks) out.insert(DigestToBytes(r.sha256));
  return out;
}

TEST(ChunkerTest, SizesStayInBoundsAndAverageNearTarget) {
  std::mt19937_64 rng(1);
  const std::string data = Random(rng, 64 << 20);
  const ChunkParams p;
  FileContent c = Chunks(data, p);
  uint64_t total = 0;
  for (size_t i = 0; i < c.chunks.size(); ++i) {
    total += c.chunks[i].length;
    EXPECT_LE(c.chunks[i].length, p.max_bytes);
    if (i + 1 < c.chunks.size()) {
      EXPECT_GE(c.chunks[i].length, p.min_bytes);
    }
  }
  EXPECT_EQ(total, data.size());
  EXPECT_EQ(c.size, data.size());
  EXPECT_EQ(c.sha256, ContentDigest(c.chunks));
  const double avg = static_cast<double>(data.size()) / c.chunks.size();
  EXPECT_GT(avg, p.avg_bytes * 0.75) << c.chunks.size() << " chunks";
  EXPECT_LT(avg, p.avg_bytes * 1.5) << c.chunks.size() << " chunks";
}

TEST(ChunkerTest, SmallAndEmptyFilesAreOneChunkOrNone) {
  EXPECT_TRUE(Chunks("").chunks.empty());
  EXPECT_EQ(Chunks("").sha256, HashOf(""));
  FileContent c = Chunks(std::string(60 << 10, 'a'));
  ASSERT_EQ(c.chunks.size(), 1u);
  EXPECT_EQ(c.chunks[0].length, 60u << 10);
}

// Property: for random content and a random insert or delete anywhere, all but a few chunks
// (those around the edit; a destroyed boundary can cascade through max-size cuts until the next
// natural one) are unchanged.
TEST(ChunkerTest, BoundariesAreStableUnderInsertsAndDeletes) {
  std::mt19937_64 rng(42);
  const ChunkParams p;
  size_t total_fresh = 0;
  constexpr int kRounds = 40;
  for (int round = 0; round < kRounds; ++round) {
    const std::string base = Random(rng, (4 << 20) + rng() % (4 << 20));
    const FileContent before = Chunks(base, p);
    const size_t at = rng() % base.size();
    std::string edited = base;
    const size_t len = 1 + rng() % 4096;
    if (round % 2 == 0) {
      edited.insert(at, Random(rng, len));
    } else {
      edited.erase(at, std::min(len, base.size() - at));
    }
    const FileContent after = Chunks(edited, p);
    std::multiset<std::string> old_set = Digests(before);
    size_t fresh = 0;
    for (const ChunkRef& r : after.chunks) {
      auto it = old_set.find(DigestToBytes(r.sha256));
      if (it == old_set.end()) {
        ++fresh;
      } else {
        old_set.erase(it);
      }
    }
    EXPECT_LE(fresh, 5u) << "round " << round << ": " << fresh << " new chunks of " << after.chunks.size();
    total_fresh += fresh;
  }
  EXPECT_LE(static_cast<double>(total_fresh) / kRounds, 2.5) << total_fresh << " new chunks in " << kRounds << " edits";
}

TEST(ChunkerTest, SameContentCutsTheSameEverywhere) {
  std::mt19937_64 rng(7);
  const std::string shared = Random(rng, 3 << 20);
  // The same bytes behind different prefixes resynchronise: most chunks are shared.
  FileContent a = Chunks(Random(rng, 100000) + shared);
  FileContent b = Chunks(Random(rng, 333333) + shared);
  std::multiset<std::string> da = Digests(a);
  size_t common = 0;
  for (const ChunkRef& r : b.chunks) common += da.count(DigestToBytes(r.sha256)) > 0 ? 1 : 0;
  EXPECT_GE(common, b.chunks.size() - 3);
}

TEST(ChunkerTest, VisitorSeesEveryChunkInOrder) {
  // 2 MiB is cut and hashed in one thread; 40 MiB is hashed on a second one, and with a slow
  // visitor the hasher falls behind, so the cutting thread hashes chunks too.
  for (const auto& [mib, slow] : {std::pair<size_t, bool>{2, false}, {40, false}, {40, true}}) {
    std::mt19937_64 rng(3);
    const std::string data = Random(rng, mib << 20);
    MemoryFile f(data);
    std::string rebuilt;
    uint64_t next_offset = 0;
    size_t visited = 0;
    auto c = ChunkFile(&f, ChunkParams{}, [&](const ChunkRef& ref, uint64_t offset, absl::string_view bytes) {
      EXPECT_EQ(offset, next_offset);
      EXPECT_EQ(HashOf(bytes), ref.sha256);
      next_offset += bytes.size();
      rebuilt.append(bytes.data(), bytes.size());
      ++visited;
      if (slow) absl::SleepFor(absl::Milliseconds(1));
    });
    ASSERT_TRUE(c.ok());
    EXPECT_TRUE(rebuilt == data) << mib;
    EXPECT_EQ(visited, c->chunks.size());
    EXPECT_EQ(c->size, data.size());
    EXPECT_EQ(c->sha256, ContentDigest(c->chunks));
    // The same chunks as cut one byte a step and hashed one by one.
    const FastCdc cdc{ChunkParams{}};
    std::vector<ChunkRef> reference;
    for (size_t at = 0; at < data.size();) {
      const size_t len = cdc.CutOneByteAStep(reinterpret_cast<const uint8_t*>(data.data()) + at, data.size() - at);
      reference.push_back(ChunkRef{HashOf(absl::string_view(data).substr(at, len)), static_cast<uint32_t>(len)});
      at += len;
    }
    EXPECT_TRUE(c->chunks == reference) << mib;
  }
}

// A sparse file in memory: its holes read as zeros, but reading one is a test failure.
class SparseFile : public ReadableFile {
 public:
  SparseFile(std::string data, std::vector<Extent> holes) : data_(std::move(data)), holes_(std::move(holes)) {
    for (const Extent& h : holes_) std::fill_n(data_.begin() + h.offset, h.length, '\0');
  }
  absl::StatusOr<std::vector<Extent>> Holes(uint64_t min_bytes) override {
    std::vector<Extent> out;
    for (const Extent& h : holes_) {
      if (h.length >= min_bytes) out.push_back(h);
    }
    return out;
  }
  absl::Status Read(uint64_t offset, size_t n, std::string* out) override {
    const uint64_t end = std::min<uint64_t>(offset + n, data_.size());
    for (const Extent& h : holes_) {
      if (offset < h.offset + h.length && h.offset < end && h.length >= kMinHoleBytes) {
        ADD_FAILURE() << "read [" << offset << ", " << end << ") overlaps the hole at " << h.offset;
      }
    }
    out->assign(offset >= data_.size() ? "" : data_.substr(offset, n));
    return absl::OkStatus();
  }
  const std::string& data() const { return data_; }

 private:
  std::string data_;
  std::vector<Extent> holes_;
};

TEST(ChunkerTest, HolesAreListedNotReadAndDataAroundThemIsCutOnItsOwn) {
  // Small (one thread) and large (a hasher thread): a hole at the start, a short one read as
  // data, a long one, data, and a hole at the end.
  for (const size_t mib : {2, 40}) {
    std::mt19937_64 rng(11);
    const uint64_t n = uint64_t{mib} << 20;
    const std::vector<Extent> holes = {{0, 128 << 10}, {300 << 10, 4 << 10}, {n / 4, n / 4}, {n - (96 << 10), 96 << 10}};
    SparseFile f(Random(rng, n), holes);
    std::string rebuilt;
    auto c = ChunkFile(&f, ChunkParams{}, [&](const ChunkRef& ref, uint64_t offset, absl::string_view bytes) {
      EXPECT_FALSE(ref.hole());
      if (rebuilt.size() < offset) rebuilt.resize(offset, '\0');  // the hole before it
      EXPECT_EQ(rebuilt.size(), offset);
      rebuilt.append(bytes.data(), bytes.size());
    });
    ASSERT_TRUE(c.ok()) << c.status();
    rebuilt.resize(n, '\0');
    EXPECT_TRUE(rebuilt == f.data()) << mib;
    EXPECT_EQ(c->size, n);
    std::vector<Extent> listed;
    uint64_t at = 0;
    for (const ChunkRef& ref : c->chunks) {
      if (ref.hole()) listed.push_back(Extent{at, ref.length});
      at += ref.length;
    }
    EXPECT_EQ(listed, (std::vector<Extent>{holes[0], holes[2], holes[3]})) << mib;
    // The data between two holes is cut as that data alone would be.
    const std::string middle = f.data().substr(n / 2, n / 2 - (96 << 10));
    const FileContent alone = ChunkBytes(middle);
    const auto first = std::find(c->chunks.begin(), c->chunks.end(), ChunkRef::Hole(n / 4)) + 1;
    EXPECT_TRUE(std::equal(alone.chunks.begin(), alone.chunks.end(), first)) << mib;
    EXPECT_NE(c->sha256, ChunkBytes(f.data()).sha256);  // holes are part of what names the content
  }
}

TEST(ChunkerTest, ALongHoleTakesSeveralEntries) {
  class AllHole : public ReadableFile {
   public:
    absl::StatusOr<std::vector<Extent>> Holes(uint64_t) override {
      return std::vector<Extent>{{0, 2 * uint64_t{kMaxHoleBytes} + 5}};
    }
    absl::Status Read(uint64_t offset, size_t n, std::string* out) override {
      out->clear();  // the end of the file
      return absl::OkStatus();
    }
  } f;
  auto c = ChunkFile(&f);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->chunks, (std::vector<ChunkRef>{ChunkRef::Hole(kMaxHoleBytes), ChunkRef::Hole(kMaxHoleBytes), ChunkRef::Hole(5)}));
  EXPECT_EQ(c->size, 2 * uint64_t{kMaxHoleBytes} + 5);
}

TEST(ChunkerTest, ContentDigestOfOneChunkIsTheContentsHash) {
  const std::string small = "a small file";
  MemoryFile f(small);
  auto c = ChunkFile(&f);
  ASSERT_TRUE(c.ok());
  ASSERT_EQ(c->chunks.size(), 1u);
  EXPECT_EQ(c->sha256, HashOf(small));
  MemoryFile empty("");
  auto e = ChunkFile(&empty);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->sha256, HashOf(""));
  // More chunks: the list is named, and any change of a digest or a length renames it.
  std::vector<ChunkRef> list = {{HashOf("x"), 1}, {HashOf("y"), 1}};
  const Digest named = ContentDigest(list);
  EXPECT_NE(named, HashOf("xy"));
  list[1].length = 2;
  EXPECT_NE(ContentDigest(list), named);
}

TEST(ChunkerTest, TwoBytesAStepCutsWhereOneByteAStepWould) {
  std::mt19937_64 rng(11);
  const std::string data = Random(rng, 16 << 20);
  const FastCdc cdc(ChunkParams{});
  const uint8_t* bytes = reinterpret_cast<const uint8_t*>(data.data());
  size_t pos = 0;
  size_t cuts = 0;
  while (pos < data.size()) {
    const size_t n = data.size() - pos;
    const size_t got = cdc.Cut(bytes + pos, n);
    EXPECT_EQ(got, cdc.CutOneByteAStep(bytes + pos, n)) << "at " << pos;
    pos += got;
    ++cuts;
  }
  EXPECT_GT(cuts, 40u);
}

// Cuts lists where `params` cuts `data`, checking the fast loop against the definition.
std::vector<size_t> Cuts(const std::string& data, const ChunkParams& params) {
  const FastCdc cdc(params);
  const uint8_t* bytes = reinterpret_cast<const uint8_t*>(data.data());
  std::vector<size_t> cuts;
  for (size_t pos = 0; pos < data.size();) {
    const size_t n = data.size() - pos;
    const size_t got = cdc.Cut(bytes + pos, n);
    EXPECT_EQ(got, cdc.CutOneByteAStep(bytes + pos, n)) << "at " << pos;
    pos += got;
    cuts.push_back(pos);
  }
  return cuts;
}

TEST(ChunkerTest, ANamespacesOwnGearTableCutsElsewhereButTheSameOnEveryDevice) {
  std::mt19937_64 rng(12);
  const std::string data = Random(rng, 8 << 20);
  std::array<uint64_t, 256> values{}, other{};
  for (uint64_t& v : values) v = rng();
  for (uint64_t& v : other) v = rng();
  ChunkParams keyed;
  keyed.gear = MakeGearTable(values);
  ChunkParams again;
  again.gear = MakeGearTable(values);  // another device, the same namespace
  ChunkParams foreign;
  foreign.gear = MakeGearTable(other);
  const std::vector<size_t> fixed = Cuts(data, ChunkParams{}), mine = Cuts(data, keyed);
  EXPECT_EQ(mine, Cuts(data, again));
  EXPECT_NE(mine, fixed);
  EXPECT_NE(mine, Cuts(data, foreign));
  // A keyed table still cuts content-defined, near the average size.
  EXPECT_GT(mine.size(), 16u);
  EXPECT_LT(mine.size(), 64u);
}

}  // namespace
}  // namespace converge::engine

namespace converge::engine {
namespace {

TEST(ChunkLayoutTest, BasesAreTheOldChunksOverlappingWithMoreThanAFewKiB) {
  constexpr uint32_t k = 64 << 10;
  std::vector<ChunkRef> old;
  for (const char* name : {"a", "b", "c", "d", "e", "f"}) old.push_back({HashOf(name), k});
  const ChunkLayout layout(old);
  using V = std::vector<Digest>;
  EXPECT_EQ(layout.BasesFor(0, k), V{HashOf("a")});
  // A chunk cut anew after an edit, across the old boundaries: both old chunks, in order.
  EXPECT_EQ(layout.BasesFor(k / 2, k), (V{HashOf("a"), HashOf("b")}));
  EXPECT_EQ(layout.BasesFor(k / 2, 2 * k), (V{HashOf("a"), HashOf("b"), HashOf("c")}));
  // A few KiB of a neighbour are not worth its signature: only the chunk overlapping most (the
  // chunk cut anew where an edit ends holds the old bytes of the chunk at its end).
  EXPECT_EQ(layout.BasesFor(k - 1024, k), V{HashOf("b")});
  EXPECT_EQ(layout.BasesFor(k + 1024, k), V{HashOf("b")});
  EXPECT_EQ(layout.BasesFor(6 * k - 10, 50), V{HashOf("f")});  // runs past the old end
  // At most kMaxDeltaBases, the run overlapping most.
  EXPECT_EQ(layout.BasesFor(k / 2, 5 * k), (V{HashOf("b"), HashOf("c"), HashOf("d"), HashOf("e")}));
  EXPECT_EQ(layout.BasesFor(6 * k, 10), V{});  // past the old end
  EXPECT_EQ(ChunkLayout().BasesFor(0, 10), V{});
}

}  // namespace
}  // namespace converge::engine
