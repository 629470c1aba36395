// SessionStore: the web console's signed-in sessions. A session holds the credential the
// console calls management with on the person's behalf (the operator token, or the user token
// from SignIn) — it never reaches the browser, which holds only the session id (an HttpOnly
// cookie) and the session's CSRF token (sent back in a header with every change).
//
// Sessions end when idle for `idle`, when their credential expires, on sign-out, and the oldest
// give way when `max_sessions` are open. Ids are 256 random bits, kept only as their SHA-256.
// Knows no HTTP. Thread-safe.
#ifndef CONVERGE_SERVICES_CONSOLE_SESSION_STORE_H_
#define CONVERGE_SERVICES_CONSOLE_SESSION_STORE_H_

#include <cstddef>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/base/clock.h"

namespace converge::console {

struct Session {
  std::string id;       // the cookie's value (only in what Create returns)
  std::string csrf;     // the header every change must carry
  std::string bearer;   // the credential management is called with
  std::string user_id;  // empty: an operator
  absl::Time expires_at;
  absl::Time last_used;
  bool is_operator() const { return user_id.empty(); }
};

class SessionStore {
 public:
  SessionStore(Clock* clock, absl::Duration idle, size_t max_sessions)
      : clock_(clock), idle_(idle), max_sessions_(max_sessions) {}

  // Create opens a session for `bearer` (an operator's when `user_id` is empty) that ends by
  // `expires_at` at the latest.
  Session Create(const std::string& bearer, const std::string& user_id, absl::Time expires_at);
  // Find: the open session of a cookie value (its use keeps it from idling out); nullopt for
  // an unknown, ended or malformed id.
  std::optional<Session> Find(const std::string& id);
  void Remove(const std::string& id);
  size_t size();

  // CsrfMatches compares in constant time.
  static bool CsrfMatches(const Session& s, const std::string& presented);

 private:
  bool Ended(const Session& s, absl::Time now) const;

  Clock* const clock_;
  const absl::Duration idle_;
  const size_t max_sessions_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Session> by_digest_ ABSL_GUARDED_BY(mu_);
};

}  // namespace converge::console

#endif  // CONVERGE_SERVICES_CONSOLE_SESSION_STORE_H_
