// Operations, credit and queues: a REQUEST becomes a tracked operation,
// is dispatched to a server with credit or queued for its service, and is
// answered by the server's RESPONSE (or by the broker in its place); ACKs
// release what the client has.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "core/broker_core.h"
#include "rejoin/proto/codec.h"
#include "rejoin/proto/request_digest.h"
#include "rejoin/transport/wire.h"

namespace rejoin::broker_internal {

// ---- REQUEST --------------------------------------------------------------

void BrokerCore::OnRequest(const std::string& route, const Request& req,
                           InFrames& frames, Time now) {
  const Connection* c = Known(route, MessageType::kRequest, now, req.session);
  if (c == nullptr) return;
  Session* sp = HeldSession(route, *c, req.session, MessageType::kRequest);
  if (sp == nullptr) {
    Bump(counters_.fenced);
    SendError(route, ErrorCode::kNotAuthorized,
              "REQUEST for a session this connection does not hold",
              MessageType::kRequest, req.session, req.seq);
    return;
  }
  Session& s = *sp;
  s.last_activity = now;
  s.highest = std::max(s.highest, req.seq);
  ReleaseBelow(s, req.completed_watermark);
  if (req.seq < req.completed_watermark) return;  // already completed

  auto it = s.ops.find(req.seq);
  if (it != s.ops.end()) {
    Track& t = it->second;
    switch (t.phase) {
      case Phase::kAnswered:
        if (t.has_digest &&
            t.digest != proto::RequestDigest(req.service, frames.payload())) {
          AnswerConflict(route, req);
          return;
        }
        ReplayResponse(req.session, s, t, now);
        return;
      case Phase::kDispatched: {
        if (access_ != nullptr && t.service.empty()) {
          // Known only from a server's report: that server must be one
          // that may serve what the client asks for, or its report was a
          // claim on a request it never had.
          auto holder = servers_.find(t.server);
          if (holder == servers_.end() ||
              !access_->MayServe(holder->second.principal, req.service)) {
            Bump(counters_.not_authorized);
            ReleaseOne(s, it);
            it = s.ops.end();
            break;
          }
          t.service = req.service;
        }
        if (!t.has_request) {
          const std::size_t before = TrackBytes(t);
          t.request_header = frames.TakeHeader();
          t.request_payload = frames.TakePayload();
          t.has_request = true;
          // A track a server reported names no service: the answer's
          // digest needs the request's, or this client's next resend of
          // the same request would be answered conflict.
          if (t.service.empty()) t.service = req.service;
          Reaccount(s, before, t);
        }
        auto srv = servers_.find(t.server);
        if (srv == servers_.end() || !srv->second.holder.alive) {
          return;  // the holder keeps it until it returns or its lease ends
        }
        if (srv->second.holder.journal_id != t.server_journal) {
          // The holder lost its journal since dispatch: its "no record"
          // would run the request again. The probe decides instead.
          if (t.due > now) ScheduleProbe(req.session, req.seq, t, now);
          return;
        }
        Bump(counters_.forwarded_resends);
        SendRequestTo(req.session, req.seq, t, t.server, now);
        return;
      }
      case Phase::kQueued:
      case Phase::kHeldForGrace:
        return;
    }
  }
  if (req.seq < s.completed_below || s.completed_above.count(req.seq) != 0) {
    // The client completed it and the broker released it; this client's
    // journal went back in time. Another server would run it again.
    LogOnce("completed-resent:" + req.session,
            "session " + Printable(req.session) + " sent seq " +
                std::to_string(req.seq) +
                " again after completing it (a journal restored from an "
                "older copy?): answered in_doubt");
    Answer(req.session, s, req.seq, ErrorCode::kInDoubt);
    return;
  }

  if (!MayCall(req.service)) {
    // Answered like a service that cannot be reached: the call completes
    // with not_authorized, and the answer is kept for its resends.
    Bump(counters_.not_authorized);
    LogOnce("may-not-call:" + std::string(principal_) + ":" + req.service,
            "principal '" + Printable(principal_) + "' may not call '" +
                Printable(req.service) + "': answered not_authorized");
    Answer(req.session, s, req.seq, ErrorCode::kNotAuthorized);
    return;
  }
  if (frames.payload().size() > options_.max_message_bytes) {
    Bump(counters_.too_large);
    Answer(req.session, s, req.seq, ErrorCode::kTooLarge);
    return;
  }
  if (services_.count(req.service) == 0) {
    if (unregistered_services_ >= kMaxUnregisteredServices) {
      // Bounded: a flood of invented names must not grow the broker.
      Answer(req.session, s, req.seq, ErrorCode::kUnknownService);
      return;
    }
    services_[req.service].empty_since = now;
    ++unregistered_services_;
  }
  if (s.unanswered >= options_.max_outstanding) {
    Answer(req.session, s, req.seq, ErrorCode::kLimitExceeded);
    return;
  }
  // What taking it costs: its frames and its track.
  const std::size_t incoming =
      frames.payload().size() + frames.header().size() + kTrackOverhead;
  if (!WithinBounds(route, req, s, incoming, now)) return;
  const ForgottenSessions::Entry* forgotten =
      forgotten_.empty() ? nullptr : forgotten_.Find(req.session);
  if (forgotten != nullptr && req.seq <= forgotten->highest &&
      !Idempotent(req.service) && !HolderOfForgotten(*forgotten, req.service)) {
    // A server may have run it and the broker no longer knows which one:
    // any other server would run it again (FLOWS.md §10).
    Bump(counters_.forgotten_in_doubt);
    LogOnce("forgotten-in-doubt",
            "untracked REQUEST of forgotten session " + Printable(req.session) +
                " (seq " + std::to_string(req.seq) +
                "): no single live server is known to hold it; answered "
                "in_doubt");
    Answer(req.session, s, req.seq, ErrorCode::kInDoubt);
    return;
  }
  Track& t = NewTrack(s, req.seq);
  t.service = req.service;
  t.request_header = frames.TakeHeader();
  t.request_payload = frames.TakePayload();
  t.has_request = true;
  Reaccount(s, 0, t);
  if (forgotten != nullptr && req.seq <= forgotten->highest &&
      !Idempotent(req.service)) {
    // Back to the one server that named the session: it holds the
    // operation (and answers from its journal) or never had it.
    Bump(counters_.forgotten_routed);
    t.phase = Phase::kDispatched;
    t.dispatched = now;
    t.server = forgotten->server;
    t.server_journal = forgotten->journal;
    at_server_[t.server].emplace(req.session, req.seq);
    s.servers.insert(t.server);
    SendRequestTo(req.session, req.seq, t, t.server, now);
    return;
  }
  if (InGrace(now) && (req.flags & kRequestResend) != 0) {
    // A resend this broker has no record of: no server has reported it,
    // and one that has not reported yet may hold it.
    DecisionContext ctx;
    ctx.grace_period = true;
    const OpDecision d =
        DecideOp(req.seq, ClientOpState::kSent, ServerOpView{}, ctx);
    NoteDecision(req.session, d, "request");
    if (d.action == Action::kWait) {
      t.phase = Phase::kHeldForGrace;
      return;
    }
  }
  Dispatch(req.session, req.seq, t, now);
}

bool BrokerCore::PickServer(const std::string& service, std::string& out) {
  auto it = services_.find(service);
  if (it == services_.end()) return false;
  Service& svc = it->second;
  const std::size_t n = svc.servers.size();
  for (std::size_t i = 0; i < n; ++i) {
    const std::string& id = svc.servers[(svc.next + i) % n];
    ServerPeer& srv = servers_[id];
    if (srv.holder.alive && srv.in_flight < srv.credit_limit) {
      svc.next = (svc.next + i + 1) % n;
      out = id;
      return true;
    }
  }
  return false;
}

void BrokerCore::Dispatch(const SessionId& sid, Seq seq, Track& t, Time now) {
  std::string server;
  if (!PickServer(t.service, server)) {
    Service& svc = services_[t.service];
    if (svc.queue.size() >= options_.max_queue) {
      auto s = sessions_.find(sid);
      Answer(sid, s->second, seq, ErrorCode::kLimitExceeded);
      return;
    }
    t.phase = Phase::kQueued;
    if (svc.servers.empty() && svc.empty_since == Time{}) svc.empty_since = now;
    const std::size_t bytes =
        t.request_header.size() + t.request_payload.size();
    svc.queue.push_back(Service::Queued{sid, seq, bytes});
    svc.queued_bytes += bytes;
    return;
  }
  ServerPeer& srv = servers_[server];
  ++srv.in_flight;
  t.credit_taken = true;
  t.phase = Phase::kDispatched;
  t.dispatched = now;
  t.server = server;
  at_server_[server].emplace(sid, seq);
  t.server_journal = srv.holder.journal_id;
  sessions_[sid].servers.insert(server);
  Bump(counters_.requests);
  SendRequestTo(sid, seq, t, server, now);
}

void BrokerCore::SendRequestTo(const SessionId& sid, Seq seq, Track& t,
                               const std::string& server, Time now) {
  ServerPeer& srv = servers_[server];
  if (t.has_request) {
    SendEnvelope(srv.holder.route, t.request_header, t.request_payload);
  }
  t.probe_round = 0;
  ScheduleProbe(sid, seq, t, now + options_.probe);
}

std::vector<std::pair<SessionId, Seq>> BrokerCore::DispatchedAt(
    const std::string& server) {
  std::vector<std::pair<SessionId, Seq>> out;
  auto idx = at_server_.find(server);
  if (idx == at_server_.end()) return out;
  for (auto it = idx->second.begin(); it != idx->second.end();) {
    auto s = sessions_.find(it->first);
    const Track* t = nullptr;
    if (s != sessions_.end()) {
      auto op = s->second.ops.find(it->second);
      if (op != s->second.ops.end()) t = &op->second;
    }
    if (t == nullptr || t->server != server) {
      it = idx->second.erase(it);  // released or moved
      continue;
    }
    if (t->phase == Phase::kDispatched) out.push_back(*it);
    ++it;
  }
  return out;
}

bool BrokerCore::StillNamed(const std::string& server) {
  auto idx = at_server_.find(server);
  if (idx == at_server_.end()) return false;
  for (auto it = idx->second.begin(); it != idx->second.end();) {
    auto s = sessions_.find(it->first);
    if (s != sessions_.end()) {
      auto op = s->second.ops.find(it->second);
      if (op != s->second.ops.end() && op->second.server == server) {
        return true;
      }
    }
    it = idx->second.erase(it);
  }
  return false;
}

void BrokerCore::DrainQueue(const std::string& service, Time now) {
  auto it = services_.find(service);
  if (it == services_.end()) return;
  Service& svc = it->second;
  auto& queue = svc.queue;
  auto pop = [&svc] {
    svc.queued_bytes -= svc.queue.front().bytes;
    svc.queue.pop_front();
  };
  while (!queue.empty()) {
    const SessionId sid = queue.front().session;
    const Seq seq = queue.front().seq;
    auto s = sessions_.find(sid);
    if (s == sessions_.end()) {
      pop();
      continue;
    }
    auto t = s->second.ops.find(seq);
    if (t == s->second.ops.end() || t->second.phase != Phase::kQueued) {
      pop();
      continue;
    }
    std::string server;
    if (!PickServer(service, server)) return;
    pop();
    // Dispatch picks again; with credit just seen it takes the same path.
    Dispatch(sid, seq, t->second, now);
  }
}

// A broker-made outcome: retained like a server's response, so a resend of
// the same seq gets the same answer and is never dispatched.
void BrokerCore::Answer(const SessionId& sid, Session& s, Seq seq,
                        ErrorCode status) {
  if (status == ErrorCode::kInDoubt) {
    Bump(counters_.answered_in_doubt);
  } else {
    Bump(counters_.answered_errors);
  }
  CountCode(answered_by_code_, status);
  auto [it, created] = s.ops.try_emplace(seq);
  Track& t = it->second;
  if (created) {
    t.phase = Phase::kAnswered;  // never counted as unanswered
    AddBytes(s, kTrackOverhead, 0);
  }
  MarkAnswered(s, t);
  t.broker_answered = true;
  const std::size_t before = TrackBytes(t);
  std::string bytes = EncodeHeader(Response{sid, seq, status});
  t.response_header.rebuild(bytes.data(), bytes.size());
  t.response_payload.rebuild(std::size_t{0});
  Reaccount(s, before, t);
  if (s.holder.alive) {
    SendEnvelope(s.holder.route, t.response_header, t.response_payload);
  }
}

bool BrokerCore::Idempotent(const std::string& service) const {
  auto it = services_.find(service);
  return it != services_.end() && it->second.spec.idempotent;
}

// The one server that named a forgotten session, if the broker can still
// reach it under the journal it named the session from, for `service`.
bool BrokerCore::HolderOfForgotten(const ForgottenSessions::Entry& e,
                                   const std::string& service) const {
  if (e.ambiguous) return false;
  auto it = servers_.find(e.server);
  if (it == servers_.end()) return false;
  const ServerPeer& srv = it->second;
  if (!srv.holder.alive || srv.holder.journal_id != e.journal) return false;
  return std::any_of(
      srv.services.begin(), srv.services.end(),
      [&service](const ServiceSpec& spec) { return spec.name == service; });
}

void BrokerCore::Forget(const SessionId& sid, const std::string& server,
                        JournalId journal, Seq highest) {
  const std::uint64_t dropped = forgotten_.dropped();
  forgotten_.Remember(sid, server, journal, highest);
  counters_.forgotten_sessions.store(forgotten_.size(),
                                     std::memory_order_relaxed);
  counters_.forgotten_dropped.store(forgotten_.dropped(),
                                    std::memory_order_relaxed);
  if (forgotten_.dropped() != dropped) {
    LogOnce("forgotten-dropped",
            "more than " + std::to_string(options_.max_forgotten_sessions) +
                " forgotten sessions: the oldest is dropped, and a resend "
                "of its client may run on another server "
                "(--max-forgotten-sessions)");
  }
}

void BrokerCore::AnswerConflict(const std::string& route, const Request& req) {
  Bump(counters_.conflicts);
  LogOnce("conflict:" + req.session,
          "session " + Printable(req.session) + " sent seq " +
              std::to_string(req.seq) +
              " again with another request; answered conflict");
  std::string bytes =
      EncodeHeader(Response{req.session, req.seq, ErrorCode::kConflict});
  zmq::message_t header(bytes.data(), bytes.size());
  zmq::message_t payload;
  SendEnvelope(route, header, payload);
}

Track& BrokerCore::NewTrack(Session& s, Seq seq) {
  auto [it, created] = s.ops.try_emplace(seq);
  Track& t = it->second;
  if (created) {
    AddBytes(s, kTrackOverhead, 0);
  } else {
    if (t.phase != Phase::kAnswered) UncountUnanswered(s);
    ReturnCredit(t);
    const std::size_t before = TrackBytes(t);
    t = Track{};
    Reaccount(s, before, t);
  }
  CountUnanswered(s);
  return t;
}

void BrokerCore::MarkAnswered(Session& s, Track& t) {
  if (t.phase != Phase::kAnswered) UncountUnanswered(s);
  ReturnCredit(t);
  t.phase = Phase::kAnswered;
  if (t.has_request) {
    t.digest =
        proto::RequestDigest(t.service, transport::View(t.request_payload));
    t.has_digest = true;
  }
  t.has_request = false;
  const std::size_t before = TrackBytes(t);
  t.request_header.rebuild(std::size_t{0});
  t.request_payload.rebuild(std::size_t{0});
  Reaccount(s, before, t);
}

void BrokerCore::ReplayResponse(const SessionId& sid, Session& s, Track& t,
                                Time now) {
  Bump(counters_.responses_replayed);
  if (options_.replay_hold.count() == 0) {
    SendEnvelope(s.holder.route, t.response_header, t.response_payload);
    return;
  }
  // Whether it waits is decided at the end of the turn (ReleaseHeldReplays),
  // once the requests that came with the resend count as out at servers.
  std::vector<HeldReplay>& held = held_[s.holder.route];
  if (held_.size() == 1 && held.empty()) {
    held_due_ = now + options_.replay_hold;
  }
  held.push_back(HeldReplay{sid, transport::Share(t.response_header),
                            transport::Share(t.response_payload)});
}

void BrokerCore::ReturnCredit(Track& t) {
  if (!t.credit_taken) return;
  t.credit_taken = false;
  auto it = servers_.find(t.server);
  if (it != servers_.end() && it->second.in_flight > 0) {
    --it->second.in_flight;
    credit_returned_.push_back(t.server);
  }
}

void BrokerCore::ReleaseOne(Session& s, std::map<Seq, Track>::iterator it) {
  Track& t = it->second;
  if (t.phase != Phase::kAnswered) UncountUnanswered(s);
  ReturnCredit(t);
  if (!t.server.empty()) {
    if (auto idx = at_server_.find(t.server); idx != at_server_.end()) {
      idx->second.erase({s.id, it->first});
    }
  }
  const std::size_t before = TrackBytes(t);
  s.ops.erase(it);
  AddBytes(s, 0, before + kTrackOverhead);
}

void BrokerCore::ReleaseBelow(Session& s, Seq below) {
  if (below > s.completed_below) {
    s.completed_below = below;
    s.completed_above.erase(s.completed_above.begin(),
                            s.completed_above.lower_bound(below));
  }
  while (!s.ops.empty() && s.ops.begin()->first < below) {
    ReleaseOne(s, s.ops.begin());
  }
}

void BrokerCore::ReleaseCompleted(Session& s,
                                  std::map<Seq, Track>::iterator it) {
  NoteCompleted(s, it->first);
  ReleaseOne(s, it);
}

void BrokerCore::NoteCompleted(Session& s, Seq seq) {
  if (seq < s.completed_below) return;
  s.completed_above.insert(seq);
  if (s.completed_above.size() > kMaxCompletedAbove) {
    s.completed_above.erase(s.completed_above.begin());
  }
}

// ---- RESPONSE -------------------------------------------------------------

void BrokerCore::OnResponse(const std::string& route, const Response& resp,
                            InFrames& frames, Time now) {
  const Connection* c = Known(route, MessageType::kResponse, now);
  if (c == nullptr) return;
  ServerPeer* srv = ServerOf(route, *c);
  if (srv == nullptr) {
    Bump(counters_.fenced);
    return;
  }
  const std::string server_id = c->server;
  Bump(counters_.responses);
  auto sit = sessions_.find(resp.session);
  if (sit == sessions_.end()) return;  // nobody to give it to; server keeps it
  Session& s = sit->second;
  s.highest = std::max(s.highest, resp.seq);
  auto it = s.ops.find(resp.seq);
  std::string service;
  if (it != s.ops.end()) {
    Track& t = it->second;
    if (t.phase == Phase::kAnswered) {
      // A second response for one operation (a resend crossed the first):
      // the client already has, or will get, the retained one.
      return;
    }
    if (t.phase == Phase::kDispatched && t.server != server_id) {
      // It was moved to another server after this one's lease; the client
      // is answered by that one. This server learns on release.
      return;
    }
    if (access_ != nullptr && t.phase != Phase::kDispatched &&
        (s.servers.count(server_id) == 0 || !MayServe(t.service))) {
      // Queued or held, dispatched to nobody: only a server that reported
      // the session and may serve the operation's service can hold it.
      Bump(counters_.not_authorized);
      return;
    }
    service = t.service;
    if (t.phase == Phase::kDispatched && t.dispatched != Time{}) {
      latency_.Observe(static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(now -
                                                                t.dispatched)
              .count()));
    }
    MarkAnswered(s, t);
    if (t.server != server_id) {
      t.server = server_id;
      at_server_[server_id].emplace(resp.session, resp.seq);
    }
    const std::size_t before = TrackBytes(t);
    t.response_header = frames.TakeHeader();
    t.response_payload = frames.TakePayload();
    Reaccount(s, before, t);
    if (s.holder.alive) {
      SendEnvelope(s.holder.route, t.response_header, t.response_payload);
    }
  } else if (s.holder.alive && resp.seq >= 1 &&
             (access_ == nullptr || s.servers.count(server_id) != 0)) {
    // Untracked (broker restarted, or already released): the client
    // deduplicates, and a response it is waiting for must not be lost.
    zmq::message_t header = frames.TakeHeader();
    zmq::message_t payload = frames.TakePayload();
    SendEnvelope(s.holder.route, header, payload);
  }
  if (!service.empty()) {
    DrainQueue(service, now);
  } else {
    for (const ServiceSpec& spec : srv->services) DrainQueue(spec.name, now);
  }
}

