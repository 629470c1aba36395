#include "common/base/random_id.h"

#include <openssl/rand.h>

#include <cstdlib>

#include "absl/strings/escaping.h"

namespace converge {

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) abort();
  return out;
}

std::string RandomHex(size_t n) { return absl::BytesToHexString(RandomBytes(n)); }

}  // namespace converge
