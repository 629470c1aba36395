#include "common/crypto/password.h"

#include <thread>

#include "gtest/gtest.h"

namespace converge::crypto {
namespace {

TEST(PasswordTest, AHashVerifiesItsPasswordOnlyAndIsSalted) {
  absl::StatusOr<std::string> a = HashPassword("correct horse battery");
  ASSERT_TRUE(a.ok()) << a.status();
  absl::StatusOr<std::string> b = HashPassword("correct horse battery");
  ASSERT_TRUE(b.ok());
  EXPECT_NE(*a, *b);  // a fresh salt each time
  EXPECT_EQ(a->rfind("$argon2id$", 0), 0u);
  EXPECT_TRUE(VerifyPassword("correct horse battery", *a));
  EXPECT_TRUE(VerifyPassword("correct horse battery", *b));
  EXPECT_FALSE(VerifyPassword("correct horse batterY", *a));
  EXPECT_FALSE(VerifyPassword("", *a));
}

TEST(PasswordTest, LengthsAndStoredStringsOutOfBoundsAreRefused) {
  EXPECT_EQ(HashPassword("short").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(HashPassword(std::string(kMaxPasswordBytes + 1, 'x')).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<std::string> a = HashPassword("correct horse battery");
  ASSERT_TRUE(a.ok());
  // A stored string that asks for 64 GiB or a million passes is not run.
  std::string costly = *a;
  costly.replace(costly.find("m=65536"), 7, "m=67108864");
  EXPECT_FALSE(VerifyPassword("correct horse battery", costly));
  std::string slow = *a;
  slow.replace(slow.find("t=2"), 3, "t=1000000");
  EXPECT_FALSE(VerifyPassword("correct horse battery", slow));
  EXPECT_FALSE(VerifyPassword("correct horse battery", "$argon2i$garbage"));
  EXPECT_FALSE(VerifyPassword("correct horse battery", ""));
}

TEST(PasswordTest, SlotsBoundTheWorkRunningAtOnce) {
  PasswordSlots slots(1);
  ASSERT_TRUE(slots.Acquire(absl::ZeroDuration()).ok());
  EXPECT_EQ(slots.Acquire(absl::Milliseconds(20)).code(), absl::StatusCode::kResourceExhausted);
  std::thread release([&] {
    absl::SleepFor(absl::Milliseconds(20));
    slots.Release();
  });
  EXPECT_TRUE(slots.Acquire(absl::Seconds(5)).ok());
  release.join();
}

}  // namespace
}  // namespace converge::crypto
