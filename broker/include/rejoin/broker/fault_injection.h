// Losses injected where the broker meets the network, for tests and
// benchmarks (Broker::Bind(options, faults)); no part of the product's
// BrokerOptions. The broker's I/O shell applies them: to each message as it
// arrives, before the broker's core sees it, and to each REQUEST/RESPONSE
// the core sends, after all its bookkeeping, as if the wire lost it. The
// core's decisions never know.
//
// Threading: `fault` is called on the broker's thread.
#pragma once

#include <cstdint>
#include <functional>

#include "rejoin/proto/messages.h"
#include "rejoin/proto/types.h"

namespace rejoin {

// One REQUEST, RESPONSE or ACK at the broker, offered to
// FaultInjection::fault.
struct FaultPoint {
  enum class Where : std::uint8_t {
    kArrived,  // just read from a peer, before any bookkeeping
    kLeaving,  // about to be sent, after all bookkeeping
  };
  Where where;
  MessageType type;  // kRequest, kResponse or kAck
  SessionId session;
  Seq seq;
};

struct FaultInjection {
  // Probability of dropping each REQUEST/RESPONSE the broker sends, in
  // [0, 1), drawn from a generator seeded with `seed`.
  double loss = 0.0;
  std::uint64_t seed = 1;
  // The zero-detection oracle of loss recovery (benchmarks): every envelope
  // `loss` draws is sent again at the start of the broker's next turn
  // instead of being lost, as if its receiver had seen the gap at once and
  // the broker had answered the retransmission request in no time. Loss then
  // costs one turn of delay; no endpoint ever notices it.
  bool redeliver = false;
  // Deterministic faults: return true to drop the message as if the network
  // lost it.
  std::function<bool(const FaultPoint&)> fault;
};

}  // namespace rejoin
