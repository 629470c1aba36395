// Logging setup. Only main() calls InitLogging; components get one named logger each:
//
//   static auto log = converge::GetLogger("store");
//   log->info("commit {} in {}", seq, ns);
#ifndef CONVERGE_COMMON_LOGGING_H_
#define CONVERGE_COMMON_LOGGING_H_

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace converge {

// InitLogging sends all loggers to stderr at `level` ("debug", "info", "warn", "error");
// with json = true each line is a JSON object.
void InitLogging(const std::string& level, bool json = false);

// GetLogger returns the logger named `name`, creating it on the shared sink.
// Thread-safe.
std::shared_ptr<spdlog::logger> GetLogger(const std::string& name);

}  // namespace converge

#endif  // CONVERGE_COMMON_LOGGING_H_
