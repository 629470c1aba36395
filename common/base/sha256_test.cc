#include "common/base/sha256.h"

#include <string>

#include "gtest/gtest.h"

namespace converge {
namespace {

TEST(Sha256Test, KnownVectors) {
  EXPECT_EQ(DigestToHex(HashOf("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(DigestToHex(HashOf("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256Test, IncrementalEqualsOneShotAndResets) {
  Sha256 h;
  h.Update("ab");
  h.Update("c");
  EXPECT_EQ(h.Finish(), HashOf("abc"));
  h.Update("abc");
  EXPECT_EQ(h.Finish(), HashOf("abc"));
}

TEST(Sha256Test, BytesRoundTripAndLengthCheck) {
  Digest d = HashOf("x");
  absl::StatusOr<Digest> back = DigestFromBytes(DigestToBytes(d));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, d);
  EXPECT_EQ(DigestFromBytes("short").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace converge
