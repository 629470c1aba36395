#include "engine/keys/log_guard.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/base/coding.h"
#include "common/base/files.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"

namespace converge::engine {
namespace {

constexpr absl::string_view kHeadFormat = "converge log head v1";

std::string HexOf(const Digest& d) {
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
}

// ParseHead reads "converge log head v1 SEQ HEX" (a missing file is the start of the log).
absl::StatusOr<crypto::LogHead> ReadHead(const std::string& path) {
  std::ifstream in(path);
  if (!in) return crypto::LogHead{};
  std::string line;
  std::getline(in, line);
  const auto corrupt = [&] { return absl::DataLossError(absl::StrCat(path, ": not a log head file")); };
  if (!absl::StartsWith(line, kHeadFormat)) return corrupt();
  std::vector<std::string> parts = absl::StrSplit(line.substr(kHeadFormat.size()), ' ', absl::SkipEmpty());
  crypto::LogHead head;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &head.seq) || parts[1].size() != 2 * kDigestSize) {
    return corrupt();
  }
  const std::string bytes = absl::HexStringToBytes(parts[1]);
  std::memcpy(head.hash.data(), bytes.data(), kDigestSize);
  return head;
}

// The seen file: records of a verified commit's seq (8 bytes, big-endian), the head's hash after it and
// its signature, oldest first. A torn last record (a crash mid-append) is left out.
constexpr size_t kSignatureBytes = 64;
constexpr size_t kSeenRecordBytes = 8 + kDigestSize + kSignatureBytes;

std::string SeenPath(const std::string& head_file) { return head_file + ".seen"; }

std::string SeenRecord(const crypto::LogHead& head, absl::string_view signature) {
  std::string out;
  PutFixed64BE(&out, head.seq);
  out.append(reinterpret_cast<const char*>(head.hash.data()), kDigestSize);
  out.append(signature.data(), signature.size());
  return out;
}

// ReadSeen: the records of the seen file at `path` (none if it is missing).
absl::StatusOr<std::string> ReadSeen(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::string();
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": unreadable"));
  std::string all = bytes.str();
  all.resize(all.size() - all.size() % kSeenRecordBytes);
  return all;
}

}  // namespace

Digest BodyDigest(const std::vector<FileVersion>& sealed) {
  Sha256 h;
  std::string count;
  PutVarint64(&count, sealed.size());
  h.Update(count);
  for (FileVersion v : sealed) {
    v.seq = 0;
    v.origin_device.clear();
    std::string record;
    PutLengthPrefixed(&record, EncodeFileVersion(v));
    h.Update(record);
  }
  return h.Finish();
}

std::optional<Digest> LogGuard::RecentHeads::HeadAt(uint64_t seq) const {
  const auto it = heads_.find(seq);
  if (it == heads_.end()) return std::nullopt;
  return it->second;
}

void LogGuard::RecentHeads::Record(const crypto::LogHead& head) {
  heads_[head.seq] = head.hash;
  while (heads_.size() > kMaxRecentHeads) heads_.erase(heads_.begin());
}

absl::StatusOr<std::unique_ptr<LogGuard>> LogGuard::Open(std::string head_file, std::string namespace_id,
                                                         std::string device_id, crypto::DeviceKeys device,
                                                         KeyDirectoryClient* directory) {
  CONVERGE_ASSIGN_OR_RETURN(crypto::LogHead head, ReadHead(head_file));
  // What was verified up to the kept head (records past it are verified again after a restart).
  CONVERGE_ASSIGN_OR_RETURN(const std::string records, ReadSeen(SeenPath(head_file)));
  const size_t total = records.size() / kSeenRecordBytes;
  std::vector<Verified> seen;
  for (size_t i = 0; i < total; ++i) {
    const char* r = records.data() + i * kSeenRecordBytes;
    Verified v;
    v.head.seq = DecodeFixed64BE(absl::string_view(r, 8));
    if (v.head.seq > head.seq) continue;
    std::memcpy(v.head.hash.data(), r + 8, kDigestSize);
    v.signature.assign(r + 8 + kDigestSize, kSignatureBytes);
    seen.push_back(std::move(v));
  }
  const size_t window = std::max(kMaxRecentHeads, crypto::kMaxRememberedCommits);
  if (seen.size() > window) seen.erase(seen.begin(), seen.end() - window);
  if (seen.size() != total) {
    std::string kept;
    for (const Verified& v : seen) kept += SeenRecord(v.head, v.signature);
    CONVERGE_RETURN_IF_ERROR(WriteFileAtomically(SeenPath(head_file), kept));
  }
  auto guard = std::unique_ptr<LogGuard>(new LogGuard(std::move(head_file), std::move(namespace_id),
                                                      std::move(device_id), std::move(device), directory, head, seen));
  guard->seen_records_ = seen.size();
  return guard;
}

