// Names and framing facts for the message types of wire protocol v1
// (PROTOCOL.md §3-4). The switches have no default so a new type does not
// compile until each question has an answer for it.
#include "rejoin/proto/messages.h"

namespace rejoin {
namespace {

// One overload per alternative of Message: a new alternative without an
// overload here fails to compile.
struct TypeOfVisitor {
  MessageType operator()(const Hello&) const { return MessageType::kHello; }
  MessageType operator()(const Welcome&) const { return MessageType::kWelcome; }
  MessageType operator()(const Request&) const { return MessageType::kRequest; }
  MessageType operator()(const Response&) const {
    return MessageType::kResponse;
  }
  MessageType operator()(const Ack&) const { return MessageType::kAck; }
  MessageType operator()(const Heartbeat&) const {
    return MessageType::kHeartbeat;
  }
  MessageType operator()(const StateExchange&) const {
    return MessageType::kStateExchange;
  }
  MessageType operator()(const Recover&) const { return MessageType::kRecover; }
  MessageType operator()(const Probe&) const { return MessageType::kProbe; }
  MessageType operator()(const ProbeReply&) const {
    return MessageType::kProbeReply;
  }
  MessageType operator()(const Error&) const { return MessageType::kError; }
  MessageType operator()(const Goodbye&) const { return MessageType::kGoodbye; }
};

}  // namespace

std::string_view MessageTypeName(MessageType t) {
  switch (t) {
    case MessageType::kHello:
      return "HELLO";
    case MessageType::kWelcome:
      return "WELCOME";
    case MessageType::kRequest:
      return "REQUEST";
    case MessageType::kResponse:
      return "RESPONSE";
    case MessageType::kAck:
      return "ACK";
    case MessageType::kHeartbeat:
      return "HEARTBEAT";
    case MessageType::kStateExchange:
      return "STATE_EXCHANGE";
    case MessageType::kRecover:
      return "RECOVER";
    case MessageType::kProbe:
      return "PROBE";
    case MessageType::kProbeReply:
      return "PROBE_REPLY";
    case MessageType::kError:
      return "ERROR";
    case MessageType::kGoodbye:
      return "GOODBYE";
  }
  return "UNKNOWN";
}

MessageType TypeOf(const Message& m) { return std::visit(TypeOfVisitor{}, m); }

bool HasPayloadFrame(MessageType t) {
  switch (t) {
    case MessageType::kRequest:
    case MessageType::kResponse:
      return true;
    case MessageType::kHello:
    case MessageType::kWelcome:
    case MessageType::kAck:
    case MessageType::kHeartbeat:
    case MessageType::kStateExchange:
    case MessageType::kRecover:
    case MessageType::kProbe:
    case MessageType::kProbeReply:
    case MessageType::kError:
    case MessageType::kGoodbye:
      return false;
  }
  return false;
}

}  // namespace rejoin
