// Seeded mutation test of the decoder: valid frames of every type, bent by bit
// flips, byte changes, truncation, insertion, deletion and splices, must each
// decode or fail with a decode error, never crash (ASan and UBSan builds run
// the same loop); a mutant that decodes must validate and survive a re-encode
// unchanged. REJOIN_SOAK_SCALE multiplies the iteration counts.
#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "proto/codec_samples.h"
#include "rejoin/proto/codec.h"

namespace rejoin {
namespace {

constexpr std::uint64_t kSeed = 0x72656a6f696e2d31;  // fixed: runs repeat
constexpr std::size_t kMutatedFrames = 100000;
constexpr std::size_t kRandomBodies = 20000;

std::size_t Scaled(std::size_t base) {
  const char* env = std::getenv("REJOIN_SOAK_SCALE");
  if (env == nullptr) return base;
  const long scale = std::strtol(env, nullptr, 10);
  return scale > 0 ? base * static_cast<std::size_t>(scale) : base;
}

// Bytes with a meaning in msgpack or in the prefix: markers for every width,
// boundaries of fixint, fixstr and fixarray.
constexpr std::uint8_t kInteresting[] = {
    0x00, 0x01, 0x03, 0x0c, 0x7f, 0x80, 0x8f, 0x90, 0x91, 0x96,
    0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xca, 0xcb,
    0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd3, 0xd9, 0xda, 0xdb, 0xdc,
    0xdd, 0xde, 0xdf, 0xe0, 0xff, 0x52, 0x4a, 0x20, 0x21, 0x7e};

class Mutator {
 public:
  explicit Mutator(std::uint64_t seed) : rng_(seed) {}

  std::size_t Below(std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_);
  }
  char RandomByte() {
    if (Below(2) == 0) {
      return static_cast<char>(kInteresting[Below(std::size(kInteresting))]);
    }
    return static_cast<char>(Below(256));
  }

  // One to three stacked mutations of `frame`; `other` feeds splices.
  std::string Mutate(std::string frame, const std::string& other) {
    const std::size_t rounds = 1 + Below(3);
    for (std::size_t i = 0; i < rounds; ++i) frame = MutateOnce(frame, other);
    return frame;
  }

 private:
  std::string MutateOnce(std::string f, const std::string& other) {
    if (f.empty()) return std::string(1, RandomByte());
    switch (Below(7)) {
      case 0: {  // flip one to four bits
        const std::size_t flips = 1 + Below(4);
        for (std::size_t i = 0; i < flips; ++i) {
          f[Below(f.size())] ^= static_cast<char>(1u << Below(8));
        }
        return f;
      }
      case 1:  // change one byte
        f[Below(f.size())] = RandomByte();
        return f;
      case 2:  // truncate
        f.resize(Below(f.size()));
        return f;
      case 3: {  // insert one to eight bytes
        std::string bytes;
        const std::size_t n = 1 + Below(8);
        for (std::size_t i = 0; i < n; ++i) bytes.push_back(RandomByte());
        f.insert(Below(f.size() + 1), bytes);
        return f;
      }
      case 4: {  // delete a short range
        const std::size_t at = Below(f.size());
        f.erase(at, 1 + Below(std::min<std::size_t>(8, f.size() - at)));
        return f;
      }
      case 5: {  // splice: a prefix of this frame, a suffix of another
        const std::size_t cut = Below(f.size() + 1);
        const std::size_t from = Below(other.size() + 1);
        return f.substr(0, cut) + other.substr(from);
      }
      default: {  // duplicate a range in place
        const std::size_t at = Below(f.size());
        const std::size_t n =
            1 + Below(std::min<std::size_t>(16, f.size() - at));
        f.insert(at, f.substr(at, n));
        return f;
      }
    }
  }

