// One test per class of malformed header frame (PROTOCOL.md §3, §4, §8): each
// is refused with the documented error code and a message naming the problem,
// never accepted and never a crash. Structural cases are built byte by byte;
// semantic cases encode an invalid struct (the encoder does not validate) and
// also check that ValidateMessage gives the same verdict.
#include <gtest/gtest.h>

#include <string>

#include "proto/codec_samples.h"
#include "rejoin/proto/codec.h"

namespace rejoin {
namespace {

using testing::DecodeAsSent;
using testing::MsgpackWriter;
using testing::SampleOf;

ErrorCode CodeOf(std::string_view frame, std::size_t payload_bytes = 0,
                 const CodecLimits& limits = CodecLimits()) {
  Result<Message> r = DecodeAsSent(frame, payload_bytes, limits);
  return r.ok() ? ErrorCode::kOk : r.status().code();
}

std::string MessageOf(std::string_view frame) {
  return DecodeAsSent(frame).status().message();
}

// `m` breaks a semantic rule: decoding its encoding and validating it must
// both give `code`.
void ExpectRejected(const Message& m, ErrorCode code) {
  SCOPED_TRACE(MessageTypeName(TypeOf(m)));
  const Result<Message> decoded = DecodeAsSent(EncodeHeader(m));
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), code) << decoded.status().ToString();
  const Status validated = ValidateMessage(m);
  EXPECT_EQ(validated.code(), code) << validated.ToString();
  EXPECT_EQ(validated.message(), decoded.status().message());
}

std::string Prefix(std::uint8_t version, std::uint8_t type) {
  std::string out = "RJ";
  out.push_back(static_cast<char>(version));
  out.push_back(static_cast<char>(type));
  return out;
}

TEST(CodecMalformed, FrameShorterThanThePrefix) {
  for (std::string_view frame : {"", "R", "RJ", "RJ\x01"}) {
    EXPECT_EQ(CodeOf(frame), ErrorCode::kMalformed) << frame.size();
  }
}

TEST(CodecMalformed, WrongSignature) {
  std::string frame = EncodeHeader(SampleOf(MessageType::kHeartbeat));
  frame[0] = 'r';
  EXPECT_EQ(CodeOf(frame), ErrorCode::kMalformed);
  frame[0] = 'R';
  frame[1] = 'K';
  EXPECT_EQ(CodeOf(frame), ErrorCode::kMalformed);
}

TEST(CodecMalformed, OtherProtocolVersion) {
  const std::string body =
      EncodeHeader(SampleOf(MessageType::kHeartbeat)).substr(4);
  for (int version : {0, 2, 255}) {
    const auto v = static_cast<std::uint8_t>(version);
    EXPECT_EQ(CodeOf(Prefix(v, 6) + body), ErrorCode::kUnsupportedVersion);
    // The version is judged before the type byte and the body.
    EXPECT_EQ(CodeOf(Prefix(v, 99) + "\xc1"), ErrorCode::kUnsupportedVersion);
  }
}

TEST(CodecMalformed, UnknownMessageType) {
  for (int type : {0, 13, 64, 255}) {
    const auto t = static_cast<std::uint8_t>(type);
    EXPECT_EQ(CodeOf(Prefix(1, t) + "\x91\x00"), ErrorCode::kUnknownType);
    for (std::size_t frames : {1u, 2u}) {
      EXPECT_EQ(DecodeHeader(Prefix(1, t) + "\x91\x00", frames).status().code(),
                ErrorCode::kUnknownType);
    }
  }
}

