// The library's logger. Warnings and errors only by default so an embedding
// application's output stays quiet; REJOIN_LOG_LEVEL (trace, debug, info,
// warn, error, off) overrides the level at first use. Safe from any thread.
#pragma once

#include <spdlog/spdlog.h>

namespace rejoin::server_internal {

spdlog::logger& Log();

}  // namespace rejoin::server_internal
