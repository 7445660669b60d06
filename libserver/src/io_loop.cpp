// The server side of FLOWS.md §2-§7. Every decision here reads the journal's
// live state, never a cache of it, so that what the server answers is always
// what it would find again after a restart.
#include "io_loop.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <utility>

#include "log.h"
#include "rejoin/transport/wire.h"
#include "request_digest.h"

namespace rejoin::server_internal {
namespace {

using std::chrono::milliseconds;

// Bounds one turn's reading so completions and timers are never starved by a
// busy broker; whatever is left is read on the next turn. Small turns also
// let the broker forward the first answers while later requests still run
// (see broker.cpp kBatch).
constexpr std::size_t kMaxMessagesPerTurn = 32;
// A STATE_EXCHANGE is split so each header stays well inside the codec's
// 64 KiB header limit.
constexpr std::size_t kMaxVectorsPerExchange = 256;
constexpr std::size_t kMaxExchangeBytes = 48 * 1024;
constexpr std::size_t kVectorOverheadBytes = 48;
constexpr std::size_t kHeldOpBytes = 24;
// A payload the broker could not decode is not worth journaling.
const std::size_t kMaxResponseBytes = CodecLimits().max_payload_bytes;

constexpr milliseconds kFencedRetry{100};
// After ERROR duplicate_identity the first retry comes sooner (a previous
// process killed a moment ago is usually noticed within milliseconds), and
// later ones back off to kFencedRetry.
constexpr milliseconds kFirstDuplicateRetry{10};
// HANDSHAKE_SUCCEEDED can be reported a moment before the socket accepts
// messages for the new connection.
constexpr milliseconds kHandshakeRetry{10};
constexpr milliseconds kRelinkDelay{100};
constexpr milliseconds kGoodbyeLinger{100};
constexpr milliseconds kMaxPollWait{1000};
constexpr int kPeerTimeoutIntervals = 3;
// How often idle sessions are looked for (ServerOptions::session_expiry).
constexpr milliseconds kExpiryCheck{1000};

ServerOpState StateOf(const JournalOp& op) {
  return static_cast<ServerOpState>(op.state);
}

bool HasHeldOps(const JournalState& state) {
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

}  // namespace

IoLoop::IoLoop(const ServerOptions& options,
               const std::vector<ServiceOptions>& services,
               std::unique_ptr<Journal> journal, std::unique_ptr<Link> link,
               zmq::context_t& context, WorkerPool& pool, Counters& counters)
    : options_(options),
      services_(services),
      journal_(std::move(journal)),
      link_(std::move(link)),
      context_(context),
      pool_(pool),
      counters_(counters),
      incarnation_(journal_->incarnation()),
      heartbeat_(options.heartbeat) {
  for (std::size_t i = 0; i < services_.size(); ++i) {
    const ServiceOptions& s = services_[i];
    service_index_.emplace(s.name, i);
    specs_.push_back(
        ServiceSpec{s.name, options_.concurrency, s.idempotent, s.policy});
  }
  // A process that restarted has returned (FLOWS §5); one whose journal
  // holds operations has something to report even on a first start.
  need_state_exchange_ = incarnation_ > 1 || HasHeldOps(journal_->state());
}

IoLoop::~IoLoop() = default;

// ---------------------------------------------------------------------------
// The loop.

void IoLoop::Run(const std::atomic<bool>& stop) {
  const Clock::time_point now = Clock::now();
  next_hello_ = now;
  next_link_ = now;
  last_sent_ = now;
  last_heard_ = now;
  for (;;) {
    // zmq::error_t is translated here and nowhere else in the loop.
    try {
      if (Step(stop)) break;
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) break;
      OnZmqError(e);
    }
  }
  link_.reset();
}

bool IoLoop::Step(const std::atomic<bool>& stop) {
  if (stop.load(std::memory_order_acquire)) draining_ = true;
  if (draining_ && outstanding_ == 0 && jobs_.empty()) {
    Leave(Clock::now());
    return true;
  }
  Poll(Clock::now());
  Turn(Clock::now());
  return false;
}

void IoLoop::Poll(Clock::time_point now) {
  Clock::time_point due = now + kMaxPollWait;
  if (failed_) {
    // Nothing to time: only completions and the stop request matter.
  } else if (!link_) {
    due = std::min(due, next_link_);
  } else if (!welcomed_) {
    due = std::min(due, next_hello_);
  } else {
    due = std::min({due, last_sent_ + heartbeat_,
                    last_heard_ + kPeerTimeoutIntervals * heartbeat_});
  }
  milliseconds wait{0};
  // Work left over from the last turn (answers held back for the next
  // commit, the rest of a batch) must not wait for the socket.
  const bool pending =
      !outbox_.empty() || (link_ && link_->buffered()) || pool_.InlineReady();
  if (due > now && !pending) {
    // Round up so the loop does not spin through the last partial
    // millisecond before a timer.
    wait = std::chrono::ceil<milliseconds>(due - now);
  }
  std::array<zmq::pollitem_t, 3> items{};
  std::size_t n = 0;
  items[n++] = zmq::pollitem_t{nullptr, pool_.fd(), ZMQ_POLLIN, 0};
  if (link_) {
    items[n++] = zmq::pollitem_t{link_->socket_handle(), 0, ZMQ_POLLIN, 0};
    items[n++] = zmq::pollitem_t{link_->monitor_handle(), 0, ZMQ_POLLIN, 0};
  }
  pool_ready_ = false;
  try {
    zmq::poll(items.data(), n, wait);
  } catch (const zmq::error_t& e) {
    // A signal delivered to this thread; the turn below handles anything
    // that is ready.
    if (e.num() != EINTR) throw;
  }
  pool_ready_ = (items[0].revents & ZMQ_POLLIN) != 0;
}

void IoLoop::Turn(Clock::time_point now) {
  turn_now_ = now;
  if (link_ && !failed_) {
    HandleLinkEvents(now);
    ReadMessages(now);
  }
  TakeCompletions();
  Flush(now);
  if (options_.inline_handlers && TakeCompletions()) {
    // The handlers ran inside Flush, after the RECEIVED commit. Their
    // answers leave in this turn. With kSync, when more requests are already
    // waiting, the next turn (which starts at once) commits these EXECUTED
    // records together with the new RECEIVED ones instead: one fdatasync
    // instead of two. (Elsewhere a commit is one write(2), cheaper than the
    // look at the socket.)
    const bool merge = journal_->durability() == Durability::kSync && link_ &&
                       link_->InputWaiting();
    if (!merge) Flush(now);
  }
  Timers(now);
  ExpireSessions(now);
}

bool IoLoop::TakeCompletions() {
  pool_.Take(completions_, pool_ready_);
  pool_ready_ = false;
  for (Completion& c : completions_) {
    --outstanding_;
    if (!failed_) OnCompletion(std::move(c));
  }
  return !completions_.empty();
}

void IoLoop::Leave(Clock::time_point now) {
  Flush(now);
  if (link_ && welcomed_ && !failed_) {
    Send(Goodbye{"shutting down", {}}, nullptr, now);
    // The loop is about to close the socket: give GOODBYE and the last
    // responses a moment to leave.
    link_->SetLinger(kGoodbyeLinger);
  }
  link_.reset();
}

void IoLoop::OnZmqError(const zmq::error_t& e) { OnLinkError(e.what()); }

void IoLoop::OnLinkError(const std::string& what) {
  if (LogOnce("zmq")) {
    Log().warn("server {}: socket error: {}; reconnecting", options_.server_id,
               what);
  }
  DropLink(Clock::now() + kRelinkDelay);
}

// ---------------------------------------------------------------------------
// Connection.

void IoLoop::HandleLinkEvents(Clock::time_point now) {
  for (;;) {
    switch (link_->ReadEvent()) {
      case Link::Event::kNone:
        return;
      case Link::Event::kConnected:
        Log().debug("server {}: connected{}", options_.server_id,
                    link_->hello_sent() ? " (HELLO already sent)" : "");
        // A new connection is a new peer for the broker: HELLO at once,
        // unless the HELLO already went out on it (the connection can be
        // usable before its event is read).
        if (!link_->hello_sent()) next_hello_ = now;
        break;
      case Link::Event::kDisconnected:
        Log().debug("server {}: disconnected", options_.server_id);
        // Messages may have been lost with the connection: report on
        // return (FLOWS §5).
        if (welcomed_) need_state_exchange_ = true;
        welcomed_ = false;
        break;
      case Link::Event::kClosed:
        OnLinkError("connection monitor closed");
        return;
    }
  }
}

void IoLoop::ReadMessages(Clock::time_point now) {
  for (std::size_t i = 0; i < kMaxMessagesPerTurn && link_ && !failed_; ++i) {
    transport::Frames frames;
    switch (link_->Read(frames)) {
      case transport::ReadResult::kNothing:
        return;
      case transport::ReadResult::kClosed:
        DropLink(now + kRelinkDelay);
        return;
      case transport::ReadResult::kMessage:
        break;
    }
    last_heard_ = now;
    Result<Message> m = transport::Decode(frames);
    if (!m.ok()) {
      Bump(counters_.malformed);
      if (LogOnce("decode:" + std::string(ErrorCodeName(m.status().code())))) {
        Log().warn("server {}: dropped a message from the broker: {}",
                   options_.server_id, m.status().ToString());
      }
      continue;
    }
    Dispatch(*m, frames.payload, now);
  }
}

void IoLoop::Timers(Clock::time_point now) {
  if (failed_) return;
  // Draining keeps the link as it is: reconnecting only to say GOODBYE is
  // pointless, but heartbeats go on below while handlers finish.
  if (draining_ && (!link_ || !welcomed_)) return;
  if (!link_) {
    if (now >= next_link_) OpenLink(now);
    return;
  }
  if (!welcomed_) {
    if (now >= next_hello_) SendHello(now);
    return;
  }
  if (now - last_heard_ >= kPeerTimeoutIntervals * heartbeat_) {
    Log().warn("server {}: broker silent for {} ms; reconnecting",
               options_.server_id,
               (kPeerTimeoutIntervals * heartbeat_).count());
    DropLink(now);
    OpenLink(now);
    return;
  }
  if (now - last_sent_ >= heartbeat_) Send(Heartbeat{epoch_}, nullptr, now);
}

void IoLoop::OpenLink(Clock::time_point now) {
  Result<std::unique_ptr<Link>> link = Link::Open(context_, options_.endpoint);
  if (!link.ok()) {
    OnLinkError(link.status().message());
    return;
  }
  link_ = std::move(*link);
  welcomed_ = false;
  next_hello_ = now;
  last_heard_ = now;
}

void IoLoop::DropLink(Clock::time_point reopen_at) {
  if (welcomed_) need_state_exchange_ = true;
  link_.reset();
  welcomed_ = false;
  next_link_ = reopen_at;
}

void IoLoop::SendHello(Clock::time_point now) {
  Hello h;
  h.role = Role::kServer;
  h.id = options_.server_id;
  h.incarnation = incarnation_;
  h.journal_id = journal_->journal_id();
  h.last_epoch = epoch_;
  h.services = specs_;
  const transport::SendResult sent = link_->Send(h);
  Log().debug("server {}: HELLO incarnation {} last epoch {:016x}: {}",
              options_.server_id, incarnation_, epoch_,
              sent == transport::SendResult::kOk ? "sent" : "not sent");
  switch (sent) {
    case transport::SendResult::kOk:
      last_sent_ = now;
      // No WELCOME within an interval: the HELLO or its answer was lost
      // (a broker starting up, say); say it again.
      next_hello_ = now + heartbeat_;
      return;
    case transport::SendResult::kWouldBlock:
    case transport::SendResult::kUnreachable:
      next_hello_ = now + (link_->connected() ? kHandshakeRetry : heartbeat_);
      return;
    case transport::SendResult::kClosed:
      DropLink(now + kRelinkDelay);
      return;
  }
}

void IoLoop::Send(const Message& m, zmq::message_t* payload,
                  Clock::time_point now) {
  if (!link_) return;
  // Until WELCOME the broker does not know this connection and would refuse
  // the message; whatever is dropped here is in the journal and reaches the
  // broker through the state exchange that follows WELCOME.
  if (!welcomed_) return;
  (void)Sent(link_->Send(m, payload), now);
}

bool IoLoop::Sent(transport::SendResult result, Clock::time_point now) {
  switch (result) {
    case transport::SendResult::kOk:
      last_sent_ = now;
      return true;
    case transport::SendResult::kWouldBlock:
    case transport::SendResult::kUnreachable:
      // Not connected or over the high-water mark. The broker's probe or our
      // next state exchange recovers what was dropped.
      return true;
    case transport::SendResult::kClosed:
      DropLink(now + kRelinkDelay);
      return false;
  }
  return false;
}

void IoLoop::SendOutbox(Clock::time_point now) {
  // Until WELCOME the broker does not know this connection and would refuse
  // the messages; whatever is dropped here is in the journal and reaches the
  // broker through the state exchange that follows WELCOME.
  if (!link_ || !welcomed_) {
    outbox_.Clear();
    return;
  }
  if (outbox_.empty()) return;
  (void)Sent(link_->Send(outbox_), now);
}

void IoLoop::Flush(Clock::time_point now) {
  if (failed_) {
    outbox_.Clear();
    jobs_.clear();
    return;
  }
  // The one commit of the turn: the group commit that makes every record of
  // the turn durable before any message or handler of the turn starts.
  if (Status s = journal_->Commit(); !s.ok()) {
    Fail(s);
    return;
  }
  SendOutbox(now);
  for (Job& job : jobs_) {
    pool_.Submit(std::move(job));
    ++outstanding_;
  }
  jobs_.clear();
  if (journal_->NeedsCompaction()) {
    if (Status s = journal_->Compact(); !s.ok()) Fail(s);
  }
}

void IoLoop::Fail(const Status& status) {
  if (failed_) return;
  failed_ = true;
  Log().error(
      "server {}: journal failed ({}); no further answers will be sent, the "
      "process should exit and be restarted",
      options_.server_id, status.ToString());
  counters_.health.Fail(
      Status(status.code(), "journal failed: " + status.message()));
  outbox_.Clear();
  jobs_.clear();
  // Tell the broker at once, so it stops dispatching here and its lease
  // rules take over; nothing else may leave without its record.
  if (link_ && welcomed_) {
    (void)link_->Send(Goodbye{"journal failure", {}});
  }
  link_.reset();
  welcomed_ = false;
}

// ---------------------------------------------------------------------------
// Messages from the broker.

void IoLoop::Dispatch(Message& m, std::string_view payload,
                      Clock::time_point now) {
  const MessageType type = TypeOf(m);
  switch (type) {
    case MessageType::kWelcome:
      OnWelcome(std::get<Welcome>(m));
      return;
    case MessageType::kRequest:
      OnRequest(std::get<Request>(m), payload);
      return;
    case MessageType::kAck:
      OnAck(std::get<Ack>(m));
      return;
    case MessageType::kHeartbeat:
      OnHeartbeat(std::get<Heartbeat>(m), now);
      return;
    case MessageType::kRecover:
      OnRecover(std::get<Recover>(m));
      return;
    case MessageType::kProbe:
      OnProbe(std::get<Probe>(m));
      return;
    case MessageType::kError:
      OnError(std::get<Error>(m), now);
      return;
    case MessageType::kGoodbye:
      OnGoodbye(now);
      return;
    case MessageType::kHello:
    case MessageType::kResponse:
    case MessageType::kStateExchange:
    case MessageType::kProbeReply:
      break;
  }
  // Well-formed, but never sent to a server.
  Bump(counters_.malformed);
  if (LogOnce("unexpected:" + std::string(MessageTypeName(type)))) {
    Log().warn("server {}: dropped an unexpected {} from the broker",
               options_.server_id, MessageTypeName(type));
  }
}

void IoLoop::OnWelcome(const Welcome& w) {
  if (epoch_ != 0 && w.epoch != epoch_) need_state_exchange_ = true;
  epoch_ = w.epoch;
  duplicate_refusals_ = 0;
  heartbeat_ =
      w.heartbeat_ms > 0 ? milliseconds(w.heartbeat_ms) : options_.heartbeat;
  welcomed_ = true;
  logged_.erase("error:duplicate_identity");
  logged_.erase("error:fenced");
  if (need_state_exchange_) {
    need_state_exchange_ = false;
    QueueStateExchange();
  }
}

void IoLoop::OnRequest(const Request& r, std::string_view request) {
  Touch(r.session);
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
  if (Status s = journal_->AppendOp(r.session, r.seq, std::move(received));
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

void IoLoop::OnAck(const Ack& a) {
  Touch(a.session);
  Release(a.session, a.completed_watermark, a.seqs);
}

void IoLoop::OnProbe(const Probe& p) {
  Touch(p.session);
  ProbeReply reply;
  reply.probe_id = p.probe_id;
  reply.role = Role::kServer;
  reply.servers.push_back(VectorOf(p.session, FindSession(p.session), &p.seqs));
  outbox_.Add(reply);
}

void IoLoop::OnRecover(const Recover& r) {
  for (const RecoverSession& rs : r.sessions) {
    Touch(rs.session);
    ReleaseBelow(rs.session, rs.release_below);
    for (const OpDecision& d : rs.ops) ApplyDecision(rs.session, d);
  }
}

void IoLoop::ApplyDecision(const SessionId& session, const OpDecision& d) {
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

void IoLoop::OnHeartbeat(const Heartbeat& h, Clock::time_point now) {
  if (welcomed_ && h.epoch != 0 && h.epoch != epoch_) {
    // A different broker answers on this endpoint (FLOWS §2): register again
    // and report.
    welcomed_ = false;
    need_state_exchange_ = true;
    next_hello_ = now;
  }
}

void IoLoop::OnError(const Error& e, Clock::time_point now) {
  const std::string key = "error:" + std::string(ErrorCodeName(e.code));
  switch (e.code) {
    case ErrorCode::kUnknownSession:
      // The broker does not know this connection: it restarted, or dropped
      // us. One HELLO per loss, not one per refused message.
      if (welcomed_) next_hello_ = now;
      welcomed_ = false;
      need_state_exchange_ = true;
      return;
    case ErrorCode::kDuplicateIdentity:
    case ErrorCode::kFenced:
      // Another process holds the id. Keep asking: the holder may be a
      // previous incarnation whose death the broker has not noticed yet.
      welcomed_ = false;
      next_hello_ =
          now + (e.code == ErrorCode::kFenced
                     ? kFencedRetry
                     : std::min(kFencedRetry,
                                kFirstDuplicateRetry *
                                    (1 << std::min(duplicate_refusals_++, 4))));
      if (LogOnce(key)) {
        Log().warn("server {}: broker refused HELLO: {} ({}); retrying",
                   options_.server_id, ErrorCodeName(e.code), e.message);
      }
      return;
    default:
      break;
  }
  if (LogOnce(key)) {
    Log().warn("server {}: broker reported {}: {}", options_.server_id,
               ErrorCodeName(e.code), e.message);
  }
}

void IoLoop::OnGoodbye(Clock::time_point now) {
  // The broker is leaving; its successor on the same endpoint gets a HELLO
  // as soon as libzmq reconnects, or at the next hello timer.
  welcomed_ = false;
  need_state_exchange_ = true;
  next_hello_ = now + heartbeat_;
}

void IoLoop::OnCompletion(Completion c) {
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

void IoLoop::QueueStateExchange() {
  Bump(counters_.state_exchanges);
  // Sorted so an exchange is the same for the same journal.
  std::vector<const SessionId*> ids;
  for (const auto& [id, js] : journal_->state().sessions) ids.push_back(&id);
  std::sort(ids.begin(), ids.end(),
            [](const SessionId* a, const SessionId* b) { return *a < *b; });

  StateExchange batch;
  batch.role = Role::kServer;
  std::size_t bytes = 0;
  auto flush = [&](bool last) {
    batch.last = last;
    outbox_.Add(batch);
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

ServerVector IoLoop::VectorOf(const SessionId& session,
                              const JournalSession* js,
                              const std::vector<Seq>* only) const {
  ServerVector v;
  v.server = options_.server_id;
  v.incarnation = incarnation_;
  v.journal_id = journal_->journal_id();
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

Action IoLoop::InDoubtAction(const std::string& service) const {
  auto it = service_index_.find(service);
  if (it == service_index_.end()) return Action::kAnswerInDoubt;
  const ServiceOptions& s = services_[it->second];
  if (s.idempotent) return Action::kReexecute;
  switch (s.policy) {
    case InDoubtPolicy::kReexecute:
      return Action::kReexecute;
    case InDoubtPolicy::kResolveHook:
      return Action::kResolve;
    case InDoubtPolicy::kAnswerInDoubt:
      return Action::kAnswerInDoubt;
  }
  return Action::kAnswerInDoubt;
}

void IoLoop::SettleInDoubt(const SessionId& session, Seq seq, Action action) {
  const JournalOp* op = FindOp(session, seq);
  if (op == nullptr) return;
  const std::string service = op->service;
  auto it = service_index_.find(service);
  if (it == service_index_.end()) {
    // This process no longer serves it: nobody here can tell or redo it.
    action = Action::kAnswerInDoubt;
  } else if (action == Action::kResolve && !services_[it->second].resolve) {
    action = services_[it->second].idempotent ? Action::kReexecute
                                              : Action::kAnswerInDoubt;
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
  if (Status s = journal_->AppendOp(session, seq, std::move(received));
      !s.ok()) {
    Fail(s);
    return;
  }
  if (action == Action::kReexecute) Bump(counters_.reexecuted);
  jobs_.push_back(
      Job{action == Action::kResolve ? JobKind::kResolve : JobKind::kHandle,
          session, seq, it->second, std::move(request)});
}

void IoLoop::Execute(const SessionId& session, Seq seq,
                     std::optional<std::uint64_t> digest, HandlerReply reply) {
  // Once the response is stored the service name is read no more: the
  // record's service field keeps the request's digest instead.
  const std::string service = digest ? DigestField(*digest) : std::string();
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
  executed.service = service;
  executed.status = reply.status;
  executed.payload = reply.payload;
  Status s = journal_->AppendOp(session, seq, std::move(executed));
  if (s.code() == ErrorCode::kInvalidArgument) {
    // Over the journal's record limit: a response that cannot be kept
    // cannot be sent either (it could never be sent again).
    reply = HandlerReply{ErrorCode::kTooLarge, ""};
    JournalOp too_large;
    too_large.state = static_cast<std::uint8_t>(ServerOpState::kExecuted);
    too_large.service = service;
    too_large.status = reply.status;
    s = journal_->AppendOp(session, seq, std::move(too_large));
  }
  if (!s.ok()) {
    Fail(s);
    return;
  }
  QueueResponse(session, seq, reply.status, reply.payload);
}

void IoLoop::AnswerReleased(const SessionId& session, Seq seq) {
  // Not journaled: the answer follows from the release record, which is
  // durable already, so every later asking gets the same answer.
  Bump(counters_.answered_in_doubt);
  QueueResponse(session, seq, ErrorCode::kInDoubt, {});
}

std::optional<std::uint64_t> IoLoop::DigestOf(const JournalOp& op) const {
  switch (StateOf(op)) {
    case ServerOpState::kReceived:
      return RequestDigest(op.service, op.payload);
    case ServerOpState::kExecuted:
      return ParseDigestField(op.service);
    case ServerOpState::kNone:
    case ServerOpState::kReleased:
      return std::nullopt;
  }
  return std::nullopt;
}

void IoLoop::ResendStored(const SessionId& session, Seq seq,
                          const JournalOp& op) {
  Bump(counters_.responses_resent);
  QueueResponse(session, seq, op.status, op.payload);
}

void IoLoop::QueueResponse(const SessionId& session, Seq seq, ErrorCode status,
                           std::string_view payload) {
  if (status != ErrorCode::kOk && status != ErrorCode::kHandlerFailed) {
    payload = {};
  }
  outbox_.Add(Response{session, seq, status}, payload);
}

void IoLoop::ReleaseBelow(const SessionId& session, Seq below) {
  const JournalSession* js = FindSession(session);
  const Seq current = js ? js->released_below : 1;
  // Only an advance is journaled: most requests repeat the watermark.
  if (below <= current) return;
  Release(session, below, {});
}

void IoLoop::Release(const SessionId& session, Seq below,
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
  if (Status s = journal_->AppendRelease(session, below, held); !s.ok()) {
    if (s.code() == ErrorCode::kInvalidArgument) return;
    Fail(s);
    return;
  }
  Bump(counters_.released, dropped);
}

const JournalSession* IoLoop::FindSession(const SessionId& session) const {
  const auto& sessions = journal_->state().sessions;
  auto it = sessions.find(session);
  return it == sessions.end() ? nullptr : &it->second;
}

const JournalOp* IoLoop::FindOp(const SessionId& session, Seq seq) const {
  const JournalSession* js = FindSession(session);
  if (js == nullptr) return nullptr;
  auto it = js->ops.find(seq);
  return it == js->ops.end() ? nullptr : &it->second;
}

bool IoLoop::IsReleased(const SessionId& session, Seq seq) const {
  const JournalSession* js = FindSession(session);
  if (js == nullptr) return false;
  if (seq < js->released_below) return true;
  auto it = js->ops.find(seq);
  return it != js->ops.end() && StateOf(it->second) == ServerOpState::kReleased;
}

bool IoLoop::LogOnce(const std::string& key) {
  return logged_.insert(key).second;
}

void IoLoop::Touch(const SessionId& session) {
  session_seen_[session] = turn_now_;
}

void IoLoop::ExpireSessions(Clock::time_point now) {
  if (failed_ || now < next_expiry_check_) return;
  next_expiry_check_ =
      now + std::min<Clock::duration>(kExpiryCheck, options_.session_expiry);
  std::vector<std::pair<SessionId, Seq>> expired;
  for (const auto& [id, js] : journal_->state().sessions) {
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
