// The log of an end-to-end encrypted namespace, made checkable against its store.
//
// Every commit is signed by the device that made it, over the namespace, the device, the head of
// the log the device had seen (its seq and chain hash) and a hash of the commit's body as the
// store keeps it. Every engine chains the log as the store hands it out:
//
//   head(0) = 0^32
//   head(n) = BLAKE2b-256("converge log" | head(n-1) | n | signing bytes of commit n | signature)
//
// and LogVerifier refuses what an honest store never shows: a gap (dropped commits), a seq seen
// before (replay, reorder, rollback), a bad signature or an unknown device (invented commits),
// a commit accepted before shown again under a later seq (replay), a commit whose "seen" head
// is not this chain's head at that seq, and a head announced by
// another device (through the notification stream or on a pull) that differs from this chain's
// at the same seq: the store showed the two devices different logs (a fork).
#ifndef CONVERGE_COMMON_CRYPTO_LOG_CHAIN_H_
#define CONVERGE_COMMON_CRYPTO_LOG_CHAIN_H_

#include <cstdint>
#include <functional>
#include <deque>
#include <map>
#include <set>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/base/sha256.h"
#include "common/crypto/device_keys.h"

namespace converge::crypto {

struct LogHead {
  uint64_t seq = 0;
  Digest hash{};  // all zero at seq 0
  bool operator==(const LogHead& o) const { return seq == o.seq && hash == o.hash; }
};

struct SignedCommit {
  std::string namespace_id;
  std::string device_id;
  LogHead seen;        // the head the device had applied when it committed
  Digest body{};       // hash of the commit's body as stored (encrypted records, ids)
  std::string signature;
};

// An attestation: a SignedCommit as it travels with its commit (Commit::attestation), without the
// namespace and device (the commit names them): a format byte, the seen head's seq (8 bytes LE)
// and hash, the body hash and the Ed25519 signature.
inline constexpr size_t kAttestationBytes = 1 + 8 + 32 + 32 + 64;
std::string EncodeAttestation(const SignedCommit& c);
// DecodeAttestation: InvalidArgument unless `bytes` is one.
absl::StatusOr<SignedCommit> DecodeAttestation(absl::string_view bytes, std::string namespace_id,
                                               std::string device_id);

// SigningBytes: the canonical, length-prefixed bytes a device signs for `c` (signature excluded).
std::string SigningBytes(const SignedCommit& c);
// HeadSigningBytes: what a device signs to announce the head it verified (LogVerifier::
// CompareHead on the other devices).
std::string HeadSigningBytes(absl::string_view namespace_id, absl::string_view device_id, const LogHead& head);
// Sign fills c->signature.
void Sign(const DeviceKeys& device, SignedCommit* c);
// NextHead: the head after appending `c` as commit `prev.seq + 1`.
LogHead NextHead(const LogHead& prev, const SignedCommit& c);

// HeadHistory: the heads an engine has verified, kept where the engine keeps its index. Only
// heads at or below the verifier's own are ever asked for.
class HeadHistory {
 public:
  virtual ~HeadHistory() = default;
  virtual std::optional<Digest> HeadAt(uint64_t seq) const = 0;
  virtual void Record(const LogHead& head) = 0;
};

// MemoryHeadHistory: every head in memory (tests, and short logs).
class MemoryHeadHistory : public HeadHistory {
 public:
  std::optional<Digest> HeadAt(uint64_t seq) const override;
  void Record(const LogHead& head) override { heads_[head.seq] = head.hash; }

 private:
  std::map<uint64_t, Digest> heads_;
};

inline constexpr size_t kMaxRememberedCommits = 1 << 16;

class LogVerifier {
 public:
  // KeyOf: a member device's public key, or nullptr for a device that is not (or no longer) one.
  using KeyOf = std::function<const DevicePublicKey*(absl::string_view device_id)>;
  // Starts at `head` (the last one this engine verified: persisted, so a store that rolls back
  // past it is caught after a restart too). `history` must outlive the verifier.
  LogVerifier(std::string namespace_id, KeyOf key_of, HeadHistory* history, LogHead head = {});

  // Accept checks `c` as commit `seq` and moves the head past it. DataLoss, naming what the
  // store did, when it must not be applied; the head does not move then.
  absl::Status Accept(uint64_t seq, const SignedCommit& c);
  // CompareHead checks a head another device announced. A head beyond this one is kept and
  // checked when this chain reaches its seq. DataLoss on a fork.
  absl::Status CompareHead(const LogHead& announced);

  // CheckCaughtUp: the store says its log ends at `store_head` (a pull that came back with
  // nothing more). DataLoss if another device announced a later head: the store withholds
  // commits from this device, or rolled back.
  absl::Status CheckCaughtUp(uint64_t store_head) const;

  const LogHead& head() const { return head_; }
  // Remember: the signature of a commit accepted before (by a verifier of this device before
  // it restarted), for the replay check; the oldest beyond kMaxRememberedCommits is forgotten.
  void Remember(const std::string& signature);
  // remembered: the signatures kept for the replay check, oldest first.
  const std::deque<std::string>& remembered() const { return signature_order_; }
  // announced_through: the highest seq another device announced beyond this head (0: none).
  uint64_t announced_through() const { return announced_.empty() ? 0 : announced_.rbegin()->first; }

 private:
  const std::string namespace_id_;
  const KeyOf key_of_;
  HeadHistory* const history_;
  LogHead head_;
  std::map<uint64_t, Digest> announced_;  // heads announced ahead of this one (bounded)
  // Signatures of the last kMaxRememberedCommits commits accepted: a commit shown again under a
  // new seq is a replay (Ed25519 signs the same bytes alike; an honest device never commits
  // the same body on the same head twice: the store would refuse its stale bases).
  std::set<std::string> signatures_;
  std::deque<std::string> signature_order_;
};

}  // namespace converge::crypto

#endif  // CONVERGE_COMMON_CRYPTO_LOG_CHAIN_H_
