// Logging setup. Only main() calls InitLogging; components get one named logger each:
//
//   static auto log = converge::GetLogger("store");
//   log->info("commit {} in {}", seq, ns);
#ifndef CONVERGE_COMMON_BASE_LOGGING_H_
#define CONVERGE_COMMON_BASE_LOGGING_H_

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

#include "absl/strings/string_view.h"

namespace converge {

// InitLogging sends all loggers to stderr at `level` ("debug", "info", "warn", "error");
// with json = true each line is a JSON object.
void InitLogging(const std::string& level, bool json = false);

// GetLogger returns the logger named `name`, creating it on the shared sink.
// Thread-safe.
std::shared_ptr<spdlog::logger> GetLogger(const std::string& name);

}  // namespace converge

// Debian's absl::string_view is its own type, not std::string_view: teach fmt to print it.
template <>
struct fmt::formatter<absl::string_view> : fmt::formatter<fmt::string_view> {
  template <typename FormatContext>
  auto format(absl::string_view s, FormatContext& ctx) const {
    return fmt::formatter<fmt::string_view>::format(fmt::string_view(s.data(), s.size()), ctx);
  }
};

#endif  // CONVERGE_COMMON_BASE_LOGGING_H_
