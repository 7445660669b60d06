// Admission and fencing (FLOWS.md §2, PROTOCOL.md §1.4): which connection
// holds which server id or client session, HELLO/WELCOME, takeovers, fencing
// of older incarnations, GOODBYE, and the death of a holder.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "core/broker_core.h"
#ifdef REJOIN_SIM_DEFECTS
#include "sim_defects.h"  // the test-only build of tests/sim
#endif

namespace rejoin::broker_internal {

Connection* BrokerCore::Known(const std::string& route, MessageType type,
                              Time now, const SessionId& about) {
  auto it = routes_.find(route);
  if (it == routes_.end()) {
    Bump(counters_.unknown_peer);
    SendError(route, ErrorCode::kUnknownSession,
              "unknown connection: send HELLO", type, about);
    return nullptr;
  }
  Connection& c = it->second;
  if (c.role == Role::kClient) {
    Heard(route, c, type, now, about);
    return &c;
  }
  // Liveness belongs to the connection (PROTOCOL.md §1.4): any message from
  // the server's holder connection shows it alive, a PROBE_REPLY or an ACK
  // as much as a HEARTBEAT. A server whose handlers run for a long time
  // answers probes instead of sending heartbeats.
  // A server declared dead after silence (a stalled process, a network
  // hiccup) is told to HELLO again: the broker may have acted on its death
  // (leases, in-doubt answers), so it must return and exchange state. What it
  // sent is still handled.
  auto s = servers_.find(c.server);
  if (s != servers_.end() && s->second.holder.route == route) {
    s->second.holder.last_heard = now;
    if (!s->second.holder.alive) {
      SendError(route, ErrorCode::kUnknownSession,
                "declared dead after silence: send HELLO", type, c.server);
    }
  }
  return &c;
}

void BrokerCore::Heard(const std::string& route, Connection& c,
                       MessageType type, Time now, const SessionId& about) {
  c.last_heard = now;
  c.silent = false;
  if (c.untold.empty()) return;
  // Declared dead after silence (a stalled process, a network hiccup): each
  // session is told to HELLO again, once, because the broker may have acted
  // on its death. A session the connection sends about is told by its
  // handler, every time.
  std::vector<SessionId> untold;
  untold.swap(c.untold);
  for (const SessionId& sid : untold) {
    if (sid == about) continue;
    auto s = sessions_.find(sid);
    if (s == sessions_.end() || s->second.holder.route != route ||
        s->second.holder.alive) {
      continue;  // moved, left or welcomed again meanwhile
    }
    SendError(route, ErrorCode::kUnknownSession,
              "declared dead after silence: send HELLO", type, sid);
  }
}

Session* BrokerCore::HeldSession(const std::string& route, const Connection& c,
                                 const SessionId& sid, MessageType type) {
  if (c.role != Role::kClient) return nullptr;
  auto it = sessions_.find(sid);
  if (it == sessions_.end() || it->second.holder.route != route) {
    return nullptr;
  }
  if (!it->second.holder.alive) {
    SendError(route, ErrorCode::kUnknownSession,
              "declared dead after silence: send HELLO", type, sid);
  }
  return &it->second;
}

ServerPeer* BrokerCore::ServerOf(const std::string& route,
                                 const Connection& c) {
  if (c.role != Role::kServer) return nullptr;
  auto s = servers_.find(c.server);
  if (s == servers_.end() || s->second.holder.route != route) return nullptr;
  return &s->second;
}

// True when the current holder's connection is gone: dead by timeout, or a
// probe send fails because the ROUTER no longer has its pipe.
bool BrokerCore::HolderGone(Holder& holder) {
  if (!holder.alive) return true;
  return !out_.SendNow(holder.route, Heartbeat{epoch_});
}

void BrokerCore::OnHello(const std::string& route, const Hello& hello,
                         Time now) {
  spdlog::debug(
      "rejoin-broker: HELLO from {} {} incarnation {} last epoch {:016x}",
      hello.role == Role::kServer ? "server" : "session", Printable(hello.id),
      hello.incarnation, hello.last_epoch);
  if (auto it = routes_.find(route); it != routes_.end()) {
    // A connection holds one server id, or client sessions (§1.4).
    Connection& c = it->second;
    if (c.role != hello.role ||
        (c.role == Role::kServer && c.server != hello.id)) {
      SendError(route, ErrorCode::kProtocolViolation,
                c.role == Role::kServer
                    ? "this connection holds server '" + c.server +
                          "': another id needs a connection of its own"
                    : "this connection carries client sessions: a server "
                      "needs a connection of its own",
                MessageType::kHello, hello.id);
      return;
    }
    if (c.role == Role::kClient) {
      Heard(route, c, MessageType::kHello, now, hello.id);
    }
  }
  if (hello.role == Role::kServer) {
    AdmitServer(route, hello, now);
  } else {
    AdmitSession(route, hello, now);
  }
}

namespace {

// Shared admission rule (FLOWS §2). False: `code` and `why` say why.
template <typename Peer>
bool MayTakeOver(Peer& peer, const Hello& hello, const std::string& route,
                 bool holder_gone, std::string& why, ErrorCode& code) {
  Holder& h = peer.holder;
  if (h.route == route) return true;
  if (h.journal_id == hello.journal_id && h.incarnation == hello.incarnation) {
    return true;  // the same process on a new connection
  }
  // Checked even when the id is on no connection (its session left with
  // GOODBYE, or its connection is gone): a new id has incarnation 0.
  if (h.journal_id == hello.journal_id && h.incarnation > hello.incarnation) {
#ifdef REJOIN_SIM_DEFECTS
    if (sim_defects::Active() == sim_defects::kFencingSkipped) return true;
#endif
    code = ErrorCode::kFenced;
    why = "incarnation " + std::to_string(hello.incarnation) +
          " is older than the current " + std::to_string(h.incarnation);
    return false;
  }
  if (h.route.empty() || holder_gone) return true;
  code = ErrorCode::kDuplicateIdentity;
  why = "'" + hello.id + "' is held by a live process";
  return false;
}

}  // namespace

void BrokerCore::AdmitSession(const std::string& route, const Hello& hello,
                              Time now) {
  auto it = sessions_.find(hello.id);
  // A connection carries at most max_sessions_per_connection sessions, well
  // below max_sessions: one connection cannot fill the table for others.
  if (it == sessions_.end() || it->second.holder.route != route) {
    auto c = routes_.find(route);
    if (c != routes_.end() &&
        c->second.sessions.size() >= options_.max_sessions_per_connection) {
      Refuse(route, counters_.refused_session_quota, "sessions per connection",
             "this connection carries its maximum of " +
                 std::to_string(options_.max_sessions_per_connection) +
                 " sessions",
             MessageType::kHello, now, hello.id);
      return;
    }
  }
  if (it == sessions_.end()) {
    if (sessions_.size() >= options_.max_sessions) {
      Refuse(route, counters_.refused_sessions, "sessions",
             "broker holds its maximum of " +
                 std::to_string(options_.max_sessions) + " sessions",
             MessageType::kHello, now, hello.id);
      return;
    }
    it = sessions_.emplace(hello.id, Session{}).first;
    it->second.id = hello.id;
    Bump(counters_.sessions);
  }
  Session& s = it->second;
  if (s.holder.alive && s.holder.route != route && HolderGone(s.holder)) {
    // The connection is gone, and with it every session it carried: the
    // others need no probe when their HELLOs come.
    DropClientConnection(s.holder.route, now);
  }
  std::string why;
  ErrorCode code = ErrorCode::kOk;
  const bool gone = !s.holder.alive || s.holder.route == route;
  if (!MayTakeOver(s, hello, route, gone, why, code)) {
    Bump(code == ErrorCode::kFenced ? counters_.fenced
                                    : counters_.duplicate_identity);
    SendError(route, code, why, MessageType::kHello, hello.id);
    return;
  }
  if (!VouchedByRoster(hello, now)) {
    SendError(route, ErrorCode::kInternal, "broker cannot update its roster",
              MessageType::kHello, hello.id);
    return;
  }
  // Moved from another connection, which keeps its other sessions.
  if (s.holder.route != route) Detach(hello.id, s);
  if (s.holder.journal_id != 0 && s.holder.journal_id != hello.journal_id) {
    // The client lost its journal: nothing it held can be delivered any
    // more. What a server has of it is an orphan; the broker's tracking of
    // it goes. Servers drop those records when the new journal's watermark
    // (which starts above every old seq) reaches them.
    s.previous_journal = s.holder.journal_id;
    s.journal_lost_through = std::max(s.journal_lost_through, s.highest);
    DecisionContext ctx;
    ctx.client_journal_lost = true;
    while (!s.ops.empty()) {
      auto op = s.ops.begin();
      const Track& t = op->second;
      // The server's side as the broker knows it: answered by a server
      // (executed), out at one (received), or never there.
      ServerOpView view;
      if (!t.server.empty() && t.phase == Phase::kAnswered) {
        view.state = ServerOpState::kExecuted;
      } else if (t.phase == Phase::kDispatched) {
        view.state = ServerOpState::kReceived;
      }
      const OpDecision d = DecideOp(op->first, ClientOpState::kNone, view, ctx);
      NoteDecision(hello.id, d, "journal_lost");
      if (d.action == Action::kKeepOrphan) Bump(counters_.orphans);
      ReleaseOne(s, op);
    }
  }
  s.holder = Holder{route, hello.incarnation, hello.journal_id, true, now, {}};
  s.client_seen = true;
  s.last_activity = now;
  auto [cit, new_connection] = routes_.try_emplace(route);
  if (new_connection) cit->second.last_heard = now;
  if (cit->second.sessions.insert(hello.id).second) Attach(s, cit->second);
  SendTo(route, WelcomeFor(hello, now));
}

Welcome BrokerCore::WelcomeFor(const Hello& hello, Time now) const {
  Welcome w{epoch_,
            static_cast<std::uint32_t>(options_.heartbeat.count()),
            options_.max_message_bytes,
            options_.max_outstanding,
            0,
            hello.id};
  if (InGrace(now)) {
    w.grace_ms = static_cast<std::uint32_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(grace_end_ - now)
            .count());
  }
  return w;
}

