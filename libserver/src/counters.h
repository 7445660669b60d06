// The counters behind ServerStats, and the server's health: written by the
// I/O and worker threads, read by any thread through Server::stats() and
// Server::status().
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <utility>

#include "rejoin/server/server.h"

namespace rejoin::server_internal {

// Whether the server still serves: set once, by the I/O thread, when it
// stops for good (its journal failed); read by Server::status() and waited
// on by Server::WaitForFailure().
class Health {
 public:
  void Fail(Status status) {
    {
      std::lock_guard lock(mu_);
      if (!status_.ok()) return;
      status_ = std::move(status);
    }
    cv_.notify_all();
  }
  Status status() const {
    std::lock_guard lock(mu_);
    return status_;
  }
  Status Wait(std::chrono::milliseconds timeout) const {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [this] { return !status_.ok(); });
    return status_;
  }

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  Status status_;
};

struct Counters {
  Health health;
  std::atomic<std::uint64_t> executed{0};
  std::atomic<std::uint64_t> duplicates{0};
  std::atomic<std::uint64_t> responses_resent{0};
  std::atomic<std::uint64_t> reexecuted{0};
  std::atomic<std::uint64_t> resolved{0};
  std::atomic<std::uint64_t> answered_in_doubt{0};
  std::atomic<std::uint64_t> released{0};
  std::atomic<std::uint64_t> orphans{0};
  std::atomic<std::uint64_t> state_exchanges{0};
  std::atomic<std::uint64_t> malformed{0};
  std::atomic<std::uint64_t> conflicts{0};
  std::atomic<std::uint64_t> sessions_expired{0};

  ServerStats Snapshot() const {
    ServerStats s;
    s.executed = executed.load(std::memory_order_relaxed);
    s.duplicates = duplicates.load(std::memory_order_relaxed);
    s.responses_resent = responses_resent.load(std::memory_order_relaxed);
    s.reexecuted = reexecuted.load(std::memory_order_relaxed);
    s.resolved = resolved.load(std::memory_order_relaxed);
    s.answered_in_doubt = answered_in_doubt.load(std::memory_order_relaxed);
    s.released = released.load(std::memory_order_relaxed);
    s.orphans = orphans.load(std::memory_order_relaxed);
    s.state_exchanges = state_exchanges.load(std::memory_order_relaxed);
    s.malformed = malformed.load(std::memory_order_relaxed);
    s.conflicts = conflicts.load(std::memory_order_relaxed);
    s.sessions_expired = sessions_expired.load(std::memory_order_relaxed);
    return s;
  }
};

// Adds one; counters are statistics, so no ordering with other memory.
inline void Bump(std::atomic<std::uint64_t>& counter, std::uint64_t n = 1) {
  counter.fetch_add(n, std::memory_order_relaxed);
}

}  // namespace rejoin::server_internal
