// State vector queries and validation. Validation is what makes the decision
// safe to run on vectors that arrived from the network.
#include "rejoin/proto/state_vector.h"

#include <algorithm>
#include <string>

namespace rejoin {
namespace {

Status Invalid(std::string what) {
  return Status(ErrorCode::kMalformed, std::move(what));
}

bool StrictlyIncreasing(const std::vector<Seq>& seqs) {
  return std::adjacent_find(seqs.begin(), seqs.end(),
                            [](Seq a, Seq b) { return a >= b; }) == seqs.end();
}

bool Contains(const std::vector<Seq>& sorted, Seq seq) {
  return std::binary_search(sorted.begin(), sorted.end(), seq);
}

}  // namespace

ClientOpState ClientVector::StateOf(Seq seq) const {
  if (seq == 0 || seq >= next_seq) return ClientOpState::kNone;
  if (seq < completed_watermark) return ClientOpState::kCompleted;
  if (Contains(pending, seq)) return ClientOpState::kPrepared;
  if (Contains(completed, seq)) return ClientOpState::kCompleted;
  // Between the watermark and next_seq but in neither list: the client has
  // forgotten it (outcome collected), which only happens after completion.
  return ClientOpState::kCompleted;
}

Status ClientVector::Validate() const {
  if (!IsValidId(session)) return Invalid("client vector: invalid session id");
  if (next_seq == 0) return Invalid("client vector: next_seq is 0");
  if (completed_watermark == 0 || completed_watermark > next_seq) {
    return Invalid("client vector: watermark outside [1, next_seq]");
  }
  if (!StrictlyIncreasing(pending) || !StrictlyIncreasing(completed)) {
    return Invalid("client vector: seqs not strictly increasing");
  }
  auto in_range = [&](Seq s) {
    return s >= completed_watermark && s < next_seq;
  };
  if (!std::all_of(pending.begin(), pending.end(), in_range) ||
      !std::all_of(completed.begin(), completed.end(), in_range)) {
    return Invalid("client vector: seq outside [watermark, next_seq)");
  }
  for (Seq s : pending) {
    if (Contains(completed, s)) {
      return Invalid("client vector: seq both pending and completed");
    }
  }
  return Status::Ok();
}

const HeldOp* ServerVector::Find(Seq seq) const {
  auto it =
      std::lower_bound(held.begin(), held.end(), seq,
                       [](const HeldOp& op, Seq s) { return op.seq < s; });
  if (it == held.end() || it->seq != seq) return nullptr;
  return &*it;
}

ServerOpState ServerVector::StateOf(Seq seq) const {
  if (seq == 0) return ServerOpState::kNone;
  if (seq < released_watermark) return ServerOpState::kReleased;
  const HeldOp* op = Find(seq);
  return op == nullptr ? ServerOpState::kNone : op->state;
}

Status ServerVector::Validate() const {
  if (!IsValidId(server)) return Invalid("server vector: invalid server id");
  if (!IsValidId(session)) return Invalid("server vector: invalid session id");
  if (incarnation == 0) return Invalid("server vector: incarnation is 0");
  if (released_watermark == 0) return Invalid("server vector: watermark is 0");
  Seq previous = 0;
  for (const HeldOp& op : held) {
    if (op.seq <= previous) {
      return Invalid("server vector: seqs not strictly increasing");
    }
    previous = op.seq;
    if (op.seq < released_watermark) {
      return Invalid("server vector: held seq below released watermark");
    }
    if (op.state != ServerOpState::kReceived &&
        op.state != ServerOpState::kExecuted) {
      return Invalid("server vector: held op neither received nor executed");
    }
    if (op.received_incarnation == 0 || op.received_incarnation > incarnation) {
      return Invalid("server vector: received incarnation out of range");
    }
  }
  return Status::Ok();
}

}  // namespace rejoin
