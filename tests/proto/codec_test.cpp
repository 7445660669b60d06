// Round trips through the codec: every message type and the variants of
// codec_samples.h encode, peek, decode back to an equal message and re-encode
// to the same bytes. Also the small facts of messages.h and the canonical
// msgpack form of the encoder.
#include "rejoin/proto/codec.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <span>
#include <string>

#include "proto/codec_samples.h"
#include "rejoin/proto/messages.h"

namespace rejoin {
namespace {

using testing::FramesFor;
using testing::SampleOf;

std::span<const std::byte> Bytes(const std::string& s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

// Encode, peek, decode, compare, re-encode: the full contract for one valid
// message.
void ExpectRoundTrip(const Message& m) {
  const MessageType type = TypeOf(m);
  SCOPED_TRACE(MessageTypeName(type));
  ASSERT_TRUE(ValidateMessage(m).ok()) << ValidateMessage(m).ToString();
  const std::string frame = EncodeHeader(m);

  Result<MessageType> peeked = PeekType(Bytes(frame));
  ASSERT_TRUE(peeked.ok()) << peeked.status().ToString();
  EXPECT_EQ(*peeked, type);

  Result<Message> decoded = DecodeHeader(Bytes(frame), FramesFor(type));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_TRUE(*decoded == m);
  EXPECT_EQ(EncodeHeader(*decoded), frame);
}

TEST(CodecRoundTrip, Hello) { ExpectRoundTrip(SampleOf(MessageType::kHello)); }

TEST(CodecRoundTrip, Welcome) {
  ExpectRoundTrip(SampleOf(MessageType::kWelcome));
}

TEST(CodecRoundTrip, Request) {
  ExpectRoundTrip(SampleOf(MessageType::kRequest));
}

TEST(CodecRoundTrip, Response) {
  ExpectRoundTrip(SampleOf(MessageType::kResponse));
}

TEST(CodecRoundTrip, Ack) { ExpectRoundTrip(SampleOf(MessageType::kAck)); }

TEST(CodecRoundTrip, Heartbeat) {
  ExpectRoundTrip(SampleOf(MessageType::kHeartbeat));
}

TEST(CodecRoundTrip, StateExchange) {
  ExpectRoundTrip(SampleOf(MessageType::kStateExchange));
}

TEST(CodecRoundTrip, Recover) {
  ExpectRoundTrip(SampleOf(MessageType::kRecover));
}

TEST(CodecRoundTrip, Probe) { ExpectRoundTrip(SampleOf(MessageType::kProbe)); }

TEST(CodecRoundTrip, ProbeReply) {
  ExpectRoundTrip(SampleOf(MessageType::kProbeReply));
}

TEST(CodecRoundTrip, Error) { ExpectRoundTrip(SampleOf(MessageType::kError)); }

TEST(CodecRoundTrip, Goodbye) {
  ExpectRoundTrip(SampleOf(MessageType::kGoodbye));
}

TEST(CodecRoundTrip, EveryVariant) {
  for (const Message& m : testing::VariantMessages()) ExpectRoundTrip(m);
}

TEST(CodecRoundTrip, DefaultConstructedFieldsAtTheirMinimum) {
  Request r;
  r.session = "s";
  r.seq = 1;
  r.service = "x";
  ExpectRoundTrip(r);
  ExpectRoundTrip(Heartbeat{});
  ExpectRoundTrip(Goodbye{});
}

TEST(CodecRoundTrip, ResponseWithPayloadForOkAndHandlerFailed) {
  for (ErrorCode status : {ErrorCode::kOk, ErrorCode::kHandlerFailed}) {
    const std::string frame = EncodeHeader(Response{"session-1", 9, status});
    Result<Message> decoded = DecodeHeader(frame, 2, /*payload_bytes=*/512);
    ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
    EXPECT_EQ(std::get<Response>(*decoded).status, status);
  }
}

TEST(CodecRoundTrip, RequestPayloadUpToTheLimitIsAccepted) {
  const std::string frame = EncodeHeader(SampleOf(MessageType::kRequest));
  CodecLimits limits;
  limits.max_payload_bytes = 100;
  EXPECT_TRUE(DecodeHeader(frame, 2, 100, limits).ok());
}

TEST(CodecEncode, AppendsToTheBuffer) {
  std::string out = "routing";
  EncodeHeader(SampleOf(MessageType::kHeartbeat), out);
  EXPECT_EQ(out.substr(0, 7), "routing");
  EXPECT_EQ(out.substr(7), EncodeHeader(SampleOf(MessageType::kHeartbeat)));
}

TEST(CodecEncode, StartsWithSignatureVersionAndType) {
  for (MessageType t : testing::kAllTypes) {
    const std::string frame = EncodeHeader(SampleOf(t));
    ASSERT_GE(frame.size(), 5u);
    EXPECT_EQ(frame[0], 'R');
    EXPECT_EQ(frame[1], 'J');
    EXPECT_EQ(frame[2], 1);
    EXPECT_EQ(static_cast<std::uint8_t>(frame[3]),
              static_cast<std::uint8_t>(t));
  }
}

TEST(CodecEncode, MatchesHandWrittenMsgpack) {
  const std::string expected =
      testing::SampleRequestBody().Frame(MessageType::kRequest);
  EXPECT_EQ(EncodeHeader(SampleOf(MessageType::kRequest)), expected);
}

TEST(CodecEncode, UsesTheShortestIntegerForm) {
  // Boundaries of positive fixint, uint8, uint16, uint32 and uint64.
  for (Seq seq : {Seq{1}, Seq{127}, Seq{128}, Seq{255}, Seq{256}, Seq{65535},
                  Seq{65536}, Seq{0xffffffff}, Seq{0x100000000}, ~Seq{0}}) {
    testing::MsgpackWriter w;
    w.Array(3).Str("s").Uint(seq).Uint(0);
    EXPECT_EQ(EncodeHeader(Response{"s", seq, ErrorCode::kOk}),
              w.Frame(MessageType::kResponse))
        << seq;
  }
}

TEST(CodecEncode, UsesTheShortestStringAndArrayForm) {
  const std::string id31(31, 'a');
  const std::string id32(32, 'b');
  Ack ack{id32, 1, {}};
  for (Seq s = 1; s <= 16; ++s) ack.seqs.push_back(s);
  testing::MsgpackWriter w;
  w.Array(3).Str(id32).Uint(1).Array(16);
  for (Seq s = 1; s <= 16; ++s) w.Uint(s);
  EXPECT_EQ(EncodeHeader(ack), w.Frame(MessageType::kAck));
  EXPECT_EQ(static_cast<std::uint8_t>(EncodeHeader(ack)[5]), 0xd9);

  testing::MsgpackWriter short_id;
  short_id.Array(3).Str(id31).Uint(1).Array(0);
  EXPECT_EQ(EncodeHeader(Ack{id31, 1, {}}), short_id.Frame(MessageType::kAck));
}

TEST(CodecDecode, AcceptsWiderIntegerEncodings) {
  // Canonical form is what we write; any msgpack unsigned form is read.
  testing::MsgpackWriter w;
  w.Array(3).Str("s").Uint64Wide(42).Uint64Wide(0);
  Result<Message> decoded = DecodeHeader(w.Frame(MessageType::kResponse), 2);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(std::get<Response>(*decoded).seq, 42u);

  // A signed msgpack format carrying a non-negative value is that value.
  testing::MsgpackWriter signed_form;
  signed_form.Array(3).Str("s").Int8(5).Int8(0);
  decoded = DecodeHeader(signed_form.Frame(MessageType::kResponse), 2);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(std::get<Response>(*decoded).seq, 5u);
}

TEST(CodecDecode, SpanAndStringOverloadsAgree) {
  for (const Message& m : testing::AllValidMessages()) {
    const std::string frame = EncodeHeader(m);
    const std::size_t frames = FramesFor(TypeOf(m));
    Result<Message> a = DecodeHeader(frame, frames);
    Result<Message> b = DecodeHeader(Bytes(frame), frames);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_TRUE(*a == *b);
  }
}

TEST(CodecPeek, ReportsTheTypeWithoutDecodingTheBody) {
  std::string frame = "RJ";
  frame.push_back(1);
  frame.push_back(static_cast<char>(MessageType::kProbe));
  frame += "\xc1 not msgpack";
  Result<MessageType> t = PeekType(Bytes(frame));
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t, MessageType::kProbe);
}

TEST(CodecPeek, ChecksSizeSignatureVersionAndType) {
  EXPECT_EQ(PeekType(Bytes(std::string("RJ\x01"))).status().code(),
            ErrorCode::kMalformed);
  EXPECT_EQ(PeekType(Bytes(std::string("XJ\x01\x03"))).status().code(),
            ErrorCode::kMalformed);
  EXPECT_EQ(PeekType(Bytes(std::string("RJ\x02\x03"))).status().code(),
            ErrorCode::kUnsupportedVersion);
  EXPECT_EQ(PeekType(Bytes(std::string("RJ\x01\x0d"))).status().code(),
            ErrorCode::kUnknownType);
}

TEST(Messages, TypeOfMatchesEveryAlternative) {
  for (MessageType t : testing::kAllTypes) {
    EXPECT_EQ(TypeOf(SampleOf(t)), t) << MessageTypeName(t);
  }
}

TEST(Messages, OnlyRequestAndResponseHaveAPayloadFrame) {
  for (MessageType t : testing::kAllTypes) {
    EXPECT_EQ(HasPayloadFrame(t),
              t == MessageType::kRequest || t == MessageType::kResponse)
        << MessageTypeName(t);
  }
}

TEST(Messages, TypeNamesAreTheSpecNames) {
  EXPECT_EQ(MessageTypeName(MessageType::kHello), "HELLO");
  EXPECT_EQ(MessageTypeName(MessageType::kStateExchange), "STATE_EXCHANGE");
  EXPECT_EQ(MessageTypeName(MessageType::kProbeReply), "PROBE_REPLY");
  EXPECT_EQ(MessageTypeName(MessageType::kGoodbye), "GOODBYE");
  EXPECT_EQ(MessageTypeName(static_cast<MessageType>(0)), "UNKNOWN");
  EXPECT_EQ(MessageTypeName(static_cast<MessageType>(13)), "UNKNOWN");
}

TEST(Messages, TypeValuesNeverChange) {
  EXPECT_EQ(static_cast<int>(MessageType::kHello), 1);
  EXPECT_EQ(static_cast<int>(MessageType::kWelcome), 2);
  EXPECT_EQ(static_cast<int>(MessageType::kRequest), 3);
  EXPECT_EQ(static_cast<int>(MessageType::kResponse), 4);
  EXPECT_EQ(static_cast<int>(MessageType::kAck), 5);
  EXPECT_EQ(static_cast<int>(MessageType::kHeartbeat), 6);
  EXPECT_EQ(static_cast<int>(MessageType::kStateExchange), 7);
  EXPECT_EQ(static_cast<int>(MessageType::kRecover), 8);
  EXPECT_EQ(static_cast<int>(MessageType::kProbe), 9);
  EXPECT_EQ(static_cast<int>(MessageType::kProbeReply), 10);
  EXPECT_EQ(static_cast<int>(MessageType::kError), 11);
  EXPECT_EQ(static_cast<int>(MessageType::kGoodbye), 12);
  EXPECT_EQ(kProtocolVersion, 1);
}

}  // namespace
}  // namespace rejoin
