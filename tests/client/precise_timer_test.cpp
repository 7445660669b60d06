// PreciseTimer: the timerfd behind the I/O loop's sub-millisecond resends.
// ArmBy keeps a deadline already armed at or before the one asked for (the
// loop it wakes early arms again), and moves one armed later forward.
#include "precise_timer.h"

#include <gtest/gtest.h>
#include <poll.h>

#include <chrono>

namespace rejoin::client_internal {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Whether the timer's fd turns readable within `wait`.
bool FiresWithin(const PreciseTimer& t, std::chrono::milliseconds wait) {
  pollfd p{t.fd(), POLLIN, 0};
  return ::poll(&p, 1, static_cast<int>(wait.count())) == 1 &&
         (p.revents & POLLIN) != 0;
}

TEST(PreciseTimer, ArmByKeepsAnEarlierDeadline) {
  PreciseTimer t;
  ASSERT_GE(t.fd(), 0);
  t.ArmBy(Clock::now() + 20ms);
  // A later deadline leaves the earlier one armed: the fd still fires at
  // 20 ms, long before the hour.
  t.ArmBy(Clock::now() + 1h);
  EXPECT_TRUE(FiresWithin(t, 10s));
}

TEST(PreciseTimer, ArmByMovesALaterDeadlineForward) {
  PreciseTimer t;
  ASSERT_GE(t.fd(), 0);
  t.ArmBy(Clock::now() + 1h);
  t.ArmBy(Clock::now() + 20ms);
  EXPECT_TRUE(FiresWithin(t, 10s));
}

TEST(PreciseTimer, ClearedTimerArmsAgainAtTheNextDeadline) {
  PreciseTimer t;
  ASSERT_GE(t.fd(), 0);
  t.ArmBy(Clock::now() + 5ms);
  ASSERT_TRUE(FiresWithin(t, 10s));
  t.Clear();
  // Nothing is armed now: the expiry was consumed, so a later deadline is
  // armed rather than kept behind the old one.
  t.ArmBy(Clock::now() + 1h);
  EXPECT_FALSE(FiresWithin(t, 50ms));
  t.ArmBy(Clock::now() + 20ms);
  EXPECT_TRUE(FiresWithin(t, 10s));
}

TEST(PreciseTimer, ArmReplacesTheDeadlineEitherWay) {
  PreciseTimer t;
  ASSERT_GE(t.fd(), 0);
  t.Arm(Clock::now() + 20ms);
  t.Arm(Clock::now() + 1h);
  EXPECT_FALSE(FiresWithin(t, 100ms));
  t.Disarm();
  EXPECT_FALSE(FiresWithin(t, 0ms));
}

}  // namespace
}  // namespace rejoin::client_internal
