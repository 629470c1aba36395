#include "common/base/coding.h"

#include <string>

#include "gtest/gtest.h"

namespace converge {
namespace {

TEST(CodingTest, RoundTrip) {
  std::string buf;
  PutFixed64BE(&buf, 0x0102030405060708ULL);
  PutVarint64(&buf, 0);
  PutVarint64(&buf, 300);
  PutVarint64(&buf, ~0ULL);
  PutLengthPrefixed(&buf, "hello");
  PutLengthPrefixed(&buf, "");

  Decoder d(buf);
  uint64_t v;
  std::string s;
  ASSERT_TRUE(d.GetFixed64BE(&v));
  EXPECT_EQ(v, 0x0102030405060708ULL);
  ASSERT_TRUE(d.GetVarint64(&v));
  EXPECT_EQ(v, 0u);
  ASSERT_TRUE(d.GetVarint64(&v));
  EXPECT_EQ(v, 300u);
  ASSERT_TRUE(d.GetVarint64(&v));
  EXPECT_EQ(v, ~0ULL);
  ASSERT_TRUE(d.GetLengthPrefixed(&s));
  EXPECT_EQ(s, "hello");
  ASSERT_TRUE(d.GetLengthPrefixed(&s));
  EXPECT_EQ(s, "");
  EXPECT_TRUE(d.done());
}

TEST(CodingTest, BigEndianSortsLikeNumbers) {
  std::string a, b;
  PutFixed64BE(&a, 255);
  PutFixed64BE(&b, 256);
  EXPECT_LT(a, b);
}

TEST(CodingTest, TruncatedInputFails) {
  std::string buf;
  PutLengthPrefixed(&buf, "hello");
  buf.pop_back();
  Decoder d(buf);
  std::string s;
  EXPECT_FALSE(d.GetLengthPrefixed(&s));
  Decoder e("\xff\xff");
  uint64_t v;
  EXPECT_FALSE(e.GetVarint64(&v));
  Decoder f("1234567");
  EXPECT_FALSE(f.GetFixed64BE(&v));
}

}  // namespace
}  // namespace converge