void BrokerCore::AdmitServer(const std::string& route, const Hello& hello,
                             Time now) {
  auto [it, fresh] = servers_.try_emplace(hello.id);
  ServerPeer& srv = it->second;
  std::string why;
  ErrorCode code = ErrorCode::kOk;
  const bool gone =
      fresh || srv.holder.route == route || HolderGone(srv.holder);
  if (!fresh && !MayTakeOver(srv, hello, route, gone, why, code)) {
    Bump(code == ErrorCode::kFenced ? counters_.fenced
                                    : counters_.duplicate_identity);
    SendError(route, code, why, MessageType::kHello, hello.id);
    return;
  }
  // Listed durably before WELCOME, hence before anything is dispatched to
  // it: the roster never lacks a server that a broker dispatched to.
  if (!VouchedByRoster(hello, now) || !ListInRoster(hello.id)) {
    SendError(route, ErrorCode::kInternal,
              "broker cannot record the server in its roster",
              MessageType::kHello, hello.id);
    return;
  }
  const bool same_process = !fresh &&
                            srv.holder.journal_id == hello.journal_id &&
                            srv.holder.incarnation == hello.incarnation;
  if (!fresh && srv.holder.route != route) routes_.erase(srv.holder.route);
  if (!fresh && srv.holder.journal_id != hello.journal_id) {
    srv.previous_journal = srv.holder.journal_id;
  }
  const bool was_alive = !fresh && srv.holder.alive;
  srv.holder =
      Holder{route, hello.incarnation, hello.journal_id, true, now, {}};
  srv.services = hello.services;
  srv.principal = std::string(principal_);
  srv.credit_limit = 1;
  for (const ServiceSpec& spec : hello.services) {
    srv.credit_limit = std::max(srv.credit_limit, spec.credit);
  }
  // A new process runs none of the old one's handlers.
  if (!same_process) srv.in_flight = 0;
  srv.lease_expired = false;
  srv.said_goodbye = false;
  srv.reported = hello.incarnation == 1 && hello.last_epoch == 0;
  srv.report_due = now + options_.heartbeat * 3;
  srv.reported_sessions = 0;
  roster_unreturned_.erase(hello.id);
  Connection& c = routes_[route];
  c.role = Role::kServer;
  c.server = hello.id;
  if (!was_alive) Bump(counters_.servers);
  RegisterServices(hello.id, srv);

  SendTo(route, WelcomeFor(hello, now));
  if (srv.reported) ServerReported(hello.id, now);

  // Operations that waited for this server go to it again: it deduplicates,
  // so this is safe, and it is the quickest way back to an answer.
  // Only its own operations are looked at (at_server_), however many the
  // broker tracks.
  for (const auto& [sid, seq] : DispatchedAt(hello.id)) {
    Track& t = sessions_.find(sid)->second.ops.find(seq)->second;
    if (t.server_journal != hello.journal_id) {
      // Leave it to the probe, which sees the lost journal.
      ScheduleProbe(sid, seq, t, now);
    } else if (t.has_request) {
      SendRequestTo(sid, seq, t, hello.id, now);
    } else {
      ScheduleProbe(sid, seq, t, now);
    }
  }
  for (const ServiceSpec& spec : hello.services) DrainQueue(spec.name, now);
}

