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
#include "rejoin/transport/wire.h"

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

namespace {

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

}  // namespace

// --- Connection events (from the hub)
// -------------------------------------------

void Client::Impl::Start() { SendHello(); }

void Client::Impl::OnLinkReopened(const char* why) {
  Unwelcome(why);
  returning_ = true;
  hello_on_link_ = false;
  ScheduleHello(Clock::now() + heartbeat_);
}

void Client::Impl::OnLinkEvent(transport::Link::Event e) {
  switch (e) {
    case transport::Link::Event::kDisconnected:
      // The broker may have restarted: the next WELCOME starts a return.
      Unwelcome("disconnected");
      returning_ = true;
      hello_on_link_ = false;
      ScheduleHello(Clock::now() + heartbeat_);
      return;
    case transport::Link::Event::kConnected:
      Log().debug("session {}: connected{}", options_.session_id,
                  hello_on_link_ ? " (HELLO already sent)" : "");
      // Events arrive in order, so a reconnect has already been seen as
      // DISCONNECTED; a HELLO that went out before this event (the pipe
      // attaches just before it is reported) must not be repeated.
      if (!welcomed_ && !fenced_ && !hello_on_link_) SendHello();
      return;
    case transport::Link::Event::kNone:
    case transport::Link::Event::kClosed:
      return;  // the hub handles these
  }
}

Client::Impl::TimePoint Client::Impl::NextWakeup(TimePoint now) const {
  TimePoint next = now + std::chrono::seconds(1);
  auto consider = [&](TimePoint t) { next = std::min(next, t); };
  if (!deadline_timers_.empty()) consider(deadline_timers_.top().at);
  if (!resend_timers_.empty()) consider(resend_timers_.top().at);
  if (welcomed_) {
    if (!unacked_.empty()) consider(ack_due_);
  } else {
    consider(hello_due_);
  }
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
    if (welcomed_) {
      // Only this session leaves the connection; the broker need not wait
      // for a heartbeat timeout before a restarted process may hold it.
      Goodbye bye;
      bye.reason = "client closing";
      bye.id = options_.session_id;
      (void)SendNow(bye);
    }
  } catch (const zmq::error_t& e) {
    Log().warn("session {}: zmq error at shutdown: {}", options_.session_id,
               e.what());
  }
  welcomed_ = false;
  FailAllWaiters(ErrorCode::kClosed, "client closed");
  Deliver();
}

// --- Commands ---------------------------------------------------------------

void Client::Impl::HandleCommand(Command& c) {
  std::visit(
      Overloaded{
          [&](CallCommand& call) { HandleCall(call); },
          [&](CollectCommand& collect) { HandleCollect(collect); },
          [&](ForgetCommand& forget) { HandleForget(forget); },
          [&](ListCommand& list) { list.done->set_value(ListFromJournal()); },
      },
      c);
}

void Client::Impl::HandleCall(CallCommand& c) {
  if (!failed_ok_) {
    deliveries_.emplace_back(std::move(c.callback), journal_status_);
    ++slots_freed_;
    return;
  }
  JournalOp op;
  op.state = static_cast<std::uint8_t>(ClientOpState::kPrepared);
  op.service = c.service;
  op.payload = std::move(c.payload);
  if (Status s = journal_->AppendOp(c.seq, std::move(op)); !s.ok()) {
    deliveries_.emplace_back(std::move(c.callback), s);
    ++slots_freed_;
    return;
  }
  io_next_seq_ = std::max(io_next_seq_, c.seq + 1);
  PendingOp& p = pending_[c.seq];
  p.service = std::move(c.service);
  Waiter w;
  w.id = next_waiter_id_++;
  w.callback = std::move(c.callback);
  w.deadline = c.deadline;
  w.is_caller = true;
  deadline_timers_.push({w.deadline, c.seq, w.id});
  p.waiters.push_back(std::move(w));
  p.queued = true;
  send_queue_.push_back({c.seq, 0});
}

