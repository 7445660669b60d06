// State vectors: the compact form of one party's records for one session, as
// carried by STATE_EXCHANGE and PROBE_REPLY (PROTOCOL.md §5). Plain values with
// no I/O; the invariants listed per field are what Validate() checks and what
// the codec enforces on decode.
#pragma once

#include <optional>
#include <vector>

#include "rejoin/proto/status.h"
#include "rejoin/proto/types.h"

namespace rejoin {

// A client's records for its session.
struct ClientVector {
  SessionId session;
  Incarnation incarnation = 0;
  JournalId journal_id = 0;
  // First seq never issued. Every seq the session ever used is < next_seq.
  Seq next_seq = 1;
  // Every seq below it is COMPLETED and acknowledged: servers may release it.
  // 1 <= completed_watermark <= next_seq.
  Seq completed_watermark = 1;
  // PREPARED or SENT, strictly increasing, each in [watermark, next_seq).
  std::vector<Seq> pending;
  // COMPLETED above the watermark, strictly increasing, each in
  // [watermark, next_seq), disjoint from `pending`.
  std::vector<Seq> completed;

  // The state of `seq` by the rules above (below the watermark: kCompleted;
  // at or past next_seq: kNone). kPrepared is reported for pending seqs: the
  // vector does not distinguish PREPARED from SENT, and nothing depends on it.
  ClientOpState StateOf(Seq seq) const;
  Status Validate() const;
  bool operator==(const ClientVector&) const = default;
};

// One operation a server holds above its released watermark.
struct HeldOp {
  Seq seq = 0;
  ServerOpState state = ServerOpState::kReceived;  // kReceived or kExecuted
  // The server incarnation that journaled RECEIVED. Older than the vector's
  // incarnation means the process restarted while (or after) executing.
  Incarnation received_incarnation = 0;
  bool operator==(const HeldOp&) const = default;
};

// A server's records for one client session.
struct ServerVector {
  ServerId server;
  Incarnation incarnation = 0;
  JournalId journal_id = 0;
  SessionId session;
  // Every seq below it is RELEASED (or was never held by this server).
  // >= 1.
  Seq released_watermark = 1;
  // Strictly increasing by seq, each >= released_watermark, state kReceived or
  // kExecuted, received_incarnation in [1, incarnation].
  std::vector<HeldOp> held;

  // kReleased below the watermark, the held state, else kNone.
  ServerOpState StateOf(Seq seq) const;
  // The held entry for `seq`, if any.
  const HeldOp* Find(Seq seq) const;
  Status Validate() const;
  bool operator==(const ServerVector&) const = default;
};

}  // namespace rejoin