TEST(CodecMalformed, WrongFrameCount) {
  const std::string request = EncodeHeader(SampleOf(MessageType::kRequest));
  const std::string response = EncodeHeader(SampleOf(MessageType::kResponse));
  const std::string hello = EncodeHeader(SampleOf(MessageType::kHello));
  for (std::size_t frames : {0u, 1u, 3u}) {
    EXPECT_EQ(DecodeHeader(request, frames).status().code(),
              ErrorCode::kMalformed);
    EXPECT_EQ(DecodeHeader(response, frames).status().code(),
              ErrorCode::kMalformed);
  }
  for (std::size_t frames : {0u, 2u, 3u}) {
    EXPECT_EQ(DecodeHeader(hello, frames).status().code(),
              ErrorCode::kMalformed);
  }
  EXPECT_EQ(DecodeHeader(request, 1).status().message(),
            "REQUEST: arrived in 1 frames, must be 2");
}

TEST(CodecMalformed, HeaderOverTheLimit) {
  const std::string frame = EncodeHeader(SampleOf(MessageType::kHello));
  CodecLimits limits;
  limits.max_header_bytes = frame.size() - 1;
  EXPECT_EQ(CodeOf(frame, 0, limits), ErrorCode::kTooLarge);
  limits.max_header_bytes = frame.size();
  EXPECT_EQ(CodeOf(frame, 0, limits), ErrorCode::kOk);
}

TEST(CodecMalformed, PayloadOverTheLimit) {
  const std::string frame = EncodeHeader(SampleOf(MessageType::kRequest));
  CodecLimits limits;
  limits.max_payload_bytes = 1000;
  EXPECT_EQ(CodeOf(frame, 1001, limits), ErrorCode::kTooLarge);
  EXPECT_EQ(CodeOf(frame, 1000, limits), ErrorCode::kOk);
}

TEST(CodecMalformed, EmptyBody) {
  for (MessageType t : testing::kAllTypes) {
    EXPECT_EQ(CodeOf(MsgpackWriter().Frame(t)), ErrorCode::kMalformed);
  }
}

TEST(CodecMalformed, BodyIsNotMsgpack) {
  // 0xc1 is the one byte msgpack never uses.
  EXPECT_EQ(CodeOf(MsgpackWriter().Byte(0xc1).Frame(MessageType::kHeartbeat)),
            ErrorCode::kMalformed);
  EXPECT_EQ(CodeOf(MsgpackWriter().Array(1).Byte(0xc1).Frame(
                MessageType::kHeartbeat)),
            ErrorCode::kMalformed);
}

TEST(CodecMalformed, TruncatedBody) {
  for (const Message& m : testing::AllValidMessages()) {
    const std::string frame = EncodeHeader(m);
    // Every cut inside the body (long frames: a sample of cuts).
    const std::size_t step = frame.size() > 2000 ? 97 : 1;
    for (std::size_t cut = 4; cut < frame.size(); cut += step) {
      ASSERT_EQ(CodeOf(frame.substr(0, cut)), ErrorCode::kMalformed)
          << MessageTypeName(TypeOf(m)) << " cut at " << cut;
    }
  }
}

TEST(CodecMalformed, TrailingBytes) {
  const std::string frame = EncodeHeader(SampleOf(MessageType::kRequest));
  EXPECT_EQ(CodeOf(frame + '\0'), ErrorCode::kMalformed);
  EXPECT_EQ(CodeOf(frame + frame.substr(4)), ErrorCode::kMalformed);
  EXPECT_EQ(MessageOf(frame + "ab"),
            "REQUEST: 2 bytes follow the msgpack body");
}

TEST(CodecMalformed, BodyIsNotAnArray) {
  EXPECT_EQ(CodeOf(MsgpackWriter().Uint(5).Frame(MessageType::kHeartbeat)),
            ErrorCode::kMalformed);
  EXPECT_EQ(CodeOf(MsgpackWriter().Str("x").Frame(MessageType::kGoodbye)),
            ErrorCode::kMalformed);
  EXPECT_EQ(CodeOf(MsgpackWriter().Map(0).Frame(MessageType::kHeartbeat)),
            ErrorCode::kMalformed);
}