void BrokerCore::RegisterServices(const std::string& id, ServerPeer& srv) {
  for (const ServiceSpec& spec : srv.services) {
    auto [it, fresh] = services_.try_emplace(spec.name);
    Service& svc = it->second;
    if (!svc.registered) {
      if (!fresh) --unregistered_services_;
      svc.registered = true;
      svc.spec = spec;
    } else if (svc.spec.idempotent != spec.idempotent ||
               svc.spec.policy != spec.policy) {
      LogOnce("policy:" + spec.name,
              "servers disagree on the policy of service " +
                  Printable(spec.name) + "; keeping the first one registered");
    }
    if (std::find(svc.servers.begin(), svc.servers.end(), id) ==
        svc.servers.end()) {
      svc.servers.push_back(id);
    }
  }
}

void BrokerCore::MarkServerDead(const std::string& id, Time now) {
  auto it = servers_.find(id);
  if (it == servers_.end() || !it->second.holder.alive) return;
  ServerPeer& srv = it->second;
  srv.holder.alive = false;
  srv.holder.dead_since = now;
  counters_.servers.fetch_sub(1, std::memory_order_relaxed);
  for (const ServiceSpec& spec : srv.services) {
    auto svc = services_.find(spec.name);
    if (svc == services_.end()) continue;
    auto& list = svc->second.servers;
    list.erase(std::remove(list.begin(), list.end(), id), list.end());
    if (list.empty()) svc->second.empty_since = now;
  }
  spdlog::info("rejoin-broker: server {} is gone", Printable(id));
}