LogGuard::LogGuard(std::string head_file, std::string namespace_id, std::string device_id, crypto::DeviceKeys device,
                   KeyDirectoryClient* directory, crypto::LogHead head, const std::vector<Verified>& seen)
    : head_file_(std::move(head_file)),
      namespace_id_(std::move(namespace_id)),
      device_id_(std::move(device_id)),
      device_(std::move(device)),
      directory_(directory) {
  absl::MutexLock lock(&mu_);
  keys_.emplace(device_id_, device_.public_key());
  StartAt(head);
  persisted_seq_ = head.seq;
  for (const Verified& v : seen) {
    heads_.Record(v.head);
    verifier_->Remember(v.signature);
  }
}

void LogGuard::StartAt(const crypto::LogHead& head) {
  auto next = std::make_unique<crypto::LogVerifier>(
      namespace_id_, [this](absl::string_view id) ABSL_NO_THREAD_SAFETY_ANALYSIS { return KeyOf(id); }, &heads_,
      head);
  if (verifier_ != nullptr) {
    for (const std::string& signature : verifier_->remembered()) next->Remember(signature);  // replays still
  }
  verifier_ = std::move(next);
}

absl::Status LogGuard::Accept(uint64_t seq, const crypto::SignedCommit& c) {
  CONVERGE_RETURN_IF_ERROR(verifier_->Accept(seq, c));
  if (c.signature.size() == kSignatureBytes) {
    unpersisted_.push_back(Verified{verifier_->head(), c.signature});
    // Not persisted for a whole window: the oldest would be dropped from the file anyway.
    if (unpersisted_.size() > 2 * crypto::kMaxRememberedCommits) {
      unpersisted_.erase(unpersisted_.begin(), unpersisted_.begin() + crypto::kMaxRememberedCommits);
    }
  }
  return absl::OkStatus();
}

absl::Status LogGuard::AppendSeen(const std::vector<Verified>& fresh) {
  if (fresh.empty()) return absl::OkStatus();
  const std::string path = SeenPath(head_file_);
  std::string bytes;
  for (const Verified& v : fresh) bytes += SeenRecord(v.head, v.signature);
  if (seen_records_ + fresh.size() > 2 * crypto::kMaxRememberedCommits) {
    CONVERGE_ASSIGN_OR_RETURN(std::string all, ReadSeen(path));
    all += bytes;
    const size_t keep = crypto::kMaxRememberedCommits * kSeenRecordBytes;
    if (all.size() > keep) all.erase(0, all.size() - keep);
    CONVERGE_RETURN_IF_ERROR(WriteFileAtomically(path, all));
    seen_records_ = all.size() / kSeenRecordBytes;
    return absl::OkStatus();
  }
  const int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError(absl::StrCat("open ", path, ": ", std::strerror(errno)));
  absl::Status s;
  for (size_t done = 0; done < bytes.size() && s.ok();) {
    const ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) s = absl::InternalError(absl::StrCat("write ", path, ": ", std::strerror(errno)));
    if (n > 0) done += n;
  }
  if (s.ok() && fdatasync(fd) != 0) s = absl::InternalError(absl::StrCat("fdatasync ", path, ": ", std::strerror(errno)));
  close(fd);
  if (s.ok()) seen_records_ += fresh.size();
  return s;
}

const crypto::DevicePublicKey* LogGuard::KeyOf(absl::string_view device_id) {
  auto it = keys_.find(device_id);
  if (it == keys_.end()) {
    // Asked again for each commit of a device not pinned yet: one listing per such commit at
    // most, and a device that is not a member stops the guard at its first commit.
    absl::StatusOr<KeyListing> listing = directory_->List();
    list_status_ = listing.status();
    if (!listing.ok()) return nullptr;
    for (const KeyRecord& r : listing->records) {
      if (!r.granted) continue;  // not (yet) a member holding the keyring: its commits are not the namespace's
      absl::StatusOr<crypto::DevicePublicKey> key = crypto::DevicePublicKey::FromBytes(r.public_key);
      if (!key.ok()) continue;
      if (r.revoked) revoked_.insert(r.device_id);
      const auto pinned = keys_.find(r.device_id);
      if (pinned == keys_.end()) {
        keys_.emplace(r.device_id, *key);
      } else if (!(pinned->second == *key)) {
        GetLogger("engine")->error("management now lists another key for device '{}' than the one pinned here: "
                                   "its commits are refused",
                                   r.device_id);
        pinned->second = crypto::DevicePublicKey{};  // nothing verifies under it
      }
    }
    it = keys_.find(device_id);
  }
  return it == keys_.end() ? nullptr : &it->second;
}

