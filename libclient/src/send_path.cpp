// One client session's send path (FLOWS.md §3, §4, §6, client side): after
// the turn's commit, queued REQUESTs leave in batches and control messages
// are built from what the journal now holds; answers measure the path
// (rtt_estimator.h) and hint at losses; acknowledged outcomes are dropped.
#include <algorithm>
#include <chrono>
#include <utility>

#include "client_impl.h"
#include "hub.h"
#include "log.h"
#include "overloaded.h"
#include "rejoin/proto/codec.h"
#include "rejoin/transport/wire.h"

namespace rejoin {

using client_internal::Log;
using client_internal::OutAck;
using client_internal::OutItem;
using client_internal::OutProbeReply;
using client_internal::OutStateExchange;
using client_internal::Overloaded;
using client_internal::PendingOp;
using client_internal::SendItem;

void Client::Impl::Flush(TimePoint now) {
  if (!failed_ok_ || hub_->link() == nullptr) {
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
              if (unacked_.empty()) ack_due_ = now + client_internal::kAckDelay;
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

}  // namespace rejoin
