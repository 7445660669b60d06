// The direct REQUEST/RESPONSE decoder (libproto/src/codec_flat.h) must never
// change an outcome: for canonical frames, non-canonical but valid encodings
// and a few hundred thousand mutants, DecodeHeader (direct path first) and the
// general decoder alone return the same message or the same error.
#include "codec_flat.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "rejoin/proto/codec.h"

namespace rejoin {
namespace {

constexpr std::uint64_t kSeed = 0x666c61742d646563;  // fixed: runs repeat

void ExpectSame(const std::string& header, std::size_t frames,
                std::size_t payload_bytes, const CodecLimits& limits = {}) {
  Result<Message> both = DecodeHeader(header, frames, payload_bytes, limits);
  Result<Message> general =
      codec_internal::DecodeGeneral(header, frames, payload_bytes, limits);
  ASSERT_EQ(both.ok(), general.ok()) << ::testing::PrintToString(header);
  if (both.ok()) {
    EXPECT_TRUE(*both == *general) << ::testing::PrintToString(header);
  } else {
    EXPECT_EQ(both.status().code(), general.status().code());
    EXPECT_EQ(both.status().message(), general.status().message());
  }
}

std::string Prefix(MessageType t) {
  return std::string("RJ\x01", 3) + static_cast<char>(t);
}

std::vector<std::string> Samples() {
  return {
      EncodeHeader(Request{"alice", 1, "echo", 1, 0, 0}),
      EncodeHeader(Request{"bench-c0", 123456789, "svc.a-b", 123456700, 5000,
                           kRequestResend}),
      EncodeHeader(Request{std::string(128, 's'), ~Seq{0} - 1,
                           std::string(128, 'v'), ~Seq{0} - 1, ~0u, 1}),
      EncodeHeader(Response{"alice", 1, ErrorCode::kOk}),
      EncodeHeader(Response{"bob", 1u << 20, ErrorCode::kInDoubt}),
      EncodeHeader(Response{"bob", 77, ErrorCode::kHandlerFailed}),
  };
}

TEST(CodecFlat, CanonicalFramesTakeTheDirectPathWithTheSameResult) {
  for (const std::string& h : Samples()) {
    const auto type = static_cast<MessageType>(h[3]);
    auto direct = codec_internal::DecodeFlat(type, h.substr(4), CodecLimits());
    ASSERT_TRUE(direct.has_value());
    ExpectSame(h, 2, 0);
    ExpectSame(h, 2, 10);
  }
}

TEST(CodecFlat, OtherValidEncodingsFallBackAndDecodeTheSame) {
  const std::string req = Prefix(MessageType::kRequest);
  // seq as int8 (a signed encoding of a positive value), array16, str8 for a
  // short string, uint64 for a small value.
  const std::vector<std::string> variants = {
      req +
          "\x96\xa5"
          "alice"
          "\xd0\x01\xa4"
          "echo" +
          std::string("\x01\x00\x00", 3),
      req + std::string("\xdc\x00\x06", 3) +
          "\xa5"
          "alice"
          "\x01\xa4"
          "echo" +
          std::string("\x01\x00\x00", 3),
      req +
          "\x96\xd9\x05"
          "alice"
          "\x01\xa4"
          "echo" +
          std::string("\x01\x00\x00", 3),
      req +
          "\x96\xa5"
          "alice" +
          std::string("\xcf\x00\x00\x00\x00\x00\x00\x00\x07", 9) +
          "\xa4"
          "echo" +
          std::string("\x01\x00\x00", 3),
  };
  for (const std::string& h : variants) {
    EXPECT_TRUE(DecodeHeader(h, 2, 0).ok()) << ::testing::PrintToString(h);
    ExpectSame(h, 2, 0);
  }
  EXPECT_FALSE(codec_internal::DecodeFlat(MessageType::kRequest,
                                          variants[0].substr(4), CodecLimits())
                   .has_value());
}

TEST(CodecFlat, InvalidFramesGetTheGeneralDecodersError) {
  const std::string h = Samples()[1];
  ExpectSame(h + "x", 2, 0);                    // trailing bytes
  ExpectSame(h.substr(0, h.size() - 1), 2, 0);  // truncated
  ExpectSame(h, 1, 0);                          // frame count
  CodecLimits tight;
  tight.max_string_bytes = 4;  // "bench-c0" is over it
  ExpectSame(h, 2, 0, tight);
  // A seq of 0 and an empty session parse but break the field rules.
  ExpectSame(EncodeHeader(Request{"alice", 1, "echo", 1, 0, 0})
                 .replace(11, 1, std::string(1, '\0')),
             2, 0);
  // A RESPONSE error status with a payload.
  ExpectSame(EncodeHeader(Response{"bob", 1, ErrorCode::kInDoubt}), 2, 3);
}

TEST(CodecFlat, MutantsDecodeTheSameEitherWay) {
  std::mt19937_64 rng(kSeed);
  auto below = [&](std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng);
  };
  const std::vector<std::string> samples = Samples();
  for (int i = 0; i < 200000; ++i) {
    std::string h = samples[below(samples.size())];
    const std::size_t rounds = 1 + below(3);
    for (std::size_t k = 0; k < rounds && !h.empty(); ++k) {
      const std::size_t at = below(h.size());
      switch (below(4)) {
        case 0:
          h[at] = static_cast<char>(below(256));
          break;
        case 1:
          h[at] = static_cast<char>(h[at] ^ (1 << below(8)));
          break;
        case 2:
          h.resize(at);
          break;
        default:
          h.insert(at, 1, static_cast<char>(below(256)));
          break;
      }
    }
    ExpectSame(h, 2, below(3) == 0 ? 0 : 64);
    if (HasFailure()) return;
  }
}

}  // namespace
}  // namespace rejoin
