#include "rtt_estimator.h"

#include <algorithm>
#include <cmath>

namespace rejoin::client_internal {

void RttEstimator::Sample(double rtt_us) {
  ++epoch_answered_;
  ring_[count_ % kWindow] = rtt_us;
  ++count_;
  srtt_us_ = count_ == 1 ? rtt_us : 0.875 * srtt_us_ + 0.125 * rtt_us;
  const std::size_t every = count_ < kWindow ? kRecompute : kRecomputeFull;
  if (count_ <= kRecompute || count_ % every == 0) Recompute();
}

void RttEstimator::Recompute() {
  const std::size_t n = std::min(count_, kWindow);
  std::array<double, kWindow> sorted = ring_;
  auto first = sorted.begin();
  auto last = first + static_cast<std::ptrdiff_t>(n);
  auto at = [&](double q) {
    auto k = first + static_cast<std::ptrdiff_t>(
                         std::floor(q * static_cast<double>(n - 1)));
    std::nth_element(first, k, last);
    return *k;
  };
  q99_us_ = at(0.99);
  q90_us_ = at(0.90);
  if (count_ < kMinSamples) q50_us_ = at(0.50);
}

void RttEstimator::ResendAnswered() {
  ++epoch_answered_;
  ++epoch_resends_;
  CloseEpochIfDue();
}

void RttEstimator::SpuriousResend() {
  ++epoch_spurious_;
  CloseEpochIfDue();
}

void RttEstimator::CloseEpochIfDue() {
  if (epoch_resends_ < kEpoch) return;
  // Second answers can arrive after the epoch their resend was counted in;
  // they count in the next one, so the fraction may briefly exceed 1.
  const double spurious = static_cast<double>(epoch_spurious_) /
                          static_cast<double>(epoch_resends_);
  if (spurious > kSpuriousHigh) {
    backoff_ = std::min(backoff_ * 2, kMaxBackoff);
  } else if (spurious < kSpuriousLow) {
    backoff_ = std::max(backoff_ / 2, 1.0);
  }
  // A resend answered once was a real loss (a second answer still on its
  // way is counted in the next epoch's needless ones).
  const std::uint32_t lost =
      epoch_resends_ > epoch_spurious_ ? epoch_resends_ - epoch_spurious_ : 0;
  loss_ = static_cast<double>(lost) / static_cast<double>(epoch_answered_);
  epoch_resends_ = 0;
  epoch_spurious_ = 0;
  epoch_answered_ = 0;
}

std::chrono::microseconds RttEstimator::FirstResend(
    std::size_t in_flight, std::chrono::microseconds fallback,
    std::chrono::microseconds ceiling) const {
  if (!ready()) return std::min(fallback, ceiling);
  const double few = loss_ >= kLossyRate ? kLossyFewFactor : kFewFactor;
  double base =
      in_flight < kFewInFlight ? few * q90_us_ : kBusyFactor * q99_us_;
  if (count_ < kMinSamples) base = kEarlyFactor * q50_us_;
  const auto wait =
      std::chrono::microseconds(static_cast<std::int64_t>(base * backoff_));
  return std::clamp<std::chrono::microseconds>(wait, kFloor,
                                               std::max(kFloor, ceiling));
}

}  // namespace rejoin::client_internal
