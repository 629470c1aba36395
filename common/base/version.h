// The version of Converge's binaries, reported by engines to the store (metadata
// "x-converge-version") and printed by --version.
#ifndef CONVERGE_COMMON_BASE_VERSION_H_
#define CONVERGE_COMMON_BASE_VERSION_H_

namespace converge {

inline constexpr char kVersion[] = "0.4.0";
inline constexpr char kVersionHeader[] = "x-converge-version";

}  // namespace converge

#endif  // CONVERGE_COMMON_BASE_VERSION_H_
