#include "common/crypto/recovery.h"

#include "common/crypto/sodium.h"
#include "gtest/gtest.h"

namespace converge::crypto {
namespace {

TEST(RecoveryTest, ThePassphraseAloneBringsTheSecretBack) {
  absl::StatusOr<std::string> wrapped = WrapWithPassphrase("keyring bytes", "correct horse", WeakestParamsForTests());
  ASSERT_TRUE(wrapped.ok()) << wrapped.status();
  EXPECT_EQ(wrapped->find("keyring"), std::string::npos);
  absl::StatusOr<std::string> back = UnwrapWithPassphrase(*wrapped, "correct horse");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, "keyring bytes");
  EXPECT_EQ(UnwrapWithPassphrase(*wrapped, "correct horsE").status().code(), absl::StatusCode::kPermissionDenied);
}

TEST(RecoveryTest, TheSameSecretWrapsDifferentlyEachTime) {
  const std::string a = *WrapWithPassphrase("s", "p", WeakestParamsForTests());
  const std::string b = *WrapWithPassphrase("s", "p", WeakestParamsForTests());
  EXPECT_NE(a, b);  // random salt and nonce
}

TEST(RecoveryTest, ParametersAreBoundAndCannotBeRaisedOrLoweredByTheStore) {
  const std::string wrapped = *WrapWithPassphrase("s", "p", WeakestParamsForTests());
  // The opslimit field, as a hostile store would rewrite it: too large is refused before any
  // work; a changed value within bounds no longer opens (the parameters are authenticated).
  std::string huge = wrapped;
  huge[4 + 7] = 0x7f;
  EXPECT_EQ(UnwrapWithPassphrase(huge, "p").status().code(), absl::StatusCode::kInvalidArgument);
  std::string changed = wrapped;
  changed[4] = static_cast<char>(changed[4] + 1);
  EXPECT_EQ(UnwrapWithPassphrase(changed, "p").status().code(), absl::StatusCode::kPermissionDenied);
  // A memlimit of 2 GiB asked for is refused.
  std::string memory = wrapped;
  memory[4 + 8 + 3] = static_cast<char>(0x80);
  EXPECT_EQ(UnwrapWithPassphrase(memory, "p").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(WrapWithPassphrase("s", "", WeakestParamsForTests()).ok());
  EXPECT_FALSE(WrapWithPassphrase("s", "p", PassphraseParams{kMaxOpslimit + 1, kMaxMemlimit}).ok());
  EXPECT_FALSE(UnwrapWithPassphrase("CVR1", "p").ok());
}

}  // namespace
}  // namespace converge::crypto
