// The breakpoint table of PROTOCOL.md §6 as code. Every switch covers every
// enumerator without a default, so a new state or action fails to compile
// until this file decides what it means.
#include "rejoin/proto/breakpoint.h"

#include <algorithm>
#include <cstdlib>

#include "sim_defects.h"

namespace rejoin {
namespace {

OpDecision Make(Seq seq, Breakpoint b, Action a) { return {seq, b, a}; }

// Client pending, server says it holds nothing and has not released it.
OpDecision DecidePendingUnheld(Seq seq, const DecisionContext& ctx) {
  if (ctx.server_journal_lost) {
    // "No record" from a server that lost its memory proves nothing: the
    // request may have run before the loss.
    return Make(
        seq, Breakpoint::kUnknown,
        ctx.idempotent ? Action::kResendRequest : Action::kAnswerInDoubt);
  }
  if (ctx.grace_period) {
    // Another server, not yet returned to the new broker, may hold it.
    return Make(seq, Breakpoint::kAwaitingGrace, Action::kWait);
  }
  return Make(seq, Breakpoint::kRequestLost, Action::kResendRequest);
}

OpDecision DecideInDoubt(Seq seq, const DecisionContext& ctx) {
  if (ctx.idempotent) {
    return Make(seq, Breakpoint::kExecutionInDoubt, Action::kReexecute);
  }
  switch (ctx.policy) {
    case InDoubtPolicy::kReexecute:
      return Make(seq, Breakpoint::kExecutionInDoubt, Action::kReexecute);
    case InDoubtPolicy::kResolveHook:
      return Make(seq, Breakpoint::kExecutionInDoubt, Action::kResolve);
    case InDoubtPolicy::kAnswerInDoubt:
#ifdef REJOIN_SIM_DEFECTS
      if (sim_defects::Active() == sim_defects::kDecisionCellChanged) {
        return Make(seq, Breakpoint::kExecutionInDoubt, Action::kReexecute);
      }
#endif
      return Make(seq, Breakpoint::kExecutionInDoubt, Action::kAnswerInDoubt);
  }
  std::abort();  // policy outside the enum: the codec never lets one through
}

OpDecision DecidePending(Seq seq, ServerOpView server,
                         const DecisionContext& ctx) {
  const bool executing = server.state == ServerOpState::kReceived &&
                         !server.restarted_since_received;
  if (ctx.same_answers >= kMaxSameProbeAnswers && !executing) {
    // The same answer again and again: what was asked of the parties does
    // not change it (a server that released the operation, a response or
    // request lost every time). The outcome cannot be had; say so.
    return Make(seq, Breakpoint::kUnknown, Action::kAnswerInDoubt);
  }
  switch (server.state) {
    case ServerOpState::kNone:
      return DecidePendingUnheld(seq, ctx);
    case ServerOpState::kReceived:
      if (server.restarted_since_received) return DecideInDoubt(seq, ctx);
      return Make(seq, Breakpoint::kStillExecuting, Action::kWait);
    case ServerOpState::kExecuted:
      return Make(seq, Breakpoint::kResponseLost, Action::kResendResponse);
    case ServerOpState::kReleased:
      // The server dropped a response the client never journaled: only a
      // client that lost state can get here. Nobody can recover the outcome.
      return Make(seq, Breakpoint::kUnknown, Action::kAnswerInDoubt);
  }
  std::abort();
}

OpDecision DecideCompleted(Seq seq, ServerOpView server) {
  switch (server.state) {
    case ServerOpState::kNone:
    case ServerOpState::kReleased:
      return Make(seq, Breakpoint::kConsistent, Action::kNone);
    case ServerOpState::kReceived:
    case ServerOpState::kExecuted:
      return Make(seq, Breakpoint::kAckLost, Action::kRelease);
  }
  std::abort();
}

OpDecision DecideUnknownToClient(Seq seq, ServerOpView server) {
  switch (server.state) {
    case ServerOpState::kNone:
    case ServerOpState::kReleased:
      return Make(seq, Breakpoint::kConsistent, Action::kNone);
    case ServerOpState::kReceived:
    case ServerOpState::kExecuted:
      return Make(seq, Breakpoint::kOrphanResponse, Action::kKeepOrphan);
  }
  std::abort();
}

}  // namespace

std::string_view BreakpointName(Breakpoint b) {
  switch (b) {
    case Breakpoint::kConsistent:
      return "consistent";
    case Breakpoint::kRequestLost:
      return "request_lost";
    case Breakpoint::kStillExecuting:
      return "still_executing";
    case Breakpoint::kExecutionInDoubt:
      return "execution_in_doubt";
    case Breakpoint::kResponseLost:
      return "response_lost";
    case Breakpoint::kAckLost:
      return "ack_lost";
    case Breakpoint::kOrphanResponse:
      return "orphan_response";
    case Breakpoint::kUnknown:
      return "unknown";
    case Breakpoint::kAwaitingGrace:
      return "awaiting_grace";
  }
  return "invalid";
}

std::string_view ActionName(Action a) {
  switch (a) {
    case Action::kNone:
      return "none";
    case Action::kWait:
      return "wait";
    case Action::kResendRequest:
      return "resend_request";
    case Action::kResendResponse:
      return "resend_response";
    case Action::kRelease:
      return "release";
    case Action::kReexecute:
      return "reexecute";
    case Action::kResolve:
      return "resolve";
    case Action::kAnswerInDoubt:
      return "answer_in_doubt";
    case Action::kKeepOrphan:
      return "keep_orphan";
  }
  return "invalid";
}

Actor ActorOf(Action a) {
  switch (a) {
    case Action::kNone:
    case Action::kWait:
      return Actor::kNobody;
    case Action::kResendRequest:
      return Actor::kClient;
    case Action::kResendResponse:
    case Action::kRelease:
    case Action::kReexecute:
    case Action::kResolve:
    case Action::kAnswerInDoubt:
    case Action::kKeepOrphan:
      return Actor::kServer;
  }
  std::abort();
}

OpDecision DecideOp(Seq seq, ClientOpState client, ServerOpView server,
                    const DecisionContext& ctx) {
  switch (client) {
    case ClientOpState::kNone:
      return DecideUnknownToClient(seq, server);
    case ClientOpState::kPrepared:
    case ClientOpState::kSent:
      return DecidePending(seq, server, ctx);
    case ClientOpState::kCompleted:
      return DecideCompleted(seq, server);
  }
  std::abort();
}

SessionDecision Decide(const ClientVector& client, const ServerVector& server,
                       const DecisionContext& ctx) {
  SessionDecision out;
  out.release_below = client.completed_watermark;
  out.ops.reserve(client.pending.size() + client.completed.size() +
                  server.held.size());

  // Three sorted lists merged by seq; each seq is decided once.
  auto p = client.pending.begin();
  auto c = client.completed.begin();
  auto h = server.held.begin();
  constexpr Seq kEnd = ~Seq{0};
  for (;;) {
    const Seq next_p = p != client.pending.end() ? *p : kEnd;
    const Seq next_c = c != client.completed.end() ? *c : kEnd;
    const Seq next_h = h != server.held.end() ? h->seq : kEnd;
    const Seq seq = std::min({next_p, next_c, next_h});
    if (seq == kEnd) break;

    ClientOpState client_state = client.StateOf(seq);
    if (ctx.client_journal_lost) {
      // A client with a new journal has no memory of anything the server
      // holds, whatever its fresh counters say.
      if (seq == next_h && seq != next_p && seq != next_c) {
        client_state = ClientOpState::kNone;
      }
    }
    ServerOpView server_view;
    if (seq == next_h) {
      server_view.state = h->state;
      server_view.restarted_since_received =
          h->state == ServerOpState::kReceived &&
          h->received_incarnation < server.incarnation;
    } else {
      server_view.state = server.StateOf(seq);
    }
    out.ops.push_back(DecideOp(seq, client_state, server_view, ctx));

    if (seq == next_p) ++p;
    if (seq == next_c) ++c;
    if (seq == next_h) ++h;
  }
  return out;
}

}  // namespace rejoin
