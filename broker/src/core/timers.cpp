// Time-driven work: liveness of peers, the grace period after start, and
// the leases of dead servers (PROTOCOL.md §6.3, §6.7).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "core/broker_core.h"

namespace rejoin::broker_internal {

void BrokerCore::Tick(Time now) {
  if (now >= next_peer_check_) {
    CheckPeers(now);
    next_peer_check_ = now + options_.heartbeat / 2;
  }
  SendProbes(now);
  if (!grace_over_handled_) CheckGrace(now);
  ExpireLeases(now);
  CheckRoster(now);
  // Probes whose replies never came are forgotten; the operations they were
  // about get probed again from the queue.
  for (auto it = probes_.begin(); it != probes_.end();) {
    if (now - it->second.sent > options_.probe * 4) {
      it = probes_.erase(it);
    } else {
      ++it;
    }
  }
}

void BrokerCore::CheckPeers(Time now) {
  const auto timeout = options_.heartbeat * 3;
  std::vector<std::string> dead;
  for (auto& [id, srv] : servers_) {
    if (srv.holder.alive && now - srv.holder.last_heard > timeout) {
      dead.push_back(id);
    }
  }
  for (const std::string& id : dead) {
    Bump(counters_.servers_silent);
    spdlog::info("rejoin-broker: server {} silent for {} ms", Printable(id),
                 timeout.count());
    MarkServerDead(id, now);
  }
  // A welcomed server that has not reported within 3 heartbeat intervals
  // of its WELCOME or of its last STATE_EXCHANGE fragment lost one of them:
  // it says HELLO again and reports from the start. Without this, what only
  // its journal holds would wait there for the session expiry.
  for (auto& [id, srv] : servers_) {
    if (!srv.holder.alive || srv.reported || now < srv.report_due) continue;
    srv.report_due = now + timeout;
    Bump(counters_.reports_asked_again);
    SendError(srv.holder.route, ErrorCode::kUnknownSession,
              "no complete STATE_EXCHANGE since WELCOME: send HELLO",
              MessageType::kStateExchange, id);
  }
  // A client connection's silence is the death of every session on it; each
  // is told when the connection next speaks (Heard).
  for (auto& [route, c] : routes_) {
    if (c.role != Role::kClient || c.silent || now - c.last_heard <= timeout) {
      continue;
    }
    c.silent = true;
    for (const SessionId& sid : c.sessions) {
      auto s = sessions_.find(sid);
      if (s == sessions_.end() || !s->second.holder.alive) continue;
      s->second.holder.alive = false;
      s->second.holder.dead_since = now;
      c.untold.push_back(sid);
    }
  }
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    Session& s = it->second;
    if (!s.client_seen && !s.ops.empty() &&
        now - s.last_activity > options_.reported_session_expiry) {
      // Only servers ever reported it, and its client has not come for
      // reported_session_expiry: the broker forgets its tracking. The
      // servers keep their records; the client, if it ever returns, finds
      // them through its own state exchange (FLOWS.md §10).
      Bump(counters_.expired_reported_sessions);
      for (const auto& [seq, t] : s.ops) {
        if (!t.server.empty())
          Forget(it->first, t.server, t.server_journal, s.highest);
      }
      while (!s.ops.empty()) ReleaseOne(s, s.ops.begin());
    }
    if (!s.holder.alive && s.ops.empty() &&
        now - std::max(s.last_activity, s.holder.dead_since) >
            kIdleSessionExpiry) {
      Detach(it->first, s);
      it = sessions_.erase(it);
      counters_.sessions.fetch_sub(1, std::memory_order_relaxed);
    } else {
      ++it;
    }
  }
}

// A server this broker welcomed that has not yet told what it holds (its
// WELCOME or STATE_EXCHANGE was lost, or it is still sending it) may hold an
// operation a client is about to resend: when G runs out while such a server
// is alive, the grace period runs one HELLO wait longer (3 × H, FLOWS.md §7),
// and ends as soon as no welcomed server is left unreported.
void BrokerCore::CheckGrace(Time now) {
  if (grace_extended_) {
    if (InGrace(now) && AwaitingReport() != nullptr) return;
    EndGrace(now);
    return;
  }
  if (InGrace(now)) return;
  if (const std::string* id = AwaitingReport()) {
    grace_extended_ = true;
    grace_end_ = now + options_.heartbeat * 3;
    spdlog::info(
        "rejoin-broker: grace extended by {} ms: server {} was welcomed and "
        "has not reported",
        (options_.heartbeat * 3).count(), Printable(*id));
    return;
  }
  EndGrace(now);
}

const std::string* BrokerCore::AwaitingReport() const {
  for (const auto& [id, srv] : servers_) {
    if (srv.holder.alive && !srv.reported) return &id;
  }
  return nullptr;
}

