// Random identifiers and secrets from the OS CSPRNG (OpenSSL RAND_bytes).
#ifndef CONVERGE_COMMON_BASE_RANDOM_ID_H_
#define CONVERGE_COMMON_BASE_RANDOM_ID_H_

#include <string>

namespace converge {

// RandomBytes returns n bytes from the CSPRNG; aborts if the CSPRNG fails.
std::string RandomBytes(size_t n);
// RandomHex returns 2*n lowercase hex digits of n random bytes.
std::string RandomHex(size_t n);

}  // namespace converge

#endif  // CONVERGE_COMMON_BASE_RANDOM_ID_H_
