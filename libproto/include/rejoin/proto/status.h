// Error codes, Status and Result<T>: how every expected failure in rejoin is
// reported. Codes below 100 travel on the wire (PROTOCOL.md §7) and never
// change value once shipped; codes from 100 up are local to a process.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace rejoin {

enum class ErrorCode : std::uint16_t {
  kOk = 0,
  // Wire-visible codes.
  kMalformed = 1,           // a frame that does not decode
  kUnsupportedVersion = 2,  // signature matched, version did not
  kUnknownType = 3,         // message type byte not defined in this version
  kTooLarge = 4,            // a frame or field over its limit
  kUnknownService = 5,      // no server has registered the service
  kUnknownSession = 6,      // session or server id not known here
  kLimitExceeded = 7,       // a bound (sessions, outstanding, queue) reached
  kFenced = 8,              // message from an older incarnation
  kDuplicateIdentity = 9,   // a live process already holds this id
  kUnavailable = 10,        // operation not executed and cannot be now
  kInDoubt = 11,            // execution could not be confirmed either way
  kDeadlineExceeded = 12,   // the caller's wait ended; the operation lives on
  kHandlerFailed = 13,      // the application's handler reported failure
  kNotAuthorized = 14,      // identity may not use this session or service
  kShuttingDown = 15,       // the peer is closing
  kProtocolViolation = 16,  // well-formed message that is wrong in context
  kInternal = 17,           // broken invariant on the peer (bug)
  kConflict = 18,           // the seq is held for a different request
  // Local codes, never sent.
  kIoError = 100,
  kCorrupt = 101,         // journal bytes fail checksum or structure
  kJournalLocked = 102,   // another process holds the journal directory
  kJournalVersion = 103,  // journal written by an unknown format version
  kNotFound = 104,
  kInvalidArgument = 105,
  kClosed = 106,
};

// Stable lowercase name, e.g. "deadline_exceeded". Unknown values give
// "unknown".
std::string_view ErrorCodeName(ErrorCode code);

// True for the codes that may appear in an ERROR or RESPONSE on the wire.
bool IsWireCode(ErrorCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message)
      : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "code_name: message" or "ok".
  std::string ToString() const;

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

// A value or the Status that explains its absence. Never holds an ok Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    if (std::get<Status>(v_).ok()) {
      v_ = Status(ErrorCode::kInternal, "Result built from an ok Status");
    }
  }
  Result(ErrorCode code, std::string message)
      : v_(Status(code, std::move(message))) {}

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace rejoin