void BrokerCore::EndGrace(Time now) {
  grace_over_handled_ = true;
  const bool early = !grace_extended_ && now < grace_end_;
  grace_end_ = std::min(grace_end_, now);
  const auto lasted =
      std::chrono::duration_cast<std::chrono::milliseconds>(now - start_)
          .count();
  counters_.grace_ms.store(
      static_cast<std::uint64_t>(std::max<std::int64_t>(lasted, 0)),
      std::memory_order_relaxed);
  if (early) {
    Bump(counters_.grace_ended_early);
    spdlog::info(
        "rejoin-broker: grace ended after {} ms: all {} listed servers "
        "returned",
        lasted, roster_listed_);
  } else if (roster_on_) {
    if (roster_trusted_ && !roster_awaiting_.empty()) {
      std::string ids;
      for (const std::string& id : roster_awaiting_) {
        ids += " " + Printable(id);
      }
      spdlog::info(
          "rejoin-broker: grace ran its full {} ms: {} of {} listed servers "
          "did not report:{}",
          lasted, roster_awaiting_.size(), roster_listed_, ids);
    }
    if (!roster_.complete) {
      // The full grace period has run: from now on this broker treats a
      // server that has not reported as gone, as it would without a roster,
      // and every server it welcomed is listed. The next broker may trust
      // the list as far as the time-based grace period could be trusted.
      roster_.complete = true;
      SaveRoster();
    }
  }
  for (auto& [sid, s] : sessions_) {
    for (auto& [seq, t] : s.ops) {
      if (t.phase != Phase::kHeldForGrace) continue;
      Dispatch(sid, seq, t, now);
    }
    if (s.deferred.empty()) continue;
    // Each state exchange of the grace period added its pending seqs: a
    // client that returned twice named some twice. RECOVER lists each seq
    // once, in increasing order (PROTOCOL.md §4.8).
    std::sort(s.deferred.begin(), s.deferred.end());
    s.deferred.erase(std::unique(s.deferred.begin(), s.deferred.end()),
                     s.deferred.end());
    RecoverSession to_client{sid, 1, {}};
    for (Seq seq : s.deferred) {
      if (s.ops.count(seq) != 0) continue;  // a server reported it meanwhile
      // Every server that could still report has: nobody holds it.
      const OpDecision d = DecideOp(seq, ClientOpState::kSent, ServerOpView{},
                                    DecisionContext{});
      NoteDecision(sid, d, "grace");
      if (ActorOf(d.action) == Actor::kClient) to_client.ops.push_back(d);
    }
    s.deferred.clear();
    if (!to_client.ops.empty() && s.holder.alive) {
      SendRecover(s.holder.route, std::move(to_client));
    }
  }
}

void BrokerCore::ExpireLeases(Time now) {
  for (auto& [id, srv] : servers_) {
    if (srv.holder.alive || srv.lease_expired ||
        now - srv.holder.dead_since < options_.lease) {
      continue;
    }
    srv.lease_expired = true;
    srv.in_flight = 0;
    spdlog::info("rejoin-broker: lease of server {} expired", Printable(id));
    for (const auto& [sid, seq] : DispatchedAt(id)) {
      Session& s = sessions_.find(sid)->second;
      Track& t = s.ops.find(seq)->second;
      t.credit_taken = false;
      // The server's memory of the operation is out of reach for good, as
      // if its journal were lost: its side reads "no record", which proves
      // nothing (PROTOCOL.md §6.3).
      const OpDecision d =
          DecideOp(seq, ClientOpState::kSent, ServerOpView{},
                   ContextFor(&t, &srv, /*server_journal_lost=*/true));
      NoteDecision(sid, d, "lease");
      switch (d.action) {
        case Action::kResendRequest:
          // Idempotent: it runs again, on another server.
          Bump(counters_.moved);
          if (t.has_request) {
            t.phase = Phase::kQueued;
            if (t.service.empty()) t.service = srv.services[0].name;
            Dispatch(sid, seq, t, now);
          } else if (s.holder.alive) {
            // The client holds the request; have it sent again.
            t.phase = Phase::kHeldForGrace;
            SendRecover(s.holder.route, RecoverSession{sid, 1, {d}});
          }
          break;
        case Action::kAnswerInDoubt:
          // The broker answers in the server's place.
          Answer(sid, s, seq, ErrorCode::kInDoubt);
          break;
        case Action::kNone:
        case Action::kWait:
        case Action::kResendResponse:
        case Action::kRelease:
        case Action::kReexecute:
        case Action::kResolve:
        case Action::kKeepOrphan:
          // The table decides a pending operation against a lost server
          // memory with one of the two actions above only.
          std::abort();
      }
    }
    // Drops the index entries of the operations just moved elsewhere.
    (void)DispatchedAt(id);
  }
  // Queued work of a service that has had no server for a whole lease.
  for (auto& [name, svc] : services_) {
    if (!svc.servers.empty() || svc.queue.empty() ||
        now - svc.empty_since < options_.lease) {
      continue;
    }
    while (!svc.queue.empty()) {
      const SessionId sid = svc.queue.front().session;
      const Seq seq = svc.queue.front().seq;
      svc.queued_bytes -= svc.queue.front().bytes;
      svc.queue.pop_front();
      auto s = sessions_.find(sid);
      if (s == sessions_.end()) continue;
      auto t = s->second.ops.find(seq);
      if (t == s->second.ops.end() || t->second.phase != Phase::kQueued) {
        continue;
      }
      // One that a server held before (moved here after that server's
      // lease, or known from its report) may have run there: in_doubt.
      // One never handed to a server did not run.
      const bool held_before = !t->second.server.empty();
      Answer(sid, s->second, seq,
             held_before      ? ErrorCode::kInDoubt
             : svc.registered ? ErrorCode::kUnavailable
                              : ErrorCode::kUnknownService);
    }
  }
}

}  // namespace rejoin::broker_internal