TEST(CodecMalformed, WrongArity) {
  // Too few and too many top-level fields.
  EXPECT_EQ(CodeOf(MsgpackWriter().Array(0).Frame(MessageType::kHeartbeat)),
            ErrorCode::kMalformed);
  EXPECT_EQ(CodeOf(MsgpackWriter().Array(2).Uint(1).Uint(2).Frame(
                MessageType::kHeartbeat)),
            ErrorCode::kMalformed);
  MsgpackWriter short_request;
  short_request.Array(5).Str("s").Uint(1).Str("svc").Uint(1).Uint(0);
  EXPECT_EQ(MessageOf(short_request.Frame(MessageType::kRequest)),
            "REQUEST: body must be an array of 6 fields, got array of 5");
  // A nested struct with a missing field.
  MsgpackWriter hello;
  hello.Array(6).Uint(2).Str("srv").Uint(1).Uint(1).Uint(0);
  hello.Array(1).Array(3).Str("svc").Uint(1).Bool(false);
  EXPECT_EQ(MessageOf(hello.Frame(MessageType::kHello)),
            "HELLO: field 6 (services)[0] must be an array of 4 fields, got "
            "array of 3");
}

TEST(CodecMalformed, WrongFieldType) {
  auto request_with_seq = [](MsgpackWriter seq) {
    MsgpackWriter w;
    w.Array(6).Str("s").Raw(seq.body()).Str("svc").Uint(1).Uint(0).Uint(0);
    return w.Frame(MessageType::kRequest);
  };
  EXPECT_EQ(CodeOf(request_with_seq(MsgpackWriter().Str("1"))),
            ErrorCode::kMalformed);
  EXPECT_EQ(CodeOf(request_with_seq(MsgpackWriter().Nil())),
            ErrorCode::kMalformed);
  EXPECT_EQ(CodeOf(request_with_seq(MsgpackWriter().Bool(true))),
            ErrorCode::kMalformed);
  EXPECT_EQ(CodeOf(request_with_seq(MsgpackWriter().Float64One())),
            ErrorCode::kMalformed);
  EXPECT_EQ(CodeOf(request_with_seq(MsgpackWriter().Int8(-1))),
            ErrorCode::kMalformed);
  EXPECT_EQ(MessageOf(request_with_seq(MsgpackWriter().Str("1"))),
            "REQUEST: field 2 (seq) must be an unsigned integer <= "
            "18446744073709551615, got str");

  // A session as bin instead of str.
  MsgpackWriter bin_session;
  bin_session.Array(3).Bin("s").Uint(1).Uint(0);
  EXPECT_EQ(CodeOf(bin_session.Frame(MessageType::kResponse)),
            ErrorCode::kMalformed);
  // An integer where a bool belongs.
  MsgpackWriter int_last;
  int_last.Array(4).Uint(2).Array(0).Array(0).Uint(1);
  EXPECT_EQ(MessageOf(int_last.Frame(MessageType::kStateExchange)),
            "STATE_EXCHANGE: field 4 (last) must be a bool, got integer 1");
  // A scalar where a list belongs, and a bad item inside a list.
  MsgpackWriter scalar_seqs;
  scalar_seqs.Array(3).Str("s").Uint(1).Uint(5);
  EXPECT_EQ(CodeOf(scalar_seqs.Frame(MessageType::kAck)),
            ErrorCode::kMalformed);
  MsgpackWriter bad_item;
  bad_item.Array(3).Uint(1).Str("s").Array(2).Uint(3).Str("4");
  EXPECT_EQ(MessageOf(bad_item.Frame(MessageType::kProbe)),
            "PROBE: field 3 (seqs)[1] must be an unsigned integer <= "
            "18446744073709551615, got str");
}

