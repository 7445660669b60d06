// Bounds and accounting (FLOWS.md §10): the bytes tracks keep, per session
// and overall, and the refusals of work beyond the bounds.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "core/broker_core.h"

namespace rejoin::broker_internal {

bool BrokerCore::WithinBounds(const std::string& route, const Request& req,
                              const Session& s, std::size_t incoming,
                              Time now) {
  // Bounds that ACKs or answers lift again: refused with an ERROR that
  // leaves nothing behind; the client's resend gets through once they do.
  if (s.ops.size() - s.unanswered >= options_.max_session_unacked ||
      s.bytes + incoming > options_.max_session_bytes) {
    Refuse(route, counters_.refused_unacked, "session unacknowledged",
           "session " + req.session + " keeps " +
               std::to_string(s.ops.size() - s.unanswered) + " answers (" +
               std::to_string(s.bytes) +
               " bytes) its client has not acknowledged; limits " +
               std::to_string(options_.max_session_unacked) + " and " +
               std::to_string(options_.max_session_bytes) + " bytes",
           MessageType::kRequest, now, req.session, req.seq);
    return false;
  }
  if (const Connection* c = s.connection;
      c != nullptr && (c->unanswered >= options_.max_connection_outstanding ||
                       c->bytes + incoming > options_.max_connection_bytes)) {
    // One connection's sessions together: however many sessions a peer
    // opens, it cannot take the broker's budget from the others.
    Refuse(route, counters_.refused_connection, "connection bounds",
           "connection of session " + req.session + " has " +
               std::to_string(c->unanswered) + " unanswered operations and " +
               std::to_string(c->bytes) + " bytes kept; limits " +
               std::to_string(options_.max_connection_outstanding) + " and " +
               std::to_string(options_.max_connection_bytes) + " bytes",
           MessageType::kRequest, now, req.session, req.seq);
    return false;
  }
  if (retained_bytes_ + incoming > options_.max_memory_bytes) {
    Refuse(route, counters_.refused_memory, "memory budget",
           "broker keeps " + std::to_string(retained_bytes_) +
               " bytes of requests and responses; budget " +
               std::to_string(options_.max_memory_bytes),
           MessageType::kRequest, now, req.session, req.seq);
    return false;
  }
  if (auto svc = services_.find(req.service);
      svc != services_.end() && !svc->second.queue.empty() &&
      svc->second.queued_bytes + incoming > options_.max_queue_bytes) {
    Refuse(route, counters_.refused_queue_bytes, "service queue bytes",
           "service " + req.service + " has " +
               std::to_string(svc->second.queued_bytes) +
               " bytes queued; limit " +
               std::to_string(options_.max_queue_bytes),
           MessageType::kRequest, now, req.session, req.seq);
    return false;
  }
  return true;
}

void BrokerCore::Reaccount(Session& s, std::size_t before, const Track& t) {
  AddBytes(s, TrackBytes(t), before);
}

void BrokerCore::AddBytes(Session& s, std::size_t add, std::size_t remove) {
  // Unsigned arithmetic: the totals are right whichever way they move.
  s.bytes = s.bytes + add - remove;
  if (s.connection != nullptr) {
    s.connection->bytes = s.connection->bytes + add - remove;
  }
  retained_bytes_ = retained_bytes_ + add - remove;
  counters_.retained_bytes.store(retained_bytes_, std::memory_order_relaxed);
}

void BrokerCore::CountUnanswered(Session& s) {
  ++s.unanswered;
  if (s.connection != nullptr) ++s.connection->unanswered;
}

void BrokerCore::UncountUnanswered(Session& s) {
  if (s.unanswered == 0) return;
  --s.unanswered;
  if (s.connection != nullptr && s.connection->unanswered > 0) {
    --s.connection->unanswered;
  }
}

void BrokerCore::Attach(Session& s, Connection& c) {
  s.connection = &c;
  c.unanswered += s.unanswered;
  c.bytes += s.bytes;
}

void BrokerCore::Unattach(Session& s) {
  if (s.connection == nullptr) return;
  Connection& c = *s.connection;
  c.unanswered -= std::min<std::uint64_t>(c.unanswered, s.unanswered);
  c.bytes -= std::min(c.bytes, s.bytes);
  s.connection = nullptr;
}

void BrokerCore::Refuse(const std::string& route, std::atomic<std::uint64_t>& c,
                        const char* kind, const std::string& text,
                        MessageType ref, Time now, const SessionId& sid,
                        Seq seq) {
  Bump(c);
  SendError(route, ErrorCode::kLimitExceeded, text, ref, sid, seq);
  auto [it, fresh] = refusal_log_.try_emplace(kind, Time{}, 0);
  ++it->second.second;
  if (fresh || now - it->second.first >= std::chrono::seconds(1)) {
    spdlog::warn("rejoin-broker: refused ({}, {} since last logged): {}", kind,
                 it->second.second, Printable(text));
    it->second = {now, 0};
  }
}

}  // namespace rejoin::broker_internal
