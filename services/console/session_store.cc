#include "services/console/session_store.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>

#include "absl/strings/escaping.h"
#include "common/base/sha256.h"

namespace converge::console {
namespace {

constexpr size_t kIdBytes = 32;

std::string RandomToken() {
  unsigned char bytes[kIdBytes];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) std::abort();  // no randomness: no sessions
  return absl::WebSafeBase64Escape(absl::string_view(reinterpret_cast<char*>(bytes), sizeof(bytes)));
}

std::string DigestOf(const std::string& id) { return DigestToBytes(HashOf(id)); }

}  // namespace

Session SessionStore::Create(const std::string& bearer, const std::string& user_id, absl::Time expires_at) {
  Session s;
  s.id = RandomToken();
  s.csrf = RandomToken();
  s.bearer = bearer;
  s.user_id = user_id;
  s.expires_at = expires_at;
  s.last_used = clock_->Now();
  Session kept = s;
  kept.id.clear();
  absl::MutexLock lock(&mu_);
  if (by_digest_.size() >= max_sessions_) {
    const absl::Time now = clock_->Now();
    for (auto it = by_digest_.begin(); it != by_digest_.end();) {
      if (Ended(it->second, now)) {
        by_digest_.erase(it++);
      } else {
        ++it;
      }
    }
    while (by_digest_.size() >= max_sessions_) {
      auto oldest = std::min_element(by_digest_.begin(), by_digest_.end(), [](const auto& a, const auto& b) {
        return a.second.last_used < b.second.last_used;
      });
      by_digest_.erase(oldest);
    }
  }
  by_digest_.emplace(DigestOf(s.id), std::move(kept));
  return s;
}

std::optional<Session> SessionStore::Find(const std::string& id) {
  if (id.empty() || id.size() > 2 * kIdBytes) return std::nullopt;
  const std::string digest = DigestOf(id);
  absl::MutexLock lock(&mu_);
  auto it = by_digest_.find(digest);
  if (it == by_digest_.end()) return std::nullopt;
  const absl::Time now = clock_->Now();
  if (Ended(it->second, now)) {
    by_digest_.erase(it);
    return std::nullopt;
  }
  it->second.last_used = now;
  return it->second;
}

void SessionStore::Remove(const std::string& id) {
  const std::string digest = DigestOf(id);
  absl::MutexLock lock(&mu_);
  by_digest_.erase(digest);
}

size_t SessionStore::size() {
  absl::MutexLock lock(&mu_);
  return by_digest_.size();
}

bool SessionStore::CsrfMatches(const Session& s, const std::string& presented) {
  return !s.csrf.empty() && presented.size() == s.csrf.size() &&
         CRYPTO_memcmp(presented.data(), s.csrf.data(), s.csrf.size()) == 0;
}

bool SessionStore::Ended(const Session& s, absl::Time now) const {
  return now >= s.expires_at || now - s.last_used >= idle_;
}

}  // namespace converge::console
