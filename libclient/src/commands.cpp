// One client session's commands (FLOWS.md §3, client side): calls queued by
// application threads are journaled PREPARED and queued for the socket;
// Collect, Forget and ListOperations read the journal.
#include <algorithm>
#include <string>
#include <utility>

#include "client_impl.h"
#include "overloaded.h"

namespace rejoin {

using client_internal::CallCommand;
using client_internal::CollectCommand;
using client_internal::Command;
using client_internal::ForgetCommand;
using client_internal::ListCommand;
using client_internal::Overloaded;
using client_internal::PendingOp;
using client_internal::Waiter;

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
  FailWaitersIfShutOut();
}

void Client::Impl::HandleCollect(CollectCommand& c) {
  if (auto it = pending_.find(c.seq); it != pending_.end()) {
    Waiter w;
    w.id = next_waiter_id_++;
    w.callback = std::move(c.callback);
    w.deadline = c.deadline;
    deadline_timers_.push({w.deadline, c.seq, w.id});
    it->second.waiters.push_back(std::move(w));
    FailWaitersIfShutOut();
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

}  // namespace rejoin
