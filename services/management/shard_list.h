// ShardList: the store shards management knows, in shard order. A shard's index names it for good
// (users are placed on an index), so the list is only ever appended to: from --store at start,
// and, with the shard map in etcd, as operators add shards (every replica follows it).
#ifndef CONVERGE_SERVICES_MANAGEMENT_SHARD_LIST_H_
#define CONVERGE_SERVICES_MANAGEMENT_SHARD_LIST_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace converge::management {

// ValidateShardAddress: "host:port" (a name, an IPv4 address or a bracketed IPv6 one), the
// form management hands engines; InvalidArgument otherwise.
inline absl::Status ValidateShardAddress(const std::string& address) {
  const size_t colon = address.rfind(':');
  int port = 0;
  const bool ok = !address.empty() && address.size() <= 255 && colon != std::string::npos && colon > 0 &&
                  absl::SimpleAtoi(address.substr(colon + 1), &port) && port > 0 && port < 65536 &&
                  address.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:[]") ==
                      std::string::npos;
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("'", address.substr(0, 80), "' is not a store address (host:port)"));
}

class ShardList {
 public:
  explicit ShardList(std::vector<std::string> shards = {}) : shards_(std::move(shards)) {}

  size_t size() const {
    absl::MutexLock lock(&mu_);
    return shards_.size();
  }
  std::optional<std::string> address(size_t i) const {
    absl::MutexLock lock(&mu_);
    if (i >= shards_.size()) return std::nullopt;
    return shards_[i];
  }
  std::vector<std::string> all() const {
    absl::MutexLock lock(&mu_);
    return shards_;
  }
  // Extend takes a newer list: it must begin with the shards known, at the same addresses; the
  // rest are appended. FailedPrecondition (and no change) if it reorders, renames or drops one.
  absl::Status Extend(const std::vector<std::string>& shards) {
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < shards_.size(); ++i) {
      if (i >= shards.size() || shards[i] != shards_[i]) {
        return absl::FailedPreconditionError(absl::StrCat(
            "store shard ", i, " is ", shards_[i], " here but ", i < shards.size() ? shards[i] : "missing",
            " in the new shard list (shards are only ever appended)"));
      }
    }
    shards_ = shards;
    return absl::OkStatus();
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<std::string> shards_ ABSL_GUARDED_BY(mu_);
};

// ShardDirectory: where every replica's shard list is kept (etcd's shard map). Add appends a
// shard there and returns its index.
class ShardDirectory {
 public:
  virtual ~ShardDirectory() = default;
  virtual absl::StatusOr<uint32_t> Add(const std::string& address) = 0;
};

}  // namespace converge::management

#endif  // CONVERGE_SERVICES_MANAGEMENT_SHARD_LIST_H_
