#include "common/codec/chunk_codec.h"

#include <random>
#include <string>

#include <zstd.h>

#include "gtest/gtest.h"
#include "tests/testing/random_bytes_for_test.h"

namespace converge {
namespace {

TEST(ChunkCodecTest, CompressesOnlyWhenItPays) {
  std::string text;
  for (int i = 0; i < 20000; ++i) text += "the quick brown fox " + std::to_string(i % 100) + "\n";
  auto z = CompressIfWorthIt(text);
  ASSERT_TRUE(z.has_value());
  EXPECT_LT(z->size(), text.size() / 5);
  auto back = Decompress(*z, text.size());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, text);
  EXPECT_FALSE(CompressIfWorthIt(RandomBytesForTest(1 << 20, 1)).has_value());
  EXPECT_FALSE(CompressIfWorthIt("tiny").has_value());
}

TEST(ChunkCodecTest, RefusesCorruptAndOversizedFrames) {
  std::string text(100000, 'a');
  auto z = CompressIfWorthIt(text);
  ASSERT_TRUE(z.has_value());
  EXPECT_EQ(Decompress(*z, 1000).status().code(), absl::StatusCode::kInvalidArgument);  // bomb
  EXPECT_EQ(Decompress("not zstd at all", 1000).status().code(), absl::StatusCode::kInvalidArgument);
  std::string broken = *z;
  broken[broken.size() / 2] ^= 0x55;
  auto bad = Decompress(broken, text.size());
  EXPECT_TRUE(!bad.ok() || *bad != text);
}

// A skippable frame (magic 0x184D2A5?, then a 4-byte length) of `bytes` zero bytes.
std::string SkippableFrame(size_t bytes) {
  std::string f = {'\x50', '\x2A', '\x4D', '\x18'};
  for (int i = 0; i < 4; ++i) f.push_back(static_cast<char>((bytes >> (8 * i)) & 0xFF));
  return f + std::string(bytes, '\0');
}

TEST(ChunkCodecTest, AcceptsExactlyOneFrameAndNothingAfterIt) {
  const std::string small(16, 'x');
  const std::string z = Compress(small);
  ASSERT_TRUE(Decompress(z, 1 << 20).ok());
  // What a quota bypass sent: a 16-byte frame followed by 1 MiB that decoding would skip.
  EXPECT_EQ(Decompress(z + SkippableFrame(1 << 20), 1 << 20).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Decompress(SkippableFrame(64) + z, 1 << 20).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Decompress(z + z, 1 << 20).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Decompress(z + "x", 1 << 20).status().code(), absl::StatusCode::kInvalidArgument);
  // A delta carries one frame too.
  const std::string base = RandomBytesForTest(4096, 7);
  std::string target = base;
  target[100] ^= 1;
  std::optional<std::string> delta = DeltaEncode(target, base, target.size());
  ASSERT_TRUE(delta.has_value());
  ASSERT_TRUE(DeltaDecode(*delta, base, 1 << 20).ok());
  EXPECT_FALSE(DeltaDecode(*delta + SkippableFrame(1024), base, 1 << 20).ok());
}

TEST(ChunkCodecTest, DeltaOfAnEditedChunkCostsAboutTheEdit) {
  const std::string base = RandomBytesForTest(1 << 20, 2);
  std::string target = base;
  target.insert(500000, RandomBytesForTest(1024, 3));  // 1 KiB inserted
  auto delta = DeltaEncode(target, base, target.size());
  ASSERT_TRUE(delta.has_value());
  EXPECT_LT(delta->size(), 1200u);
  auto back = DeltaDecode(*delta, base, 4 << 20);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, target);
  // With the wrong base it does not decode to the target.
  auto wrong = DeltaDecode(*delta, RandomBytesForTest(1 << 20, 9), 4 << 20);
  EXPECT_TRUE(!wrong.ok() || *wrong != target);
  // Unrelated content: no useful delta.
  EXPECT_FALSE(DeltaEncode(RandomBytesForTest(1 << 20, 4), base, 1 << 20).has_value());
}

TEST(ChunkCodecTest, StreamPiecesUseEarlierChunksAsContext) {
  // Three chunks that repeat one another (random, so each alone does not compress).
  const std::string a = RandomBytesForTest(200 << 10, 5);
  const std::string b = a.substr(1000) + RandomBytesForTest(1000, 6);
  const std::string c = RandomBytesForTest(300 << 10, 7);
  StreamEncoder enc;
  StreamDecoder dec;
  auto pa = enc.Encode(a);
  auto pb = enc.Encode(b);
  auto pc = enc.Encode(c);
  ASSERT_TRUE(pa.ok() && pb.ok() && pc.ok());
  EXPECT_GT(pa->size(), a.size() * 99 / 100);  // nothing to refer to yet
  EXPECT_LT(pb->size(), 4000u);                 // b is a copy of a, but for 1 KiB
  auto ra = dec.Decode(*pa, 4 << 20);
  auto rb = dec.Decode(*pb, 4 << 20);
  auto rc = dec.Decode(*pc, 4 << 20);
  ASSERT_TRUE(ra.ok() && rb.ok() && rc.ok()) << rb.status() << rc.status();
  EXPECT_EQ(*ra, a);
  EXPECT_EQ(*rb, b);
  EXPECT_EQ(*rc, c);
  // Text compresses on its own too.
  std::string text;
  for (int i = 0; i < 20000; ++i) text += "line " + std::to_string(i % 97) + " of a licence\n";
  auto pt = enc.Encode(text);
  ASSERT_TRUE(pt.ok());
  EXPECT_LT(pt->size(), text.size() / 10);
  EXPECT_EQ(*dec.Decode(*pt, 4 << 20), text);
  EXPECT_TRUE(LooksCompressible(text));
  EXPECT_FALSE(LooksCompressible(RandomBytesForTest(1 << 20, 8)));
}

