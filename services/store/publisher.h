// Publisher: tells the notification service(s) that a namespace reached a seq. Implementations
// never block a commit (notify_client.h: over gRPC; converge-server: to its hub in process).
//
// Thread-safe.
#ifndef CONVERGE_SERVICES_STORE_PUBLISHER_H_
#define CONVERGE_SERVICES_STORE_PUBLISHER_H_

#include <cstdint>
#include <string>

namespace converge::store {

class Publisher {
 public:
  virtual ~Publisher() = default;
  // `committed_at_unix_micros`: when the commit became durable (for propagation latency).
  virtual void Publish(const std::string& ns, uint64_t seq, int64_t committed_at_unix_micros) = 0;
};

}  // namespace converge::store

#endif  // CONVERGE_SERVICES_STORE_PUBLISHER_H_
