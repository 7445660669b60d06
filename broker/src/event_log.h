// Structured log lines for operators and log shippers. An event is a list
// of fields; it is written through spdlog either as `key=value` text (values
// escaped like all peer text) or, once SetJsonLogs() is called, as one JSON
// object per line, like every other line the process logs then.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace rejoin {

using LogField = std::pair<std::string_view, std::string>;

// Every later spdlog line of the process becomes one JSON object:
// {"time":"…Z","level":"info","msg":"…"}, an event's fields in place of msg.
void SetJsonLogs();

// Whether events are written at all (the level lets info through): callers
// that build fields for many events look first.
bool EventsLogged();

// Logs one event at info level.
void LogEvent(std::initializer_list<LogField> fields);

// JSON string escaping of arbitrary bytes (those outside printable ASCII as
// \u00XX), without the quotes.
std::string JsonEscape(std::string_view text);

}  // namespace rejoin