TEST(CodecMalformed, IntegerWiderThanTheField) {
  MsgpackWriter flags;
  flags.Array(6).Str("s").Uint(1).Str("svc").Uint(1).Uint(0).Uint(256);
  EXPECT_EQ(CodeOf(flags.Frame(MessageType::kRequest)), ErrorCode::kMalformed);
  MsgpackWriter deadline;
  deadline.Array(6)
      .Str("s")
      .Uint(1)
      .Str("svc")
      .Uint(1)
      .Uint(1ull << 32)
      .Uint(0);
  EXPECT_EQ(CodeOf(deadline.Frame(MessageType::kRequest)),
            ErrorCode::kMalformed);
  MsgpackWriter status;
  status.Array(3).Str("s").Uint(1).Uint(65536);
  EXPECT_EQ(CodeOf(status.Frame(MessageType::kResponse)),
            ErrorCode::kMalformed);
  MsgpackWriter role;
  role.Array(4).Uint(1).Uint(257).Array(0).Array(0);
  EXPECT_EQ(MessageOf(role.Frame(MessageType::kProbeReply)),
            "PROBE_REPLY: field 2 (role) must be an unsigned integer <= 255, "
            "got integer 257");
}

TEST(CodecMalformed, ArrayOverTheItemLimit) {
  Ack ack{"s", 1, {}};
  for (Seq s = 1; s <= 101; ++s) ack.seqs.push_back(s);
  CodecLimits limits;
  limits.max_array_items = 100;
  EXPECT_EQ(CodeOf(EncodeHeader(ack), 0, limits), ErrorCode::kTooLarge);
  EXPECT_EQ(ValidateMessage(ack, limits).code(), ErrorCode::kTooLarge);
  ack.seqs.pop_back();
  EXPECT_EQ(CodeOf(EncodeHeader(ack), 0, limits), ErrorCode::kOk);
}

TEST(CodecMalformed, StringOverTheLimit) {
  CodecLimits limits;
  limits.max_string_bytes = 64;
  const Goodbye g{std::string(65, 'z'), {}};
  EXPECT_EQ(CodeOf(EncodeHeader(g), 0, limits), ErrorCode::kTooLarge);
  EXPECT_EQ(ValidateMessage(g, limits).code(), ErrorCode::kTooLarge);
  EXPECT_EQ(CodeOf(EncodeHeader(Goodbye{std::string(64, 'z'), {}}), 0, limits),
            ErrorCode::kOk);
}

TEST(CodecMalformed, ArrayAnnouncesMoreItemsThanRemain) {
  // An array16 header claiming 60000 items in a body of a few bytes.
  MsgpackWriter w;
  w.Array(3).Str("s").Uint(1).Array(60000).Uint(1);
  EXPECT_EQ(CodeOf(w.Frame(MessageType::kAck)), ErrorCode::kMalformed);
  MsgpackWriter huge;
  huge.Byte(0xdd).Raw(std::string("\xff\xff\xff\xff", 4));
  EXPECT_EQ(CodeOf(huge.Frame(MessageType::kRecover)), ErrorCode::kMalformed);
}

TEST(CodecMalformed, NestingDeeperThanAnyMessage) {
  MsgpackWriter w;
  for (int i = 0; i < 64; ++i) w.Array(1);
  w.Uint(1);
  EXPECT_EQ(CodeOf(w.Frame(MessageType::kRecover)), ErrorCode::kMalformed);
  // Six levels in a Recover: one more than its deepest legal path.
  MsgpackWriter recover;
  recover.Array(2).Uint(1).Array(1).Array(3).Str("s").Uint(1).Array(1).Array(3);
  recover.Array(1).Uint(1).Uint(0).Uint(0);
  EXPECT_EQ(CodeOf(recover.Frame(MessageType::kRecover)),
            ErrorCode::kMalformed);
}

TEST(CodecMalformed, MapBinOrExtAnywhere) {
  MsgpackWriter map;
  map.Array(1).Map(1).Uint(1).Uint(2);
  EXPECT_EQ(CodeOf(map.Frame(MessageType::kHeartbeat)), ErrorCode::kMalformed);
  MsgpackWriter bin;
  bin.Array(1).Bin("abc");
  EXPECT_EQ(CodeOf(bin.Frame(MessageType::kGoodbye)), ErrorCode::kMalformed);
  MsgpackWriter ext;  // fixext1
  ext.Array(1).Byte(0xd4).Byte(1).Byte(0);
  EXPECT_EQ(CodeOf(ext.Frame(MessageType::kHeartbeat)), ErrorCode::kMalformed);
  MsgpackWriter empty_map;
  empty_map.Array(1).Map(0);
  EXPECT_EQ(CodeOf(empty_map.Frame(MessageType::kHeartbeat)),
            ErrorCode::kMalformed);
}

