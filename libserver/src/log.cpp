// A private logger, not registered with spdlog's global registry, so that an
// application with its own "rejoin.server" logger, or two Server objects,
// never collide.
#include "log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>
#include <memory>

namespace rejoin::server_internal {

spdlog::logger& Log() {
  static spdlog::logger* const logger = [] {
    auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    // Leaked on purpose: handlers may log from worker threads during static
    // destruction of the application.
    auto* l = new spdlog::logger("rejoin.server", std::move(sink));
    l->set_level(spdlog::level::warn);
    if (const char* level = std::getenv("REJOIN_LOG_LEVEL")) {
      l->set_level(spdlog::level::from_str(level));
    }
    return l;
  }();
  return *logger;
}

}  // namespace rejoin::server_internal
