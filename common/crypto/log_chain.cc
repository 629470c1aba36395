#include "common/crypto/log_chain.h"

#include <sodium.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/crypto/sodium.h"

namespace converge::crypto {
namespace {

constexpr absl::string_view kSignDomain = "converge commit v1";
constexpr absl::string_view kChainDomain = "converge log v1";
constexpr size_t kMaxAnnounced = 1024;

void AppendField(std::string* out, absl::string_view bytes) {
  AppendU64(out, bytes.size());
  out->append(bytes.data(), bytes.size());
}

absl::string_view View(const Digest& d) { return absl::string_view(reinterpret_cast<const char*>(d.data()), d.size()); }

constexpr char kAttestationFormat = 1;

}  // namespace

std::string EncodeAttestation(const SignedCommit& c) {
  std::string out(1, kAttestationFormat);
  AppendU64(&out, c.seen.seq);
  out.append(View(c.seen.hash).data(), kDigestSize);
  out.append(View(c.body).data(), kDigestSize);
  out.append(c.signature);
  return out;
}

absl::StatusOr<SignedCommit> DecodeAttestation(absl::string_view bytes, std::string namespace_id,
                                               std::string device_id) {
  if (bytes.size() != kAttestationBytes || bytes[0] != kAttestationFormat) {
    return absl::InvalidArgumentError(absl::StrCat("a commit attestation is ", kAttestationBytes,
                                                   " bytes of format ", int{kAttestationFormat}));
  }
  SignedCommit c;
  c.namespace_id = std::move(namespace_id);
  c.device_id = std::move(device_id);
  bytes.remove_prefix(1);
  if (!ReadU64(&bytes, &c.seen.seq)) return absl::InvalidArgumentError("a short commit attestation");
  std::memcpy(c.seen.hash.data(), bytes.data(), kDigestSize);
  bytes.remove_prefix(kDigestSize);
  std::memcpy(c.body.data(), bytes.data(), kDigestSize);
  bytes.remove_prefix(kDigestSize);
  c.signature = std::string(bytes.substr(0, kSignatureBytes));
  return c;
}

std::string SigningBytes(const SignedCommit& c) {
  std::string out;
  AppendField(&out, kSignDomain);
  AppendField(&out, c.namespace_id);
  AppendField(&out, c.device_id);
  AppendU64(&out, c.seen.seq);
  out.append(View(c.seen.hash).data(), kDigestSize);
  out.append(View(c.body).data(), kDigestSize);
  return out;
}

std::string HeadSigningBytes(absl::string_view namespace_id, absl::string_view device_id, const LogHead& head) {
  std::string out;
  AppendField(&out, "converge head v1");
  AppendField(&out, namespace_id);
  AppendField(&out, device_id);
  AppendU64(&out, head.seq);
  out.append(View(head.hash).data(), kDigestSize);
  return out;
}

void Sign(const DeviceKeys& device, SignedCommit* c) { c->signature = device.Sign(SigningBytes(*c)); }

LogHead NextHead(const LogHead& prev, const SignedCommit& c) {
  EnsureSodium();
  std::string in;
  AppendField(&in, kChainDomain);
  in.append(View(prev.hash).data(), kDigestSize);
  AppendU64(&in, prev.seq + 1);
  AppendField(&in, SigningBytes(c));
  AppendField(&in, c.signature);
  LogHead next{prev.seq + 1, {}};
  crypto_generichash(next.hash.data(), next.hash.size(), reinterpret_cast<const unsigned char*>(in.data()),
                     in.size(), nullptr, 0);
  return next;
}

std::optional<Digest> MemoryHeadHistory::HeadAt(uint64_t seq) const {
  const auto it = heads_.find(seq);
  if (it == heads_.end()) return std::nullopt;
  return it->second;
}

LogVerifier::LogVerifier(std::string namespace_id, KeyOf key_of, HeadHistory* history, LogHead head)
    : namespace_id_(std::move(namespace_id)), key_of_(std::move(key_of)), history_(history), head_(head) {
  history_->Record(head_);
}

absl::Status LogVerifier::Accept(uint64_t seq, const SignedCommit& c) {
  const auto refuse = [&](absl::string_view what) {
    return absl::DataLossError(absl::StrCat("the store's log is not the namespace's: commit ", seq, " ", what,
                                            " (this device has verified up to ", head_.seq, ")"));
  };
  if (seq <= head_.seq) return refuse("was already applied: a replay, reorder or rollback");
  if (seq != head_.seq + 1) return refuse(absl::StrCat("follows a gap: ", seq - head_.seq - 1, " commit(s) dropped"));
  if (c.namespace_id != namespace_id_) return refuse(absl::StrCat("belongs to namespace '", c.namespace_id, "'"));
  const DevicePublicKey* key = key_of_(c.device_id);
  if (key == nullptr) return refuse(absl::StrCat("is from '", c.device_id, "', not a member device"));
  if (!VerifySignature(*key, SigningBytes(c), c.signature)) return refuse("has no valid signature of its device");
  if (c.seen.seq >= seq) return refuse("claims to have seen itself or a later commit");
  if (signatures_.count(c.signature) > 0) return refuse("is a commit the log holds already, shown again: a replay");
  const std::optional<Digest> seen = history_->HeadAt(c.seen.seq);
  if (seen.has_value() && *seen != c.seen.hash) {
    return refuse(absl::StrCat("was made on a different log than this device's at seq ", c.seen.seq, " (a fork)"));
  }
  const LogHead next = NextHead(head_, c);
  const auto announced = announced_.find(seq);
  if (announced != announced_.end() && announced->second != next.hash) {
    return refuse("differs from the head another device announced for it (a fork)");
  }
  announced_.erase(announced_.begin(), announced_.upper_bound(seq));
  history_->Record(next);
  head_ = next;
  Remember(c.signature);
  return absl::OkStatus();
}

void LogVerifier::Remember(const std::string& signature) {
  if (!signatures_.insert(signature).second) return;
  signature_order_.push_back(signature);
  if (signature_order_.size() > kMaxRememberedCommits) {
    signatures_.erase(signature_order_.front());
    signature_order_.pop_front();
  }
}

absl::Status LogVerifier::CompareHead(const LogHead& announced) {
  if (announced.seq > head_.seq) {
    if (announced_.size() >= kMaxAnnounced) announced_.erase(std::prev(announced_.end()));
    announced_[announced.seq] = announced.hash;
    return absl::OkStatus();
  }
  const std::optional<Digest> mine = history_->HeadAt(announced.seq);
  if (mine.has_value() && *mine != announced.hash) {
    return absl::DataLossError(absl::StrCat("another device holds a different log at seq ", announced.seq,
                                            ": the store forked the namespace"));
  }
  return absl::OkStatus();
}

absl::Status LogVerifier::CheckCaughtUp(uint64_t store_head) const {
  if (!announced_.empty() && announced_.rbegin()->first > store_head) {
    return absl::DataLossError(absl::StrCat("another device announced commit ", announced_.rbegin()->first,
                                            " but the store's log ends at ", store_head,
                                            ": commits withheld or rolled back"));
  }
  return absl::OkStatus();
}

}  // namespace converge::crypto
