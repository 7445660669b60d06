// Golden bytes: the encoding of each type's fixed sample (codec_samples.h) is
// checked in under tests/data/golden/<type>.bin. A change to these bytes is a
// change to wire protocol v1, which PROTOCOL.md §9 forbids. After a deliberate
// change of the samples (never of the format), regenerate with
//   REJOIN_REGENERATE_GOLDEN=1 codec_test --gtest_filter='CodecGolden*'
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <system_error>

#include "proto/codec_samples.h"
#include "rejoin/proto/codec.h"

namespace rejoin {
namespace {

std::filesystem::path GoldenPath(MessageType t) {
  return std::filesystem::path(REJOIN_TEST_DATA_DIR) / "golden" /
         (testing::LowerName(t) + ".bin");
}

bool Regenerating() {
  const char* env = std::getenv("REJOIN_REGENERATE_GOLDEN");
  return env != nullptr && std::string(env) == "1";
}

std::optional<std::string> ReadFile(const std::filesystem::path& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return std::nullopt;
  std::string bytes(size, '\0');
  std::ifstream in(path, std::ios::binary);
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!in) return std::nullopt;
  return bytes;
}

void WriteFile(const std::filesystem::path& path, const std::string& bytes) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

// The encoding of the sample equals the file, and the file decodes to the
// sample.
void ExpectGolden(MessageType t) {
  const Message sample = testing::SampleOf(t);
  const std::string encoded = EncodeHeader(sample);
  const std::filesystem::path path = GoldenPath(t);
  if (Regenerating()) {
    WriteFile(path, encoded);
    return;
  }
  const std::optional<std::string> golden = ReadFile(path);
  ASSERT_TRUE(golden.has_value())
      << "missing " << path << " (REJOIN_REGENERATE_GOLDEN=1 writes it)";
  EXPECT_EQ(encoded, *golden) << "encoding of the " << MessageTypeName(t)
                              << " sample no longer matches " << path;
  Result<Message> decoded =
      DecodeHeader(*golden, testing::FramesFor(t), /*payload_bytes=*/0);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_TRUE(*decoded == sample) << path << " no longer decodes to the "
                                  << MessageTypeName(t) << " sample";
}

TEST(CodecGolden, Hello) { ExpectGolden(MessageType::kHello); }
TEST(CodecGolden, Welcome) { ExpectGolden(MessageType::kWelcome); }
TEST(CodecGolden, Request) { ExpectGolden(MessageType::kRequest); }
TEST(CodecGolden, Response) { ExpectGolden(MessageType::kResponse); }
TEST(CodecGolden, Ack) { ExpectGolden(MessageType::kAck); }
TEST(CodecGolden, Heartbeat) { ExpectGolden(MessageType::kHeartbeat); }
TEST(CodecGolden, StateExchange) { ExpectGolden(MessageType::kStateExchange); }
TEST(CodecGolden, Recover) { ExpectGolden(MessageType::kRecover); }
TEST(CodecGolden, Probe) { ExpectGolden(MessageType::kProbe); }
TEST(CodecGolden, ProbeReply) { ExpectGolden(MessageType::kProbeReply); }
TEST(CodecGolden, Error) { ExpectGolden(MessageType::kError); }
TEST(CodecGolden, Goodbye) { ExpectGolden(MessageType::kGoodbye); }

// The worked example of PROTOCOL.md §10, byte for byte.
TEST(CodecGolden, RequestMatchesTheSpecExample) {
  const std::string expected =
      "\x52\x4a\x01\x03"
      "\x96"
      "\xb0"
      "c0a8012a5f3e9d71"
      "\xcd\x10\x92"
      "\xad"
      "bank.transfer"
      "\xcd\x10\x91"
      "\xcd\x75\x30"
      "\x01";
  EXPECT_EQ(EncodeHeader(testing::SampleOf(MessageType::kRequest)), expected);
}

}  // namespace
}  // namespace rejoin