void Client::Impl::HandleCollect(CollectCommand& c) {
  if (auto it = pending_.find(c.seq); it != pending_.end()) {
    Waiter w;
    w.id = next_waiter_id_++;
    w.callback = std::move(c.callback);
    w.deadline = c.deadline;
    deadline_timers_.push({w.deadline, c.seq, w.id});
    it->second.waiters.push_back(std::move(w));
    return;
  }
  if (const JournalSession* s = journal_->session()) {
    if (auto op = s->ops.find(c.seq);
        op != s->ops.end() && static_cast<ClientOpState>(op->second.state) ==
                                  ClientOpState::kCompleted) {
      Reply reply;
      reply.seq = c.seq;
      reply.status = op->second.status;
      reply.payload = op->second.payload;
      deliveries_.emplace_back(std::move(c.callback), std::move(reply));
      return;
    }
  }
  deliveries_.emplace_back(
      std::move(c.callback),
      Status(ErrorCode::kNotFound,
             "seq " + std::to_string(c.seq) + " is not in the journal"));
}

void Client::Impl::HandleForget(ForgetCommand& c) {
  forget_replies_.emplace_back(std::move(c.done), ForgetSeq(c.seq));
}

Status Client::Impl::ForgetSeq(Seq seq) {
  if (pending_.count(seq) != 0) {
    return Status(ErrorCode::kInvalidArgument,
                  "seq " + std::to_string(seq) + " is still pending");
  }
  const JournalSession* s = journal_->session();
  if (s == nullptr || s->ops.count(seq) == 0) {
    return Status(ErrorCode::kNotFound,
                  "seq " + std::to_string(seq) + " is not in the journal");
  }
  if (!failed_ok_) return journal_status_;
  Status st = journal_->AppendRelease(s->released_below, {seq});
  if (!st.ok()) return st;
  forget_when_acked_.erase(seq);
  // Still above the watermark: keep reporting it as completed so the
  // broker does not read the gap as "no record".
  if (seq >= Watermark()) forgotten_above_wm_.insert(seq);
  return Status::Ok();
}

std::vector<OperationInfo> Client::Impl::ListFromJournal() const {
  std::vector<OperationInfo> out;
  const JournalSession* s = journal_->session();
  if (s == nullptr) return out;
  out.reserve(s->ops.size());
  for (const auto& [seq, op] : s->ops) {
    OperationInfo info;
    info.seq = seq;
    info.service = op.service;
    info.state =
        static_cast<ClientOpState>(op.state) == ClientOpState::kCompleted
            ? ClientOpState::kCompleted
            : ClientOpState::kPrepared;
    out.push_back(std::move(info));
  }
  return out;
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
      const auto& hb = std::get<Heartbeat>(m);
      if (welcomed_ && hb.epoch != 0 && hb.epoch != epoch_) {
        // A broker we have not said HELLO to: it restarted between two of
        // our heartbeats.
        Unwelcome("new broker epoch in heartbeat");
        returning_ = true;
        SendHello();
      }
      return;
    }
    case MessageType::kRecover:
      HandleRecover(std::get<Recover>(m));
      return;
    case MessageType::kProbe:
      HandleProbe(std::get<Probe>(m));
      return;
    case MessageType::kGoodbye:
      Unwelcome("broker said goodbye");
      returning_ = true;
      ScheduleHello(Clock::now() + heartbeat_);
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

