// The run's trace: every event that matters to the checker or to a person
// reading a failure, as small fixed records in a ring, and a running hash
// of all of them. Two runs of one seed give the same hash; a violation
// prints the last events of the operation it concerns.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace rejoin::sim {

enum class TraceKind : std::uint8_t {
  kSend,       // a: message type, b: 1 dropped / 2 duplicated / 0 sent
  kDeliver,    // a: message type
  kCall,       // the application called (journal PREPARED asked)
  kAccepted,   // the call returned: PREPARED is durable
  kExecuted,   // a handler ran (a: status)
  kAnswered,   // the application got its answer (a: status)
  kCrash,      // a: how (see sim_world.cpp)
  kRestart,    // a: incarnation
  kReset,      // connection reset
  kPartition,  // a: 1 start / 0 end
  kDiskFault,  // a: errno
  kJournalLost,
  kBrokerStart,  // a: low bits of the epoch
  kDecision,     // a: action, b: breakpoint (as the model received it)
  kNote,         // anything else, a and b as the caller says
};

struct TraceEvent {
  std::int64_t at_us;
  TraceKind kind;
  std::uint8_t a;
  std::uint8_t b;
  std::uint16_t party;   // 0 broker, then clients, then servers
  std::uint32_t client;  // the session's client + 1, 0 when none
  std::uint64_t seq;
};

class Trace {
 public:
  // The ring is not zeroed: only the events added are ever read.
  explicit Trace(std::size_t keep)
      : size_(keep == 0 ? 1 : keep),
        ring_(std::make_unique_for_overwrite<TraceEvent[]>(size_)) {}

  void Add(const TraceEvent& e) {
    hash_ = (hash_ ^ static_cast<std::uint64_t>(e.at_us)) * kPrime;
    hash_ = (hash_ ^ (static_cast<std::uint64_t>(e.kind) |
                      static_cast<std::uint64_t>(e.a) << 8 |
                      static_cast<std::uint64_t>(e.b) << 16 |
                      static_cast<std::uint64_t>(e.party) << 24 |
                      static_cast<std::uint64_t>(e.client) << 40)) *
            kPrime;
    hash_ = (hash_ ^ e.seq) * kPrime;
    ring_[count_ % size_] = e;
    ++count_;
  }
  std::uint64_t hash() const { return hash_; }
  std::uint64_t count() const { return count_; }
  // The last `k` events about (client, seq) still in the ring, or the last
  // `k` events of all when client is 0, oldest first, one line each.
  std::vector<std::string> Last(std::uint32_t client, std::uint64_t seq,
                                std::size_t k,
                                const std::vector<std::string>& names) const;

 private:
  static constexpr std::uint64_t kPrime = 0x100000001b3ull;
  std::size_t size_;
  std::unique_ptr<TraceEvent[]> ring_;
  std::uint64_t count_ = 0;
  std::uint64_t hash_ = 0xcbf29ce484222325ull;
};

}  // namespace rejoin::sim