TEST(CodecMalformed, InvalidId) {
  for (const std::string& id :
       {std::string(), std::string("has space"), std::string("tab\t"),
        std::string("del\x7f"), std::string("caf\xc3\xa9"),
        std::string(kMaxIdBytes + 1, 'x')}) {
    ExpectRejected(Request{id, 1, "svc", 1, 0, 0}, ErrorCode::kMalformed);
    ExpectRejected(Hello{Role::kClient, id, 1, 1, 0, {}},
                   ErrorCode::kMalformed);
  }
  ExpectRejected(Error{ErrorCode::kMalformed, "m", 0, " ", 0},
                 ErrorCode::kMalformed);
  EXPECT_EQ(ValidateMessage(Request{"", 1, "svc", 1, 0, 0}).message(),
            "REQUEST: field 1 (session) must be 1..128 printable ASCII bytes "
            "(0x21-0x7e)");
}

TEST(CodecMalformed, InvalidServiceName) {
  ExpectRejected(Request{"s", 1, "", 1, 0, 0}, ErrorCode::kMalformed);
  ExpectRejected(Request{"s", 1, "bank transfer", 1, 0, 0},
                 ErrorCode::kMalformed);
  ExpectRejected(
      Request{"s", 1, std::string(kMaxServiceBytes + 1, 'v'), 1, 0, 0},
      ErrorCode::kMalformed);
  Hello h = std::get<Hello>(SampleOf(MessageType::kHello));
  h.services[1].name = "";
  ExpectRejected(h, ErrorCode::kMalformed);
}

TEST(CodecMalformed, SeqZero) {
  ExpectRejected(Request{"s", 0, "svc", 1, 0, 0}, ErrorCode::kMalformed);
  EXPECT_EQ(ValidateMessage(Request{"s", 0, "svc", 1, 0, 0}).message(),
            "REQUEST: field 2 (seq) must be >= 1");
  ExpectRejected(Response{"s", 0, ErrorCode::kOk}, ErrorCode::kMalformed);
  ExpectRejected(Probe{1, "s", {0, 1}}, ErrorCode::kMalformed);
  ExpectRejected(Ack{"s", 0, {}}, ErrorCode::kMalformed);
}

TEST(CodecMalformed, WatermarkOutOfRange) {
  ExpectRejected(Request{"s", 5, "svc", 0, 0, 0}, ErrorCode::kMalformed);
  ExpectRejected(Request{"s", 5, "svc", 6, 0, 0}, ErrorCode::kMalformed);
  ExpectRejected(Ack{"s", 10, {9}}, ErrorCode::kMalformed);
  Recover r = std::get<Recover>(SampleOf(MessageType::kRecover));
  r.sessions[0].release_below = 0;
  ExpectRejected(r, ErrorCode::kMalformed);
}

