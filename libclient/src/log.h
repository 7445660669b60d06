// The client library's logger: one spdlog logger named "rejoin.client",
// level warn unless REJOIN_CLIENT_LOG_LEVEL names another spdlog level.
#pragma once

#include <spdlog/spdlog.h>

namespace rejoin::client_internal {

spdlog::logger& Log();

}  // namespace rejoin::client_internal