void Client::Impl::HandleWelcome(const Welcome& w) {
  if (epoch_ != 0 && w.epoch != epoch_) {
    events_.push_back({RecoveryEventKind::kBrokerReturned, 0});
    returning_ = true;
  }
  last_epoch_ = epoch_ = w.epoch;
  duplicate_refusals_ = 0;
  heartbeat_ = w.heartbeat_ms > 0 ? std::chrono::milliseconds(w.heartbeat_ms)
                                  : options_.heartbeat;
  {
    std::unique_lock lock(mutex_);
    limit_ = w.max_outstanding > 0
                 ? std::min(options_.max_outstanding, w.max_outstanding)
                 : options_.max_outstanding;
  }
  slot_cv_.notify_all();
  welcomed_ = true;
  stats_.welcomes.fetch_add(1, std::memory_order_relaxed);
  hello_pending_ = false;
  fenced_ = false;

  // Calls of this process that never left are ordinary first sends; they
  // go ahead of the state exchange so the broker already tracks them when
  // it reads the vector. Whatever did leave (or came from an earlier
  // process) is covered by the exchange.
  bool covered = false;
  for (auto& [seq, op] : pending_) {
    if (op.sent || op.inherited) {
      covered = true;
    } else if (!op.queued) {
      op.queued = true;
      send_queue_.push_back({seq, 0});
    }
  }
  std::sort(send_queue_.begin(), send_queue_.end(),
            [](const SendItem& a, const SendItem& b) { return a.seq < b.seq; });
  ClientVector v = BuildVector(nullptr);
  if (returning_ || covered || !v.completed.empty() || !unacked_.empty()) {
    outbox_.push_back(OutStateExchange{});
  }
  returning_ = false;
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

void Client::Impl::HandleError(const Error& e) {
  TimePoint now = Clock::now();
  switch (e.code) {
    case ErrorCode::kUnknownSession:
      // The broker does not know this connection: it restarted.
      Unwelcome("broker does not know the session");
      returning_ = true;
      SendHello();
      return;
    case ErrorCode::kDuplicateIdentity:
      Log().debug("session {}: HELLO refused as a duplicate identity",
                  options_.session_id);
      hello_pending_ = false;
      ScheduleHello(now +
                    std::min(client_internal::kDuplicateRetry,
                             client_internal::kFirstDuplicateRetry *
                                 (1 << std::min(duplicate_refusals_++, 4))));
      return;
    case ErrorCode::kFenced:
      if (!fenced_) {
        Log().error(
            "session {}: fenced: a newer process holds the session; calls "
            "fail until it is gone",
            options_.session_id);
        FailAllWaiters(ErrorCode::kFenced, "a newer process holds the session");
      }
      fenced_ = true;
      Unwelcome("fenced");
      ScheduleHello(now + client_internal::kFencedRetry);
      return;
    default:
      Log().warn("session {}: broker error {} (seq {}): {}",
                 options_.session_id, ErrorCodeName(e.code), e.seq, e.message);
      return;
  }
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
    if (!welcomed_) {
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

  if (welcomed_) {
    // Heartbeats and the silence check are the connection's (the hub's).
    if (!unacked_.empty() &&
        (now >= ack_due_ || unacked_.size() >= client_internal::kAckBatch)) {
      outbox_.push_back(OutAck{});
    }
  } else if (now >= hello_due_) {
    if (hello_pending_ && now - hello_sent_ >= 3 * heartbeat_ &&
        hub_->ReopenIfSilentSince(hello_sent_, "no WELCOME for 3 heartbeats")) {
      return;  // every member says HELLO on the new connection
    }
    SendHello();
  }
}

// --- Commit, send, deliver --------------------------------------------------

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

void Client::Impl::Flush(TimePoint now) {
  if (!failed_ok_ || hub_->link() == nullptr) {
    outbox_.clear();
    return;
  }
  while (welcomed_ && !send_queue_.empty()) {
    if (!SendRequestBatch(now)) break;  // POLLOUT resumes it
  }

  std::vector<OutItem> items;
  items.swap(outbox_);
  for (OutItem& item : items) {
    std::visit(
        Overloaded{
            [&](Message& m) { (void)SendNow(m); },
            [&](OutStateExchange&) {
              if (!welcomed_) return;
              StateExchange x;
              x.role = Role::kClient;
              x.clients.push_back(BuildVector(nullptr));
              Seq wm = x.clients.front().completed_watermark;
              std::vector<Seq> completed = x.clients.front().completed;
              if (!SendNow(x)) return;
              stats_.state_exchanges.fetch_add(1, std::memory_order_relaxed);
              events_.push_back({RecoveryEventKind::kStateExchanged, 0});
              // Acknowledge again: an ACK sent to the previous broker may
              // have died with it.
              if (unacked_.empty()) ack_due_ = now + client_internal::kAckDelay;
              for (Seq s : completed) {
                if (s >= wm) unacked_.insert(s);
              }
            },
            [&](OutProbeReply& p) {
              if (!welcomed_) return;
              ProbeReply reply;
              reply.probe_id = p.probe_id;
              reply.role = Role::kClient;
              reply.clients.push_back(BuildVector(&p.seqs));
              (void)SendNow(reply);
            },
            [&](OutAck&) {
              if (!welcomed_ || unacked_.empty()) return;
              Ack ack;
              ack.session = options_.session_id;
              ack.completed_watermark = Watermark();
              for (auto s = unacked_.lower_bound(ack.completed_watermark);
                   s != unacked_.end(); ++s) {
                ack.seqs.push_back(*s);
              }
              if (!SendNow(ack)) return;
              NoteAcked(ack.completed_watermark, ack.seqs);
            },
        },
        item);
  }
}

bool Client::Impl::SendNow(const Message& m, zmq::message_t* payload) {
  if (Status s = ValidateMessage(m); !s.ok()) {
    Log().error("session {}: not sending invalid {}: {}", options_.session_id,
                MessageTypeName(TypeOf(m)), s.ToString());
    return false;
  }
  return hub_->Send(m, payload);
}

bool Client::Impl::SendRequestBatch(TimePoint now) {
  const std::size_t n =
      std::min(send_queue_.size(), client_internal::kSendBatch);
  const Seq watermark = Watermark();
  transport::Batch& batch = request_batch_;  // reused: keeps its capacity
  batch.Clear();
  std::vector<bool>& added = batch_added_;  // reused: keeps its capacity
  added.assign(n, false);
  for (std::size_t i = 0; i < n; ++i) {
    added[i] = pending_.count(send_queue_[i].seq) != 0 &&
               AddRequest(batch, send_queue_[i], watermark);
  }
  if (!batch.empty()) {
    if (!hub_->Send(batch)) return false;
    NoteAcked(watermark, {});
  }
  for (std::size_t i = 0; i < n; ++i) {
    const SendItem item = send_queue_.front();
    send_queue_.pop_front();
    auto it = pending_.find(item.seq);
    if (it == pending_.end()) continue;
    PendingOp& op = it->second;
    op.queued = false;
    // A request that cannot be encoded stays pending in the journal for a
    // later process; retrying it here would only spin.
    if (!added[i]) continue;
    op.last_sent = now;
    NoteSend(item.seq, op);
    if ((item.flags & kRequestResend) != 0) {
      op.resent = true;
      stats_.requests_resent.fetch_add(1, std::memory_order_relaxed);
      events_.push_back({RecoveryEventKind::kRequestResent, item.seq});
    }
    ScheduleResend(item.seq, op, now);
  }
  return true;
}

bool Client::Impl::AddRequest(transport::Batch& batch, const SendItem& item,
                              Seq watermark) {
  const JournalSession& js = *journal_->session();
  auto jop = js.ops.find(item.seq);
  if (jop == js.ops.end()) return false;  // broken invariant
  Request req;
  req.session = options_.session_id;
  req.seq = item.seq;
  req.service = jop->second.service;
  req.completed_watermark = watermark;
  // The caller's deadline ends only its wait; the operation itself lives on
  // until it completes, so servers get no deadline.
  req.deadline_ms = 0;
  req.flags = item.flags;
  if (Status s = ValidateMessage(req); !s.ok()) {
    Log().error("session {}: not sending seq {}: {}", options_.session_id,
                item.seq, s.ToString());
    return false;
  }
  zmq::message_t payload(jop->second.payload.data(),
                         jop->second.payload.size());
  batch.Add(req, &payload);
  return true;
}

// Answers come back roughly in the order requests left: an operation sent
// reorder_.slack() or more sends before one just answered, and older than a
// smoothed round trip, was most likely lost. It is sent again now instead of
// when its timer fires (as TCP's fast retransmit does). Off while resends are
// proving spurious (the path reorders or stalls).
void Client::Impl::HintLosses(std::uint64_t answered_order, TimePoint now) {
  if (!welcomed_ || !rtt_.ready() || rtt_.backoff() > 2) return;
  const auto round_trip =
      std::chrono::microseconds(static_cast<std::int64_t>(rtt_.srtt_us()));
  // Oldest send first: once one is too recent, so are all behind it. Sends
  // still in flight after a resend do not hide the losses behind them.
  while (!sends_.empty()) {
    const SendEntry front = sends_.front();
    if (front.live) {
      if (sends_base_ + reorder_.slack() > answered_order) return;
      auto it = pending_.find(front.seq);
      if (it != pending_.end() && !it->second.queued) {
        PendingOp& op = it->second;
        if (now - op.last_sent < round_trip) return;
        op.queued = true;
        send_queue_.push_back({front.seq, kRequestResend});
      }
    }
    sends_.pop_front();
    ++sends_base_;
  }
}

void Client::Impl::RetireSend(std::uint64_t order) {
  if (order >= sends_base_ && order - sends_base_ < sends_.size()) {
    sends_[order - sends_base_].live = false;
  }
}

void Client::Impl::NoteSend(Seq seq, client_internal::PendingOp& op) {
  RetireSend(op.send_order);
  op.sent = true;
  op.send_order = ++send_counter_;
  sends_.push_back({seq, true});
  // Without clean answers nothing pops entries. Dropping live ones only
  // leaves those operations to their resend timers.
  while (sends_.size() > client_internal::kMaxTrackedSends) {
    sends_.pop_front();
    ++sends_base_;
  }
}

void Client::Impl::ScheduleResend(Seq seq, PendingOp& op, TimePoint now) {
  std::chrono::microseconds delay = rtt_.FirstResend(
      pending_.size(), options_.resend_delay, options_.resend_delay);
  for (int i = 0; i < op.attempts && delay < client_internal::kMaxResendDelay;
       ++i) {
    delay *= 2;
  }
  delay = std::min<std::chrono::microseconds>(delay,
                                              client_internal::kMaxResendDelay);
  ++op.attempts;
  op.next_resend = now + delay;
  resend_timers_.push({op.next_resend, seq, 0});
}

void Client::Impl::NoteAcked(Seq watermark, const std::vector<Seq>& seqs) {
  // Sorted: everything below the watermark, then the listed seqs above it.
  std::vector<Seq> forget;
  forget_when_acked_.erase_below(watermark, &forget);
  for (Seq s : seqs) {
    if (s >= watermark && forget_when_acked_.erase(s) != 0) forget.push_back(s);
  }
  unacked_.erase_below(watermark);
  for (Seq s : seqs) unacked_.erase(s);
  forgotten_above_wm_.erase(forgotten_above_wm_.begin(),
                            forgotten_above_wm_.lower_bound(watermark));
  if (forget.empty() || !failed_ok_) return;
  const JournalSession& js = *journal_->session();
  // Committed with the next turn: losing this record in a crash only means
  // the outcome is kept a little longer.
  if (Status s = journal_->AppendRelease(js.released_below, forget); !s.ok()) {
    Log().warn("session {}: cannot forget acknowledged outcomes: {}",
               options_.session_id, s.ToString());
    return;
  }
  for (Seq s : forget) {
    if (s >= watermark) forgotten_above_wm_.insert(s);
  }
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

void Client::Impl::Unwelcome(const char* why) {
  if (welcomed_) {
    Log().info("session {}: lost the broker ({})", options_.session_id, why);
  }
  welcomed_ = false;
  hello_pending_ = false;
}

void Client::Impl::ScheduleHello(TimePoint at) { hello_due_ = at; }

void Client::Impl::SendHello() {
  TimePoint now = Clock::now();
  transport::Link* link = hub_->link();
  if (link == nullptr) {
    hello_due_ = now + heartbeat_;
    return;
  }
  Hello h;
  h.role = Role::kClient;
  h.id = options_.session_id;
  h.incarnation = incarnation_;
  h.journal_id = journal_id_;
  h.last_epoch = last_epoch_;
  const bool sent = SendNow(h);
  Log().debug("session {}: HELLO incarnation {}: {}", options_.session_id,
              incarnation_, sent ? "sent" : "not sent");
  if (sent) {
    hello_pending_ = true;
    hello_on_link_ = true;
    hello_sent_ = now;
    hello_due_ =
        now + (fenced_ ? client_internal::kFencedRetry : 3 * heartbeat_);
  } else if (link->connected()) {
    // Connected but the socket did not take it (yet): soon again.
    hello_due_ = now + client_internal::kHandshakeRetry;
  } else {
    // Not connected yet: the handshake event will send it; this is the
    // fallback.
    hello_due_ = now + heartbeat_;
  }
}

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
