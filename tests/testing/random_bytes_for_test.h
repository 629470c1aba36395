// RandomBytesForTest: reproducible incompressible bytes for tests (a file's content, a chunk):
// the same `seed` gives the same bytes on every run and machine.
#ifndef CONVERGE_TESTS_TESTING_RANDOM_BYTES_FOR_TEST_H_
#define CONVERGE_TESTS_TESTING_RANDOM_BYTES_FOR_TEST_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>

namespace converge {

inline std::string RandomBytesForTest(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    const uint64_t v = rng();
    memcpy(&s[i], &v, std::min<size_t>(8, n - i));
  }
  return s;
}

}  // namespace converge

#endif  // CONVERGE_TESTS_TESTING_RANDOM_BYTES_FOR_TEST_H_
