// RttEstimator: how long the client waits for an answer before it presumes a
// request or its response lost and sends the request again (FLOWS.md §1).
//
// Round trips through the broker are heavy-tailed: a thread that was not
// scheduled for a millisecond makes one answer ten times slower than the
// median. So the wait is a quantile of recent samples rather than a mean
// plus deviations, and it depends on how busy the session is:
//
//  - with fewer than kFewInFlight operations in flight the order of answers
//    may not reveal a loss (Client::Impl::HintLosses needs up to that many
//    later sends answered, reorder_slack.h), the pipe is mostly idle, a
//    needless resend costs one message, and waiting stalls the session: the
//    wait is kFewFactor x the 90th percentile;
//  - with more in flight the order of answers finds nearly every loss
//    within a round trip and a needless resend takes capacity from other
//    operations: the timer is only the backstop, at kBusyFactor x the 99th
//    percentile (at 1.5 x it fired for thousands of merely late answers
//    under 1 % loss).
//
// Until kMinSamples round trips were measured a tail quantile means little,
// and the wait is kEarlyFactor x their median (not their maximum: the first
// call of a process, which connects and warms up, is often 100 x slower).
//
// Samples come only from operations answered at their first send (Karn's
// rule) and only the last kWindow count, so one slow start-up answer is
// forgotten after kWindow operations instead of inflating every wait.
//
// A resend answered twice was needless. If more than kSpuriousHigh of the
// resends of an epoch (kEpoch answered resends) were needless, the waits are
// doubled (up to kMaxBackoff): the machine stalls or the path queues more
// than the samples show. Below kSpuriousLow they are halved back towards 1.
//
// The same epochs measure the loss: resends answered once, per operation
// answered. A session that loses kLossyRate or more of its round trips
// waits kLossyFewFactor x the 90th percentile instead of kFewFactor x:
// there a lost call costs more than the late answers a shorter wait mistakes
// for losses, while with few losses the needless resends of the shorter wait
// cost more than they gain (docs/BENCHMARKS.md, "Loss: the resend wait of a
// lossy session").
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace rejoin::client_internal {

class RttEstimator {
 public:
  static constexpr std::size_t kWindow = 256;
  // Samples between two computations of the quantiles: every kRecompute
  // until the window is full, every kRecomputeFull after (sorting the window
  // is the estimator's whole cost).
  static constexpr std::size_t kRecompute = 16;
  static constexpr std::size_t kRecomputeFull = 64;
  static constexpr std::size_t kMinSamples = 16;
  static constexpr double kEarlyFactor = 4;
  static constexpr std::size_t kFewInFlight = 16;
  static constexpr double kFewFactor = 1.25;
  static constexpr double kLossyFewFactor = 1.0;
  static constexpr double kLossyRate = 0.05;
  static constexpr double kBusyFactor = 3;
  static constexpr std::uint32_t kEpoch = 32;
  static constexpr double kSpuriousHigh = 0.75;
  static constexpr double kSpuriousLow = 0.5;
  static constexpr double kMaxBackoff = 16;
  static constexpr std::chrono::microseconds kFloor{200};

  // One round trip of an operation answered at its only send.
  void Sample(double rtt_us);
  // A resent operation was answered (the first of its answers).
  void ResendAnswered();
  // A second answer arrived for a resent operation: the resend was needless.
  void SpuriousResend();

  bool ready() const { return count_ > 0; }
  // The smoothed round trip (RFC 6298's estimator), 0 before any sample.
  double srtt_us() const { return srtt_us_; }
  double backoff() const { return backoff_; }
  // Round trips lost per operation answered, over the last closed epoch
  // (0 until one closed).
  double loss() const { return loss_; }

  // The wait before the first resend of an operation sent while `in_flight`
  // operations of the session were awaiting answers; `fallback` before any
  // sample, and never more than `ceiling`.
  std::chrono::microseconds FirstResend(
      std::size_t in_flight, std::chrono::microseconds fallback,
      std::chrono::microseconds ceiling) const;

 private:
  void Recompute();
  void CloseEpochIfDue();

  std::array<double, kWindow> ring_{};
  std::size_t count_ = 0;  // samples ever taken
  double srtt_us_ = 0;
  double q90_us_ = 0;
  double q99_us_ = 0;
  double q50_us_ = 0;
  double backoff_ = 1;
  std::uint32_t epoch_resends_ = 0;
  std::uint32_t epoch_spurious_ = 0;
  // Operations answered in the epoch: 64 bits, since a session that never
  // resends never closes one.
  std::uint64_t epoch_answered_ = 0;
  double loss_ = 0;
};

}  // namespace rejoin::client_internal