TEST(ChunkCodecTest, StreamDecoderRefusesHostilePieces) {
  // A piece out of order: b refers to a, which this decoder never saw.
  const std::string a = RandomBytesForTest(100 << 10, 10);
  StreamEncoder enc;
  ASSERT_TRUE(enc.Encode(a).ok());
  auto pb = enc.Encode(a);
  ASSERT_TRUE(pb.ok());
  StreamDecoder fresh;
  auto wrong = fresh.Decode(*pb, 4 << 20);
  EXPECT_TRUE(!wrong.ok() || *wrong != a);
  // Garbage; and once broken, the stream stays refused.
  StreamDecoder dec;
  EXPECT_FALSE(dec.Decode("not zstd at all, not zstd at all", 4 << 20).ok());
  StreamEncoder enc2;
  EXPECT_FALSE(dec.Decode(*enc2.Encode("hello"), 4 << 20).ok());
  // A piece larger than allowed (a bomb: 64 MiB of zeros in a few KiB) is refused.
  StreamEncoder enc3;
  auto bomb = enc3.Encode(std::string(64 << 20, '\0'));
  ASSERT_TRUE(bomb.ok());
  EXPECT_LT(bomb->size(), 64u << 10);
  StreamDecoder dec3;
  EXPECT_EQ(dec3.Decode(*bomb, 4 << 20).status().code(), absl::StatusCode::kInvalidArgument);
  // A stream asking for a window of 128 MiB (memory the receiver would have to hold).
  const std::string wide = RandomBytesForTest(1 << 20, 11);
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_windowLog, 27);
  std::string out(ZSTD_compressBound(wide.size()) + 64, '\0');
  ZSTD_inBuffer in{wide.data(), wide.size(), 0};
  ZSTD_outBuffer o{out.data(), out.size(), 0};
  while (ZSTD_compressStream2(cctx, &o, &in, ZSTD_e_flush) != 0) {
  }
  ZSTD_freeCCtx(cctx);
  out.resize(o.pos);
  StreamDecoder dec4;
  auto too_wide = dec4.Decode(out, 64 << 20);
  ASSERT_FALSE(too_wide.ok());
  EXPECT_NE(too_wide.status().message().find("memory"), std::string::npos) << too_wide.status();
  // The same bytes with the default limit (128 MiB) decode.
  ZSTD_DCtx* dctx = ZSTD_createDCtx();
  std::string back(2 << 20, '\0');
  ZSTD_inBuffer bin{out.data(), out.size(), 0};
  ZSTD_outBuffer bout{back.data(), back.size(), 0};
  EXPECT_FALSE(ZSTD_isError(ZSTD_decompressStream(dctx, &bout, &bin)));
  ZSTD_freeDCtx(dctx);
  EXPECT_EQ(back.substr(0, bout.pos), wide);
}

TEST(ChunkCodecTest, StreamTriesWhatDoesNotCompressAloneOnlyWhileItPays) {
  std::string text;
  for (int i = 0; i < 20000; ++i) text += "line " + std::to_string(i % 97) + " of a licence\n";
  const std::string noise = RandomBytesForTest(256 << 10, 12);
  StreamEncoder random_stream;
  EXPECT_FALSE(random_stream.Worth(noise));  // nothing before it: its samples say no
  EXPECT_TRUE(random_stream.Worth(text));    // and yes for text
  EXPECT_TRUE(random_stream.Worth(RandomBytesForTest(1000, 14)));  // a small one is tried whole
  ASSERT_TRUE(random_stream.Encode(noise).ok());
  EXPECT_FALSE(random_stream.Worth(RandomBytesForTest(256 << 10, 13)));  // the stream does not pay
  EXPECT_TRUE(random_stream.Worth(text));                    // text alone does
  StreamEncoder text_stream;
  ASSERT_TRUE(text_stream.Encode(text).ok());
  EXPECT_TRUE(text_stream.Worth(noise));  // the stream pays: noise may repeat something in it
  auto again = text_stream.Encode(noise);
  auto repeat = text_stream.Encode(noise);  // a repeat of incompressible bytes costs little
  ASSERT_TRUE(again.ok() && repeat.ok());
  EXPECT_LT(repeat->size(), 1000u);
}

}  // namespace
}  // namespace converge