// ---- ACK ------------------------------------------------------------------

void BrokerCore::OnAck(const std::string& route, const Ack& ack,
                       InFrames& frames, Time now) {
  const Connection* c = Known(route, MessageType::kAck, now, ack.session);
  if (c == nullptr) return;
  Session* sp = HeldSession(route, *c, ack.session, MessageType::kAck);
  if (sp == nullptr) {
    Bump(counters_.fenced);
    return;
  }
  Session& s = *sp;
  // An ACK can only confirm what was issued: one above the highest seq the
  // broker has seen would release (at the broker and at every server) seqs
  // the client has yet to use, and every later call of the session would
  // be taken for one already completed. Refused, nothing changed.
  const Seq top = ack.seqs.empty()
                      ? ack.completed_watermark - 1
                      : std::max(ack.completed_watermark - 1, ack.seqs.back());
  if (top > s.highest) {
    Bump(counters_.protocol_violations);
    LogOnce("ack-above:" + route, "ACK of session " + Printable(ack.session) +
                                      " confirms seq " + std::to_string(top) +
                                      " above the highest issued (" +
                                      std::to_string(s.highest) + "): refused");
    SendError(route, ErrorCode::kProtocolViolation,
              "ACK above the highest seq issued for the session (" +
                  std::to_string(s.highest) + ")",
              MessageType::kAck, ack.session, top);
    return;
  }
  ReleaseBelow(s, ack.completed_watermark);
  for (Seq seq : ack.seqs) {
    // The client has the outcome, whatever the broker tracks: a copy of
    // the request held for the grace period or queued (a resend that an
    // answer overtook after a broker restart) must never run, and a later
    // copy is refused like one below the watermark (OnRequest).
    auto it = s.ops.find(seq);
    if (it != s.ops.end()) {
      ReleaseCompleted(s, it);
    } else {
      NoteCompleted(s, seq);
    }
  }
  for (const std::string& id : s.servers) {
    auto srv = servers_.find(id);
    if (srv == servers_.end() || !srv->second.holder.alive) continue;
    out_.Forward(srv->second.holder.route, frames.header());
  }
}

}  // namespace rejoin::broker_internal