TEST(CodecMalformed, EnumValueOutOfRange) {
  Hello h = std::get<Hello>(SampleOf(MessageType::kHello));
  h.role = static_cast<Role>(3);
  ExpectRejected(h, ErrorCode::kMalformed);
  h = std::get<Hello>(SampleOf(MessageType::kHello));
  h.services[0].policy = static_cast<InDoubtPolicy>(0);
  ExpectRejected(h, ErrorCode::kMalformed);
  h.services[0].policy = static_cast<InDoubtPolicy>(4);
  ExpectRejected(h, ErrorCode::kMalformed);

  Recover r = std::get<Recover>(SampleOf(MessageType::kRecover));
  r.sessions[0].ops[1].breakpoint = static_cast<Breakpoint>(9);
  ExpectRejected(r, ErrorCode::kMalformed);
  EXPECT_EQ(ValidateMessage(r).message(),
            "RECOVER: field 2 (sessions)[0].ops[1].breakpoint must be 0..8");
  r = std::get<Recover>(SampleOf(MessageType::kRecover));
  r.sessions[0].ops[0].action = static_cast<Action>(200);
  ExpectRejected(r, ErrorCode::kMalformed);

  StateExchange x =
      std::get<StateExchange>(SampleOf(MessageType::kStateExchange));
  x.servers[0].held[0].state = ServerOpState::kReleased;
  ExpectRejected(x, ErrorCode::kMalformed);
  x.servers[0].held[0].state = static_cast<ServerOpState>(7);
  ExpectRejected(x, ErrorCode::kMalformed);

  StateExchange bad_role = x;
  bad_role.role = static_cast<Role>(0);
  ExpectRejected(bad_role, ErrorCode::kMalformed);
}

TEST(CodecMalformed, ErrorCodeNotOnTheWire) {
  ExpectRejected(Response{"s", 1, ErrorCode::kIoError}, ErrorCode::kMalformed);
  ExpectRejected(Response{"s", 1, static_cast<ErrorCode>(19)},
                 ErrorCode::kMalformed);
  ExpectRejected(Error{ErrorCode::kOk, "", 0, "", 0}, ErrorCode::kMalformed);
  ExpectRejected(Error{ErrorCode::kClosed, "", 0, "", 0},
                 ErrorCode::kMalformed);
  ExpectRejected(Error{static_cast<ErrorCode>(9999), "", 0, "", 0},
                 ErrorCode::kMalformed);
}

TEST(CodecMalformed, UndefinedRequestFlags) {
  ExpectRejected(Request{"s", 1, "svc", 1, 0, 0x02}, ErrorCode::kMalformed);
  ExpectRejected(Request{"s", 1, "svc", 1, 0, 0x81}, ErrorCode::kMalformed);
}

TEST(CodecMalformed, TextOverTheLimit) {
  ExpectRejected(Error{ErrorCode::kInternal, std::string(1025, 'e'), 0, "", 0},
                 ErrorCode::kTooLarge);
  ExpectRejected(Goodbye{std::string(1025, 'g'), {}}, ErrorCode::kTooLarge);
}

TEST(CodecMalformed, InvalidStateVector) {
  ProbeReply reply = std::get<ProbeReply>(SampleOf(MessageType::kProbeReply));
  reply.clients[0].completed_watermark = reply.clients[0].next_seq + 1;
  ExpectRejected(reply, ErrorCode::kMalformed);
  reply = std::get<ProbeReply>(SampleOf(MessageType::kProbeReply));
  reply.clients[0].completed = {4242};  // also pending
  ExpectRejected(reply, ErrorCode::kMalformed);

  StateExchange x =
      std::get<StateExchange>(SampleOf(MessageType::kStateExchange));
  x.servers[0].held[2].received_incarnation = 9;  // after the incarnation
  ExpectRejected(x, ErrorCode::kMalformed);
  x = std::get<StateExchange>(SampleOf(MessageType::kStateExchange));
  x.servers[0].incarnation = 0;
  ExpectRejected(x, ErrorCode::kMalformed);
}

TEST(CodecMalformed, SeqListNotStrictlyIncreasing) {
  ExpectRejected(Ack{"s", 1, {3, 3}}, ErrorCode::kMalformed);
  ExpectRejected(Ack{"s", 1, {4, 3}}, ErrorCode::kMalformed);
  ExpectRejected(Probe{1, "s", {5, 2}}, ErrorCode::kMalformed);
  Recover r = std::get<Recover>(SampleOf(MessageType::kRecover));
  std::swap(r.sessions[0].ops[0], r.sessions[0].ops[1]);
  ExpectRejected(r, ErrorCode::kMalformed);
  StateExchange x =
      std::get<StateExchange>(SampleOf(MessageType::kStateExchange));
  std::swap(x.servers[0].held[0], x.servers[0].held[1]);
  ExpectRejected(x, ErrorCode::kMalformed);
}

