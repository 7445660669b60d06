// The request digest is journaled by servers and compared by brokers
// (PROTOCOL.md §4.3): its values must never change. These were computed by
// the first implementation, byte by byte.
#include "rejoin/proto/request_digest.h"

#include <gtest/gtest.h>

#include <string>

namespace rejoin::proto {
namespace {

TEST(RequestDigest, ValuesNeverChange) {
  std::string big;
  for (int i = 0; i < 1000; ++i) big.push_back(static_cast<char>(i * 7));
  EXPECT_EQ(RequestDigest("", ""), 0x7fe0a0f1b391e49dULL);
  EXPECT_EQ(RequestDigest("pay", "A"), 0x7941900c299aa6faULL);
  EXPECT_EQ(RequestDigest("bank.transfer", "0123456789abcdefXYZ"),
            0xd02396435f30cf09ULL);
  EXPECT_EQ(RequestDigest("svc", big), 0x65cb6a93533adafbULL);
}

TEST(RequestDigest, ServiceAndPayloadAreKeptApart) {
  EXPECT_EQ(RequestDigest("ab", "c"), 0x0864d3ae03788b6fULL);
  EXPECT_EQ(RequestDigest("a", "bc"), 0xb892de3847f1efb2ULL);
  EXPECT_NE(RequestDigest("pay", "A"), RequestDigest("pay", "B"));
  EXPECT_NE(RequestDigest("pay", "A"), RequestDigest("paY", "A"));
}

}  // namespace
}  // namespace rejoin::proto
