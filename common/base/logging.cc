#include "common/base/logging.h"

#include <spdlog/sinks/stdout_sinks.h>

#include <mutex>

namespace converge {
namespace {

std::mutex& Mu() {
  static std::mutex* mu = new std::mutex();
  return *mu;
}

}  // namespace

void InitLogging(const std::string& level, bool json) {
  std::lock_guard<std::mutex> lock(Mu());
  spdlog::set_level(spdlog::level::from_str(level));
  if (json) {
    spdlog::set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","logger":"%n","pid":%P,"msg":"%v"})",
        spdlog::pattern_time_type::utc);
  } else {
    spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%L%$ [%n] %v");
  }
}

std::shared_ptr<spdlog::logger> GetLogger(const std::string& name) {
  std::lock_guard<std::mutex> lock(Mu());
  std::shared_ptr<spdlog::logger> logger = spdlog::get(name);
  if (logger == nullptr) {
    logger = std::make_shared<spdlog::logger>(
        name, std::make_shared<spdlog::sinks::stderr_sink_mt>());
    logger->set_level(spdlog::get_level());
    spdlog::initialize_logger(logger);
  }
  return logger;
}

}  // namespace converge
