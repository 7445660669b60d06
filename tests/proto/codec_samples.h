// Shared vocabulary of the codec tests: one fixed sample message per type (the
// golden samples), extra valid variants, and a small msgpack writer, written
// independently of the codec, for building frames byte by byte.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "rejoin/proto/codec.h"
#include "rejoin/proto/messages.h"

namespace rejoin::testing {

inline constexpr std::string_view kSession = "c0a8012a5f3e9d71";
inline constexpr std::string_view kServer = "srv-payments-01";
inline constexpr JournalId kClientJournal = 0x5bd1e9955bd1e995;
inline constexpr JournalId kServerJournal = 0x9e3779b97f4a7c15;
inline constexpr Epoch kEpoch = 0xc0ffee0012345678;

inline constexpr MessageType kAllTypes[] = {
    MessageType::kHello,         MessageType::kWelcome, MessageType::kRequest,
    MessageType::kResponse,      MessageType::kAck,     MessageType::kHeartbeat,
    MessageType::kStateExchange, MessageType::kRecover, MessageType::kProbe,
    MessageType::kProbeReply,    MessageType::kError,   MessageType::kGoodbye,
};

// Frames a message of type `t` arrives in (PROTOCOL.md §2).
inline std::size_t FramesFor(MessageType t) {
  return HasPayloadFrame(t) ? 2 : 1;
}

// "state_exchange" for STATE_EXCHANGE: the golden file stem.
inline std::string LowerName(MessageType t) {
  std::string name(MessageTypeName(t));
  std::transform(name.begin(), name.end(), name.begin(), [](char c) {
    return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  });
  return name;
}

inline ClientVector SampleClientVector() {
  ClientVector v;
  v.session = std::string(kSession);
  v.incarnation = 3;
  v.journal_id = kClientJournal;
  v.next_seq = 4246;
  v.completed_watermark = 4241;
  v.pending = {4242, 4244};
  v.completed = {4243, 4245};
  return v;
}

inline ServerVector SampleServerVector() {
  ServerVector v;
  v.server = std::string(kServer);
  v.incarnation = 8;
  v.journal_id = kServerJournal;
  v.session = std::string(kSession);
  v.released_watermark = 4200;
  v.held = {{4240, ServerOpState::kExecuted, 7},
            {4242, ServerOpState::kReceived, 7},
            {4243, ServerOpState::kReceived, 8}};
  return v;
}

// The golden sample of `t`: fixed values that exercise several msgpack
// integer widths, strings, nested arrays and every enum field.
inline Message SampleOf(MessageType t) {
  switch (t) {
    case MessageType::kHello: {
      Hello m;
      m.role = Role::kServer;
      m.id = std::string(kServer);
      m.incarnation = 8;
      m.journal_id = kServerJournal;
      m.last_epoch = 0x1234abcd;
      m.services = {
          {"bank.transfer", 16, false, InDoubtPolicy::kResolveHook},
          {"bank.balance", 300, true, InDoubtPolicy::kReexecute},
      };
      return m;
    }
    case MessageType::kWelcome:
      return Welcome{kEpoch, 1000, 16 * 1024 * 1024,
                     1024,   5000, std::string(kSession)};
    case MessageType::kRequest:
      return Request{std::string(kSession), 4242, "bank.transfer", 4241, 30000,
                     kRequestResend};
    case MessageType::kResponse:
      return Response{std::string(kSession), 4242, ErrorCode::kOk};
    case MessageType::kAck:
      return Ack{std::string(kSession), 4241, {4243, 4245}};
    case MessageType::kHeartbeat:
      return Heartbeat{kEpoch};
    case MessageType::kStateExchange: {
      StateExchange m;
      m.role = Role::kServer;
      m.servers = {SampleServerVector()};
      m.last = true;
      return m;
    }
    case MessageType::kRecover: {
      Recover m;
      m.epoch = kEpoch;
      // A server's share (PROTOCOL.md §4.8): only actions whose actor is
      // the server, every seq at or above release_below.
      m.sessions = {
          {std::string(kSession),
           4240,
           {{4240, Breakpoint::kAckLost, Action::kRelease},
            {4242, Breakpoint::kExecutionInDoubt, Action::kResolve},
            {4243, Breakpoint::kResponseLost, Action::kResendResponse}}}};
      return m;
    }
    case MessageType::kProbe:
      return Probe{77, std::string(kSession), {4242, 4244}};
    case MessageType::kProbeReply: {
      ProbeReply m;
      m.probe_id = 77;
      m.role = Role::kClient;
      m.clients = {SampleClientVector()};
      return m;
    }
    case MessageType::kError:
      // unknown_service completes an operation, so it travels as a
      // RESPONSE (§7); this is a bound refused by ERROR (§8).
      return Error{ErrorCode::kLimitExceeded,
                   "session keeps 4096 answers its client has not "
                   "acknowledged",
                   3, std::string(kSession), 4250};
    case MessageType::kGoodbye:
      return Goodbye{"operator shutdown", std::string(kSession)};
  }
  return Goodbye{"unreachable", {}};
}

// Further valid messages: the other role of role-dependent types, boundary
// values, long strings and lists that need the wider msgpack forms.
inline std::vector<Message> VariantMessages() {
  std::vector<Message> out;
  Hello client_hello;
  client_hello.role = Role::kClient;
  client_hello.id = std::string(kSession);
  client_hello.incarnation = 1;
  out.push_back(client_hello);

  StateExchange client_exchange;
  client_exchange.role = Role::kClient;
  client_exchange.clients = {SampleClientVector()};
  out.push_back(client_exchange);

  StateExchange empty_server_exchange;
  empty_server_exchange.role = Role::kServer;
  empty_server_exchange.last = false;
  out.push_back(empty_server_exchange);

  ProbeReply server_reply;
  server_reply.probe_id = ~std::uint64_t{0};
  server_reply.role = Role::kServer;
  server_reply.servers = {SampleServerVector()};
  out.push_back(server_reply);

  out.push_back(Response{std::string(kSession), 1, ErrorCode::kHandlerFailed});
  out.push_back(Response{std::string(kSession), 2, ErrorCode::kInDoubt});
  out.push_back(Request{std::string(128, 'x'), ~Seq{0}, std::string(128, 's'),
                        1, ~std::uint32_t{0}, 0});
  out.push_back(Welcome{1, 1, 1, 1, 0, "a"});
  out.push_back(Heartbeat{0});
  out.push_back(
      Error{ErrorCode::kInternal, std::string(1024, 'm'), 255, "", 0});
  out.push_back(Goodbye{"", {}});

  Ack long_ack{std::string(kSession), 1, {}};
  for (Seq s = 1; s <= 70000; s += 7) long_ack.seqs.push_back(s);
  out.push_back(long_ack);

  Recover wide_recover;
  wide_recover.epoch = 1;
  for (int i = 0; i < 20; ++i) {
    RecoverSession s;
    s.session = "session-" + std::to_string(i);
    s.release_below = static_cast<Seq>(i + 1);
    s.ops = {{static_cast<Seq>(i + 1), Breakpoint::kRequestLost,
              Action::kResendRequest},
             {static_cast<Seq>(i + 100000), Breakpoint::kOrphanResponse,
              Action::kKeepOrphan}};
    wide_recover.sessions.push_back(s);
  }
  out.push_back(wide_recover);
  return out;
}

// Every golden sample followed by every variant.
inline std::vector<Message> AllValidMessages() {
  std::vector<Message> out;
  for (MessageType t : kAllTypes) out.push_back(SampleOf(t));
  for (Message& m : VariantMessages()) out.push_back(std::move(m));
  return out;
}

// A msgpack writer for hand-made frames. It knows nothing of rejoin's codec,
// so frames built with it check the codec against the msgpack spec itself.
class MsgpackWriter {
 public:
  MsgpackWriter& Array(std::uint32_t n) {
    if (n < 16) return Byte(0x90 | n);
    if (n <= 0xffff) return Byte(0xdc).BigEndian(n, 2);
    return Byte(0xdd).BigEndian(n, 4);
  }
  MsgpackWriter& Map(std::uint32_t n) {
    if (n < 16) return Byte(0x80 | n);
    return Byte(0xde).BigEndian(n, 2);
  }
  // Shortest form, as the codec must write it.
  MsgpackWriter& Uint(std::uint64_t v) {
    if (v < 0x80) return Byte(static_cast<std::uint32_t>(v));
    if (v <= 0xff) return Byte(0xcc).BigEndian(v, 1);
    if (v <= 0xffff) return Byte(0xcd).BigEndian(v, 2);
    if (v <= 0xffffffff) return Byte(0xce).BigEndian(v, 4);
    return Byte(0xcf).BigEndian(v, 8);
  }
  // Always the 8-byte form: legal msgpack, not canonical.
  MsgpackWriter& Uint64Wide(std::uint64_t v) {
    return Byte(0xcf).BigEndian(v, 8);
  }
  // The int 8 form (0xd0), whatever the sign.
  MsgpackWriter& Int8(std::int8_t v) {
    return Byte(0xd0).Byte(static_cast<std::uint8_t>(v));
  }
  MsgpackWriter& Str(std::string_view s) {
    const auto n = static_cast<std::uint32_t>(s.size());
    if (n < 32) {
      Byte(0xa0 | n);
    } else if (n <= 0xff) {
      Byte(0xd9).BigEndian(n, 1);
    } else if (n <= 0xffff) {
      Byte(0xda).BigEndian(n, 2);
    } else {
      Byte(0xdb).BigEndian(n, 4);
    }
    bytes_.append(s);
    return *this;
  }
  MsgpackWriter& Bin(std::string_view s) {
    Byte(0xc4).BigEndian(s.size(), 1);
    bytes_.append(s);
    return *this;
  }
  MsgpackWriter& Bool(bool b) { return Byte(b ? 0xc3 : 0xc2); }
  MsgpackWriter& Nil() { return Byte(0xc0); }
  MsgpackWriter& Float64One() {
    return Byte(0xcb).BigEndian(0x3ff0000000000000, 8);
  }
  MsgpackWriter& Raw(std::string_view raw) {
    bytes_.append(raw);
    return *this;
  }
  MsgpackWriter& Byte(std::uint32_t b) {
    bytes_.push_back(static_cast<char>(static_cast<std::uint8_t>(b)));
    return *this;
  }

