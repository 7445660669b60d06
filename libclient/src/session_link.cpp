// One client session's connection life cycle (FLOWS.md §1.1, §2): what the
// hub and the broker report goes to the session's EndpointMachine, and this
// file carries out what the machine asks (HELLO, STATE_EXCHANGE, heartbeats,
// replacing a silent connection, reporting to the application). The
// decisions are the machine's; nothing here keeps connection state.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <mutex>

#include "client_impl.h"
#include "hub.h"
#include "log.h"

namespace rejoin {

using client_internal::Clock;
using client_internal::Log;

// --- Events from the hub ----------------------------------------------------

void Client::Impl::Start() { OnLinkReopened(nullptr); }

void Client::Impl::OnLinkReopened(const char* why) {
  // A socket that could not be opened is asked for again after the relink
  // delay (kOpenLink).
  Drive(hub_->link() != nullptr ? EndpointEvent::kLinkOpened
                                : EndpointEvent::kLinkOpenFailed,
        Clock::now(), why);
}

void Client::Impl::OnLinkEvent(transport::Link::Event e) {
  switch (e) {
    case transport::Link::Event::kDisconnected:
      Drive(EndpointEvent::kLinkDown, Clock::now());
      return;
    case transport::Link::Event::kConnected:
      Log().debug("session {}: connected ({})", options_.session_id,
                  EndpointStateName(conn_.state()));
      Drive(EndpointEvent::kLinkUp, Clock::now());
      return;
    case transport::Link::Event::kNone:
    case transport::Link::Event::kClosed:
      return;  // the hub handles these
  }
}

void Client::Impl::ConnectionTimers(TimePoint now) {
  Drive(EndpointEvent::kTimer, now);
}

// --- Messages from the broker
// -------------------------------------------------

void Client::Impl::HandleWelcome(const Welcome& w) {
  EndpointMachine::Input in = LinkInput(EndpointEvent::kWelcome, Clock::now());
  in.epoch = w.epoch;
  in.heartbeat = std::chrono::milliseconds(w.heartbeat_ms);
  // Calls that never left are queued ahead of the state exchange.
  core_.OnWelcomed();
  in.records = core_.HasRecords();
  const EndpointMachine::Output out = conn_.Step(in);
  if (out.Has(EndpointAction::kReportWelcomed)) {
    {
      std::unique_lock lock(mutex_);
      limit_ = w.max_outstanding > 0
                   ? std::min(options_.max_outstanding, w.max_outstanding)
                   : options_.max_outstanding;
    }
    slot_cv_.notify_all();
    stats_.welcomes.fetch_add(1, std::memory_order_relaxed);
  }
  Carry(out, in.now, nullptr);
}

void Client::Impl::HandleError(const Error& e) {
  if (const auto event = EndpointEventOf(e)) {
    // unknown_session: the broker does not know this connection (it
    // restarted), or it declared the session dead. The others refuse a
    // HELLO, which the machine retries.
    if (*event != EndpointEvent::kUnknownSession) {
      Log().debug("session {}: HELLO refused: {}", options_.session_id,
                  ErrorCodeName(e.code));
    }
    if (*event == EndpointEvent::kDenied) denied_why_ = e.message;
    Drive(*event, Clock::now());
    return;
  }
  Log().warn("session {}: broker error {} (seq {}): {}", options_.session_id,
             ErrorCodeName(e.code), e.seq, e.message);
}

// --- The machine
// --------------------------------------------------------------

void Client::Impl::FailWaitersIfShutOut() {
  switch (conn_.state()) {
    case EndpointState::kFenced:
      core_.FailAllWaiters(ErrorCode::kFenced,
                           "a newer process holds the session");
      break;
    case EndpointState::kDenied:
      core_.FailAllWaiters(ErrorCode::kNotAuthorized,
                           "the broker does not authorize the session");
      break;
    default:
      break;
  }
}

EndpointMachine::Input Client::Impl::LinkInput(EndpointEvent event,
                                               TimePoint now) const {
  EndpointMachine::Input in;
  in.event = event;
  in.now = now;
  in.last_heard = hub_->last_recv();
  in.last_sent = hub_->last_send();
  return in;
}

void Client::Impl::Drive(EndpointEvent event, TimePoint now, const char* why) {
  Carry(conn_.Step(LinkInput(event, now)), now, why);
}

void Client::Impl::Carry(const EndpointMachine::Output& out, TimePoint now,
                         const char* why) {
  if (out.empty()) return;
  if (why == nullptr) why = out.why;
  if (out.Has(EndpointAction::kReportLost)) {
    Log().info("session {}: lost the broker ({})", options_.session_id, why);
  }
  if (out.Has(EndpointAction::kReportBrokerReturned)) {
    core_.events().push_back({RecoveryEventKind::kBrokerReturned, 0});
  }
  if (out.Has(EndpointAction::kReportFenced)) {
    Log().error(
        "session {}: fenced: a newer process holds the session; calls fail "
        "until it is gone",
        options_.session_id);
    FailWaitersIfShutOut();
  }
  if (out.Has(EndpointAction::kReportDenied)) {
    // A key or keys file to fix, not a fault to ride out: waiting calls
    // learn it now instead of at their deadline.
    Log().error(
        "session {}: not authorized by the broker ({}); calls fail until "
        "its keys file allows the session (asking again every second)",
        options_.session_id, denied_why_);
    FailWaitersIfShutOut();
  }
  if (out.Has(EndpointAction::kSendStateExchange)) core_.QueueStateExchange();
  if (out.Has(EndpointAction::kSendHeartbeat)) {
    // One per connection: the send stamps the hub's last send, which the
    // other sessions' machines then read.
    Heartbeat hb;
    hb.epoch = conn_.epoch();
    (void)hub_->Send(hb);
  }
  if (out.Has(EndpointAction::kSendGoodbye)) {
    // Only this session leaves the connection; the broker need not wait
    // for a heartbeat timeout before a restarted process may hold it.
    Goodbye bye;
    bye.reason = "client closing";
    bye.id = options_.session_id;
    (void)SendNow(bye);
  }
  if (out.Has(EndpointAction::kSendHello)) SendHello(now);
  // Last: the new connection reports itself to every session, this one
  // included (OnLinkReopened), which may send HELLO at once.
  if (out.Has(EndpointAction::kReplaceLink) ||
      out.Has(EndpointAction::kOpenLink) ||
      out.Has(EndpointAction::kDropLink)) {
    hub_->Reopen(why);
  }
}

void Client::Impl::SendHello(TimePoint now) {
  transport::Link* link = hub_->link();
  if (link == nullptr) {
    Drive(EndpointEvent::kHelloNoPeer, now);
    return;
  }
  Hello h;
  h.role = Role::kClient;
  h.id = options_.session_id;
  h.incarnation = incarnation_;
  h.journal_id = journal_id_;
  h.last_epoch = conn_.epoch();
  const bool sent = SendNow(h);
  Log().debug("session {}: HELLO incarnation {}: {}", options_.session_id,
              incarnation_, sent ? "sent" : "not sent");
  // Connected but not taken (yet): soon again. Not connected: the
  // handshake event sends it.
  Drive(sent                ? EndpointEvent::kHelloLeft
        : link->connected() ? EndpointEvent::kHelloBlocked
                            : EndpointEvent::kHelloNoPeer,
        now);
}

}  // namespace rejoin
