// End to end, real processes: the keyring of an end-to-end encrypted namespace reaches each of
// its devices through converge-management: a first device makes it, a second is approved after
// the user compares fingerprints on both (a wrong one refused either side), a third recovers it
// from the passphrase; no service ever holds a key in the clear.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/base/sha256.h"
#include "common/crypto/device_keys.h"
#include "common/crypto/keyring.h"
#include "gtest/gtest.h"
#include "tests/cluster.h"

namespace converge::testing {
namespace {

// After `prefix` on a line of `out`, to the line's end.
std::string After(const std::string& out, const std::string& prefix) {
  for (absl::string_view line : absl::StrSplit(out, '\n')) {
    if (absl::StartsWith(line, prefix)) return std::string(line.substr(prefix.size()));
  }
  return "";
}

// KeyringId: the id in "keyring: held here, id HEX, epoch N".
std::string KeyringId(const std::string& out) {
  const std::string held = After(out, "keyring: held here, id ");
  return held.substr(0, held.find(','));
}

// FilesHolding: the files under `dir` (skipping `skip`) whose bytes contain `needle`.
std::vector<std::string> FilesHolding(const std::string& dir, const std::string& skip, const std::string& needle) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file() || absl::StartsWith(e.path().string(), skip)) continue;
    std::ifstream in(e.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (bytes.find(needle) != std::string::npos) out.push_back(e.path().string());
  }
  return out;
}

constexpr int kLaptop = 2, kPhone = 3;

class E2eKeysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ClusterOptions options;
    options.dir = std::string(getenv("TEST_TMPDIR")) + "/" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(options.dir);
    dir_ = options.dir;
    auto cluster = Cluster::Start(options);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    c_ = std::move(*cluster);
    // Engines 0 and 1 sync the cluster's plain namespace; 2, 3 and 4 the encrypted "vault".
    for (const char* name : {"plain-a", "plain-b"}) ASSERT_TRUE(c_->AddEngine(name).ok());
    ASSERT_TRUE(c_->WaitConverged(absl::Seconds(30)).ok());
    CommandResult r = c_->Convergectl({"namespaces", "create", "vault", "--owner=e2e", "--encrypted"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "created end-to-end encrypted namespace vault owned by e2e\n");
    const EngineIdentity vault{"e2e", "vault", c_->enrollment_token(), ""};
    for (const char* name : {"laptop", "phone", "tablet"}) ASSERT_TRUE(c_->AddEngine(name, vault).ok());
    // Each engine enrolls, then serves its control socket: wait until all three answer.
    for (int engine = 2; engine <= 4; ++engine) {
      ASSERT_TRUE(WaitFor([&] { return Keys(engine, {"status"}).exit_code == 0; }, absl::Seconds(30)))
          << c_->name(engine) << "'s control socket; logs in " << c_->logs_dir();
    }
  }

  CommandResult Keys(int engine, std::vector<std::string> args) {
    args.insert(args.begin(), "keys");
    args.push_back("--folder=" + c_->folder(engine));
    return c_->EngineCommand(args);
  }

  std::string PassphraseFile(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << text << "\n";
    return path;
  }

  // ExpectServicesHoldNoKeyOf: the services' data (management's registry, the store) hold the
  // device's public key but none of the keyring's keys, no device's secret key and not the
  // passphrase (which went over the engines' control sockets only), nor do the logs.
  void ExpectServicesHoldNoKeyOf(int engine, const std::string& keyring_id, const std::string& passphrase) {
    const std::string keys_dir = c_->folder(engine) + "/.converge/keys";
    std::ifstream ring_in(keys_dir + "/keyring", std::ios::binary), device_in(keys_dir + "/device.key", std::ios::binary);
    const std::string ring_bytes((std::istreambuf_iterator<char>(ring_in)), std::istreambuf_iterator<char>());
    const std::string device_bytes((std::istreambuf_iterator<char>(device_in)), std::istreambuf_iterator<char>());
    auto ring = crypto::Keyring::Parse(ring_bytes);
    auto device = crypto::DeviceKeys::Parse(device_bytes);
    ASSERT_TRUE(ring.ok() && device.ok());
    EXPECT_EQ(absl::BytesToHexString(ring->Id()), keyring_id);
    const std::string data = dir_ + "/data", folders = dir_ + "/folders";
    EXPECT_FALSE(FilesHolding(data, folders, device->public_key().ToBytes()).empty());
    EXPECT_TRUE(FilesHolding(data, folders, ring_bytes.substr(4, 32)).empty());               // names key
    EXPECT_TRUE(FilesHolding(data, folders, ring_bytes.substr(4 + 32 + 4 + 4, 32)).empty());  // epoch 1
    EXPECT_TRUE(FilesHolding(data, folders, device_bytes.substr(4, 32)).empty());             // X25519 secret
    EXPECT_TRUE(FilesHolding(data, folders, passphrase).empty());
    EXPECT_TRUE(FilesHolding(c_->logs_dir(), folders, passphrase).empty());
  }

  // ExpectRevokingRotates: revoking `tablet` makes a remaining holder rotate the keyring; the
  // other takes the new epoch; the tablet gets none (what is written from now on is not its).
  void ExpectRevokingRotates(int laptop, int phone, int tablet, const std::string& passphrase) {
    CommandResult r;
    const auto epoch_of = [&](int engine) {
      const std::string out = Keys(engine, {"status"}).out;
      const size_t at = out.find(", epoch ");
      return at == std::string::npos ? std::string() : out.substr(at + 8, out.find('\n', at) - at - 8);
    };
    r = c_->Convergectl({"devices", "revoke", c_->DeviceIdOf("tablet")});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_TRUE(WaitFor([&] { return epoch_of(laptop) == "2" && epoch_of(phone) == "2"; }, absl::Seconds(30)))
        << epoch_of(laptop) << " / " << epoch_of(phone) << "; logs in " << c_->logs_dir();
    r = c_->Convergectl({"namespaces", "keys", "vault"});
    EXPECT_EQ(std::vector<std::string>(absl::StrSplit(r.out, "holds epoch 2")).size(), 3u) << r.out;
    // And by hand, with the recovery key re-wrapped: epoch 3 everywhere it belongs.
    r = Keys(phone, {"rotate", "--passphrase_file=" + PassphraseFile("pass", passphrase)});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_TRUE(WaitFor([&] { return epoch_of(laptop) == "3" && epoch_of(phone) == "3"; }, absl::Seconds(30)))
        << epoch_of(laptop) << " / " << epoch_of(phone);
    // Sealed under epoch 3, a new file travels between them; the revoked tablet gets nothing.
    WriteFile(c_->folder(laptop) + "/after-rotation.txt", "written under epoch 3");
    ASSERT_TRUE(WaitFor([&] { return ReadFile(c_->folder(phone) + "/after-rotation.txt") == "written under epoch 3"; },
                        absl::Seconds(30)));
    EXPECT_FALSE(std::filesystem::exists(c_->folder(tablet) + "/after-rotation.txt"));
  }

  std::string dir_;
  std::unique_ptr<Cluster> c_;
};