  const std::string& body() const { return bytes_; }
  // The header frame: signature, version 1, `type`, then the body.
  std::string Frame(MessageType type) const {
    return Frame(static_cast<std::uint8_t>(type));
  }
  std::string Frame(std::uint8_t type_byte) const {
    std::string out = "RJ";
    out.push_back(static_cast<char>(kProtocolVersion));
    out.push_back(static_cast<char>(type_byte));
    return out + bytes_;
  }

 private:
  MsgpackWriter& BigEndian(std::uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) {
      Byte(static_cast<std::uint32_t>((v >> (8 * i)) & 0xff));
    }
    return *this;
  }

  std::string bytes_;
};

// The REQUEST sample written by hand, field by field (PROTOCOL.md §4.3).
inline MsgpackWriter SampleRequestBody() {
  MsgpackWriter w;
  w.Array(6)
      .Str(kSession)
      .Uint(4242)
      .Str("bank.transfer")
      .Uint(4241)
      .Uint(30000)
      .Uint(kRequestResend);
  return w;
}

// Decodes `frame` with the frame count its type byte calls for.
inline Result<Message> DecodeAsSent(std::string_view frame,
                                    std::size_t payload_bytes = 0,
                                    const CodecLimits& limits = CodecLimits()) {
  std::size_t frames = 1;
  if (frame.size() >= 4) {
    frames = FramesFor(
        static_cast<MessageType>(static_cast<std::uint8_t>(frame[3])));
  }
  return DecodeHeader(frame, frames, payload_bytes, limits);
}

}  // namespace rejoin::testing
