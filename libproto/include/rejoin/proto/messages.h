// Every message of wire protocol v1 as a plain struct (PROTOCOL.md §4). The
// payload of REQUEST and RESPONSE is not part of the struct: it travels in its
// own frame, which the broker forwards untouched and the codec never copies.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "rejoin/proto/breakpoint.h"
#include "rejoin/proto/state_vector.h"
#include "rejoin/proto/status.h"
#include "rejoin/proto/types.h"

namespace rejoin {

inline constexpr std::uint8_t kProtocolVersion = 1;

// Message type byte (wire). Values never change once shipped.
enum class MessageType : std::uint8_t {
  kHello = 1,
  kWelcome = 2,
  kRequest = 3,
  kResponse = 4,
  kAck = 5,
  kHeartbeat = 6,
  kStateExchange = 7,
  kRecover = 8,
  kProbe = 9,
  kProbeReply = 10,
  kError = 11,
  kGoodbye = 12,
};

std::string_view MessageTypeName(MessageType t);

enum class Role : std::uint8_t { kClient = 1, kServer = 2 };

// A service a server registers for.
struct ServiceSpec {
  std::string name;
  std::uint32_t credit = 1;  // requests it may hold at once, >= 1
  bool idempotent = false;
  InDoubtPolicy policy = InDoubtPolicy::kAnswerInDoubt;
  bool operator==(const ServiceSpec&) const = default;
};

// Endpoint -> broker, first message on a connection and after a new epoch.
struct Hello {
  Role role = Role::kClient;
  std::string id;  // session id (client) or server id (server)
  Incarnation incarnation = 0;
  JournalId journal_id = 0;
  Epoch last_epoch = 0;               // broker epoch last seen, 0 if none
  std::vector<ServiceSpec> services;  // servers only; empty for clients
  bool operator==(const Hello&) const = default;
};

// Broker -> endpoint, answer to HELLO.
struct Welcome {
  Epoch epoch = 0;
  std::uint32_t heartbeat_ms = 0;
  std::uint32_t max_message_bytes = 0;
  std::uint32_t max_outstanding = 0;  // per session
  std::uint32_t grace_ms = 0;  // remaining broker grace period, 0 if over
  // The id the accepted HELLO named: a connection may carry several client
  // sessions, each welcomed on its own.
  std::string id;
  bool operator==(const Welcome&) const = default;
};

// Flags on REQUEST.
inline constexpr std::uint8_t kRequestResend = 0x01;  // not the first send
inline constexpr std::uint8_t kRequestFlagsMask = 0x01;

// Client -> broker -> server, followed by the payload frame.
struct Request {
  SessionId session;
  Seq seq = 0;  // >= 1
  std::string service;
  // The client's completed watermark when sent: the server may release every
  // seq of this session below it.
  Seq completed_watermark = 1;
  std::uint32_t deadline_ms = 0;  // 0: none; relative to receipt
  std::uint8_t flags = 0;
  bool operator==(const Request&) const = default;
};

// Server -> broker -> client, followed by the payload frame (empty unless
// status is kOk or kHandlerFailed). Broker-generated responses (UNAVAILABLE,
// IN_DOUBT for an unreachable server) use the same message.
struct Response {
  SessionId session;
  Seq seq = 0;
  ErrorCode status = ErrorCode::kOk;  // a wire code
  bool operator==(const Response&) const = default;
};

// Client -> broker -> servers: outcomes the client has journaled. Everything
// below `completed_watermark` plus each seq in `seqs` may be released.
struct Ack {
  SessionId session;
  Seq completed_watermark = 1;
  std::vector<Seq> seqs;  // strictly increasing, each >= completed_watermark
  bool operator==(const Ack&) const = default;
};

// Both ways, when nothing else was sent for a heartbeat interval.
struct Heartbeat {
  Epoch epoch = 0;  // sender's view of the broker epoch
  bool operator==(const Heartbeat&) const = default;
};

// Endpoint -> broker when it returns: a client sends its one vector, a server
// one vector per session it holds anything for (possibly split over several
// messages; `last` marks the final one of an exchange).
struct StateExchange {
  Role role = Role::kClient;
  std::vector<ClientVector> clients;  // exactly one when role is kClient
  std::vector<ServerVector> servers;  // role kServer; may be empty
  bool last = true;
  bool operator==(const StateExchange&) const = default;
};

// Broker -> endpoint: the decision for one session, restricted to the actions
// the receiving party carries out.
struct RecoverSession {
  SessionId session;
  Seq release_below = 1;
  std::vector<OpDecision> ops;  // strictly increasing by seq
  bool operator==(const RecoverSession&) const = default;
};
struct Recover {
  Epoch epoch = 0;
  std::vector<RecoverSession> sessions;
  bool operator==(const Recover&) const = default;
};

// Broker -> holder: report your state of these operations.
struct Probe {
  std::uint64_t probe_id = 0;  // echoed in the reply
  SessionId session;
  std::vector<Seq> seqs;  // strictly increasing, non-empty
  bool operator==(const Probe&) const = default;
};

// Holder -> broker: the answer to PROBE, as a vector restricted to the probed
// seqs (a client answers with a ClientVector, a server with a ServerVector).
struct ProbeReply {
  std::uint64_t probe_id = 0;
  Role role = Role::kClient;
  std::vector<ClientVector> clients;  // exactly one when role is kClient
  std::vector<ServerVector> servers;  // exactly one when role is kServer
  bool operator==(const ProbeReply&) const = default;
};

// Either way: something was refused. `ref_type`, `session` and `seq` name what
// it refers to where known (0 / empty otherwise).
struct Error {
  ErrorCode code = ErrorCode::kMalformed;  // a wire code other than kOk
  std::string message;                     // human-readable, <= 1024 bytes
  std::uint8_t ref_type = 0;
  SessionId session;
  Seq seq = 0;
  bool operator==(const Error&) const = default;
};

// Either way, before a party leaves on purpose.
struct Goodbye {
  std::string reason;  // <= 1024 bytes
  // Endpoint -> broker: the session leaving a connection that carries
  // several; empty = everything the connection holds. Empty from the broker.
  std::string id;
  bool operator==(const Goodbye&) const = default;
};

using Message =
    std::variant<Hello, Welcome, Request, Response, Ack, Heartbeat,
                 StateExchange, Recover, Probe, ProbeReply, Error, Goodbye>;

MessageType TypeOf(const Message& m);
// True for REQUEST and RESPONSE, the two types followed by a payload frame.
bool HasPayloadFrame(MessageType t);

}  // namespace rejoin
