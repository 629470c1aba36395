#include "common/base/crc32c.h"

#include <random>
#include <string>

#include "gtest/gtest.h"

namespace converge {
namespace {

TEST(Crc32cTest, KnownValues) {
  EXPECT_EQ(Crc32c(""), 0u);
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);  // the standard check value
  EXPECT_EQ(Crc32cPortable("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);  // RFC 3720, B.4
  EXPECT_EQ(Crc32c(std::string(32, '\xff')), 0x62A8AB43u);
}

TEST(Crc32cTest, TheInstructionAndTheTableAgreeAndOneFlippedBitIsSeen) {
  std::mt19937_64 rng(5);
  for (size_t n : {1, 7, 8, 9, 63, 64, 65, 4096, 100003}) {
    std::string s(n, '\0');
    for (char& c : s) c = static_cast<char>(rng());
    EXPECT_EQ(Crc32c(s), Crc32cPortable(s)) << n;
    const uint32_t before = Crc32c(s);
    s[rng() % n] ^= static_cast<char>(1 << (rng() % 8));
    EXPECT_NE(Crc32c(s), before) << n;
  }
}

}  // namespace
}  // namespace converge
