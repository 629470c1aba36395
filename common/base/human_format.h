// HumanBytes: "512 B", "1.5 KiB", "286.1 MiB" — for tables and status lines people read.
#ifndef CONVERGE_COMMON_BASE_HUMAN_FORMAT_H_
#define CONVERGE_COMMON_BASE_HUMAN_FORMAT_H_

#include <cstdint>
#include <string>

namespace converge {

std::string HumanBytes(uint64_t bytes);

}  // namespace converge

#endif  // CONVERGE_COMMON_BASE_HUMAN_FORMAT_H_
