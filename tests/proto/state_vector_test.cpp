// State vector queries and the validation that guards the decision against
// vectors from the network.
#include "rejoin/proto/state_vector.h"

#include <gtest/gtest.h>

namespace rejoin {
namespace {

ClientVector ValidClient() {
  return {"session-1", 3, 42, 10, 4, {4, 6}, {5, 9}};
}

ServerVector ValidServer() {
  return {"server-1",
          2,
          7,
          "session-1",
          3,
          {{3, ServerOpState::kExecuted, 1}, {5, ServerOpState::kReceived, 2}}};
}

TEST(ClientVector, StateOfFollowsWatermarkListsAndNextSeq) {
  const ClientVector c = ValidClient();
  EXPECT_EQ(c.StateOf(0), ClientOpState::kNone);
  EXPECT_EQ(c.StateOf(1), ClientOpState::kCompleted);
  EXPECT_EQ(c.StateOf(4), ClientOpState::kPrepared);
  EXPECT_EQ(c.StateOf(5), ClientOpState::kCompleted);
  EXPECT_EQ(c.StateOf(7), ClientOpState::kCompleted);  // forgotten
  EXPECT_EQ(c.StateOf(10), ClientOpState::kNone);
}

TEST(ClientVector, ValidateAcceptsAWellFormedVector) {
  EXPECT_TRUE(ValidClient().Validate().ok());
}

TEST(ClientVector, ValidateRejectsEveryBrokenInvariant) {
  auto broken = [](auto mutate) {
    ClientVector c = ValidClient();
    mutate(c);
    return c.Validate().code();
  };
  EXPECT_EQ(broken([](ClientVector& c) { c.session = ""; }),
            ErrorCode::kMalformed);
  EXPECT_EQ(broken([](ClientVector& c) { c.session = "has space"; }),
            ErrorCode::kMalformed);
  EXPECT_EQ(broken([](ClientVector& c) { c.next_seq = 0; }),
            ErrorCode::kMalformed);
  EXPECT_EQ(broken([](ClientVector& c) { c.completed_watermark = 0; }),
            ErrorCode::kMalformed);
  EXPECT_EQ(broken([](ClientVector& c) { c.completed_watermark = 11; }),
            ErrorCode::kMalformed);
  EXPECT_EQ(broken([](ClientVector& c) {
              c.pending = {6, 4};
            }),
            ErrorCode::kMalformed);
  EXPECT_EQ(broken([](ClientVector& c) {
              c.pending = {4, 4};
            }),
            ErrorCode::kMalformed);
  EXPECT_EQ(broken([](ClientVector& c) { c.pending = {3}; }),
            ErrorCode::kMalformed);
  EXPECT_EQ(broken([](ClientVector& c) { c.completed = {10}; }),
            ErrorCode::kMalformed);
  EXPECT_EQ(broken([](ClientVector& c) { c.completed = {4}; }),
            ErrorCode::kMalformed);
}

TEST(ServerVector, StateOfAndFind) {
  const ServerVector s = ValidServer();
  EXPECT_EQ(s.StateOf(2), ServerOpState::kReleased);
  EXPECT_EQ(s.StateOf(3), ServerOpState::kExecuted);
  EXPECT_EQ(s.StateOf(4), ServerOpState::kNone);
  EXPECT_EQ(s.StateOf(5), ServerOpState::kReceived);
  EXPECT_EQ(s.Find(4), nullptr);
  ASSERT_NE(s.Find(5), nullptr);
  EXPECT_EQ(s.Find(5)->received_incarnation, 2u);
}

TEST(ServerVector, ValidateRejectsEveryBrokenInvariant) {
  EXPECT_TRUE(ValidServer().Validate().ok());
  auto broken = [](auto mutate) {
    ServerVector s = ValidServer();
    mutate(s);
    return s.Validate().code();
  };
  EXPECT_EQ(broken([](ServerVector& s) { s.server = ""; }),
            ErrorCode::kMalformed);
  EXPECT_EQ(broken([](ServerVector& s) { s.session = std::string(200, 'x'); }),
            ErrorCode::kMalformed);
  EXPECT_EQ(broken([](ServerVector& s) { s.incarnation = 0; }),
            ErrorCode::kMalformed);
  EXPECT_EQ(broken([](ServerVector& s) { s.released_watermark = 0; }),
            ErrorCode::kMalformed);
  EXPECT_EQ(broken([](ServerVector& s) { s.released_watermark = 4; }),
            ErrorCode::kMalformed);
  EXPECT_EQ(broken([](ServerVector& s) { std::swap(s.held[0], s.held[1]); }),
            ErrorCode::kMalformed);
  EXPECT_EQ(broken([](ServerVector& s) {
              s.held[0].state = ServerOpState::kReleased;
            }),
            ErrorCode::kMalformed);
  EXPECT_EQ(broken([](ServerVector& s) { s.held[1].received_incarnation = 3; }),
            ErrorCode::kMalformed);
  EXPECT_EQ(broken([](ServerVector& s) { s.held[1].received_incarnation = 0; }),
            ErrorCode::kMalformed);
}

}  // namespace
}  // namespace rejoin
