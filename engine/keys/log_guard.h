// LogGuard: this device's check that the store shows it the end-to-end encrypted namespace's
// real commit log (docs/security.md, "End-to-end encrypted namespaces").
//
// Every commit this device makes carries an attestation (common/crypto/log_chain.h): its
// signature over the namespace, the device, the log head the device had verified and a hash of
// the commit's body as the store keeps it. Every commit pulled is checked by a LogVerifier
// before anything of it is applied: a dropped, replayed, reordered, altered, invented or forked
// commit is refused with DataLoss naming what the store did. After that the guard stays failed
// (every later pull and commit gets the same error, shown in the engine's status) until the
// engine restarts, which checks again from the last head it verified.
//
// Member devices' keys come from management's key directory, the keys of granted devices, and
// are pinned on first sight: a device whose key changes later is not a member any more.
// The verified head is kept in `head_file` (written when the engine acks: the store compacts
// only what every device acked, so the log after the kept head is still there on restart), and
// the heads and signatures of the commits verified up to it in `head_file`.seen (appended before
// the head is written; rewritten past twice the window): a restarted engine still knows the last
// kMaxRecentHeads heads and kMaxRememberedCommits signatures it verified, so a store that shows
// a commit from before the restart again, or another one where a verified one was, is caught.
// A device that starts from the store's file table (new, or offline past compaction) starts
// its chain at the head the store gives with the table (Root); the heads other devices
// announce (CompareHead) catch a store that lied there.
//
// Thread-safe.
#ifndef CONVERGE_ENGINE_KEYS_LOG_GUARD_H_
#define CONVERGE_ENGINE_KEYS_LOG_GUARD_H_

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/crypto/device_keys.h"
#include "common/crypto/log_chain.h"
#include "common/model/model.h"
#include "engine/keys/key_directory_client.h"

namespace converge::engine {

// Heads kept in memory to check a commit's "seen" head and heads other devices announce.
inline constexpr size_t kMaxRecentHeads = 1 << 16;

// BodyDigest: what an attestation signs of a commit's versions, as the store keeps them (their
// seq and origin device are the store's to set, and left out).
Digest BodyDigest(const std::vector<FileVersion>& sealed);

class LogGuard {
 public:
  // Open reads the verified head from `head_file` (none yet: the start of the log). `directory`
  // must outlive this.
  static absl::StatusOr<std::unique_ptr<LogGuard>> Open(std::string head_file, std::string namespace_id,
                                                        std::string device_id, crypto::DeviceKeys device,
                                                        KeyDirectoryClient* directory);

  // Attest: the attestation of a commit of `sealed` made now. DataLoss once the guard failed.
  absl::StatusOr<std::string> Attest(const std::vector<FileVersion>& sealed);
  // Committed: the store made the commit attested `attestation` its seq `seq`. When it follows
  // the verified head directly it is verified now (the engine may not pull it back).
  void Committed(uint64_t seq, const std::string& attestation);

  // Check: a pulled commit, before it is applied. A commit at or below the verified head (pulled
  // again) must be the one verified then, as far as the kept heads reach.
  absl::Status Check(const Commit& sealed);
  // Table: the store listed its file table at `seq` with chain head `chain`. With `rooting` (the
  // store compacted the log past this device's head) a head beyond this one is taken as the new
  // start; a table older than the verified head, or a different hash at it, is DataLoss.
  absl::Status Table(uint64_t seq, const Digest& chain, bool rooting);
  // CompareHead: a head another device announced (fork check), its signature checked already.
  absl::Status CompareHead(const crypto::LogHead& announced);

  // A head as devices announce it to each other (through the notification service).
  struct SignedHead {
    std::string device_id;
    crypto::LogHead head;
    std::string signature;
  };
  // SignHead: this device's verified head, signed.
  SignedHead SignHead() const;
  // Announced: another device's announcement. One that does not verify under a member's key is
  // ignored (logged: the notification service cannot speak for a device); DataLoss on a fork.
  absl::Status Announced(const SignedHead& announced);
  // AnnouncedThrough: the highest seq other devices announced beyond this head (0: none): a
  // full pull that started after it must reach it (CaughtUp).
  uint64_t AnnouncedThrough() const;
  // CaughtUp: a pull came back with all the store has; `expected` is AnnouncedThrough before it
  // started. DataLoss if the store withheld what another device verified.
  absl::Status CaughtUp(uint64_t expected);
  // RolledBack: the store's log ends below the verified head (`why`: the store's words).
  // DataLoss, and the guard stops.
  absl::Status RolledBack(absl::string_view why);
  // Persist writes the verified head to the head file, then, when it moved, hands it signed to
  // the announcer (set_announce).
  absl::Status Persist();
  // set_announce: where Persist sends this device's head for the others (set before use).
  void set_announce(std::function<void(const SignedHead&)> fn) { announce_ = std::move(fn); }

  crypto::LogHead head() const;
  // failure: OK, or the DataLoss that stopped the guard.
  absl::Status failure() const;

 private:
  // RecentHeads: the last kMaxRecentHeads verified heads.
  class RecentHeads : public crypto::HeadHistory {
   public:
    std::optional<Digest> HeadAt(uint64_t seq) const override;
    void Record(const crypto::LogHead& head) override;

   private:
    std::map<uint64_t, Digest> heads_;
  };

  // A verified commit as the seen file keeps it: the head after it and its signature.
  struct Verified {
    crypto::LogHead head;
    std::string signature;
  };
  LogGuard(std::string head_file, std::string namespace_id, std::string device_id, crypto::DeviceKeys device,
           KeyDirectoryClient* directory, crypto::LogHead head, const std::vector<Verified>& seen);
  // Accept: the verifier's Accept, the commit kept for the seen file.
  absl::Status Accept(uint64_t seq, const crypto::SignedCommit& c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // AppendSeen adds `fresh` to the seen file (and rewrites it with the window's last records
  // when it has grown past twice the window).
  absl::Status AppendSeen(const std::vector<Verified>& fresh);
  const crypto::DevicePublicKey* KeyOf(absl::string_view device_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartAt(const crypto::LogHead& head) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Fail(absl::Status s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string head_file_;
  const std::string namespace_id_;
  const std::string device_id_;
  const crypto::DeviceKeys device_;
  KeyDirectoryClient* const directory_;
  mutable absl::Mutex mu_;
  RecentHeads heads_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<crypto::LogVerifier> verifier_ ABSL_GUARDED_BY(mu_);
  absl::Status failure_ ABSL_GUARDED_BY(mu_);
  // Pinned member keys (std::map: the verifier keeps pointers into it).
  std::map<std::string, crypto::DevicePublicKey, std::less<>> keys_ ABSL_GUARDED_BY(mu_);
  absl::Status list_status_ ABSL_GUARDED_BY(mu_);  // of the last listing of member keys
  std::set<std::string, std::less<>> revoked_ ABSL_GUARDED_BY(mu_);  // listed as revoked
  std::function<void(const SignedHead&)> announce_;
  uint64_t persisted_seq_ ABSL_GUARDED_BY(mu_) = 0;  // the head Persist last wrote
  std::vector<Verified> unpersisted_ ABSL_GUARDED_BY(mu_);  // verified since Persist last wrote
  size_t seen_records_ = 0;  // in the seen file (Open, then Persist: one caller at a time)
  bool announced_once_ ABSL_GUARDED_BY(mu_) = false;  // of the last listing of member keys
};

}  // namespace converge::engine

#endif  // CONVERGE_ENGINE_KEYS_LOG_GUARD_H_
