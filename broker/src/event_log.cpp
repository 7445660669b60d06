// Structured log lines (event_log.h). In JSON mode a custom spdlog pattern
// flag writes the message: a plain message as "msg":"…" (escaped), an
// event's pre-rendered fields (marked by a leading 0x1f byte, which no
// escaped text contains) as they are.
#include "event_log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <memory>

namespace rejoin {
namespace {

constexpr char kEventMark = '\x1f';
std::atomic<bool> json_logs{false};

class JsonMessageFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    std::string_view text(msg.payload.data(), msg.payload.size());
    std::string out;
    if (!text.empty() && text.front() == kEventMark) {
      out = text.substr(1);
    } else {
      out = "\"msg\":\"" + JsonEscape(text) + "\"";
    }
    dest.append(out.data(), out.data() + out.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonMessageFlag>();
  }
};

// Peer-controlled values stay on one line and free of terminal escapes.
std::string TextValue(std::string_view v) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (char ch : v) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x21 && c <= 0x7e && c != '\\' && c != '"') {
      out.push_back(static_cast<char>(c));
    } else {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

}  // namespace

std::string JsonEscape(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      default:
        if (c < 0x20 || c >= 0x7f) {
          out += "\\u00";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 15]);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  return out;
}

void SetJsonLogs() {
  // The pattern's time is UTC, as its "Z" says.
  auto utc = std::make_unique<spdlog::pattern_formatter>(
      spdlog::pattern_time_type::utc);
  utc->add_flag<JsonMessageFlag>('*').set_pattern(
      R"({"time":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l",%*})");
  spdlog::set_formatter(std::move(utc));
  json_logs.store(true);
}

bool EventsLogged() {
  return spdlog::default_logger_raw()->should_log(spdlog::level::info);
}

void LogEvent(std::initializer_list<LogField> fields) {
  if (!EventsLogged()) return;
  std::string line;
  if (json_logs.load(std::memory_order_relaxed)) {
    line.push_back(kEventMark);
    bool first = true;
    for (const auto& [key, value] : fields) {
      if (!first) line.push_back(',');
      first = false;
      line += "\"" + JsonEscape(key) + "\":\"" + JsonEscape(value) + "\"";
    }
  } else {
    bool first = true;
    for (const auto& [key, value] : fields) {
      if (!first) line.push_back(' ');
      first = false;
      line += std::string(key) + "=" + TextValue(value);
    }
  }
  spdlog::info("{}", line);
}

}  // namespace rejoin