TEST(CodecMalformed, VectorsInconsistentWithRole) {
  const ClientVector cv = testing::SampleClientVector();
  const ServerVector sv = testing::SampleServerVector();
  ExpectRejected(StateExchange{Role::kClient, {}, {}, true},
                 ErrorCode::kMalformed);
  ExpectRejected(StateExchange{Role::kClient, {cv, cv}, {}, true},
                 ErrorCode::kMalformed);
  ExpectRejected(StateExchange{Role::kClient, {cv}, {sv}, true},
                 ErrorCode::kMalformed);
  ExpectRejected(StateExchange{Role::kServer, {cv}, {sv}, true},
                 ErrorCode::kMalformed);
  ExpectRejected(ProbeReply{1, Role::kServer, {}, {}}, ErrorCode::kMalformed);
  ExpectRejected(ProbeReply{1, Role::kServer, {}, {sv, sv}},
                 ErrorCode::kMalformed);
  ExpectRejected(ProbeReply{1, Role::kClient, {cv}, {sv}},
                 ErrorCode::kMalformed);
  ExpectRejected(ProbeReply{1, Role::kClient, {}, {}}, ErrorCode::kMalformed);
}

TEST(CodecMalformed, ResponsePayloadWithAnErrorStatus) {
  for (ErrorCode status : {ErrorCode::kUnavailable, ErrorCode::kInDoubt,
                           ErrorCode::kDeadlineExceeded}) {
    const std::string frame = EncodeHeader(Response{"s", 1, status});
    EXPECT_EQ(CodeOf(frame, 0), ErrorCode::kOk);
    EXPECT_EQ(CodeOf(frame, 1), ErrorCode::kMalformed);
  }
}

TEST(CodecMalformed, EmptyProbe) {
  ExpectRejected(Probe{1, "s", {}}, ErrorCode::kMalformed);
  EXPECT_EQ(ValidateMessage(Probe{1, "s", {}}).message(),
            "PROBE: field 3 (seqs) must not be empty");
}

TEST(CodecMalformed, HelloServicesInconsistent) {
  Hello client{Role::kClient,
               "s",
               1,
               1,
               0,
               {{"svc", 1, false, InDoubtPolicy::kReexecute}}};
  ExpectRejected(client, ErrorCode::kMalformed);
  Hello server = std::get<Hello>(SampleOf(MessageType::kHello));
  server.services[1].name = server.services[0].name;
  ExpectRejected(server, ErrorCode::kMalformed);
  server = std::get<Hello>(SampleOf(MessageType::kHello));
  server.services[0].credit = 0;
  ExpectRejected(server, ErrorCode::kMalformed);
  server.services[0].credit = 1;
  server.incarnation = 0;
  ExpectRejected(server, ErrorCode::kMalformed);
}

TEST(CodecMalformed, WelcomeWithZeroEpochOrBounds) {
  ExpectRejected(Welcome{0, 1000, 1, 1, 0, "s"}, ErrorCode::kMalformed);
  ExpectRejected(Welcome{1, 0, 1, 1, 0, "s"}, ErrorCode::kMalformed);
  ExpectRejected(Welcome{1, 1000, 0, 1, 0, "s"}, ErrorCode::kMalformed);
  ExpectRejected(Welcome{1, 1000, 1, 0, 0, "s"}, ErrorCode::kMalformed);
  // The id names the session or server welcomed: never empty.
  ExpectRejected(Welcome{1, 1000, 1, 1, 0, ""}, ErrorCode::kMalformed);
  ExpectRejected(Goodbye{"bye", "bad id with spaces"}, ErrorCode::kMalformed);
  ExpectRejected(Recover{0, {}}, ErrorCode::kMalformed);
}

}  // namespace
}  // namespace rejoin
