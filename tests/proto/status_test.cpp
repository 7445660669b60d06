// Status and Result<T>: the error values every rejoin API returns.
#include "rejoin/proto/status.h"

#include <gtest/gtest.h>

#include <string>

#include "rejoin/proto/types.h"
#include "rejoin/proto/version.h"

namespace rejoin {
namespace {

TEST(Status, OkByDefault) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.ToString(), "ok");
}

TEST(Status, CarriesCodeAndMessage) {
  Status s(ErrorCode::kDeadlineExceeded, "seq 4 after 100 ms");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), ErrorCode::kDeadlineExceeded);
  EXPECT_EQ(s.ToString(), "deadline_exceeded: seq 4 after 100 ms");
}

TEST(Result, HoldsAValueOrAStatus) {
  Result<int> good(5);
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 5);
  EXPECT_TRUE(good.status().ok());
  Result<int> bad(ErrorCode::kNotFound, "no such seq");
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kNotFound);
}

TEST(Result, RefusesToHoldAnOkStatus) {
  Result<std::string> r{Status::Ok()};
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kInternal);
}

TEST(ErrorCode, WireCodesAreBelowOneHundredAndNamed) {
  for (int v = 0; v < 200; ++v) {
    const auto code = static_cast<ErrorCode>(v);
    if (ErrorCodeName(code) == "unknown") continue;
    EXPECT_EQ(IsWireCode(code), v < 100) << v;
  }
  EXPECT_EQ(ErrorCodeName(ErrorCode::kInDoubt), "in_doubt");
  EXPECT_EQ(ErrorCodeName(static_cast<ErrorCode>(999)), "unknown");
}

TEST(Version, IsTheProjectVersion) {
  EXPECT_EQ(Version(), REJOIN_PROJECT_VERSION);
  EXPECT_EQ(VersionLine("rejoin-call"),
            std::string("rejoin-call ") + REJOIN_PROJECT_VERSION);
  // MAJOR.MINOR.PATCH, digits only.
  int dots = 0;
  for (char c : Version()) {
    if (c == '.') {
      ++dots;
    } else {
      EXPECT_TRUE(c >= '0' && c <= '9') << Version();
    }
  }
  EXPECT_EQ(dots, 2);
}

TEST(Ids, PrintableAsciiWithinLimits) {
  EXPECT_TRUE(IsValidId("client-7"));
  EXPECT_FALSE(IsValidId(""));
  EXPECT_FALSE(IsValidId("a b"));
  EXPECT_FALSE(IsValidId(std::string(kMaxIdBytes + 1, 'a')));
  EXPECT_TRUE(IsValidId(std::string(kMaxIdBytes, 'a')));
  EXPECT_FALSE(IsValidId(std::string("a\0b", 3)));
  EXPECT_TRUE(IsValidServiceName("bank.transfer"));
  EXPECT_FALSE(IsValidServiceName("bank\ttransfer"));
}

}  // namespace
}  // namespace rejoin
