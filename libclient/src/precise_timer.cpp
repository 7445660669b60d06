#include "precise_timer.h"

#include <sys/timerfd.h>
#include <unistd.h>

#include <cstdint>
#include <type_traits>

namespace rejoin::client_internal {

static_assert(std::is_same_v<std::chrono::steady_clock::duration,
                             std::chrono::nanoseconds>);

PreciseTimer::PreciseTimer()
    : fd_(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) {}

PreciseTimer::~PreciseTimer() {
  if (fd_ >= 0) ::close(fd_);
}

void PreciseTimer::Arm(TimePoint at) {
  if (fd_ < 0 || at == armed_) return;
  const std::int64_t ns = at.time_since_epoch().count();
  itimerspec spec{};
  spec.it_value.tv_sec = static_cast<time_t>(ns / 1000000000);
  spec.it_value.tv_nsec = static_cast<long>(ns % 1000000000);
  if (spec.it_value.tv_sec == 0 && spec.it_value.tv_nsec == 0) {
    spec.it_value.tv_nsec = 1;  // zero would disarm
  }
  if (::timerfd_settime(fd_, TFD_TIMER_ABSTIME, &spec, nullptr) == 0) {
    armed_ = at;
  }
}

void PreciseTimer::ArmBy(TimePoint at) {
  if (armed_ != TimePoint{} && armed_ <= at) return;
  Arm(at);
}

void PreciseTimer::Disarm() {
  if (fd_ < 0 || armed_ == TimePoint{}) return;
  itimerspec spec{};
  (void)::timerfd_settime(fd_, 0, &spec, nullptr);
  armed_ = TimePoint{};
}

void PreciseTimer::Clear() {
  std::uint64_t expirations = 0;
  (void)!::read(fd_, &expirations, sizeof expirations);
  armed_ = TimePoint{};
}

}  // namespace rejoin::client_internal
