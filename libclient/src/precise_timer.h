// PreciseTimer: a timerfd that wakes the I/O thread's poll at a
// microsecond deadline. poll counts its timeout in whole milliseconds,
// which is longer than a round trip on a local network: a resend due in
// 300 us would otherwise wait a full millisecond or two.
#pragma once

#include <chrono>

namespace rejoin::client_internal {

class PreciseTimer {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  // Without a timerfd (fd() < 0) the caller keeps the millisecond timeout.
  PreciseTimer();
  ~PreciseTimer();
  PreciseTimer(const PreciseTimer&) = delete;
  PreciseTimer& operator=(const PreciseTimer&) = delete;

  int fd() const { return fd_; }
  // Fires at `at` (steady_clock is CLOCK_MONOTONIC); a repeated call for the
  // same deadline costs no system call.
  void Arm(TimePoint at);
  // Fires no later than `at`. A deadline already armed at or before `at` is
  // kept: the loop it wakes early arms again, off the path of the message
  // that moved the deadline. Re-arming costs a timerfd_settime, which on a
  // virtual machine reprograms the vCPU's timer through the hypervisor
  // (6-13 us each, measured in docs/BENCHMARKS.md), and at window 1 every
  // call's deadline is new.
  void ArmBy(TimePoint at);
  void Disarm();
  // Consumes the expiry after the fd polled readable.
  void Clear();

 private:
  int fd_ = -1;
  TimePoint armed_{};  // {} when disarmed
};

}  // namespace rejoin::client_internal
