// IdleShedder: when the broker runs out of descriptors, the connections that
// stayed silent for a whole window are shut down, so that new peers can be
// accepted (FLOWS.md §10). Every live peer speaks at least once per
// heartbeat interval (a message or a HEARTBEAT), so a window of three
// heartbeats sheds only connections that hold a descriptor and nothing
// else: floods of idle connections, and peers that stopped.
//
// The shell tells it what the socket's monitor reports (accepted and closed
// descriptors, failed accepts) and, while it listens, the descriptor each
// message came from; it answers which descriptors to shut down. No clock
// reads, no system calls: tests drive it with a fake clock.
#pragma once

#include <chrono>
#include <cstdint>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace rejoin::broker_internal {

class IdleShedder {
 public:
  using Clock = std::chrono::steady_clock;
  using Time = Clock::time_point;

  explicit IdleShedder(std::chrono::milliseconds window) : window_(window) {}

  // The monitor's events. A descriptor number reused by a new connection
  // starts afresh.
  void Accepted(int fd, Time now);
  void Closed(int fd);
  // An accept failed for want of descriptors: listen for one window, unless
  // already listening.
  void AcceptFailed(Time now);

  // Messages' descriptors are wanted only while listening.
  bool listening() const { return listening_; }
  void Heard(int fd) {
    if (listening_) heard_.insert(fd);
  }

  // At the end of the window: the descriptors accepted before it began and
  // not heard during it, to shut down (each once). Empty otherwise.
  std::vector<int> Due(Time now);

  // Connections accepted and not closed, as the monitor reported them.
  std::size_t open() const { return accepted_.size(); }
  std::uint64_t shed() const { return shed_; }

 private:
  std::chrono::milliseconds window_;
  std::unordered_map<int, Time> accepted_;  // descriptor -> accepted at
  std::unordered_set<int> heard_;
  bool listening_ = false;
  Time since_{};
  std::uint64_t shed_ = 0;
};

}  // namespace rejoin::broker_internal
