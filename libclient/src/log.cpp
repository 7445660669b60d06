// Creates the library logger once, on first use, so that applications that
// never log pay nothing and applications that register their own
// "rejoin.client" logger beforehand keep theirs.
#include "log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>
#include <memory>

namespace rejoin::client_internal {

spdlog::logger& Log() {
  static std::shared_ptr<spdlog::logger> logger = [] {
    if (auto existing = spdlog::get("rejoin.client")) return existing;
    auto created = spdlog::stderr_color_mt("rejoin.client");
    created->set_level(spdlog::level::warn);
    if (const char* level = std::getenv("REJOIN_CLIENT_LOG_LEVEL")) {
      created->set_level(spdlog::level::from_str(level));
    }
    return created;
  }();
  return *logger;
}

}  // namespace rejoin::client_internal