TEST_F(E2eKeysTest, TheKeyringReachesEachDeviceOnlyAsTheUserApprovedAndNoServiceHoldsItInTheClear) {
  CommandResult r = Keys(0, {"status"});
  EXPECT_EQ(r.exit_code, 1);  // a plain namespace has no keys
  EXPECT_TRUE(absl::StrContains(r.err, "not end-to-end encrypted")) << r.err;
  const int laptop = kLaptop, phone = kPhone, tablet = 4;
  r = Keys(laptop, {"status"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "the namespace has none yet")) << r.out;
  const std::string passphrase = "correct horse battery staple";
  r = Keys(laptop, {"init", "--passphrase_file=" + PassphraseFile("pass", passphrase)});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string keyring_id = KeyringId(r.out), laptop_fp = After(r.out, "this device's key: ");
  ASSERT_EQ(keyring_id.size(), 32u) << r.out;
  EXPECT_EQ(Keys(phone, {"init"}).exit_code, 1);  // one keyring per namespace

  // The phone asks; the laptop lists it waiting, with the fingerprint the phone shows.
  r = Keys(phone, {"request"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string phone_fp = After(r.out, "this device's key: ");
  const std::string phone_id = c_->DeviceIdOf("phone");
  ASSERT_FALSE(phone_id.empty());
  r = Keys(laptop, {"status"});
  bool listed = false;
  for (absl::string_view line : absl::StrSplit(r.out, '\n')) {
    listed |= absl::StrContains(line, phone_id) && absl::StrContains(line, "waiting for approval") &&
              absl::StrContains(line, phone_fp);
  }
  EXPECT_TRUE(listed) << r.out;
  // Approving with any other fingerprint (here the laptop's own) seals nothing.
  r = Keys(laptop, {"approve", phone_id, "--fingerprint=" + laptop_fp});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "not the one given")) << r.err;
  EXPECT_EQ(Keys(phone, {"accept", "--fingerprint=" + laptop_fp}).exit_code, 1);  // nothing granted yet
  r = Keys(laptop, {"approve", phone_id, "--fingerprint=" + phone_fp});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The phone accepts only with the approving device's fingerprint.
  r = Keys(phone, {"accept", "--fingerprint=" + phone_fp});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "not the approving device's")) << r.err;
  r = Keys(phone, {"accept", "--fingerprint=" + laptop_fp});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(KeyringId(r.out), keyring_id);

  // The tablet recovers it from the passphrase (a wrong one gets nothing).
  r = Keys(tablet, {"recover", "--passphrase_file=" + PassphraseFile("wrong", "correct horse battery stapler")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "wrong recovery passphrase")) << r.err;
  r = Keys(tablet, {"recover", "--passphrase_file=" + PassphraseFile("pass", passphrase)});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(KeyringId(r.out), keyring_id);
  r = Keys(laptop, {"status"});
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 5) << r.out;  // 2 lines + 3 devices
  EXPECT_FALSE(absl::StrContains(r.out, "waiting")) << r.out;
  // The operator sees the same: which devices hold the keyring, their fingerprints, no key.
  r = c_->Convergectl({"namespaces", "keys", "vault"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "keyring " + keyring_id)) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, phone_fp)) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, laptop_fp)) << r.out;
  const std::vector<std::string> holders = absl::StrSplit(r.out, "holds epoch 1");
  EXPECT_EQ(holders.size(), 4u) << r.out;  // three devices

  ExpectServicesHoldNoKeyOf(laptop, keyring_id, passphrase);

  ExpectRevokingRotates(laptop, phone, tablet, passphrase);
}