  std::mt19937_64 rng_;
};

bool IsDecodeError(ErrorCode code) {
  return code == ErrorCode::kMalformed ||
         code == ErrorCode::kUnsupportedVersion ||
         code == ErrorCode::kUnknownType || code == ErrorCode::kTooLarge;
}

struct Tally {
  std::size_t accepted = 0;
  std::size_t rejected = 0;
};

// The contract for one arbitrary frame. Returns false after a failed
// expectation so the loop can stop early instead of flooding the log.
bool CheckOne(const std::string& frame, std::size_t frames,
              std::size_t payload_bytes, Tally& tally) {
  const Result<Message> r = DecodeHeader(frame, frames, payload_bytes);
  if (!r.ok()) {
    ++tally.rejected;
    EXPECT_TRUE(IsDecodeError(r.status().code())) << r.status().ToString();
    EXPECT_FALSE(r.status().message().empty());
    return IsDecodeError(r.status().code());
  }
  ++tally.accepted;
  const Message& m = *r;
  const MessageType type = TypeOf(m);
  EXPECT_EQ(static_cast<std::uint8_t>(type),
            static_cast<std::uint8_t>(frame[3]));
  const Status valid = ValidateMessage(m);
  EXPECT_TRUE(valid.ok()) << valid.ToString();
  const std::string again = EncodeHeader(m);
  const Result<Message> back = DecodeHeader(again, frames, payload_bytes);
  EXPECT_TRUE(back.ok()) << back.status().ToString();
  const bool same = back.ok() && *back == m;
  EXPECT_TRUE(same) << "re-encoded " << MessageTypeName(type)
                    << " decodes differently";
  return valid.ok() && same;
}

TEST(CodecMutation, MutatedFramesDecodeOrFailCleanly) {
  std::vector<std::string> frames;
  for (const Message& m : testing::AllValidMessages()) {
    frames.push_back(EncodeHeader(m));
  }
  Mutator mutator(kSeed);
  Tally tally;
  const std::size_t iterations = Scaled(kMutatedFrames);
  for (std::size_t i = 0; i < iterations; ++i) {
    const std::string& base = frames[i % frames.size()];
    const std::string& other = frames[mutator.Below(frames.size())];
    const std::string mutant = mutator.Mutate(base, other);
    // Mostly the frame count the (possibly mutated) type byte calls for;
    // sometimes any count, to reach the frame-count check.
    std::size_t frame_count = 1;
    if (mutant.size() >= 4) {
      frame_count = testing::FramesFor(
          static_cast<MessageType>(static_cast<std::uint8_t>(mutant[3])));
    }
    if (mutator.Below(16) == 0) frame_count = mutator.Below(4);
    const std::size_t payload_bytes = mutator.Below(4) == 0 ? 100 : 0;
    if (!CheckOne(mutant, frame_count, payload_bytes, tally)) {
      FAIL() << "iteration " << i << " of seed " << kSeed;
    }
  }
  std::cout << "[          ] " << iterations << " mutants: " << tally.accepted
            << " decoded, " << tally.rejected << " refused\n";
  EXPECT_EQ(tally.accepted + tally.rejected, iterations);
  // The mix must exercise both outcomes in earnest.
  EXPECT_GT(tally.accepted, iterations / 100);
  EXPECT_GT(tally.rejected, iterations / 2);
}

TEST(CodecMutation, RandomBodiesBehindAValidPrefix) {
  std::mt19937_64 rng(kSeed ^ 0xb0d1e5);
  Tally tally;
  const std::size_t iterations = Scaled(kRandomBodies);
  for (std::size_t i = 0; i < iterations; ++i) {
    const MessageType type =
        testing::kAllTypes[i % std::size(testing::kAllTypes)];
    std::string frame = testing::MsgpackWriter().Frame(type);
    // Start with a plausible array header so the fields get looked at.
    frame.push_back(static_cast<char>(0x90 | (rng() % 8)));
    const std::size_t n = rng() % 48;
    for (std::size_t j = 0; j < n; ++j) {
      frame.push_back(static_cast<char>(
          kInteresting[rng() % std::size(kInteresting)] ^
          ((rng() % 4 == 0) ? static_cast<std::uint8_t>(rng() % 256) : 0)));
    }
    if (!CheckOne(frame, testing::FramesFor(type), 0, tally)) {
      FAIL() << "iteration " << i;
    }
  }
  EXPECT_EQ(tally.accepted + tally.rejected, iterations);
}

}  // namespace
}  // namespace rejoin
