#include "common/crypto/keyring.h"

#include "gtest/gtest.h"

namespace converge::crypto {
namespace {

TEST(KeyringTest, ARingReadBackHoldsTheSameKeysForEveryEpoch) {
  Keyring ring = Keyring::Create();
  ASSERT_TRUE(ring.Rotate().ok());
  absl::StatusOr<Keyring> back = Keyring::Parse(ring.Serialize());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->current_epoch(), 2u);
  EXPECT_EQ(back->Names().mac, ring.Names().mac);
  for (uint32_t e : {1u, 2u}) {
    EXPECT_EQ(back->Content(e)->chunk, ring.Content(e)->chunk);
    EXPECT_EQ(back->Content(e)->chunk_id, ring.Content(e)->chunk_id);
  }
}

TEST(KeyringTest, RotatingChangesContentKeysButNotNames) {
  Keyring ring = Keyring::Create();
  const ContentKeys before = ring.Current();
  const NameKeys names = ring.Names();
  ASSERT_TRUE(ring.Rotate().ok());
  EXPECT_EQ(ring.Current().epoch, before.epoch + 1);
  EXPECT_NE(ring.Current().chunk, before.chunk);
  EXPECT_NE(ring.Current().chunk_id, before.chunk_id);
  EXPECT_EQ(ring.Names().mac, names.mac);
  EXPECT_EQ(ring.Names().cipher, names.cipher);
  // The old epoch stays readable.
  EXPECT_EQ(ring.Content(before.epoch)->chunk, before.chunk);
  EXPECT_EQ(ring.Content(9).status().code(), absl::StatusCode::kNotFound);
}

TEST(KeyringTest, EachPurposeHasItsOwnKeyAndEachNamespaceItsOwnKeys) {
  const Keyring a = Keyring::Create(), b = Keyring::Create();
  const ContentKeys k = a.Current();
  EXPECT_NE(k.chunk, k.chunk_id);
  EXPECT_NE(k.chunk, k.record);
  EXPECT_NE(k.gear, k.record);
  EXPECT_NE(a.Names().mac, a.Names().cipher);
  EXPECT_NE(k.chunk_id, b.Current().chunk_id);
}

TEST(KeyringTest, TheIdNamesTheKeyringOnEveryDeviceAndAcrossRotations) {
  Keyring ring = Keyring::Create();
  const std::string id = ring.Id();
  EXPECT_EQ(id.size(), kKeyringIdBytes);
  EXPECT_EQ(Keyring::Parse(ring.Serialize())->Id(), id);
  ASSERT_TRUE(ring.Rotate().ok());
  EXPECT_EQ(ring.Id(), id);
  EXPECT_NE(Keyring::Create().Id(), id);
  // Not any key in use.
  EXPECT_NE(ring.Names().mac.ToBytes().substr(0, kKeyringIdBytes), id);
}

TEST(KeyringTest, ParseRefusesWhatIsNotARing) {
  const std::string good = Keyring::Create().Serialize();
  EXPECT_FALSE(Keyring::Parse("").ok());
  EXPECT_FALSE(Keyring::Parse(good.substr(0, good.size() - 1)).ok());
  EXPECT_FALSE(Keyring::Parse(good + "x").ok());
  std::string wrong_magic = good;
  wrong_magic[0] = 'X';
  EXPECT_FALSE(Keyring::Parse(wrong_magic).ok());
  // Two epochs with the same number.
  Keyring two = Keyring::Create();
  ASSERT_TRUE(two.Rotate().ok());
  std::string dup = two.Serialize();
  const size_t second_epoch_at = 4 + 32 + 4 + 4 + 32;
  dup[second_epoch_at] = 1;
  EXPECT_EQ(Keyring::Parse(dup).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace converge::crypto
