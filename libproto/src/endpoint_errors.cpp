// Which broker ERRORs are events of the endpoint's connection life cycle
// (apart from endpoint.cpp, whose names would clash with messages.h's).
#include "rejoin/proto/endpoint.h"
#include "rejoin/proto/messages.h"

namespace rejoin {

std::optional<EndpointEvent> EndpointEventOf(const Error& e) {
  switch (e.code) {
    case ErrorCode::kUnknownSession:
      return EndpointEvent::kUnknownSession;
    case ErrorCode::kDuplicateIdentity:
      return EndpointEvent::kRefused;
    case ErrorCode::kFenced:
      return EndpointEvent::kFenced;
    case ErrorCode::kLimitExceeded:
      if (e.ref_type == static_cast<std::uint8_t>(MessageType::kHello)) {
        return EndpointEvent::kRefused;
      }
      return std::nullopt;
    case ErrorCode::kNotAuthorized:
      // Refused REQUESTs, ACKs and reports are answered one by one; only a
      // refused HELLO keeps the endpoint out.
      if (e.ref_type == static_cast<std::uint8_t>(MessageType::kHello)) {
        return EndpointEvent::kDenied;
      }
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

}  // namespace rejoin
