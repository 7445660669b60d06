// The journal's state transitions (JOURNAL.md §4 "Applying records"). The
// append calls and replay both go through StateApplier, so a replayed
// journal rebuilds exactly the state its writer held. Header only: the
// append path inlines it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "journal_format.h"
#include "rejoin/proto/journal.h"

namespace rejoin::journal_internal {

// Each Apply function validates first, then (when `record_out` is given)
// encodes the record, then changes the state: an invalid call leaves no
// trace.

inline std::size_t OpLiveBytes(const std::string& session,
                               const JournalOp& op) {
  return kOpOverheadBytes + session.size() + op.service.size() +
         op.payload.size();
}

class StateApplier {
 public:
  StateApplier(JournalRole role, JournalState* state, std::size_t* live_bytes)
      : role_(role), state_(state), live_bytes_(live_bytes) {}

  bool IsResponseState(std::uint8_t state) const {
    switch (role_) {
      case JournalRole::kClient:
        return state == static_cast<std::uint8_t>(ClientOpState::kCompleted);
      case JournalRole::kServer:
        return state == static_cast<std::uint8_t>(ServerOpState::kExecuted);
    }
    return false;
  }

  Status ApplyOp(const std::string& session, Seq seq, JournalOp&& op,
                 std::string* record_out) {
    if (!IsValidId(session)) {
      return InvalidArgument("invalid session id");
    }
    if (seq == 0 || seq == std::numeric_limits<Seq>::max()) {
      return InvalidArgument("seq out of range");
    }
    if (op.state < 1 || op.state > 3) {
      return InvalidArgument("op state " + std::to_string(op.state) +
                             " is not a recordable state");
    }
    if (!op.service.empty() && !IsValidServiceName(op.service)) {
      return InvalidArgument("invalid service name");
    }
    if (op.payload.size() > kMaxBodyBytes - kFixedFieldBytes) {
      return InvalidArgument("payload of " + std::to_string(op.payload.size()) +
                             " bytes exceeds the journal record limit");
    }
    auto it = state_->sessions.find(session);
    if (it != state_->sessions.end() && seq < it->second.released_below) {
      return InvalidArgument("seq " + std::to_string(seq) +
                             " is below the released watermark " +
                             std::to_string(it->second.released_below));
    }
    if (record_out != nullptr) EncodeOp(record_out, session, seq, op);

    JournalSession& s =
        it != state_->sessions.end() ? it->second : NewSession(session);
    s.next_seq = std::max(s.next_seq, seq + 1);
    auto [op_it, inserted] = s.ops.try_emplace(seq);
    JournalOp& stored = op_it->second;
    if (!inserted) *live_bytes_ -= OpLiveBytes(session, stored);
    stored.state = op.state;
    stored.service = std::move(op.service);
    stored.status = op.status;
    stored.incarnation = op.incarnation;
    stored.digest = op.digest;
    // An empty payload means "no new payload": a state change such as
    // PREPARED -> SENT must not cost a copy of the request. A record that
    // carries the response (COMPLETED, EXECUTED) always replaces it, so an
    // empty response never reads back as the request.
    if (!op.payload.empty() || IsResponseState(op.state)) {
      stored.payload = std::move(op.payload);
    }
    *live_bytes_ += OpLiveBytes(session, stored);
    return Status::Ok();
  }

  Status ApplyRelease(const std::string& session, Seq below,
                      const std::vector<Seq>& seqs, std::string* record_out) {
    if (!IsValidId(session)) {
      return InvalidArgument("invalid session id");
    }
    for (Seq s : seqs) {
      if (s == 0) return InvalidArgument("seq 0 in release list");
    }
    if (seqs.size() > (kMaxBodyBytes - kFixedFieldBytes) / kMaxVarintBytes) {
      return InvalidArgument("release list exceeds the journal record limit");
    }
    if (record_out != nullptr) EncodeRelease(record_out, session, below, seqs);

    auto it = state_->sessions.find(session);
    JournalSession& s =
        it != state_->sessions.end() ? it->second : NewSession(session);
    RaiseWatermark(session, &s, below);
    for (Seq seq : seqs) {
      auto op_it = s.ops.find(seq);
      if (op_it == s.ops.end()) continue;
      switch (role_) {
        case JournalRole::kServer: {
          // The tombstone keeps the seq known so a late duplicate request
          // is answered, not executed again.
          JournalOp& op = op_it->second;
          *live_bytes_ -= op.payload.size();
          op.state = static_cast<std::uint8_t>(ServerOpState::kReleased);
          std::string().swap(op.payload);
          break;
        }
        case JournalRole::kClient:
          *live_bytes_ -= OpLiveBytes(session, op_it->second);
          s.ops.erase(op_it);
          break;
      }
    }
    return Status::Ok();
  }

  // Only snapshots write session records; applying one raises the session's
  // counters, which after the snapshot's reset means setting them.
  Status ApplySession(const std::string& session, Seq next_seq,
                      Seq released_below, std::string* record_out) {
    if (!IsValidId(session)) {
      return InvalidArgument("invalid session id");
    }
    if (released_below == 0 || next_seq < released_below) {
      return InvalidArgument("inconsistent session counters");
    }
    auto it = state_->sessions.find(session);
    JournalSession& s =
        it != state_->sessions.end() ? it->second : NewSession(session);
    if (record_out != nullptr) {
      JournalSession counters;
      counters.next_seq = next_seq;
      counters.released_below = released_below;
      EncodeSession(record_out, session, counters);
    }
    RaiseWatermark(session, &s, released_below);
    s.next_seq = std::max(s.next_seq, next_seq);
    return Status::Ok();
  }

  void Reset() {
    state_->sessions.clear();
    *live_bytes_ = 0;
  }

 private:
  JournalSession& NewSession(const std::string& session) {
    *live_bytes_ += kSessionOverheadBytes + session.size();
    return state_->sessions[session];
  }

  // Drops every op below `below`; next_seq follows so that a seq below the
  // watermark can never be issued again.
  void RaiseWatermark(const std::string& session, JournalSession* s,
                      Seq below) {
    if (below <= s->released_below) return;
    auto end = s->ops.lower_bound(below);
    for (auto it = s->ops.begin(); it != end; ++it) {
      *live_bytes_ -= OpLiveBytes(session, it->second);
    }
    s->ops.erase(s->ops.begin(), end);
    s->released_below = below;
    s->next_seq = std::max(s->next_seq, below);
  }

  JournalRole role_;
  JournalState* state_;
  std::size_t* live_bytes_;
};

}  // namespace rejoin::journal_internal
