// One client session's part of the I/O thread (FLOWS.md §2-§6, client
// side). The hub (hub.h) runs the loop and calls these phases each turn:
// queued commands journal new calls PREPARED, routed messages journal
// COMPLETED outcomes, timers queue resends, then one commit (the group
// commit), and only then send and deliver. Nothing of a turn leaves the
// process before the commit that describes it.
#include <sys/types.h>
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <exception>
#include <string>
#include <utility>

#include "client_impl.h"
#include "hub.h"
#include "log.h"
#include "rejoin/proto/codec.h"

namespace rejoin {

using client_internal::CallCommand;
using client_internal::Clock;
using client_internal::CollectCommand;
using client_internal::Command;
using client_internal::ForgetCommand;
using client_internal::ListCommand;
using client_internal::Log;
using client_internal::OutAck;
using client_internal::OutItem;
using client_internal::OutProbeReply;
using client_internal::OutStateExchange;
using client_internal::PendingOp;
using client_internal::SendItem;
using client_internal::Waiter;

Client::Impl::TimePoint Client::Impl::NextWakeup(TimePoint now) const {
  TimePoint next = now + std::chrono::seconds(1);
  auto consider = [&](TimePoint t) { next = std::min(next, t); };
  if (!deadline_timers_.empty()) consider(deadline_timers_.top().at);
  if (!resend_timers_.empty()) consider(resend_timers_.top().at);
  consider(conn_.NextWakeup(hub_->last_recv(), hub_->last_send()));
  if (conn_.welcomed() && !unacked_.empty()) consider(ack_due_);
  return next;
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
  if (!failed_ok_) return;
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
  FailAllWaiters(ErrorCode::kClosed, "client closed");
  Deliver();
}

// --- Inbound ----------------------------------------------------------------

void Client::Impl::HandleMessage(Message& m, std::string_view payload) {
  switch (TypeOf(m)) {
    case MessageType::kWelcome:
      HandleWelcome(std::get<Welcome>(m));
      return;
    case MessageType::kResponse:
      HandleResponse(std::get<Response>(m), payload);
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
    case MessageType::kRecover:
      HandleRecover(std::get<Recover>(m));
      return;
    case MessageType::kProbe:
      HandleProbe(std::get<Probe>(m));
      return;
    case MessageType::kGoodbye:
      Drive(EndpointEvent::kGoodbye, Clock::now());
      return;
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

void Client::Impl::HandleResponse(const Response& r, std::string_view payload) {
  if (r.session != options_.session_id) {
    stats_.malformed.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (pending_.count(r.seq) == 0) {
    // Already completed (a resend crossed the first answer) or never ours:
    // the application sees each outcome once. A seq this journal never
    // issued was issued by a lost run of the session: the seqs issued from
    // now on must be above it (before the count, which tests wait on).
    SkipPast(r.seq);
    stats_.duplicate_responses.fetch_add(1, std::memory_order_relaxed);
    if (recently_resent_.erase(r.seq) != 0) {
      // Both sends were answered: nothing was lost, the resend came too
      // early (a stall, not a loss). Back off, so a loaded machine does not
      // fill its own pipe with resends.
      rtt_.SpuriousResend();
      reorder_.Spurious();
    }
    return;
  }
  // The time the hub read this batch: one clock read for all its answers.
  Complete(r.seq, r.status, std::string(payload), hub_->last_recv());
}

void Client::Impl::Complete(Seq seq, ErrorCode status, std::string payload,
                            TimePoint now) {
  auto it = pending_.find(seq);
  PendingOp op = std::move(it->second);
  pending_.erase(it);
  RetireSend(op.send_order);
  ++slots_freed_;
  const double since_send_us =
      std::chrono::duration<double, std::micro>(now - op.last_sent).count();
  if (op.sent && op.attempts == 1 && !op.resent) {
    // Karn's rule: only an answer to the one and only send measures the
    // path.
    rtt_.Sample(since_send_us);
    reorder_.Answered(op.send_order);
    HintLosses(op.send_order, now);
  } else if (op.resent) {
    rtt_.ResendAnswered();
    // If the other send is answered too, the resend was spurious.
    recently_resent_.insert(seq);
    recently_resent_order_.push_back(seq);
    if (recently_resent_order_.size() > client_internal::kRecentResends) {
      recently_resent_.erase(recently_resent_order_.front());
      recently_resent_order_.pop_front();
    }
  }

  if (failed_ok_) {
    JournalOp jop;
    jop.state = static_cast<std::uint8_t>(ClientOpState::kCompleted);
    jop.service = op.service;
    jop.payload = payload;
    jop.status = status;
    if (Status s = journal_->AppendOp(seq, std::move(jop)); !s.ok()) {
      Log().error("session {}: cannot journal outcome of seq {}: {}",
                  options_.session_id, seq, s.ToString());
    }
  }

  stats_.completed.fetch_add(1, std::memory_order_relaxed);
  if (status == ErrorCode::kInDoubt) {
    stats_.in_doubt.fetch_add(1, std::memory_order_relaxed);
    events_.push_back({RecoveryEventKind::kInDoubt, seq});
  }
  if (op.resent || op.inherited) {
    stats_.responses_recovered.fetch_add(1, std::memory_order_relaxed);
    events_.push_back({RecoveryEventKind::kResponseRecovered, seq});
  }
  if (unacked_.empty()) ack_due_ = now + client_internal::kAckDelay;
  unacked_.insert(seq);

  Reply reply;
  reply.seq = seq;
  reply.status = status;
  reply.payload = std::move(payload);
  bool caller_has_it = false;
  for (std::size_t i = 0; i < op.waiters.size(); ++i) {
    Waiter& w = op.waiters[i];
    caller_has_it = caller_has_it || w.is_caller;
    // The last (usually the only) waiter takes the reply itself.
    if (i + 1 == op.waiters.size()) {
      deliveries_.emplace_back(std::move(w.callback), std::move(reply));
    } else {
      deliveries_.emplace_back(std::move(w.callback), reply);
    }
  }
  if (caller_has_it && !options_.keep_completed) forget_when_acked_.insert(seq);
}

void Client::Impl::HandleRecover(const Recover& r) {
  for (const RecoverSession& rs : r.sessions) {
    if (rs.session != options_.session_id) continue;
    for (const OpDecision& d : rs.ops) {
      // The broker or a server knows a seq this journal never issued
      // (orphans of a lost run of the session, PROTOCOL.md §6.1).
      SkipPast(d.seq);
      if (d.action != Action::kResendRequest) continue;
      auto it = pending_.find(d.seq);
      if (it == pending_.end()) continue;
      it->second.resent = true;
      if (!it->second.queued) {
        it->second.queued = true;
        send_queue_.push_back({d.seq, kRequestResend});
      }
    }
  }
}

void Client::Impl::SkipPast(Seq seen) {
  if (seen < io_next_seq_ || seen == ~Seq{0}) return;
  Log().warn(
      "session {}: the broker knows seq {}, above any this journal issued "
      "(was it restored from an older copy?); new seqs start above it",
      options_.session_id, seen);
  io_next_seq_ = seen + 1;
  std::lock_guard lock(mutex_);
  next_seq_ = std::max(next_seq_, io_next_seq_);
}

void Client::Impl::HandleProbe(const Probe& p) {
  if (p.session != options_.session_id) {
    Log().warn("session {}: probe for another session {}", options_.session_id,
               p.session);
    return;
  }
  outbox_.push_back(OutProbeReply{p.probe_id, p.seqs});
}

// --- Timers -----------------------------------------------------------------

void Client::Impl::PruneTimers() {
  const std::size_t limit = 2 * pending_.size() + client_internal::kTimerSlack;
  if (deadline_timers_.size() > limit) {
    deadline_timers_.PruneIf([&](const client_internal::TimerEntry& t) {
      auto it = pending_.find(t.seq);
      if (it == pending_.end()) return true;
      const auto& waiters = it->second.waiters;
      return std::none_of(waiters.begin(), waiters.end(),
                          [&](const Waiter& w) { return w.id == t.waiter; });
    });
  }
  if (resend_timers_.size() > limit) {
    resend_timers_.PruneIf([&](const client_internal::TimerEntry& t) {
      auto it = pending_.find(t.seq);
      return it == pending_.end() || it->second.next_resend != t.at;
    });
  }
}

void Client::Impl::DropStaleResendTimers() {
  while (!resend_timers_.empty()) {
    const client_internal::TimerEntry& t = resend_timers_.top();
    auto it = pending_.find(t.seq);
    if (it != pending_.end() && it->second.next_resend == t.at) return;
    resend_timers_.pop();
  }
}

void Client::Impl::HandleTimers(TimePoint now) {
  // Heartbeat, silence and HELLO first: a replaced connection holds the
  // resends back below.
  ConnectionTimers(now);
  PruneTimers();
  while (!deadline_timers_.empty() && deadline_timers_.top().at <= now) {
    client_internal::TimerEntry t = deadline_timers_.top();
    deadline_timers_.pop();
    auto it = pending_.find(t.seq);
    if (it == pending_.end()) continue;
    auto& waiters = it->second.waiters;
    auto w = std::find_if(waiters.begin(), waiters.end(),
                          [&](const Waiter& x) { return x.id == t.waiter; });
    if (w == waiters.end()) continue;
    stats_.deadline_exceeded.fetch_add(1, std::memory_order_relaxed);
    // Say why when the cause is plain: nothing answered at the endpoint.
    std::string why = "seq " + std::to_string(t.seq) + " still pending";
    if (stats_.welcomes.load(std::memory_order_relaxed) == 0) {
      why = "no broker answered at " + options_.endpoint + "; " + why;
    }
    deliveries_.emplace_back(
        std::move(w->callback),
        Status(ErrorCode::kDeadlineExceeded, why + "; Collect() it later"));
    waiters.erase(w);
  }

  while (!resend_timers_.empty() && resend_timers_.top().at <= now) {
    client_internal::TimerEntry t = resend_timers_.top();
    resend_timers_.pop();
    auto it = pending_.find(t.seq);
    if (it == pending_.end() || it->second.next_resend != t.at) continue;
    PendingOp& op = it->second;
    if (!conn_.welcomed()) {
      // Resends wait for the broker; the state exchange after WELCOME
      // covers them anyway.
      op.next_resend = now + options_.resend_delay;
      resend_timers_.push({op.next_resend, t.seq, 0});
      continue;
    }
    if (!op.queued) {
      op.queued = true;
      send_queue_.push_back({t.seq, kRequestResend});
    }
  }

  if (conn_.welcomed() && !unacked_.empty() &&
      (now >= ack_due_ || unacked_.size() >= client_internal::kAckBatch)) {
    outbox_.push_back(OutAck{});
  }
}

// --- Commit and deliver (the send path: send_path.cpp)
// --------------------------------------------------

void Client::Impl::Commit() {
  if (!failed_ok_ || !journal_->dirty()) return;
  Status s = journal_->Commit();
  if (s.ok()) return;
  // Write-ahead cannot be kept any more: nothing of this turn may leave.
  Log().error("session {}: journal commit failed, client stops: {}",
              options_.session_id, s.ToString());
  failed_ok_ = false;
  journal_status_ = s;
  {
    std::unique_lock lock(mutex_);
    failed_ = s;
  }
  slot_cv_.notify_all();
  send_queue_.clear();
  outbox_.clear();
  for (auto& delivery : deliveries_) delivery.second = s;
  FailAllWaiters(s.code(), "journal failed");
}

void Client::Impl::Deliver() {
  // The two buffers trade places every turn, keeping their capacity: a busy
  // turn delivers dozens of outcomes, and growing a fresh vector each time
  // costs more than the callbacks.
  std::vector<std::pair<Callback, Result<Reply>>>& deliveries = delivering_;
  deliveries.clear();
  deliveries.swap(deliveries_);
  std::vector<RecoveryEvent> events;
  events.swap(events_);
  auto forgets = std::move(forget_replies_);
  forget_replies_.clear();
  std::uint32_t freed = std::exchange(slots_freed_, 0);
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

// --- Helpers ----------------------------------------------------------------

void Client::Impl::FailAllWaiters(ErrorCode code, const char* why) {
  for (auto& [seq, op] : pending_) {
    for (Waiter& w : op.waiters) {
      deliveries_.emplace_back(
          std::move(w.callback),
          Status(code, std::string(why) + " (seq " + std::to_string(seq) +
                           " stays in the journal)"));
    }
    op.waiters.clear();
  }
}

Seq Client::Impl::Watermark() const {
  return pending_.empty() ? io_next_seq_ : pending_.begin()->first;
}

ClientVector Client::Impl::BuildVector(const std::vector<Seq>* only) const {
  auto wanted = [&](Seq s) {
    return only == nullptr || std::binary_search(only->begin(), only->end(), s);
  };
  ClientVector v;
  v.session = options_.session_id;
  v.incarnation = incarnation_;
  v.journal_id = journal_id_;
  v.next_seq = io_next_seq_;
  v.completed_watermark = Watermark();
  for (const auto& [seq, op] : pending_) {
    if (wanted(seq)) v.pending.push_back(seq);
  }
  if (const JournalSession* s = journal_->session()) {
    for (auto it = s->ops.lower_bound(v.completed_watermark);
         it != s->ops.end(); ++it) {
      if (static_cast<ClientOpState>(it->second.state) ==
              ClientOpState::kCompleted &&
          wanted(it->first)) {
        v.completed.push_back(it->first);
      }
    }
  }
  for (auto it = forgotten_above_wm_.lower_bound(v.completed_watermark);
       it != forgotten_above_wm_.end(); ++it) {
    if (wanted(*it)) v.completed.push_back(*it);
  }
  std::sort(v.completed.begin(), v.completed.end());
  v.completed.erase(std::unique(v.completed.begin(), v.completed.end()),
                    v.completed.end());
  return v;
}

}  // namespace rejoin
