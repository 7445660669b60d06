// Names for error codes and Status formatting.
#include "rejoin/proto/status.h"

namespace rejoin {

std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk:
      return "ok";
    case ErrorCode::kMalformed:
      return "malformed";
    case ErrorCode::kUnsupportedVersion:
      return "unsupported_version";
    case ErrorCode::kUnknownType:
      return "unknown_type";
    case ErrorCode::kTooLarge:
      return "too_large";
    case ErrorCode::kUnknownService:
      return "unknown_service";
    case ErrorCode::kUnknownSession:
      return "unknown_session";
    case ErrorCode::kLimitExceeded:
      return "limit_exceeded";
    case ErrorCode::kFenced:
      return "fenced";
    case ErrorCode::kDuplicateIdentity:
      return "duplicate_identity";
    case ErrorCode::kUnavailable:
      return "unavailable";
    case ErrorCode::kInDoubt:
      return "in_doubt";
    case ErrorCode::kDeadlineExceeded:
      return "deadline_exceeded";
    case ErrorCode::kHandlerFailed:
      return "handler_failed";
    case ErrorCode::kNotAuthorized:
      return "not_authorized";
    case ErrorCode::kShuttingDown:
      return "shutting_down";
    case ErrorCode::kProtocolViolation:
      return "protocol_violation";
    case ErrorCode::kInternal:
      return "internal";
    case ErrorCode::kConflict:
      return "conflict";
    case ErrorCode::kIoError:
      return "io_error";
    case ErrorCode::kCorrupt:
      return "corrupt";
    case ErrorCode::kJournalLocked:
      return "journal_locked";
    case ErrorCode::kJournalVersion:
      return "journal_version";
    case ErrorCode::kNotFound:
      return "not_found";
    case ErrorCode::kInvalidArgument:
      return "invalid_argument";
    case ErrorCode::kClosed:
      return "closed";
  }
  return "unknown";
}

bool IsWireCode(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk:
    case ErrorCode::kMalformed:
    case ErrorCode::kUnsupportedVersion:
    case ErrorCode::kUnknownType:
    case ErrorCode::kTooLarge:
    case ErrorCode::kUnknownService:
    case ErrorCode::kUnknownSession:
    case ErrorCode::kLimitExceeded:
    case ErrorCode::kFenced:
    case ErrorCode::kDuplicateIdentity:
    case ErrorCode::kUnavailable:
    case ErrorCode::kInDoubt:
    case ErrorCode::kDeadlineExceeded:
    case ErrorCode::kHandlerFailed:
    case ErrorCode::kNotAuthorized:
    case ErrorCode::kShuttingDown:
    case ErrorCode::kProtocolViolation:
    case ErrorCode::kInternal:
    case ErrorCode::kConflict:
      return true;
    case ErrorCode::kIoError:
    case ErrorCode::kCorrupt:
    case ErrorCode::kJournalLocked:
    case ErrorCode::kJournalVersion:
    case ErrorCode::kNotFound:
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kClosed:
      return false;
  }
  return false;
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  std::string out(ErrorCodeName(code_));
  if (!message_.empty()) {
    out += ": ";
    out += message_;
  }
  return out;
}

}  // namespace rejoin
