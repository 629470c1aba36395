// SHA-256 over OpenSSL (SHA-NI where the CPU has it): the content hash of chunks and files.
//
//   Sha256 h;  h.Update(data);  Digest d = h.Finish();
//   std::string hex = DigestToHex(d);
//
// Thread-compatible: one Sha256 per thread.
#ifndef CONVERGE_COMMON_BASE_SHA256_H_
#define CONVERGE_COMMON_BASE_SHA256_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace converge {

inline constexpr size_t kDigestSize = 32;
using Digest = std::array<uint8_t, kDigestSize>;

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(absl::string_view data);
  // Finish returns the digest; the object then starts over empty.
  Digest Finish();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

// HashOf returns SHA-256(data).
Digest HashOf(absl::string_view data);

// DigestToBytes / DigestFromBytes convert to and from the 32-byte wire form.
std::string DigestToBytes(const Digest& d);
// Returns InvalidArgument unless `bytes` has exactly 32 bytes.
absl::StatusOr<Digest> DigestFromBytes(absl::string_view bytes);

// DigestToHex returns 64 lowercase hex digits.
std::string DigestToHex(const Digest& d);

}  // namespace converge

#endif  // CONVERGE_COMMON_BASE_SHA256_H_