TEST_F(E2eKeysTest, AnEncryptedNamespaceSyncsOnlyBetweenDevicesWithItsKeyringAndTheStoreSeesNoPlaintext) {
  const int laptop = kLaptop, phone = kPhone;
  CommandResult r;
  const std::string name = "plan-for-2027.txt", secret = "the secret plan, in words anyone could grep for";
  WriteFile(c_->folder(laptop) + "/Private/" + name, secret);
  // Without the keyring nothing leaves the laptop, and its status says why.
  absl::SleepFor(absl::Seconds(1));
  r = Keys(laptop, {"init"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string laptop_fp = After(r.out, "this device's key: ");
  r = Keys(phone, {"request"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string phone_fp = After(r.out, "this device's key: ");
  absl::SleepFor(absl::Seconds(1));
  EXPECT_FALSE(std::filesystem::exists(c_->folder(phone) + "/Private/" + name));  // no keyring yet
  ASSERT_EQ(Keys(laptop, {"approve", c_->DeviceIdOf("phone"), "--fingerprint=" + phone_fp}).exit_code, 0);
  ASSERT_EQ(Keys(phone, {"accept", "--fingerprint=" + laptop_fp}).exit_code, 0);
  ASSERT_TRUE(WaitFor([&] { return ReadFile(c_->folder(phone) + "/Private/" + name) == secret; }, absl::Seconds(30)))
      << "logs in " << c_->logs_dir();
  WriteFile(c_->folder(phone) + "/Private/reply.txt", "an answer from the phone, also secret");
  ASSERT_TRUE(WaitFor([&] { return ReadFile(c_->folder(laptop) + "/Private/reply.txt") ==
                                   "an answer from the phone, also secret"; },
                      absl::Seconds(30)));
  // The longest name a folder may hold travels too: sealed, it is 436 characters long.
  const std::string longest = "Private/" + std::string(251, 'L') + ".txt";
  WriteFile(c_->folder(phone) + "/" + longest, "a name of 255 bytes");
  ASSERT_TRUE(WaitFor([&] { return ReadFile(c_->folder(laptop) + "/" + longest) == "a name of 255 bytes"; },
                      absl::Seconds(30)))
      << "logs in " << c_->logs_dir();
  // Every commit was signed and every pulled one checked: both devices verified the same log
  // (their heads, kept in the folders' state, agree), and told each other so without a fork.
  const auto head_of = [&](int engine) { return ReadFile(c_->folder(engine) + "/.converge/keys/log_head"); };
  ASSERT_TRUE(WaitFor([&] { return !head_of(laptop).empty() && head_of(laptop) == head_of(phone); }, absl::Seconds(30)))
      << head_of(laptop) << " / " << head_of(phone);
  EXPECT_TRUE(absl::StartsWith(head_of(laptop), "converge log head v1 ")) << head_of(laptop);
  EXPECT_FALSE(absl::StartsWith(head_of(laptop), "converge log head v1 0 ")) << head_of(laptop);
  // Neither names nor contents of the encrypted namespace are in the store's or management's
  // data; a file of the plain namespace is (the search would find them).
  WriteFile(c_->folder(0) + "/plain-marker.txt", "plain namespace marker 8d1f0c2e");
  ASSERT_TRUE(WaitFor([&] { return ReadFile(c_->folder(1) + "/plain-marker.txt") == "plain namespace marker 8d1f0c2e"; },
                      absl::Seconds(30)));
  const std::string folders = dir_ + "/folders";
  EXPECT_FALSE(FilesHolding(dir_ + "/data", folders, "plain namespace marker 8d1f0c2e").empty());
  EXPECT_FALSE(FilesHolding(dir_ + "/data", folders, "plain-marker").empty());
  // Nor are their plaintext SHA-256s (raw or hex), which would tell a known file anywhere; the
  // plain namespace's file's is there (its chunk's id).
  const auto raw = [](const std::string& text) { return DigestToBytes(HashOf(text)); };
  const auto hex = [](const std::string& text) { return DigestToHex(HashOf(text)); };
  EXPECT_FALSE(FilesHolding(dir_ + "/data", folders, raw("plain namespace marker 8d1f0c2e")).empty());
  const std::string reply = "an answer from the phone, also secret";
  for (const std::string& needle : {secret, std::string("an answer from the phone"), name, std::string("Private"),
                                    std::string("reply.txt"), raw(secret), hex(secret), raw(reply), hex(reply)}) {
    EXPECT_TRUE(FilesHolding(dir_ + "/data", folders, needle).empty()) << needle;
  }
}

TEST_F(E2eKeysTest, APlainNamespaceConvertsOnlineAndItsDevicesGoOnSealedKeepingTheirFiles) {
  const std::string before = "written before the conversion, plain in the store's history";
  WriteFile(c_->folder(0) + "/Notes/before.txt", before);
  ASSERT_TRUE(WaitFor([&] { return ReadFile(c_->folder(1) + "/Notes/before.txt") == before; }, absl::Seconds(30)));
  EXPECT_NE(Keys(0, {"status"}).exit_code, 0);  // a plain namespace has no keys
  CommandResult r = c_->Convergectl({"namespaces", "encrypt", "shared"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "is end-to-end encrypted from now on")) << r.out;
  // Both engines restart as an encrypted namespace's and wait for its keyring.
  for (int engine : {0, 1}) {
    ASSERT_TRUE(WaitFor([&] { return Keys(engine, {"status"}).exit_code == 0; }, absl::Seconds(30)))
        << c_->name(engine) << " did not restart as an encrypted namespace's engine; logs in " << c_->logs_dir();
  }
  r = Keys(0, {"init"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string first_fp = After(r.out, "this device's key: ");
  r = Keys(1, {"request"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(Keys(0, {"approve", c_->DeviceIdOf("plain-b"), "--fingerprint=" + After(r.out, "this device's key: ")})
                .exit_code,
            0);
  ASSERT_EQ(Keys(1, {"accept", "--fingerprint=" + first_fp}).exit_code, 0);
  // New files travel sealed both ways; what both had stays, unchanged and without conflicts.
  const std::string after = "written after the conversion, sealed: 5c0e91d7";
  WriteFile(c_->folder(0) + "/Notes/after.txt", after);
  ASSERT_TRUE(WaitFor([&] { return ReadFile(c_->folder(1) + "/Notes/after.txt") == after; }, absl::Seconds(60)))
      << "logs in " << c_->logs_dir();
  WriteFile(c_->folder(1) + "/Notes/before.txt", "edited after the conversion on the second device");
  ASSERT_TRUE(WaitFor([&] {
    return ReadFile(c_->folder(0) + "/Notes/before.txt") == "edited after the conversion on the second device";
  }, absl::Seconds(30)));
  for (int engine : {0, 1}) {
    for (const auto& e : std::filesystem::recursive_directory_iterator(c_->folder(engine) + "/Notes")) {
      EXPECT_FALSE(absl::StrContains(e.path().filename().string(), "conflict")) << e.path();
    }
  }
  // The store holds the history from before the conversion as it was, and nothing written after.
  const std::string folders = dir_ + "/folders";
  EXPECT_FALSE(FilesHolding(dir_ + "/data", folders, before).empty());
  for (const std::string& needle : {after, std::string("after.txt"), std::string("edited after the conversion"),
                                    DigestToBytes(HashOf(after))}) {
    EXPECT_TRUE(FilesHolding(dir_ + "/data", folders, needle).empty()) << needle;
  }
  r = c_->Convergectl({"namespaces", "list"});
  bool listed = false;
  for (absl::string_view line : absl::StrSplit(r.out, '\n')) {
    if (absl::StartsWith(line, "shared ")) listed = absl::StrContains(line, "encrypted");
  }
  EXPECT_TRUE(listed) << r.out;
  r = c_->Convergectl({"namespaces", "status", "shared"});
  EXPECT_TRUE(absl::StrContains(r.out, "end-to-end encrypted since seq ")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "up to that seq are plain")) << r.out;
}

}  // namespace
}  // namespace converge::testing