void BrokerCore::OnGoodbye(const std::string& route, const Goodbye& goodbye,
                           Time now) {
  auto it = routes_.find(route);
  if (it == routes_.end()) return;
  Connection& c = it->second;
  if (c.role == Role::kServer) {
    if (ServerPeer* srv = ServerOf(route, c)) {
      srv->said_goodbye = true;
      MarkServerDead(c.server, now);
    }
    return;
  }
  if (goodbye.id.empty()) {
    DropClientConnection(route, now);
    return;
  }
  // One session leaves; the connection stays for the others.
  Heard(route, c, MessageType::kGoodbye, now, goodbye.id);
  auto s = sessions_.find(goodbye.id);
  if (s == sessions_.end() || s->second.holder.route != route) return;
  Holder& h = s->second.holder;
  if (h.alive) {
    h.alive = false;
    h.dead_since = now;
  }
  Detach(goodbye.id, s->second);
}

void BrokerCore::Detach(const SessionId& sid, Session& s) {
  if (s.holder.route.empty()) return;
  Unattach(s);
  auto it = routes_.find(s.holder.route);
  if (it != routes_.end() && it->second.role == Role::kClient) {
    it->second.sessions.erase(sid);
    if (it->second.sessions.empty()) routes_.erase(it);
  }
  s.holder.route.clear();
}

void BrokerCore::DropClientConnection(std::string route, Time now) {
  auto it = routes_.find(route);
  if (it == routes_.end() || it->second.role != Role::kClient) return;
  for (const SessionId& sid : it->second.sessions) {
    auto s = sessions_.find(sid);
    if (s == sessions_.end()) continue;
    Unattach(s->second);
    Holder& h = s->second.holder;
    if (h.alive) {
      h.alive = false;
      h.dead_since = now;
    }
    h.route.clear();
  }
  routes_.erase(it);
}

}  // namespace rejoin::broker_internal
