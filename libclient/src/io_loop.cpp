// One client session's part of the I/O thread (FLOWS.md §2-§6, client
// side). The hub (hub.h) runs the loop and calls these phases each turn:
// queued commands journal new calls PREPARED, routed messages journal
// COMPLETED outcomes, timers queue resends, then one commit (the group
// commit), and only then send and deliver. Nothing of a turn leaves the
// process before the commit that describes it. What an operation's message
// or timer does is the SessionCore's (session_core.h); this file feeds it
// and carries out the turn.
#include <algorithm>
#include <chrono>
#include <exception>
#include <string>
#include <utility>

#include "client_impl.h"
#include "hub.h"
#include "log.h"
#include "overloaded.h"
#include "rejoin/proto/codec.h"

namespace rejoin {

using client_internal::Clock;
using client_internal::Command;
using client_internal::Log;

Client::Impl::TimePoint Client::Impl::NextWakeup(TimePoint now) const {
  TimePoint next = now + std::chrono::seconds(1);
  next = std::min(next, conn_.NextWakeup(hub_->last_recv(), hub_->last_send()));
  return core_.NextWakeup(next);
}

void Client::Impl::TakeAndHandleCommands() {
  // queue_ and this buffer trade places every turn, keeping their capacity:
  // a queue grown from empty each turn reallocates (and moves every command)
  // several times under a pipelined caller.
  std::vector<Command>& commands = taken_commands_;
  commands.clear();
  TakeCommands(commands);
  for (Command& c : commands) HandleCommand(c);
  commands.clear();  // what the commands captured goes now
}

void Client::Impl::Compact() {
  if (!core_.journal_ok()) return;
  if (Status s = journal_->CompactIfNeeded(); !s.ok()) {
    Log().warn("session {}: journal compaction failed: {}", options_.session_id,
               s.ToString());
  }
}

void Client::Impl::TakeCommands(std::vector<Command>& out) {
  std::unique_lock lock(mutex_);
  out.swap(queue_);
  io_recovery_cb_ = recovery_cb_;
}

void Client::Impl::Shutdown() {
  try {
    TakeAndHandleCommands();
    Commit();
    Drive(EndpointEvent::kStop, Clock::now());  // GOODBYE if welcomed
  } catch (const zmq::error_t& e) {
    Log().warn("session {}: zmq error at shutdown: {}", options_.session_id,
               e.what());
  }
  (void)conn_.Step(LinkInput(EndpointEvent::kStop, Clock::now()));
  core_.FailAllWaiters(ErrorCode::kClosed, "client closed");
  Deliver();
}

// --- Inbound ----------------------------------------------------------------

void Client::Impl::HandleMessage(Message& m, std::string_view payload) {
  // RESPONSE, RECOVER, PROBE: the operations'. The time the hub read this
  // batch stands for all its answers: one clock read.
  if (core_.OnMessage(m, payload, hub_->last_recv())) return;
  switch (TypeOf(m)) {
    case MessageType::kWelcome:
      HandleWelcome(std::get<Welcome>(m));
      return;
    case MessageType::kError:
      HandleError(std::get<Error>(m));
      return;
    case MessageType::kHeartbeat: {
      EndpointMachine::Input in =
          LinkInput(EndpointEvent::kHeartbeat, Clock::now());
      in.epoch = std::get<Heartbeat>(m).epoch;
      Carry(conn_.Step(in), in.now, nullptr);
      return;
    }
    case MessageType::kGoodbye:
      Drive(EndpointEvent::kGoodbye, Clock::now());
      return;
    case MessageType::kResponse:
    case MessageType::kRecover:
    case MessageType::kProbe:
      return;  // the core's
    case MessageType::kHello:
    case MessageType::kRequest:
    case MessageType::kAck:
    case MessageType::kStateExchange:
    case MessageType::kProbeReply:
      stats_.malformed.fetch_add(1, std::memory_order_relaxed);
      if (!std::exchange(logged_malformed_, true)) {
        Log().warn("session {}: dropped {} from the broker",
                   options_.session_id, MessageTypeName(TypeOf(m)));
      }
      return;
  }
}

void Client::Impl::SkipTo(Seq next) {
  std::lock_guard lock(mutex_);
  next_seq_ = std::max(next_seq_, next);
}

// --- Timers -----------------------------------------------------------------

void Client::Impl::HandleTimers(TimePoint now) {
  // Heartbeat, silence and HELLO first: a replaced connection holds the
  // resends back below.
  ConnectionTimers(now);
  core_.Timers(now);
}

// --- Commit and deliver (the send path: session_core.cpp)
// --------------------------------------------------

void Client::Impl::Commit() {
  if (!core_.journal_ok() || !journal_->dirty()) return;
  Status s = journal_->Commit();
  if (s.ok()) return;
  // Write-ahead cannot be kept any more: nothing of this turn may leave.
  Log().error("session {}: journal commit failed, client stops: {}",
              options_.session_id, s.ToString());
  {
    std::unique_lock lock(mutex_);
    failed_ = s;
  }
  slot_cv_.notify_all();
  core_.JournalFailed(s);
}

void Client::Impl::Flush(TimePoint now) {
  core_.Flush(now, hub_->link() != nullptr);
}

void Client::Impl::Deliver() {
  // The two buffers trade places every turn, keeping their capacity: a busy
  // turn delivers dozens of outcomes, and growing a fresh vector each time
  // costs more than the callbacks.
  client_internal::SessionCore::Deliveries& deliveries = delivering_;
  deliveries.clear();
  deliveries.swap(core_.deliveries());
  std::vector<RecoveryEvent> events;
  events.swap(core_.events());
  auto forgets = std::move(forget_replies_);
  forget_replies_.clear();
  std::uint32_t freed = core_.TakeSlotsFreed();
  if (freed > 0) {
    {
      std::unique_lock lock(mutex_);
      outstanding_ -= std::min(outstanding_, freed);
    }
    slot_cv_.notify_all();
  }
  for (auto& [callback, result] : deliveries) {
    if (!callback) continue;
    try {
      callback(result);
    } catch (const std::exception& e) {
      Log().error("session {}: callback threw: {}", options_.session_id,
                  e.what());
    } catch (...) {
      Log().error("session {}: callback threw", options_.session_id);
    }
  }
  deliveries.clear();  // what the callbacks captured goes now
  for (auto& [done, status] : forgets) done->set_value(std::move(status));
  if (io_recovery_cb_ && *io_recovery_cb_) {
    for (const RecoveryEvent& e : events) {
      try {
        (*io_recovery_cb_)(e);
      } catch (...) {
        Log().error("session {}: recovery callback threw", options_.session_id);
      }
    }
  }
}

// --- The wire ---------------------------------------------------------------

bool Client::Impl::SendNow(const Message& m) {
  if (Status s = ValidateMessage(m); !s.ok()) {
    Log().error("session {}: not sending invalid {}: {}", options_.session_id,
                MessageTypeName(TypeOf(m)), s.ToString());
    return false;
  }
  return hub_->Send(m);
}

namespace client_internal {

bool HubWire::Send(const Message& m) { return hub_.Send(m); }

void HubWire::AddRequest(const Request& r, std::string_view payload) {
  zmq::message_t frame(payload.data(), payload.size());
  batch_.Add(r, &frame);
}

bool HubWire::SendRequests() { return hub_.Send(batch_); }

}  // namespace client_internal
}  // namespace rejoin
