// RttEstimator: the wait before a resend follows recent round trips, forgets
// old outliers, and backs off only when resends prove needless.
#include "rtt_estimator.h"

#include <gtest/gtest.h>

#include <chrono>

namespace rejoin::client_internal {
namespace {

using std::chrono::microseconds;

constexpr microseconds kFallback{200000};
constexpr microseconds kCeiling{200000};

// 100 samples per cycle: 90 of 100 us, 9 of 1000 us, 1 of 5000 us.
void FillHeavyTail(RttEstimator& e, int cycles) {
  for (int c = 0; c < cycles; ++c) {
    for (int i = 0; i < 100; ++i) {
      e.Sample(i < 90 ? 100 : i < 99 ? 1000 : 5000);
    }
  }
}

TEST(RttEstimator, UsesTheFallbackUntilARoundTripWasMeasured) {
  RttEstimator e;
  EXPECT_FALSE(e.ready());
  EXPECT_EQ(e.FirstResend(1, microseconds(3000), kCeiling), microseconds(3000));
  EXPECT_EQ(e.FirstResend(1, microseconds(3000), microseconds(1000)),
            microseconds(1000));
}

TEST(RttEstimator, AFewSamplesGiveFourTimesTheirMedian) {
  RttEstimator e;
  e.Sample(20000);  // the first call of a process: connecting, warming up
  e.Sample(300);
  e.Sample(100);
  EXPECT_EQ(e.FirstResend(1, kFallback, kCeiling), microseconds(1200));
  EXPECT_EQ(e.FirstResend(64, kFallback, kCeiling), microseconds(1200));
}

TEST(RttEstimator, FewCallsInFlightWaitForTheNinetiethPercentile) {
  RttEstimator e;
  FillHeavyTail(e, 3);
  // The 90th percentile of the window falls on the 100 us / 1000 us edge.
  const microseconds idle = e.FirstResend(1, kFallback, kCeiling);
  EXPECT_GE(idle, RttEstimator::kFloor);
  EXPECT_LE(idle, microseconds(1250));
  // Busy sessions, whose losses the order of answers reveals, wait longer:
  // the timer is their backstop.
  const microseconds busy = e.FirstResend(64, kFallback, kCeiling);
  EXPECT_GE(busy, microseconds(1500));
  EXPECT_LE(busy, microseconds(15000));
  EXPECT_GT(busy, idle);
}

TEST(RttEstimator, NeverWaitsLessThanTheFloorOrMoreThanTheCeiling) {
  RttEstimator e;
  for (int i = 0; i < 50; ++i) e.Sample(10);
  EXPECT_EQ(e.FirstResend(1, kFallback, kCeiling), RttEstimator::kFloor);
  RttEstimator slow;
  for (int i = 0; i < 50; ++i) slow.Sample(900000);
  EXPECT_EQ(slow.FirstResend(1, kFallback, kCeiling), kCeiling);
}

TEST(RttEstimator, ASlowStartDoesNotStretchTheWait) {
  RttEstimator e;
  e.Sample(80000);  // the first call of a process: connecting, warming up
  for (int i = 0; i < 20; ++i) e.Sample(200);
  EXPECT_LE(e.FirstResend(1, kFallback, kCeiling), microseconds(300));
  EXPECT_LE(e.FirstResend(64, kFallback, kCeiling), microseconds(600));
}

TEST(RttEstimator, ForgetsAStallAfterTheWindow) {
  RttEstimator e;
  for (int i = 0; i < 100; ++i) e.Sample(200);
  // The machine stalled (quantiles are refreshed every kRecompute samples).
  for (int i = 0; i < 12; ++i) e.Sample(50000);
  EXPECT_GE(e.FirstResend(64, kFallback, kCeiling), microseconds(50000));
  // Gone once a window of samples and the next recomputation passed.
  for (std::size_t i = 0;
       i < RttEstimator::kWindow + RttEstimator::kRecomputeFull; ++i) {
    e.Sample(200);
  }
  EXPECT_LE(e.FirstResend(64, kFallback, kCeiling), microseconds(600));
}

TEST(RttEstimator, FollowsAChangeOfPath) {
  RttEstimator e;
  for (std::size_t i = 0; i < RttEstimator::kWindow; ++i) e.Sample(100);
  const microseconds fast = e.FirstResend(1, kFallback, kCeiling);
  for (std::size_t i = 0; i < RttEstimator::kWindow; ++i) e.Sample(4000);
  const microseconds slow = e.FirstResend(1, kFallback, kCeiling);
  EXPECT_EQ(fast, RttEstimator::kFloor);
  EXPECT_EQ(slow, microseconds(5000));
  EXPECT_NEAR(e.srtt_us(), 4000, 1);
}

TEST(RttEstimator, BacksOffWhenMostResendsWereNeedless) {
  RttEstimator e;
  for (int i = 0; i < 100; ++i) e.Sample(1000);
  const microseconds base = e.FirstResend(1, kFallback, kCeiling);
  // An epoch in which every resend was answered twice.
  for (std::uint32_t i = 0; i < RttEstimator::kEpoch; ++i) {
    e.SpuriousResend();
    e.ResendAnswered();
  }
  EXPECT_EQ(e.backoff(), 2);
  EXPECT_EQ(e.FirstResend(1, kFallback, kCeiling), 2 * base);
  // Repeated, it stops at the cap.
  for (int epoch = 0; epoch < 10; ++epoch) {
    for (std::uint32_t i = 0; i < RttEstimator::kEpoch; ++i) {
      e.SpuriousResend();
      e.ResendAnswered();
    }
  }
  EXPECT_EQ(e.backoff(), RttEstimator::kMaxBackoff);
  // Real losses (resends answered once, one call in a hundred) bring it
  // back, halving per epoch.
  for (int epoch = 0; epoch < 4; ++epoch) {
    for (std::uint32_t i = 0; i < RttEstimator::kEpoch; ++i) {
      for (int k = 0; k < 99; ++k) e.Sample(1000);
      e.ResendAnswered();
    }
  }
  EXPECT_EQ(e.backoff(), 1);
  EXPECT_EQ(e.FirstResend(1, kFallback, kCeiling), base);
}

TEST(RttEstimator, AMixOfLossesAndEarlyResendsKeepsTheWait) {
  RttEstimator e;
  for (int i = 0; i < 100; ++i) e.Sample(1000);
  // Two in three resends needless: between the thresholds, nothing changes.
  for (int epoch = 0; epoch < 10; ++epoch) {
    for (std::uint32_t i = 0; i < RttEstimator::kEpoch; ++i) {
      e.ResendAnswered();
      if (i % 3 != 0) e.SpuriousResend();
    }
  }
  EXPECT_EQ(e.backoff(), 1);
}

// Epochs of `kEpoch` resends answered, each after `clean` calls answered at
// their first send; `spurious_every` > 0 makes every that-many-th resend
// needless.
void LoseOneIn(RttEstimator& e, int clean, int epochs,
               std::uint32_t spurious_every = 0) {
  for (int epoch = 0; epoch < epochs; ++epoch) {
    for (std::uint32_t i = 0; i < RttEstimator::kEpoch; ++i) {
      for (int k = 0; k < clean; ++k) e.Sample(1000);
      e.ResendAnswered();
      if (spurious_every > 0 && i % spurious_every == 0) e.SpuriousResend();
    }
  }
}

TEST(RttEstimator, ALossySessionWaitsLessForTheResendOfAFewCalls) {
  RttEstimator e;
  for (int i = 0; i < 100; ++i) e.Sample(1000);
  const auto wait = [&](std::size_t in_flight) {
    return e.FirstResend(in_flight, kFallback, kCeiling);
  };
  EXPECT_EQ(e.loss(), 0);
  EXPECT_EQ(wait(1), microseconds(1250));  // kFewFactor x the 90th
  // One call in a hundred lost: the wait stays.
  LoseOneIn(e, 99, 2);
  EXPECT_NEAR(e.loss(), 0.01, 1e-9);
  EXPECT_EQ(wait(1), microseconds(1250));
  // One in five lost: a lost call costs more than the needless resends of a
  // shorter wait.
  LoseOneIn(e, 4, 1);
  EXPECT_NEAR(e.loss(), 0.2, 1e-9);
  EXPECT_EQ(wait(1), microseconds(1000));  // kLossyFewFactor x the 90th
  // Busy sessions find their losses by the order of answers: unchanged.
  EXPECT_EQ(wait(64), microseconds(3000));
  // Resends answered twice were not losses: half of them here, so one call
  // in forty lost, not one in twenty.
  LoseOneIn(e, 19, 1, /*spurious_every=*/2);
  EXPECT_NEAR(e.loss(), 0.025, 1e-9);
  EXPECT_EQ(e.backoff(), 1);
  EXPECT_EQ(wait(1), microseconds(1250));
  // The loss ends: the next epoch brings the wait back.
  LoseOneIn(e, 4, 1);
  EXPECT_EQ(wait(1), microseconds(1000));
  LoseOneIn(e, 199, 1);
  EXPECT_NEAR(e.loss(), 0.005, 1e-9);
  EXPECT_EQ(wait(1), microseconds(1250));
}

}  // namespace
}  // namespace rejoin::client_internal
