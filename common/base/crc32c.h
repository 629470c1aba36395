// Crc32c: the CRC-32C (Castagnoli) checksum, with the CPU's crc32 instruction where it has one
// (SSE4.2, ~8 GB/s a core here) and a table otherwise. The store keeps one beside each chunk to
// notice a chunk damaged on its disk without hashing it again on every read (SHA-256: ~1.8 GB/s);
// devices still check every chunk's SHA-256 end to end.
//
//   uint32_t c = Crc32c(bytes);
#ifndef CONVERGE_COMMON_BASE_CRC32C_H_
#define CONVERGE_COMMON_BASE_CRC32C_H_

#include <cstdint>

#include "absl/strings/string_view.h"

namespace converge {

uint32_t Crc32c(absl::string_view data);

// Crc32cPortable computes the same checksum without the crc32 instruction (tests compare them).
uint32_t Crc32cPortable(absl::string_view data);

}  // namespace converge

#endif  // CONVERGE_COMMON_BASE_CRC32C_H_