absl::Status LogGuard::Fail(absl::Status s) {
  if (failure_.ok()) {
    GetLogger("engine")->error("{}: nothing more is applied or committed until this is looked into", s.message());
    failure_ = s;
  }
  return s;
}

absl::StatusOr<std::string> LogGuard::Attest(const std::vector<FileVersion>& sealed) {
  absl::MutexLock lock(&mu_);
  if (!failure_.ok()) return failure_;
  crypto::SignedCommit c;
  c.namespace_id = namespace_id_;
  c.device_id = device_id_;
  c.seen = verifier_->head();
  c.body = BodyDigest(sealed);
  crypto::Sign(device_, &c);
  return crypto::EncodeAttestation(c);
}

void LogGuard::Committed(uint64_t seq, const std::string& attestation) {
  absl::MutexLock lock(&mu_);
  if (!failure_.ok() || seq != verifier_->head().seq + 1) return;  // checked when pulled
  absl::StatusOr<crypto::SignedCommit> c = crypto::DecodeAttestation(attestation, namespace_id_, device_id_);
  if (!c.ok()) return;
  if (absl::Status accepted = Accept(seq, *c); !accepted.ok()) (void)Fail(accepted).ok();
}

absl::Status LogGuard::Check(const Commit& sealed) {
  absl::MutexLock lock(&mu_);
  if (!failure_.ok()) return failure_;
  absl::StatusOr<crypto::SignedCommit> c =
      crypto::DecodeAttestation(sealed.attestation, namespace_id_, sealed.origin_device);
  if (!c.ok()) {
    return Fail(absl::DataLossError(absl::StrCat("the store's log is not the namespace's: commit ", sealed.seq,
                                                 " has no valid attestation (", c.status().message(), ")")));
  }
  if (c->body != BodyDigest(sealed.files)) {
    return Fail(absl::DataLossError(absl::StrCat("the store's log is not the namespace's: commit ", sealed.seq,
                                                 " is not what its device signed (altered by the store)")));
  }
  const crypto::LogHead head = verifier_->head();
  if (sealed.seq > head.seq) {
    if (KeyOf(sealed.origin_device) == nullptr && !list_status_.ok()) {
      // Management out of reach is no evidence against the store: try again later.
      return absl::UnavailableError(absl::StrCat("member keys: ", list_status_.message()));
    }
    absl::Status accepted = Accept(sealed.seq, *c);
    return accepted.ok() ? accepted : Fail(accepted);
  }
  // Pulled again (this device's cursor is behind its verified head): it must chain as before.
  const std::optional<Digest> before = heads_.HeadAt(sealed.seq - 1);
  const std::optional<Digest> after = heads_.HeadAt(sealed.seq);
  if (before.has_value() && after.has_value() &&
      crypto::NextHead(crypto::LogHead{sealed.seq - 1, *before}, *c).hash != *after) {
    return Fail(absl::DataLossError(absl::StrCat("the store's log is not the namespace's: commit ", sealed.seq,
                                                 " differs from the one verified here before")));
  }
  return absl::OkStatus();
}

absl::Status LogGuard::Table(uint64_t seq, const Digest& chain, bool rooting) {
  absl::MutexLock lock(&mu_);
  if (!failure_.ok()) return failure_;
  const crypto::LogHead head = verifier_->head();
  if (seq < head.seq) {
    if (!rooting) return absl::OkStatus();  // a listing for people; the pull checks the log
    return Fail(absl::DataLossError(absl::StrCat("the store's log ends at ", seq, " but this device verified it up to ",
                                                 head.seq, ": the store rolled it back")));
  }
  if (seq == head.seq) {
    if (seq > 0 && chain != head.hash) {
      return Fail(absl::DataLossError(
          absl::StrCat("the store's log head at ", seq, " differs from the one verified here (a fork)")));
    }
    return absl::OkStatus();
  }
  if (!rooting) return verifier_->CompareHead(crypto::LogHead{seq, chain});
  GetLogger("engine")->warn("the store compacted its log past this device's verified head {}: checking from its "
                            "head {} ({}) on; other devices' heads check that one",
                            head.seq, seq, HexOf(chain).substr(0, 16));
  StartAt(crypto::LogHead{seq, chain});
  return absl::OkStatus();
}

