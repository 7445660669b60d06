// One client session's operation logic (session_core.h): commands,
// answers, recovery, the send path and its timers.
#include "session_core.h"

#include <algorithm>
#include <chrono>
#include <string>
#include <utility>

#include "log.h"
#include "overloaded.h"
#include "rejoin/proto/codec.h"

namespace rejoin::client_internal {

SessionCore::SessionCore(const ClientOptions& options, SessionRecords& records,
                         const EndpointMachine& conn, Incarnation incarnation,
                         JournalId journal_id, AtomicStats& stats,
                         SessionWire& wire, std::function<void(Seq)> skipped,
                         Seq first_seq, TimePoint now)
    : options_(options),
      records_(records),
      conn_(conn),
      incarnation_(incarnation),
      journal_id_(journal_id),
      stats_(stats),
      wire_(wire),
      skipped_(std::move(skipped)) {
  // Seqs continue above both the journal's and the caller's floor: the
  // journal may be older than the session (restored from a backup).
  const JournalSession* js = records_.session();
  next_seq_ = first_seq;
  if (js != nullptr) next_seq_ = std::max(next_seq_, js->next_seq);
  if (js != nullptr) {
    for (const auto& [seq, op] : js->ops) {
      auto state = static_cast<ClientOpState>(op.state);
      if (state == ClientOpState::kPrepared || state == ClientOpState::kSent) {
        PendingOp& p = pending_[seq];
        p.service = op.service;
        p.inherited = true;
        ScheduleResend(seq, p, now);
      }
    }
    // Outcomes journaled by an earlier process may never have been
    // acknowledged; telling the broker again costs one small message.
    for (const auto& [seq, op] : js->ops) {
      if (static_cast<ClientOpState>(op.state) == ClientOpState::kCompleted &&
          seq >= Watermark()) {
        unacked_.insert(seq);
      }
    }
  }
  ack_due_ = now;
}

bool SessionCore::OnMessage(Message& m, std::string_view payload,
                            TimePoint now) {
  switch (TypeOf(m)) {
    case MessageType::kResponse:
      HandleResponse(std::get<Response>(m), payload, now);
      return true;
    case MessageType::kRecover:
      HandleRecover(std::get<Recover>(m));
      return true;
    case MessageType::kProbe:
      HandleProbe(std::get<Probe>(m));
      return true;
    default:
      return false;
  }
}

void SessionCore::OnWelcomed() {
  // Calls of this process that never left are ordinary first sends; they
  // go ahead of the state exchange so the broker already tracks them when
  // it reads the vector. Whatever did leave (or came from an earlier
  // process) is covered by the exchange.
  for (auto& [seq, op] : pending_) {
    if (!op.sent && !op.inherited && !op.queued) {
      op.queued = true;
      send_queue_.push_back({seq, 0});
    }
  }
  std::sort(send_queue_.begin(), send_queue_.end(),
            [](const SendItem& a, const SendItem& b) { return a.seq < b.seq; });
}

bool SessionCore::HasRecords() const {
  const bool covered =
      std::any_of(pending_.begin(), pending_.end(), [](const auto& entry) {
        return entry.second.sent || entry.second.inherited;
      });
  return covered || !unacked_.empty() ||
         !BuildVector(nullptr).completed.empty();
}

TimePoint SessionCore::NextWakeup(TimePoint next) const {
  auto consider = [&](TimePoint t) { next = std::min(next, t); };
  if (!deadline_timers_.empty()) consider(deadline_timers_.top().at);
  if (!resend_timers_.empty()) consider(resend_timers_.top().at);
  if (conn_.welcomed() && !unacked_.empty()) consider(ack_due_);
  return next;
}

void SessionCore::JournalFailed(const Status& s) {
  journal_ok_ = false;
  journal_status_ = s;
  send_queue_.clear();
  outbox_.clear();
  for (auto& delivery : deliveries_) delivery.second = s;
  FailAllWaiters(s.code(), "journal failed");
}

void SessionCore::Call(Seq seq, std::string service, std::string payload,
                       Waiter waiter) {
  if (!journal_ok_) {
    deliveries_.emplace_back(std::move(waiter.callback), journal_status_);
    ++slots_freed_;
    return;
  }
  JournalOp op;
  op.state = static_cast<std::uint8_t>(ClientOpState::kPrepared);
  op.service = service;
  op.payload = std::move(payload);
  if (Status s = records_.AppendOp(seq, std::move(op)); !s.ok()) {
    deliveries_.emplace_back(std::move(waiter.callback), s);
    ++slots_freed_;
    return;
  }
  next_seq_ = std::max(next_seq_, seq + 1);
  PendingOp& p = pending_[seq];
  p.service = std::move(service);
  waiter.is_caller = true;
  deadline_timers_.push({waiter.deadline, seq, waiter.id});
  p.waiters.push_back(std::move(waiter));
  p.queued = true;
  send_queue_.push_back({seq, 0});
}

void SessionCore::Collect(Seq seq, Waiter waiter) {
  if (auto it = pending_.find(seq); it != pending_.end()) {
    deadline_timers_.push({waiter.deadline, seq, waiter.id});
    it->second.waiters.push_back(std::move(waiter));
    return;
  }
  if (const JournalSession* s = records_.session()) {
    if (auto op = s->ops.find(seq);
        op != s->ops.end() && static_cast<ClientOpState>(op->second.state) ==
                                  ClientOpState::kCompleted) {
      Reply reply;
      reply.seq = seq;
      reply.status = op->second.status;
      reply.payload = op->second.payload;
      deliveries_.emplace_back(std::move(waiter.callback), std::move(reply));
      return;
    }
  }
  deliveries_.emplace_back(
      std::move(waiter.callback),
      Status(ErrorCode::kNotFound,
             "seq " + std::to_string(seq) + " is not in the journal"));
}

Status SessionCore::Forget(Seq seq) {
  if (pending_.count(seq) != 0) {
    return Status(ErrorCode::kInvalidArgument,
                  "seq " + std::to_string(seq) + " is still pending");
  }
  const JournalSession* s = records_.session();
  if (s == nullptr || s->ops.count(seq) == 0) {
    return Status(ErrorCode::kNotFound,
                  "seq " + std::to_string(seq) + " is not in the journal");
  }
  if (!journal_ok_) return journal_status_;
  Status st = records_.AppendRelease(s->released_below, {seq});
  if (!st.ok()) return st;
  forget_when_acked_.erase(seq);
  // Still above the watermark: keep reporting it as completed so the
  // broker does not read the gap as "no record".
  if (seq >= Watermark()) forgotten_above_wm_.insert(seq);
  return Status::Ok();
}

std::vector<OperationInfo> SessionCore::List() const {
  std::vector<OperationInfo> out;
  const JournalSession* s = records_.session();
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

void SessionCore::HandleResponse(const Response& r, std::string_view payload,
                                 TimePoint now) {
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
  Complete(r.seq, r.status, std::string(payload), now);
}

void SessionCore::Complete(Seq seq, ErrorCode status, std::string payload,
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
    if (recently_resent_order_.size() > kRecentResends) {
      recently_resent_.erase(recently_resent_order_.front());
      recently_resent_order_.pop_front();
    }
  }

  if (journal_ok_) {
    JournalOp jop;
    jop.state = static_cast<std::uint8_t>(ClientOpState::kCompleted);
    jop.service = op.service;
    jop.payload = payload;
    jop.status = status;
    if (Status s = records_.AppendOp(seq, std::move(jop)); !s.ok()) {
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
  if (unacked_.empty()) ack_due_ = now + kAckDelay;
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

void SessionCore::HandleRecover(const Recover& r) {
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

void SessionCore::SkipPast(Seq seen) {
  if (seen < next_seq_ || seen == ~Seq{0}) return;
  Log().warn(
      "session {}: the broker knows seq {}, above any this journal issued "
      "(was it restored from an older copy?); new seqs start above it",
      options_.session_id, seen);
  next_seq_ = seen + 1;
  if (skipped_) skipped_(next_seq_);
}

void SessionCore::HandleProbe(const Probe& p) {
  if (p.session != options_.session_id) {
    Log().warn("session {}: probe for another session {}", options_.session_id,
               p.session);
    return;
  }
  outbox_.push_back(OutProbeReply{p.probe_id, p.seqs});
}

void SessionCore::PruneTimers() {
  const std::size_t limit = 2 * pending_.size() + kTimerSlack;
  if (deadline_timers_.size() > limit) {
    deadline_timers_.PruneIf([&](const TimerEntry& t) {
      auto it = pending_.find(t.seq);
      if (it == pending_.end()) return true;
      const auto& waiters = it->second.waiters;
      return std::none_of(waiters.begin(), waiters.end(),
                          [&](const Waiter& w) { return w.id == t.waiter; });
    });
  }
  if (resend_timers_.size() > limit) {
    resend_timers_.PruneIf([&](const TimerEntry& t) {
      auto it = pending_.find(t.seq);
      return it == pending_.end() || it->second.next_resend != t.at;
    });
  }
}

void SessionCore::DropStaleResendTimers() {
  while (!resend_timers_.empty()) {
    const TimerEntry& t = resend_timers_.top();
    auto it = pending_.find(t.seq);
    if (it != pending_.end() && it->second.next_resend == t.at) return;
    resend_timers_.pop();
  }
}

void SessionCore::Timers(TimePoint now) {
  PruneTimers();
  while (!deadline_timers_.empty() && deadline_timers_.top().at <= now) {
    TimerEntry t = deadline_timers_.top();
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
    TimerEntry t = resend_timers_.top();
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
      (now >= ack_due_ || unacked_.size() >= kAckBatch)) {
    outbox_.push_back(OutAck{});
  }
}

void SessionCore::FailAllWaiters(ErrorCode code, const char* why) {
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

Seq SessionCore::Watermark() const {
  return pending_.empty() ? next_seq_ : pending_.begin()->first;
}

ClientVector SessionCore::BuildVector(const std::vector<Seq>* only) const {
  auto wanted = [&](Seq s) {
    return only == nullptr || std::binary_search(only->begin(), only->end(), s);
  };
  ClientVector v;
  v.session = options_.session_id;
  v.incarnation = incarnation_;
  v.journal_id = journal_id_;
  v.next_seq = next_seq_;
  v.completed_watermark = Watermark();
  for (const auto& [seq, op] : pending_) {
    if (wanted(seq)) v.pending.push_back(seq);
  }
  if (const JournalSession* s = records_.session()) {
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

void SessionCore::Flush(TimePoint now, bool linked) {
  if (!journal_ok_ || !linked) {
    outbox_.clear();
    return;
  }
  while (conn_.welcomed() && !send_queue_.empty()) {
    if (!SendRequestBatch(now)) break;  // POLLOUT resumes it
  }

  std::vector<OutItem> items;
  items.swap(outbox_);
  for (OutItem& item : items) {
    std::visit(
        Overloaded{
            [&](Message& m) { (void)SendNow(m); },
            [&](OutStateExchange&) {
              if (!conn_.welcomed()) return;
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
              if (unacked_.empty()) ack_due_ = now + kAckDelay;
              for (Seq s : completed) {
                if (s >= wm) unacked_.insert(s);
              }
            },
            [&](OutProbeReply& p) {
              if (!conn_.welcomed()) return;
              ProbeReply reply;
              reply.probe_id = p.probe_id;
              reply.role = Role::kClient;
              reply.clients.push_back(BuildVector(&p.seqs));
              (void)SendNow(reply);
            },
            [&](OutAck&) {
              if (!conn_.welcomed() || unacked_.empty()) return;
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

bool SessionCore::SendNow(const Message& m) {
  if (Status s = ValidateMessage(m); !s.ok()) {
    Log().error("session {}: not sending invalid {}: {}", options_.session_id,
                MessageTypeName(TypeOf(m)), s.ToString());
    return false;
  }
  return wire_.Send(m);
}

bool SessionCore::SendRequestBatch(TimePoint now) {
  const std::size_t n = std::min(send_queue_.size(), kSendBatch);
  const Seq watermark = Watermark();
  wire_.ClearRequests();
  std::vector<bool>& added = batch_added_;  // reused: keeps its capacity
  added.assign(n, false);
  bool any = false;
  for (std::size_t i = 0; i < n; ++i) {
    added[i] = pending_.count(send_queue_[i].seq) != 0 &&
               AddRequest(send_queue_[i], watermark);
    any = any || added[i];
  }
  if (any) {
    if (!wire_.SendRequests()) return false;
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

bool SessionCore::AddRequest(const SendItem& item, Seq watermark) {
  const JournalSession& js = *records_.session();
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
  wire_.AddRequest(req, jop->second.payload);
  return true;
}

// Answers come back roughly in the order requests left: an operation sent
// reorder_.slack() or more sends before one just answered, and older than a
// smoothed round trip, was most likely lost. It is sent again now instead of
// when its timer fires (as TCP's fast retransmit does). Off while resends are
// proving spurious (the path reorders or stalls).
void SessionCore::HintLosses(std::uint64_t answered_order, TimePoint now) {
  if (!conn_.welcomed() || !rtt_.ready() || rtt_.backoff() > 2) return;
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

void SessionCore::RetireSend(std::uint64_t order) {
  if (order >= sends_base_ && order - sends_base_ < sends_.size()) {
    sends_[order - sends_base_].live = false;
  }
}

void SessionCore::NoteSend(Seq seq, PendingOp& op) {
  RetireSend(op.send_order);
  op.sent = true;
  op.send_order = ++send_counter_;
  sends_.push_back({seq, true});
  // Without clean answers nothing pops entries. Dropping live ones only
  // leaves those operations to their resend timers.
  while (sends_.size() > kMaxTrackedSends) {
    sends_.pop_front();
    ++sends_base_;
  }
}

void SessionCore::ScheduleResend(Seq seq, PendingOp& op, TimePoint now) {
  std::chrono::microseconds delay = rtt_.FirstResend(
      pending_.size(), options_.resend_delay, options_.resend_delay);
  for (int i = 0; i < op.attempts && delay < kMaxResendDelay; ++i) {
    delay *= 2;
  }
  delay = std::min<std::chrono::microseconds>(delay, kMaxResendDelay);
  ++op.attempts;
  op.next_resend = now + delay;
  resend_timers_.push({op.next_resend, seq, 0});
}

void SessionCore::NoteAcked(Seq watermark, const std::vector<Seq>& seqs) {
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
  if (forget.empty() || !journal_ok_) return;
  const JournalSession& js = *records_.session();
  // Committed with the next turn: losing this record in a crash only means
  // the outcome is kept a little longer.
  if (Status s = records_.AppendRelease(js.released_below, forget); !s.ok()) {
    Log().warn("session {}: cannot forget acknowledged outcomes: {}",
               options_.session_id, s.ToString());
    return;
  }
  for (Seq s : forget) {
    if (s >= watermark) forgotten_above_wm_.insert(s);
  }
}

}  // namespace rejoin::client_internal
