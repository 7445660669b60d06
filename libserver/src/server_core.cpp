// The server's operation logic (server_core.h).
#include "server_core.h"

#include <algorithm>
#include <functional>
#include <string>
#include <utility>

#include "log.h"
#include "rejoin/proto/codec.h"
#include "request_digest.h"

namespace rejoin::server_internal {
namespace {

// A STATE_EXCHANGE is split so each header stays well inside the codec's
// 64 KiB header limit.
constexpr std::size_t kMaxVectorsPerExchange = 256;
constexpr std::size_t kMaxExchangeBytes = 48 * 1024;
constexpr std::size_t kVectorOverheadBytes = 48;
constexpr std::size_t kHeldOpBytes = 24;
// How often idle sessions are looked for (ServerOptions::session_expiry).
constexpr std::chrono::milliseconds kExpiryCheck{1000};
// A payload the broker could not decode is not worth journaling.
const std::size_t kMaxResponseBytes = CodecLimits().max_payload_bytes;

ServerOpState StateOf(const JournalOp& op) {
  return static_cast<ServerOpState>(op.state);
}

}  // namespace

bool HoldsOperations(const JournalState& state) {
  for (const auto& [session, js] : state.sessions) {
    for (const auto& [seq, op] : js.ops) {
      if (StateOf(op) == ServerOpState::kReceived ||
          StateOf(op) == ServerOpState::kExecuted) {
        return true;
      }
    }
  }
  return false;
}

ServerCore::ServerCore(const ServerOptions& options,
                       const std::vector<ServiceOptions>& services,
                       Journal& journal, Outbox& outbox, Counters& counters,
                       Clock::time_point started)
    : options_(options),
      services_(services),
      journal_(journal),
      outbox_(outbox),
      counters_(counters),
      incarnation_(journal.incarnation()),
      started_(started),
      next_expiry_check_(started) {
  for (std::size_t i = 0; i < services_.size(); ++i) {
    const ServiceOptions& s = services_[i];
    service_index_.emplace(s.name, i);
    specs_.push_back(
        ServiceSpec{s.name, options_.concurrency, s.idempotent, s.policy});
  }
}

void ServerCore::Fail(const Status& status) {
  if (failed()) return;
  failure_ = status;
  jobs_.clear();
}

void ServerCore::OnRequest(const Request& r, std::string_view request,
                           Clock::time_point now) {
  if (failed()) return;
  Touch(r.session, now);
  ReleaseBelow(r.session, r.completed_watermark);
  if (IsReleased(r.session, r.seq)) {
    // The client acknowledged an outcome for this seq, so a client with
    // intact records has it and drops this answer as a duplicate; one whose
    // journal was rolled back waits for it and must not wait forever
    // (PROTOCOL.md §4.3).
    Bump(counters_.duplicates);
    AnswerReleased(r.session, r.seq);
    return;
  }
  if (const JournalOp* op = FindOp(r.session, r.seq)) {
    const std::optional<std::uint64_t> held = DigestOf(*op);
    if (held && *held != RequestDigest(r.service, request)) {
      // The seq is held for another request: a client that reused it must
      // not get that request's outcome, nor have this one run.
      Bump(counters_.conflicts);
      if (LogOnce("conflict:" + r.session)) {
        Log().warn(
            "server {}: session {} sent seq {} again with another request; "
            "answered conflict",
            options_.server_id, r.session, r.seq);
      }
      QueueResponse(r.session, r.seq, ErrorCode::kConflict, {});
      return;
    }
    switch (StateOf(*op)) {
      case ServerOpState::kExecuted:
        Bump(counters_.duplicates);
        ResendStored(r.session, r.seq, *op);
        return;
      case ServerOpState::kReceived:
        // This incarnation: the handler is queued or running and will
        // answer. An older one: the process restarted mid-execution.
        if (op->incarnation != incarnation_) {
          SettleInDoubt(r.session, r.seq, InDoubtAction(op->service));
        }
        return;
      case ServerOpState::kReleased:
      case ServerOpState::kNone:
        // kReleased is caught by IsReleased; kNone is never recorded.
        return;
    }
  }
  // Leaving: the broker finds this request unanswered and recovers it.
  if (draining_) return;
  auto service = service_index_.find(r.service);
  if (service == service_index_.end()) {
    Execute(r.session, r.seq, RequestDigest(r.service, request),
            HandlerReply{ErrorCode::kUnknownService, ""});
    return;
  }
  JournalOp received;
  received.state = static_cast<std::uint8_t>(ServerOpState::kReceived);
  received.service = r.service;
  received.payload = std::string(request);
  if (Status s = journal_.AppendOp(r.session, r.seq, std::move(received));
      !s.ok()) {
    if (s.code() != ErrorCode::kInvalidArgument) {
      Fail(s);
      return;
    }
    // Only a request over the journal's record limit gets here.
    Execute(r.session, r.seq, RequestDigest(r.service, request),
            HandlerReply{ErrorCode::kTooLarge, ""});
    return;
  }
  jobs_.push_back(Job{JobKind::kHandle, r.session, r.seq, service->second,
                      std::string(request)});
}

void ServerCore::OnAck(const Ack& a, Clock::time_point now) {
  if (failed()) return;
  Touch(a.session, now);
  Release(a.session, a.completed_watermark, a.seqs);
}

void ServerCore::OnProbe(const Probe& p, Clock::time_point now) {
  if (failed()) return;
  Touch(p.session, now);
  ProbeReply reply;
  reply.probe_id = p.probe_id;
  reply.role = Role::kServer;
  reply.servers.push_back(VectorOf(p.session, FindSession(p.session), &p.seqs));
  outbox_.Add(reply, {});
}

void ServerCore::OnRecover(const Recover& r, Clock::time_point now) {
  if (failed()) return;
  for (const RecoverSession& rs : r.sessions) {
    Touch(rs.session, now);
    ReleaseBelow(rs.session, rs.release_below);
    for (const OpDecision& d : rs.ops) ApplyDecision(rs.session, d);
  }
}

void ServerCore::ApplyDecision(const SessionId& session, const OpDecision& d) {
  const JournalOp* op = FindOp(session, d.seq);
  const ServerOpState state = op ? StateOf(*op) : ServerOpState::kNone;
  // Below the released watermark, or a tombstone: the response is gone.
  const bool released = IsReleased(session, d.seq);
  switch (d.action) {
    case Action::kNone:
    case Action::kWait:
      return;
    case Action::kResendResponse:
      if (state == ServerOpState::kExecuted) {
        ResendStored(session, d.seq, *op);
      } else if (state == ServerOpState::kReceived &&
                 op->incarnation != incarnation_) {
        // A stale decision: the vector it read held a response that this
        // journal no longer has (it lost unsynced records in a crash). The
        // execution is in doubt, exactly as for a resent REQUEST.
        SettleInDoubt(session, d.seq, InDoubtAction(op->service));
      } else if (released) {
        // Released since the vector the decision read: a client that still
        // waits (its journal was rolled back) gets the only answer left.
        AnswerReleased(session, d.seq);
      }
      return;
    case Action::kReexecute:
    case Action::kResolve:
    case Action::kAnswerInDoubt:
      // The journal is checked again because the decision was made on a
      // vector that may be older than this turn: an operation that was
      // settled since is answered from its record, one that is running in
      // this incarnation must not be started twice.
      if (state == ServerOpState::kExecuted) {
        ResendStored(session, d.seq, *op);
      } else if (state == ServerOpState::kReceived &&
                 op->incarnation != incarnation_) {
        SettleInDoubt(session, d.seq, d.action);
      } else if (released) {
        // PREPARED/SENT against RELEASED (§6.1): the stored outcome was
        // dropped when the client acknowledged it; nothing can be re-run.
        AnswerReleased(session, d.seq);
      } else if (state == ServerOpState::kNone &&
                 d.action == Action::kAnswerInDoubt) {
        // This server's journal lost the operation (the broker saw the
        // journal id change): nobody can tell whether it ran, and the answer
        // must be journaled so it is given only once.
        Bump(counters_.answered_in_doubt);
        Execute(session, d.seq, std::nullopt,
                HandlerReply{ErrorCode::kInDoubt, ""});
      }
      return;
    case Action::kRelease:
      if (state == ServerOpState::kReceived ||
          state == ServerOpState::kExecuted) {
        Release(session, 0, {d.seq});
      }
      return;
    case Action::kKeepOrphan:
      Bump(counters_.orphans);
      return;
    case Action::kResendRequest:
      break;
  }
  Bump(counters_.malformed);
  if (LogOnce("recover:" + std::string(ActionName(d.action)))) {
    Log().warn("server {}: ignored RECOVER action {} meant for a client",
               options_.server_id, ActionName(d.action));
  }
}

void ServerCore::OnCompletion(Completion c) {
  if (failed()) return;
  const Job& job = c.job;
  const JournalOp* op = FindOp(job.session, job.seq);
  // Released (the client has an outcome from elsewhere) or settled while
  // the handler ran: this result must not replace that record.
  if (op == nullptr || StateOf(*op) != ServerOpState::kReceived ||
      op->incarnation != incarnation_) {
    return;
  }
  if (job.kind == JobKind::kResolve) {
    if (!c.reply) {
      // The hook found no trace of the operation: it did not happen, so it
      // runs now (FLOWS §5 "resolve").
      Bump(counters_.reexecuted);
      c.job.kind = JobKind::kHandle;
      jobs_.push_back(std::move(c.job));
      return;
    }
    Bump(c.reply->status == ErrorCode::kInDoubt ? counters_.answered_in_doubt
                                                : counters_.resolved);
  }
  Execute(job.session, job.seq, DigestOf(*op), std::move(*c.reply));
}

// ---------------------------------------------------------------------------
// Operations.

void ServerCore::QueueStateExchange() {
  if (failed()) return;
  Bump(counters_.state_exchanges);
  // Sorted so an exchange is the same for the same journal.
  std::vector<const SessionId*> ids;
  for (const auto& [id, js] : journal_.state().sessions) ids.push_back(&id);
  std::sort(ids.begin(), ids.end(),
            [](const SessionId* a, const SessionId* b) { return *a < *b; });

  StateExchange batch;
  batch.role = Role::kServer;
  std::size_t bytes = 0;
  auto flush = [&](bool last) {
    batch.last = last;
    outbox_.Add(batch, {});
    batch.servers.clear();
    bytes = 0;
  };
  for (const SessionId* id : ids) {
    ServerVector v = VectorOf(*id, FindSession(*id), nullptr);
    if (v.held.empty()) continue;
    const std::size_t overhead =
        kVectorOverheadBytes + v.server.size() + v.session.size();
    // A session whose held list does not fit in one message is split into
    // parts with the same watermark, each a consecutive slice; the broker
    // adds each part to what it tracks (PROTOCOL.md §4.7).
    std::size_t from = 0;
    while (from < v.held.size()) {
      if (!batch.servers.empty() &&
          (batch.servers.size() == kMaxVectorsPerExchange ||
           bytes + overhead + kHeldOpBytes > kMaxExchangeBytes)) {
        flush(false);
      }
      const std::size_t room = std::max<std::size_t>(
          1, (kMaxExchangeBytes - bytes - overhead) / kHeldOpBytes);
      const std::size_t n = std::min(room, v.held.size() - from);
      ServerVector part = v;
      part.held.assign(v.held.begin() + static_cast<std::ptrdiff_t>(from),
                       v.held.begin() + static_cast<std::ptrdiff_t>(from + n));
      batch.servers.push_back(std::move(part));
      bytes += overhead + n * kHeldOpBytes;
      from += n;
    }
  }
  // Always ends with a `last` message, empty if need be: it is how the
  // broker learns this server has reported everything.
  flush(true);
}

ServerVector ServerCore::VectorOf(const SessionId& session,
                                  const JournalSession* js,
                                  const std::vector<Seq>* only) const {
  ServerVector v;
  v.server = options_.server_id;
  v.incarnation = incarnation_;
  v.journal_id = journal_.journal_id();
  v.session = session;
  if (js == nullptr) return v;
  v.released_watermark = js->released_below;
  auto add = [&v](Seq seq, const JournalOp& op) {
    const ServerOpState state = StateOf(op);
    if (state != ServerOpState::kReceived &&
        state != ServerOpState::kExecuted) {
      return;
    }
    // For RECEIVED this is the incarnation that took the operation on; for
    // EXECUTED the decision does not look at it.
    v.held.push_back(HeldOp{seq, state, op.incarnation});
  };
  if (only != nullptr) {
    for (Seq seq : *only) {
      auto it = js->ops.find(seq);
      if (it != js->ops.end()) add(seq, it->second);
    }
  } else {
    for (const auto& [seq, op] : js->ops) add(seq, op);
  }
  return v;
}

// The decision table's answer (PROTOCOL.md §6.1) for an operation this
// server journaled RECEIVED in an older incarnation, under this server's own
// spec of the service; a service it no longer serves cannot be told or
// redone here.
Action ServerCore::InDoubtAction(const std::string& service) const {
  auto it = service_index_.find(service);
  if (it == service_index_.end()) return Action::kAnswerInDoubt;
  const ServiceOptions& s = services_[it->second];
  DecisionContext ctx;
  ctx.idempotent = s.idempotent;
  ctx.policy = s.policy;
  return DecideOp(/*seq=*/1, ClientOpState::kSent,
                  ServerOpView{ServerOpState::kReceived,
                               /*restarted_since_received=*/true},
                  ctx)
      .action;
}

void ServerCore::SettleInDoubt(const SessionId& session, Seq seq,
                               Action action) {
  const JournalOp* op = FindOp(session, seq);
  if (op == nullptr) return;
  const std::string service = op->service;
  auto it = service_index_.find(service);
  if (it == service_index_.end()) {
    // This process no longer serves it: nobody here can tell or redo it.
    action = Action::kAnswerInDoubt;
  } else if (action == Action::kResolve && !services_[it->second].resolve) {
    // The broker decided with another server's spec of the service (the
    // first registered); this one has no hook: its own spec decides
    // (PROTOCOL.md §6.1, in-doubt policy).
    action = InDoubtAction(service);
  }
  if (action == Action::kAnswerInDoubt) {
    Bump(counters_.answered_in_doubt);
    Execute(session, seq, DigestOf(*op), HandlerReply{ErrorCode::kInDoubt, ""});
    return;
  }
  if (action != Action::kReexecute && action != Action::kResolve) return;
  // Leaving: the operation stays in doubt for the next incarnation.
  if (draining_) return;
  std::string request = op->payload;
  // RECEIVED again, in this incarnation: a duplicate REQUEST now finds it
  // running, and a crash before it finishes leaves it in doubt again.
  JournalOp received;
  received.state = static_cast<std::uint8_t>(ServerOpState::kReceived);
  received.service = service;  // empty payload: the request stays as stored
  if (Status s = journal_.AppendOp(session, seq, std::move(received));
      !s.ok()) {
    Fail(s);
    return;
  }
  if (action == Action::kReexecute) Bump(counters_.reexecuted);
  jobs_.push_back(
      Job{action == Action::kResolve ? JobKind::kResolve : JobKind::kHandle,
          session, seq, it->second, std::move(request)});
}

void ServerCore::Execute(const SessionId& session, Seq seq,
                         std::optional<std::uint64_t> digest,
                         HandlerReply reply) {
  // The wire carries a payload only with kOk and kHandlerFailed.
  if (reply.status != ErrorCode::kOk &&
      reply.status != ErrorCode::kHandlerFailed) {
    reply.payload.clear();
  }
  if (reply.payload.size() > kMaxResponseBytes) {
    reply = HandlerReply{ErrorCode::kTooLarge, ""};
  }
  JournalOp executed;
  executed.state = static_cast<std::uint8_t>(ServerOpState::kExecuted);
  executed.digest = digest;
  executed.status = reply.status;
  executed.payload = reply.payload;
  Status s = journal_.AppendOp(session, seq, std::move(executed));
  if (s.code() == ErrorCode::kInvalidArgument) {
    // Over the journal's record limit: a response that cannot be kept
    // cannot be sent either (it could never be sent again).
    reply = HandlerReply{ErrorCode::kTooLarge, ""};
    JournalOp too_large;
    too_large.state = static_cast<std::uint8_t>(ServerOpState::kExecuted);
    too_large.digest = digest;
    too_large.status = reply.status;
    s = journal_.AppendOp(session, seq, std::move(too_large));
  }
  if (!s.ok()) {
    Fail(s);
    return;
  }
  QueueResponse(session, seq, reply.status, reply.payload);
}

void ServerCore::AnswerReleased(const SessionId& session, Seq seq) {
  // Not journaled: the answer follows from the release record, which is
  // durable already, so every later asking gets the same answer.
  Bump(counters_.answered_in_doubt);
  QueueResponse(session, seq, ErrorCode::kInDoubt, {});
}

std::optional<std::uint64_t> ServerCore::DigestOf(const JournalOp& op) const {
  switch (StateOf(op)) {
    case ServerOpState::kReceived:
      return RequestDigest(op.service, op.payload);
    case ServerOpState::kExecuted:
      // Journals written before the digest had a field of its own kept it
      // in the service field (request_digest.h).
      return op.digest ? op.digest : ParseDigestField(op.service);
    case ServerOpState::kNone:
    case ServerOpState::kReleased:
      return std::nullopt;
  }
  return std::nullopt;
}

void ServerCore::ResendStored(const SessionId& session, Seq seq,
                              const JournalOp& op) {
  Bump(counters_.responses_resent);
  QueueResponse(session, seq, op.status, op.payload);
}

void ServerCore::QueueResponse(const SessionId& session, Seq seq,
                               ErrorCode status, std::string_view payload) {
  if (status != ErrorCode::kOk && status != ErrorCode::kHandlerFailed) {
    payload = {};
  }
  outbox_.Add(Response{session, seq, status}, payload);
}

void ServerCore::ReleaseBelow(const SessionId& session, Seq below) {
  const JournalSession* js = FindSession(session);
  const Seq current = js ? js->released_below : 1;
  // Only an advance is journaled: most requests repeat the watermark.
  if (below <= current) return;
  Release(session, below, {});
}

void ServerCore::Release(const SessionId& session, Seq below,
                         const std::vector<Seq>& seqs) {
  const JournalSession* js = FindSession(session);
  const Seq current = js ? js->released_below : 1;
  std::uint64_t dropped = 0;
  std::vector<Seq> held;
  if (js != nullptr) {
    for (const auto& [seq, op] : js->ops) {
      if (seq >= below) break;
      if (StateOf(op) != ServerOpState::kReleased) ++dropped;
    }
    for (Seq seq : seqs) {
      if (seq < below) continue;
      auto it = js->ops.find(seq);
      if (it == js->ops.end() ||
          StateOf(it->second) == ServerOpState::kReleased) {
        continue;
      }
      held.push_back(seq);
      ++dropped;
    }
  }
  // Nothing to drop and no watermark to raise: no record, so a repeated ACK
  // costs nothing.
  if (dropped == 0 && below <= current) return;
  if (Status s = journal_.AppendRelease(session, below, held); !s.ok()) {
    if (s.code() == ErrorCode::kInvalidArgument) return;
    Fail(s);
    return;
  }
  Bump(counters_.released, dropped);
}

const JournalSession* ServerCore::FindSession(const SessionId& session) const {
  const auto& sessions = journal_.state().sessions;
  auto it = sessions.find(session);
  return it == sessions.end() ? nullptr : &it->second;
}

const JournalOp* ServerCore::FindOp(const SessionId& session, Seq seq) const {
  const JournalSession* js = FindSession(session);
  if (js == nullptr) return nullptr;
  auto it = js->ops.find(seq);
  return it == js->ops.end() ? nullptr : &it->second;
}

bool ServerCore::IsReleased(const SessionId& session, Seq seq) const {
  const JournalSession* js = FindSession(session);
  if (js == nullptr) return false;
  if (seq < js->released_below) return true;
  auto it = js->ops.find(seq);
  return it != js->ops.end() && StateOf(it->second) == ServerOpState::kReleased;
}

bool ServerCore::LogOnce(const std::string& key) {
  return logged_.insert(key).second;
}

void ServerCore::Touch(const SessionId& session, Clock::time_point now) {
  session_seen_[session] = now;
}

void ServerCore::ExpireSessions(Clock::time_point now) {
  if (failed() || now < next_expiry_check_) return;
  next_expiry_check_ =
      now + std::min<Clock::duration>(kExpiryCheck, options_.session_expiry);
  std::vector<std::pair<SessionId, Seq>> expired;
  for (const auto& [id, js] : journal_.state().sessions) {
    if (js.ops.empty()) continue;  // only a watermark: nothing kept
    auto seen = session_seen_.find(id);
    const Clock::time_point last =
        seen == session_seen_.end() ? started_ : seen->second;
    if (now - last < options_.session_expiry) continue;
    // A handler of the session still runs (or waits for a worker): its
    // answer is still to come.
    const bool running =
        std::any_of(js.ops.begin(), js.ops.end(), [this](const auto& entry) {
          return StateOf(entry.second) == ServerOpState::kReceived &&
                 entry.second.incarnation == incarnation_;
        });
    if (running) continue;
    expired.emplace_back(id, js.ops.rbegin()->first + 1);
  }
  for (const auto& [id, below] : expired) {
    // Warned: results nobody collected are dropped (PROTOCOL.md §6.3).
    Log().warn(
        "server {}: session {} idle for {} ms; its records below seq {} "
        "are released (session expiry)",
        options_.server_id, id, options_.session_expiry.count(), below);
    Bump(counters_.sessions_expired);
    Release(id, below, {});
  }
  // Entries as old as the expiry say no more than a missing one (which
  // counts from the start, longer ago): dropped, so the map stays as small
  // as the set of recently active sessions.
  for (auto it = session_seen_.begin(); it != session_seen_.end();) {
    if (now - it->second >= options_.session_expiry) {
      it = session_seen_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace rejoin::server_internal