absl::Status LogGuard::CompareHead(const crypto::LogHead& announced) {
  absl::MutexLock lock(&mu_);
  if (!failure_.ok()) return failure_;
  absl::Status s = verifier_->CompareHead(announced);
  return s.ok() ? s : Fail(s);
}

LogGuard::SignedHead LogGuard::SignHead() const {
  SignedHead out;
  out.device_id = device_id_;
  out.head = head();
  out.signature = device_.Sign(crypto::HeadSigningBytes(namespace_id_, device_id_, out.head));
  return out;
}

absl::Status LogGuard::Announced(const SignedHead& announced) {
  absl::MutexLock lock(&mu_);
  if (!failure_.ok()) return failure_;
  if (announced.device_id == device_id_) return absl::OkStatus();
  const crypto::DevicePublicKey* key = KeyOf(announced.device_id);
  // A revoked device's commits made before still verify; what it announces now counts for nothing
  // (it could raise a false alarm). Seen when its first commit or announcement made this device
  // list the keys, or at the notification service, which refuses its token.
  if (revoked_.count(announced.device_id) > 0) return absl::OkStatus();
  if (key == nullptr ||
      !crypto::VerifySignature(*key, crypto::HeadSigningBytes(namespace_id_, announced.device_id, announced.head),
                               announced.signature)) {
    GetLogger("engine")->warn("an announced head of '{}' that does not verify under a member's key: ignored",
                              announced.device_id);
    return absl::OkStatus();
  }
  absl::Status s = verifier_->CompareHead(announced.head);
  return s.ok() ? s : Fail(absl::DataLossError(absl::StrCat(s.message(), " (device '", announced.device_id, "')")));
}

uint64_t LogGuard::AnnouncedThrough() const {
  absl::MutexLock lock(&mu_);
  return verifier_->announced_through();
}

absl::Status LogGuard::CaughtUp(uint64_t expected) {
  absl::MutexLock lock(&mu_);
  if (!failure_.ok()) return failure_;
  const uint64_t head = verifier_->head().seq;
  if (head >= expected) return absl::OkStatus();
  return Fail(absl::DataLossError(absl::StrCat("another device verified the log up to ", expected,
                                               " but the store's log ends at ", head,
                                               " for this device: commits withheld, or the log rolled back")));
}

absl::Status LogGuard::RolledBack(absl::string_view why) {
  absl::MutexLock lock(&mu_);
  return Fail(absl::DataLossError(absl::StrCat("the store's log ends below the head this device verified (",
                                               verifier_->head().seq, "): it was rolled back (", why, ")")));
}

absl::Status LogGuard::Persist() {
  crypto::LogHead head;
  bool moved = false;
  std::vector<Verified> fresh;
  {
    absl::MutexLock lock(&mu_);
    head = verifier_->head();
    moved = head.seq != persisted_seq_ || !announced_once_;
    if (moved) fresh.swap(unpersisted_);
  }
  if (!moved) return absl::OkStatus();
  // What was verified up to the head first: a head file never names a head whose commits a
  // restart would not remember.
  if (absl::Status appended = AppendSeen(fresh); !appended.ok()) {
    absl::MutexLock lock(&mu_);
    unpersisted_.insert(unpersisted_.begin(), fresh.begin(), fresh.end());
    return appended;
  }
  CONVERGE_RETURN_IF_ERROR(
      WriteFileAtomically(head_file_, absl::StrCat(kHeadFormat, " ", head.seq, " ", HexOf(head.hash), "\n")));
  {
    absl::MutexLock lock(&mu_);
    persisted_seq_ = head.seq;
    announced_once_ = true;
  }
  if (announce_) announce_(SignHead());
  return absl::OkStatus();
}

crypto::LogHead LogGuard::head() const {
  absl::MutexLock lock(&mu_);
  return verifier_->head();
}

absl::Status LogGuard::failure() const {
  absl::MutexLock lock(&mu_);
  return failure_;
}

}  // namespace converge::engine
