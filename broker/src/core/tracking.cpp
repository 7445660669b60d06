// Tracking and probes (FLOWS.md §4, §5): state exchanges, probes of
// dispatched operations, and the recovery decisions their answers lead to.
// Every decision comes from rejoin::proto (breakpoint.h); this file gathers
// its inputs and carries out its actions.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "core/broker_core.h"
#include "event_log.h"

namespace rejoin::broker_internal {

void BrokerCore::ScheduleProbe(const SessionId& sid, Seq seq, Track& t,
                               Time due) {
  t.due = due;
  probe_queue_.push(ProbeEntry{due, sid, seq});
}

std::chrono::milliseconds BrokerCore::ProbeBackoff(const Track& t) const {
  // The first probe of a dispatch comes one probe delay after it; an
  // operation still running, or at a server that does not answer, is asked
  // again ever less often, up to 32 probe delays (at most a lease): the
  // cost of operations that stay out is bounded per second, however many.
  const auto cap = std::min(options_.probe * kMaxProbeBackoff,
                            std::max(options_.probe, options_.lease));
  const unsigned shift = std::min<unsigned>(t.probe_round, 5);
  return std::min(options_.probe * (1u << shift), cap);
}

// ---- STATE_EXCHANGE -------------------------------------------------------

void BrokerCore::OnStateExchange(const std::string& route,
                                 const StateExchange& se, Time now) {
  // A client's exchange is about the one session its vector names.
  const SessionId about = se.role == Role::kClient && se.clients.size() == 1
                              ? se.clients[0].session
                              : SessionId{};
  const Connection* c = Known(route, MessageType::kStateExchange, now, about);
  if (c == nullptr) return;
  Bump(counters_.state_exchanges);
  spdlog::debug("rejoin-broker: STATE_EXCHANGE from a {}{}",
                se.role == Role::kServer ? "server" : "session",
                se.last ? " (last)" : "");
  if (se.role == Role::kClient) {
    Session* sp = about.empty() ? nullptr
                                : HeldSession(route, *c, about,
                                              MessageType::kStateExchange);
    if (sp == nullptr) {
      SendError(route, ErrorCode::kProtocolViolation,
                "client STATE_EXCHANGE must carry one vector, of a session "
                "this connection holds",
                MessageType::kStateExchange, about);
      return;
    }
    Session& s = *sp;
    const ClientVector& cv = se.clients[0];
    const SessionId& sid = cv.session;
    // The client's own account of the seqs it issued (it may predate this
    // broker).
    s.highest = std::max(s.highest, cv.next_seq - 1);
    ReleaseBelow(s, cv.completed_watermark);
    for (Seq seq : cv.completed) {
      // As for an ACK (OnAck): whatever its phase, a copy of a completed
      // call must not run again.
      auto it = s.ops.find(seq);
      if (it != s.ops.end()) {
        ReleaseCompleted(s, it);
      } else {
        NoteCompleted(s, seq);
      }
    }
    RecoverSession to_client{sid, cv.completed_watermark, {}};
    for (Seq seq : cv.pending) {
      auto it = s.ops.find(seq);
      if (it == s.ops.end()) {
        // Every dispatched operation is tracked, so no server that reported
        // holds it: after the grace period the request never got past the
        // broker; during it, a server yet to report may hold it.
        DecisionContext ctx;
        ctx.grace_period = InGrace(now);
        const OpDecision d =
            DecideOp(seq, ClientOpState::kSent, ServerOpView{}, ctx);
        NoteDecision(sid, d, "state_exchange");
        if (d.breakpoint == Breakpoint::kAwaitingGrace) {
          s.deferred.push_back(seq);  // decided again when grace ends
        } else if (ActorOf(d.action) == Actor::kClient) {
          to_client.ops.push_back(d);
        }
        continue;
      }
      Track& t = it->second;
      switch (t.phase) {
        case Phase::kAnswered:
          ReplayResponse(sid, s, t, now);
          break;
        case Phase::kDispatched:
          ScheduleProbe(sid, seq, t, now);
          break;
        case Phase::kQueued:
        case Phase::kHeldForGrace:
          break;
      }
    }
    if (!to_client.ops.empty()) SendRecover(route, std::move(to_client));
    // Servers learn what the client has completed (an ACK may have been
    // lost on the way): for each, what the table decides for a completed
    // operation a server still holds (one that holds nothing ignores it).
    std::vector<OpDecision> releases;
    for (Seq seq : cv.completed) {
      releases.push_back(DecideOp(seq, ClientOpState::kCompleted,
                                  ServerOpView{ServerOpState::kExecuted},
                                  DecisionContext{}));
    }
    for (const std::string& id : s.servers) {
      auto srv = servers_.find(id);
      if (srv == servers_.end() || !srv->second.holder.alive) continue;
      SendRecover(srv->second.holder.route,
                  RecoverSession{sid, cv.completed_watermark, releases});
    }
    return;
  }

  ServerPeer* srv = ServerOf(route, *c);
  if (srv == nullptr || !se.clients.empty()) {
    SendError(route, ErrorCode::kProtocolViolation,
              "server STATE_EXCHANGE from a connection that is not a server",
              MessageType::kStateExchange);
    return;
  }
  const std::string server_id = c->server;
  srv->report_due = now + options_.heartbeat * 3;
  std::uint64_t refused = 0;
  for (const ServerVector& sv : se.servers) {
    if (sv.server != server_id) continue;  // not its to report
    auto sit = sessions_.find(sv.session);
    if (sit == sessions_.end()) {
      // Sessions only a server reports count against max_sessions and the
      // server's own quota; beyond them they stay with the server alone.
      if (sessions_.size() >= options_.max_sessions ||
          srv->reported_sessions >= options_.max_reported_sessions_per_server) {
        ++refused;
        if (!sv.held.empty()) {
          Seq top = 0;
          for (const HeldOp& op : sv.held) top = std::max(top, op.seq);
          Forget(sv.session, server_id, sv.journal_id, top);
        }
        continue;
      }
      sit = sessions_.emplace(sv.session, Session{}).first;
      sit->second.id = sv.session;
      ++srv->reported_sessions;
      Bump(counters_.sessions);
    }
    Session& s = sit->second;
    s.last_activity = now;
    s.servers.insert(server_id);
    std::vector<Seq> to_ask;
    for (const HeldOp& op : sv.held) {
      auto it = s.ops.find(op.seq);
      if (access_ != nullptr &&
          (it == s.ops.end() ? (s.client_seen && op.seq > s.highest)
                             : (!it->second.service.empty() &&
                                !MayServe(it->second.service)))) {
        // With a keys file a server reports only operations of services
        // it may serve, and none the session's client has not issued: a
        // claim on a future seq would capture its request (the seq is
        // tracked as held by that server).
        Bump(counters_.not_authorized);
        continue;
      }
      s.highest = std::max(s.highest, op.seq);
      if (it == s.ops.end()) {
        Track& t = NewTrack(s, op.seq);
        t.phase = Phase::kDispatched;
        t.server = server_id;
        at_server_[server_id].emplace(sv.session, op.seq);
        t.server_journal = sv.journal_id;
        to_ask.push_back(op.seq);
        continue;
      }
      Track& t = it->second;
      switch (t.phase) {
        case Phase::kAnswered:
          // The client may never have confirmed it (a lost ACK): ask.
          to_ask.push_back(op.seq);
          continue;
        case Phase::kDispatched:
          if (t.server != server_id) continue;  // moved; the other answers
          break;
        case Phase::kQueued:
        case Phase::kHeldForGrace:
          // Waiting for exactly this report: it goes to its holder.
          t.phase = Phase::kDispatched;
          t.server = server_id;
          at_server_[server_id].emplace(sv.session, op.seq);
          break;
      }
      t.server_journal = sv.journal_id;
      to_ask.push_back(op.seq);
    }
    if (to_ask.empty()) continue;
    if (s.holder.alive) {
      // Ask the client what it has, then decide (FLOWS §5).
      const std::uint64_t id = next_probe_id_++;
      probes_[id] = PendingProbe{
          ProbeKind::kClient, server_id, sv.session, to_ask, sv, now};
      SendTo(s.holder.route, Probe{id, sv.session, to_ask});
      Bump(counters_.probes);
    }
    // Held resends for these seqs can go to their holder now.
    for (Seq seq : to_ask) {
      auto it = s.ops.find(seq);
      if (it == s.ops.end()) continue;
      Track& t = it->second;
      if (t.phase == Phase::kDispatched && t.has_request) {
        SendRequestTo(sv.session, seq, t, server_id, now);
      }
    }
  }
  if (refused > 0) {
    Refuse(route, counters_.refused_reported_sessions, "reported sessions",
           "STATE_EXCHANGE: " + std::to_string(refused) +
               " sessions not tracked: the broker holds " +
               std::to_string(sessions_.size()) + " of " +
               std::to_string(options_.max_sessions) +
               " sessions and this server reported " +
               std::to_string(srv->reported_sessions) + " of its " +
               std::to_string(options_.max_reported_sessions_per_server),
           MessageType::kStateExchange, now);
  }
  // After its held operations are tracked, so that ending the grace period
  // here finds them.
  if (se.last) ServerReported(server_id, now);
}

// ---- PROBE_REPLY ----------------------------------------------------------

DecisionContext BrokerCore::ContextFor(const Track* t, const ServerPeer* server,
                                       bool server_journal_lost) const {
  DecisionContext ctx;
  ctx.server_journal_lost = server_journal_lost;
  const ServiceSpec* spec = nullptr;
  if (t != nullptr && !t->service.empty()) {
    auto it = services_.find(t->service);
    if (it != services_.end()) spec = &it->second.spec;
  }
  if (spec == nullptr && server != nullptr && server->services.size() == 1) {
    spec = &server->services[0];
  }
  if (spec != nullptr) {
    ctx.idempotent = spec->idempotent;
    ctx.policy = spec->policy;
  }
  // Unknown service on a multi-service server: the conservative reading
  // (not idempotent, answer IN_DOUBT) is the default of DecisionContext.
  return ctx;
}

void BrokerCore::ApplyServerDecision(const SessionId& sid, Session& s,
                                     const OpDecision& d,
                                     const std::string& server_id,
                                     RecoverSession& to_server, Time now) {
  auto it = s.ops.find(d.seq);
  switch (d.action) {
    case Action::kNone:
    case Action::kKeepOrphan:
      if (d.action == Action::kKeepOrphan) {
        Bump(counters_.orphans);
        to_server.ops.push_back(d);
      }
      return;
    case Action::kWait:
      if (it != s.ops.end()) {
        ScheduleProbe(sid, d.seq, it->second, now + ProbeBackoff(it->second));
      }
      return;
    case Action::kResendRequest:
      if (it != s.ops.end() && it->second.has_request) {
        SendRequestTo(sid, d.seq, it->second, server_id, now);
      } else if (s.holder.alive) {
        SendRecover(s.holder.route, RecoverSession{sid, 1, {d}});
      }
      return;
    case Action::kResendResponse:
    case Action::kReexecute:
    case Action::kResolve:
    case Action::kAnswerInDoubt:
    case Action::kRelease:
      to_server.ops.push_back(d);
      if (it != s.ops.end() && it->second.phase == Phase::kDispatched) {
        ScheduleProbe(sid, d.seq, it->second, now + options_.probe);
      }
      return;
  }
}

void BrokerCore::OnProbeReply(const std::string& route, const ProbeReply& reply,
                              Time now) {
  const Connection* c = Known(route, MessageType::kProbeReply, now);
  if (c == nullptr) return;
  auto pit = probes_.find(reply.probe_id);
  if (pit == probes_.end()) return;  // late or duplicate
  PendingProbe probe = std::move(pit->second);
  probes_.erase(pit);
  auto sit = sessions_.find(probe.session);
  if (sit == sessions_.end()) return;
  Session& s = sit->second;
  auto srv_it = servers_.find(probe.server);
  ServerPeer* srv = srv_it == servers_.end() ? nullptr : &srv_it->second;
  if (srv == nullptr) return;

  if (probe.kind == ProbeKind::kServer) {
    if (ServerOf(route, *c) != srv || reply.role != Role::kServer ||
        reply.servers.size() != 1 ||
        reply.servers[0].session != probe.session) {
      return;
    }
    const ServerVector& sv = reply.servers[0];
    RecoverSession to_server{probe.session, 1, {}};
    for (Seq seq : probe.seqs) {
      auto it = s.ops.find(seq);
      if (it == s.ops.end() || it->second.phase != Phase::kDispatched ||
          it->second.server != probe.server) {
        continue;
      }
      Track& t = it->second;
      const ServerOpView view = ViewOf(sv, seq);
      const bool lost = sv.journal_id != t.server_journal;
      const bool same = t.same_answers > 0 &&
                        view.state == t.last_answer.state &&
                        view.restarted_since_received ==
                            t.last_answer.restarted_since_received;
      t.same_answers = same ? t.same_answers + 1 : 1;
      t.last_answer = view;
      // t.server_journal stays the journal the request went to: every later
      // probe must read "no record" from a newer journal as "forgotten".
      DecisionContext ctx = ContextFor(&t, srv, lost);
      ctx.same_answers = t.same_answers;
      OpDecision d = DecideOp(seq, ClientOpState::kSent, view, ctx);
      NoteDecision(probe.session, d, "probe");
      if (ctx.same_answers >= kMaxSameProbeAnswers &&
          d.action == Action::kAnswerInDoubt) {
        // The probe ends (FLOWS.md §4): what was asked of the parties did
        // not change the answer, so the broker answers in their place, as
        // for a server past its lease. A late RESPONSE finds it answered.
        Bump(counters_.probes_ended);
        LogOnce("probe-ended:" + probe.server,
                "operations at server " + Printable(probe.server) +
                    " got the same probe answer " +
                    std::to_string(ctx.same_answers) +
                    " times: answered in_doubt");
        Answer(probe.session, s, seq, ErrorCode::kInDoubt);
        continue;
      }
      ApplyServerDecision(probe.session, s, d, probe.server, to_server, now);
    }
    if (!to_server.ops.empty()) {
      SendRecover(srv->holder.route, std::move(to_server));
    }
    return;
  }

  // A client's answer to "what do you have of these?" after a server return.
  if (c->role != Role::kClient || s.holder.route != route ||
      reply.role != Role::kClient || reply.clients.size() != 1) {
    return;
  }
  const ClientVector& cv = reply.clients[0];
  const ServerVector& sv = probe.server_vector;
  DecisionContext ctx = ContextFor(nullptr, srv, false);
  const SessionDecision decision = Decide(cv, sv, ctx);
  // A client with a new journal restarted its seqs above every old one: the
  // seqs issued under the journal it lost are decided with
  // client_journal_lost (its vector's word on them means nothing), the
  // others as they are. Both decisions list the same seqs in order.
  SessionDecision forgotten;
  if (s.journal_lost_through != 0) {
    ctx.client_journal_lost = true;
    forgotten = Decide(cv, sv, ctx);
  }
  RecoverSession to_server{probe.session, decision.release_below, {}};
  RecoverSession to_client{probe.session, decision.release_below, {}};
  for (std::size_t i = 0; i < decision.ops.size(); ++i) {
    OpDecision d = decision.ops[i];
    // Only what was asked about: other pending seqs of the client may be in
    // flight to other servers, and "not held here" says nothing about them.
    if (!std::binary_search(probe.seqs.begin(), probe.seqs.end(), d.seq)) {
      continue;
    }
    auto it = s.ops.find(d.seq);
    const ServerOpView view = ViewOf(sv, d.seq);
    if (it != s.ops.end() && it->second.phase == Phase::kAnswered &&
        !it->second.broker_answered && it->second.server != probe.server &&
        view.state == ServerOpState::kReceived) {
      // This server reports a copy it received and never ran, while another
      // server ran the operation and its RESPONSE is the answer this broker
      // holds (and that server's journal keeps until the client completes
      // it): the client gets that answer (its resend finds it) and this
      // copy is released as if the client had completed it. Deciding from
      // this server's view alone would run a non-idempotent request a
      // second time (re-execute or resolve an execution in doubt).
      d = DecideOp(d.seq, ClientOpState::kCompleted, view, DecisionContext{});
      NoteDecision(probe.session, d, "state_exchange");
      ApplyServerDecision(probe.session, s, d, probe.server, to_server, now);
      continue;
    }
    if (d.seq <= s.journal_lost_through) {
      d = forgotten.ops[i];
    } else if (it != s.ops.end() && !it->second.service.empty()) {
      d = DecideOp(d.seq, cv.StateOf(d.seq), view,
                   ContextFor(&it->second, srv, false));
    }
    NoteDecision(probe.session, d, "state_exchange");
    if (ActorOf(d.action) == Actor::kClient) {
      to_client.ops.push_back(d);
    } else {
      ApplyServerDecision(probe.session, s, d, probe.server, to_server, now);
    }
  }
  ReleaseBelow(s, decision.release_below);
  if (srv->holder.alive) SendRecover(srv->holder.route, std::move(to_server));
  if (!to_client.ops.empty()) SendRecover(route, std::move(to_client));
}

void BrokerCore::SendProbes(Time now) {
  // (server, session) -> seqs due for a probe.
  std::map<std::pair<std::string, SessionId>, std::vector<Seq>> due;
  while (!probe_queue_.empty() && probe_queue_.top().due <= now) {
    ProbeEntry e = probe_queue_.top();
    probe_queue_.pop();
    auto s = sessions_.find(e.session);
    if (s == sessions_.end()) continue;
    auto t = s->second.ops.find(e.seq);
    if (t == s->second.ops.end()) continue;
    Track& track = t->second;
    if (track.phase != Phase::kDispatched || track.due > now) continue;
    auto srv = servers_.find(track.server);
    if (srv == servers_.end() || !srv->second.holder.alive) {
      // Waits for the server's return or its lease; look again later.
      ScheduleProbe(e.session, e.seq, track, now + ProbeBackoff(track));
      continue;
    }
    due[{track.server, e.session}].push_back(e.seq);
    // If this probe or its reply is lost, probe again.
    if (track.probe_round < 255) ++track.probe_round;
    ScheduleProbe(e.session, e.seq, track, now + 2 * ProbeBackoff(track));
  }
  for (auto& [key, seqs] : due) {
    std::sort(seqs.begin(), seqs.end());
    seqs.erase(std::unique(seqs.begin(), seqs.end()), seqs.end());
    const std::uint64_t id = next_probe_id_++;
    probes_[id] =
        PendingProbe{ProbeKind::kServer, key.first, key.second, seqs, {}, now};
    Bump(counters_.probes);
    SendTo(servers_[key.first].holder.route, Probe{id, key.second, seqs});
  }
}

// Called when the grace period runs out, or earlier when every server the
// roster listed at start has reported (ServerReported).
void BrokerCore::NoteDecision(const SessionId& sid, const OpDecision& d,
                              const char* source) {
  const auto action = static_cast<std::size_t>(d.action);
  if (action < kActionCount) ++decisions_[action];
  if (d.action == Action::kNone || d.action == Action::kWait) return;
  if (!EventsLogged()) return;
  LogEvent({{"event", "recovery"},
            {"session", sid},
            {"seq", std::to_string(d.seq)},
            {"breakpoint", std::string(BreakpointName(d.breakpoint))},
            {"action", std::string(ActionName(d.action))},
            {"actor", ActorOf(d.action) == Actor::kClient   ? "client"
                      : ActorOf(d.action) == Actor::kServer ? "server"
                                                            : "nobody"},
            {"source", source}});
}

}  // namespace rejoin::broker_internal
