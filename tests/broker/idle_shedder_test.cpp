// IdleShedder on a fake clock: which descriptors are shut down when the
// broker runs out of them (FLOWS.md §10).
#include "idle_shedder.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <vector>

namespace rejoin::broker_internal {
namespace {

using std::chrono::milliseconds;
using Time = IdleShedder::Time;

class IdleShedderTest : public ::testing::Test {
 protected:
  std::vector<int> Sorted(std::vector<int> v) {
    std::sort(v.begin(), v.end());
    return v;
  }
  IdleShedder shedder_{milliseconds(600)};
  Time now_ = Time{} + std::chrono::hours(1);
};

TEST_F(IdleShedderTest, NothingIsShedBeforeAnAcceptFails) {
  shedder_.Accepted(10, now_);
  shedder_.Accepted(11, now_);
  EXPECT_FALSE(shedder_.listening());
  EXPECT_TRUE(shedder_.Due(now_ + std::chrono::hours(1)).empty());
  EXPECT_EQ(shedder_.open(), 2u);
}

TEST_F(IdleShedderTest, ConnectionsSilentForTheWholeWindowAreShed) {
  shedder_.Accepted(10, now_);
  shedder_.Accepted(11, now_);
  shedder_.Accepted(12, now_);
  shedder_.AcceptFailed(now_ + milliseconds(1));
  EXPECT_TRUE(shedder_.listening());
  shedder_.Heard(11);
  // Not before the window has passed.
  EXPECT_TRUE(shedder_.Due(now_ + milliseconds(300)).empty());
  EXPECT_EQ(Sorted(shedder_.Due(now_ + milliseconds(601))),
            (std::vector<int>{10, 12}));
  EXPECT_FALSE(shedder_.listening());
  EXPECT_EQ(shedder_.shed(), 2u);
  EXPECT_EQ(shedder_.open(), 1u);
  // Each once.
  EXPECT_TRUE(shedder_.Due(now_ + milliseconds(2000)).empty());
}

TEST_F(IdleShedderTest, ConnectionsAcceptedDuringTheWindowAreKept) {
  shedder_.AcceptFailed(now_);
  shedder_.Accepted(20, now_ + milliseconds(100));  // may be in handshake
  EXPECT_TRUE(shedder_.Due(now_ + milliseconds(700)).empty());
  EXPECT_EQ(shedder_.open(), 1u);
}

TEST_F(IdleShedderTest, AReusedDescriptorIsANewConnection) {
  shedder_.Accepted(10, now_);
  shedder_.AcceptFailed(now_ + milliseconds(10));
  shedder_.Heard(10);
  // The heard connection closes and its number comes back for a new one
  // that says nothing: it is young, so kept in this window.
  shedder_.Closed(10);
  shedder_.Accepted(10, now_ + milliseconds(20));
  EXPECT_TRUE(shedder_.Due(now_ + milliseconds(700)).empty());
  // In the next window it is silent from the start: shed.
  shedder_.AcceptFailed(now_ + milliseconds(800));
  EXPECT_EQ(shedder_.Due(now_ + milliseconds(1500)), std::vector<int>{10});
}

TEST_F(IdleShedderTest, ClosedConnectionsAreNeverShed) {
  shedder_.Accepted(10, now_);
  shedder_.AcceptFailed(now_);
  shedder_.Closed(10);
  EXPECT_TRUE(shedder_.Due(now_ + milliseconds(700)).empty());
  EXPECT_EQ(shedder_.open(), 0u);
}

TEST_F(IdleShedderTest, MessagesOutsideAWindowAreNotRemembered) {
  shedder_.Accepted(10, now_);
  shedder_.Heard(10);  // before any failure: not listening
  shedder_.AcceptFailed(now_ + milliseconds(5));
  EXPECT_EQ(shedder_.Due(now_ + milliseconds(700)), std::vector<int>{10});
}

}  // namespace
}  // namespace rejoin::broker_internal
