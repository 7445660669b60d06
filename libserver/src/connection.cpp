// The server's loop and its connection to the broker (FLOWS.md §1, §2, §7,
// server side). The connection life cycle is the EndpointMachine's
// (FLOWS.md §1.1): socket events, control messages and the time go to it,
// and this file carries out what it asks. Each turn reads a bounded number of
// messages, takes finished handlers, commits once, then sends.
#include <algorithm>
#include <array>
#include <cerrno>
#include <string>
#include <utility>

#include "io_loop.h"
#include "log.h"
#include "rejoin/transport/wire.h"

namespace rejoin::server_internal {
namespace {

using std::chrono::milliseconds;

// Bounds one turn's reading so completions and timers are never starved by a
// busy broker; whatever is left is read on the next turn. Small turns also
// let the broker forward the first answers while later requests still run
// (see broker.cpp kBatch).
constexpr std::size_t kMaxMessagesPerTurn = 32;
constexpr milliseconds kGoodbyeLinger{100};
constexpr milliseconds kMaxPollWait{1000};

}  // namespace

// ---------------------------------------------------------------------------
// The loop.

void IoLoop::Run(const std::atomic<bool>& stop) {
  const Clock::time_point now = Clock::now();
  last_sent_ = now;
  last_heard_ = now;
  // Without a socket yet, the machine's first timer step opens one.
  if (link_) Drive(EndpointEvent::kLinkOpened, now);
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
  if (!core_.draining() && stop.load(std::memory_order_acquire)) {
    core_.Drain();
    Drive(EndpointEvent::kDrain, Clock::now());
  }
  if (core_.draining() && outstanding_ == 0 && core_.jobs().empty()) {
    Leave(Clock::now());
    return true;
  }
  Poll(Clock::now());
  Turn(Clock::now());
  return false;
}

void IoLoop::Poll(Clock::time_point now) {
  Clock::time_point due = now + kMaxPollWait;
  // A failed server times nothing: only completions and the stop matter.
  if (!failed_) due = std::min(due, conn_.NextWakeup(last_heard_, last_sent_));
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
  if (!failed_) core_.ExpireSessions(now);
}

void IoLoop::Leave(Clock::time_point now) {
  Flush(now);
  // GOODBYE only from a welcomed connection (and not after a failure,
  // which said its own).
  const EndpointMachine::Output out =
      conn_.Step(LinkInput(EndpointEvent::kStop, now));
  if (link_ && out.Has(EndpointAction::kSendGoodbye)) {
    (void)link_->Send(Goodbye{"shutting down", {}});
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
  Drive(EndpointEvent::kLinkClosed, Clock::now());
}

// ---------------------------------------------------------------------------
// Connection.

EndpointTimers LinkTimers(std::chrono::milliseconds heartbeat) {
  EndpointTimers timers;
  timers.heartbeat = heartbeat;
  return timers;
}

EndpointMachine::Input IoLoop::LinkInput(EndpointEvent event,
                                         Clock::time_point now) const {
  EndpointMachine::Input in;
  in.event = event;
  in.now = now;
  in.last_heard = last_heard_;
  in.last_sent = last_sent_;
  return in;
}

void IoLoop::Drive(EndpointEvent event, Clock::time_point now) {
  Carry(conn_.Step(LinkInput(event, now)), now);
}

void IoLoop::Carry(const EndpointMachine::Output& out, Clock::time_point now) {
  if (out.empty()) return;
  if (out.Has(EndpointAction::kReportLost)) {
    Log().info("server {}: lost the broker ({})", options_.server_id, out.why);
  }
  if (out.Has(EndpointAction::kReportFenced)) {
    Log().warn("server {}: fenced: a newer process holds the server id",
               options_.server_id);
  }
  if (out.Has(EndpointAction::kReportDenied)) {
    Log().error(
        "server {}: not authorized by the broker (the id or a service); "
        "asking again every second until its keys file allows it",
        options_.server_id);
  }
  if (out.Has(EndpointAction::kDropLink)) link_.reset();
  if (out.Has(EndpointAction::kSendStateExchange)) core_.QueueStateExchange();
  if (out.Has(EndpointAction::kSendHeartbeat)) {
    Send(Heartbeat{conn_.epoch()}, nullptr, now);
  }
  if (out.Has(EndpointAction::kSendGoodbye) && link_) {
    (void)link_->Send(Goodbye{"shutting down", {}});
  }
  if (out.Has(EndpointAction::kSendHello)) SendHello(now);
  if (out.Has(EndpointAction::kReplaceLink)) {
    Log().warn("server {}: {}; reconnecting", options_.server_id, out.why);
    link_.reset();
    OpenLink(now);
  }
  if (out.Has(EndpointAction::kOpenLink)) OpenLink(now);
}

void IoLoop::HandleLinkEvents(Clock::time_point now) {
  while (link_) {
    switch (link_->ReadEvent()) {
      case Link::Event::kNone:
        return;
      case Link::Event::kConnected:
        Log().debug("server {}: connected ({})", options_.server_id,
                    EndpointStateName(conn_.state()));
        Drive(EndpointEvent::kLinkUp, now);
        break;
      case Link::Event::kDisconnected:
        Log().debug("server {}: disconnected", options_.server_id);
        Drive(EndpointEvent::kLinkDown, now);
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
        Drive(EndpointEvent::kLinkClosed, now);
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
  Drive(EndpointEvent::kTimer, now);
}

void IoLoop::OpenLink(Clock::time_point now) {
  Result<std::unique_ptr<Link>> link = Link::Open(context_, options_.endpoint);
  if (!link.ok()) {
    if (LogOnce("zmq")) {
      Log().warn("server {}: cannot open a socket: {}; retrying",
                 options_.server_id, link.status().message());
    }
    Drive(EndpointEvent::kLinkOpenFailed, now);
    return;
  }
  link_ = std::move(*link);
  last_heard_ = now;
  Drive(EndpointEvent::kLinkOpened, now);
}

void IoLoop::SendHello(Clock::time_point now) {
  if (!link_) {
    Drive(EndpointEvent::kLinkClosed, now);
    return;
  }
  Hello h;
  h.role = Role::kServer;
  h.id = options_.server_id;
  h.incarnation = incarnation_;
  h.journal_id = journal_->journal_id();
  h.last_epoch = conn_.epoch();
  h.services = core_.specs();
  const transport::SendResult sent = link_->Send(h);
  Log().debug("server {}: HELLO incarnation {} last epoch {:016x}: {}",
              options_.server_id, incarnation_, h.last_epoch,
              sent == transport::SendResult::kOk ? "sent" : "not sent");
  switch (sent) {
    case transport::SendResult::kOk:
      last_sent_ = now;
      Drive(EndpointEvent::kHelloLeft, now);
      return;
    case transport::SendResult::kWouldBlock:
    case transport::SendResult::kUnreachable:
      // HANDSHAKE_SUCCEEDED can be reported a moment before the socket
      // accepts messages for the new connection.
      Drive(link_->connected() ? EndpointEvent::kHelloBlocked
                               : EndpointEvent::kHelloNoPeer,
            now);
      return;
    case transport::SendResult::kClosed:
      Drive(EndpointEvent::kLinkClosed, now);
      return;
  }
}

void IoLoop::Send(const Message& m, zmq::message_t* payload,
                  Clock::time_point now) {
  // Until WELCOME the broker does not know this connection and would refuse
  // the message; whatever is dropped here is in the journal and reaches the
  // broker through the state exchange that follows WELCOME.
  if (!link_ || !conn_.welcomed()) return;
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
      Drive(EndpointEvent::kLinkClosed, now);
      return false;
  }
  return false;
}

void IoLoop::SendOutbox(Clock::time_point now) {
  // Until WELCOME the broker does not know this connection and would refuse
  // the messages; whatever is dropped here is in the journal and reaches the
  // broker through the state exchange that follows WELCOME.
  if (!link_ || !conn_.welcomed()) {
    outbox_.Clear();
    return;
  }
  if (outbox_.empty()) return;
  (void)Sent(link_->Send(outbox_), now);
}

void IoLoop::Flush(Clock::time_point now) {
  if (failed_) {
    outbox_.Clear();
    core_.jobs().clear();
    return;
  }
  // The one commit of the turn: the group commit that makes every record of
  // the turn durable before any message or handler of the turn starts.
  if (Status s = journal_->Commit(); !s.ok()) {
    Fail(s);
    return;
  }
  SendOutbox(now);
  for (Job& job : core_.jobs()) {
    pool_.Submit(std::move(job));
    ++outstanding_;
  }
  core_.jobs().clear();
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
  core_.jobs().clear();
  // Tell the broker at once, so it stops dispatching here and its lease
  // rules take over; nothing else may leave without its record.
  const EndpointMachine::Output out =
      conn_.Step(LinkInput(EndpointEvent::kStop, Clock::now()));
  if (link_ && out.Has(EndpointAction::kSendGoodbye)) {
    (void)link_->Send(Goodbye{"journal failure", {}});
  }
  link_.reset();
}

// ---------------------------------------------------------------------------
// Connection messages from the broker.

void IoLoop::OnWelcome(const Welcome& w, Clock::time_point now) {
  EndpointMachine::Input in = LinkInput(EndpointEvent::kWelcome, now);
  in.epoch = w.epoch;
  in.heartbeat = milliseconds(w.heartbeat_ms);
  const EndpointMachine::Output out = conn_.Step(in);
  if (out.Has(EndpointAction::kReportWelcomed)) {
    logged_.erase("error:duplicate_identity");
    logged_.erase("error:limit_exceeded");
    logged_.erase("error:fenced");
  }
  Carry(out, now);
}

void IoLoop::OnHeartbeat(const Heartbeat& h, Clock::time_point now) {
  // A different broker answers on this endpoint (FLOWS §2): the machine
  // registers again and reports.
  EndpointMachine::Input in = LinkInput(EndpointEvent::kHeartbeat, now);
  in.epoch = h.epoch;
  Carry(conn_.Step(in), now);
}

void IoLoop::OnError(const Error& e, Clock::time_point now) {
  const std::string key = "error:" + std::string(ErrorCodeName(e.code));
  if (const auto event = EndpointEventOf(e)) {
    // unknown_session: the broker does not know this connection (it
    // restarted, or dropped us). The others: another process holds the id,
    // the broker is full, or the principal may not use the id or serve a
    // service. Keep asking: the holder may be a previous incarnation whose
    // death the broker has not noticed yet, and the keys file may change.
    if (*event != EndpointEvent::kUnknownSession && LogOnce(key)) {
      Log().warn("server {}: broker refused HELLO: {} ({}); retrying",
                 options_.server_id, ErrorCodeName(e.code), e.message);
    }
    Drive(*event, now);
    return;
  }
  if (LogOnce(key)) {
    Log().warn("server {}: broker reported {}: {}", options_.server_id,
               ErrorCodeName(e.code), e.message);
  }
}

}  // namespace rejoin::server_internal
