// The breakpoint decision against DESIGN.md §4 / PROTOCOL.md §6: one test per
// table row, then every combination of states for a four-operation universe
// under every context, checked for the safety properties and for convergence
// when the returned actions are carried out by a small simulator.
#include "rejoin/proto/breakpoint.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <vector>

namespace rejoin {
namespace {

constexpr Seq kSeq = 7;

DecisionContext Context(bool idempotent = false,
                        InDoubtPolicy policy = InDoubtPolicy::kAnswerInDoubt) {
  DecisionContext ctx;
  ctx.idempotent = idempotent;
  ctx.policy = policy;
  return ctx;
}

ServerOpView Server(ServerOpState state, bool restarted = false) {
  return ServerOpView{state, restarted};
}

void ExpectDecision(const OpDecision& d, Breakpoint b, Action a) {
  EXPECT_EQ(d.seq, kSeq);
  EXPECT_EQ(d.breakpoint, b) << BreakpointName(d.breakpoint);
  EXPECT_EQ(d.action, a) << ActionName(d.action);
}

// ---- The table, row by row ------------------------------------------------

TEST(BreakpointTable, PendingUnheldWithServerMemoryIntactIsRequestLost) {
  for (ClientOpState c : {ClientOpState::kPrepared, ClientOpState::kSent}) {
    ExpectDecision(DecideOp(kSeq, c, Server(ServerOpState::kNone), Context()),
                   Breakpoint::kRequestLost, Action::kResendRequest);
  }
}

TEST(BreakpointTable, PendingReceivedInSameIncarnationWaits) {
  ExpectDecision(DecideOp(kSeq, ClientOpState::kSent,
                          Server(ServerOpState::kReceived), Context()),
                 Breakpoint::kStillExecuting, Action::kWait);
}

TEST(BreakpointTable, PendingReceivedAfterRestartFollowsPolicy) {
  const ServerOpView view = Server(ServerOpState::kReceived, true);
  ExpectDecision(DecideOp(kSeq, ClientOpState::kSent, view,
                          Context(false, InDoubtPolicy::kReexecute)),
                 Breakpoint::kExecutionInDoubt, Action::kReexecute);
  ExpectDecision(DecideOp(kSeq, ClientOpState::kSent, view,
                          Context(false, InDoubtPolicy::kResolveHook)),
                 Breakpoint::kExecutionInDoubt, Action::kResolve);
  ExpectDecision(DecideOp(kSeq, ClientOpState::kSent, view,
                          Context(false, InDoubtPolicy::kAnswerInDoubt)),
                 Breakpoint::kExecutionInDoubt, Action::kAnswerInDoubt);
}

TEST(BreakpointTable, IdempotentInDoubtReexecutesWhateverThePolicy) {
  for (InDoubtPolicy p :
       {InDoubtPolicy::kReexecute, InDoubtPolicy::kResolveHook,
        InDoubtPolicy::kAnswerInDoubt}) {
    ExpectDecision(
        DecideOp(kSeq, ClientOpState::kPrepared,
                 Server(ServerOpState::kReceived, true), Context(true, p)),
        Breakpoint::kExecutionInDoubt, Action::kReexecute);
  }
}

TEST(BreakpointTable, PendingExecutedIsResponseLost) {
  ExpectDecision(DecideOp(kSeq, ClientOpState::kSent,
                          Server(ServerOpState::kExecuted), Context()),
                 Breakpoint::kResponseLost, Action::kResendResponse);
}

TEST(BreakpointTable, CompletedExecutedIsAckLost) {
  ExpectDecision(DecideOp(kSeq, ClientOpState::kCompleted,
                          Server(ServerOpState::kExecuted), Context()),
                 Breakpoint::kAckLost, Action::kRelease);
}

TEST(BreakpointTable, CompletedReleasedIsConsistent) {
  ExpectDecision(DecideOp(kSeq, ClientOpState::kCompleted,
                          Server(ServerOpState::kReleased), Context()),
                 Breakpoint::kConsistent, Action::kNone);
}

TEST(BreakpointTable, UnknownToClientExecutedIsOrphan) {
  ExpectDecision(DecideOp(kSeq, ClientOpState::kNone,
                          Server(ServerOpState::kExecuted), Context()),
                 Breakpoint::kOrphanResponse, Action::kKeepOrphan);
}

TEST(BreakpointTable, ServerJournalLostResendsOnlyIdempotent) {
  DecisionContext ctx = Context(false);
  ctx.server_journal_lost = true;
  ExpectDecision(
      DecideOp(kSeq, ClientOpState::kSent, Server(ServerOpState::kNone), ctx),
      Breakpoint::kUnknown, Action::kAnswerInDoubt);
  ctx.idempotent = true;
  ExpectDecision(
      DecideOp(kSeq, ClientOpState::kSent, Server(ServerOpState::kNone), ctx),
      Breakpoint::kUnknown, Action::kResendRequest);
}

TEST(BreakpointTable, GracePeriodHoldsPendingUnheldOperations) {
  DecisionContext ctx = Context();
  ctx.grace_period = true;
  ExpectDecision(
      DecideOp(kSeq, ClientOpState::kSent, Server(ServerOpState::kNone), ctx),
      Breakpoint::kAwaitingGrace, Action::kWait);
}

TEST(BreakpointTable, PendingButReleasedIsAnsweredInDoubt) {
  ExpectDecision(DecideOp(kSeq, ClientOpState::kSent,
                          Server(ServerOpState::kReleased), Context(true)),
                 Breakpoint::kUnknown, Action::kAnswerInDoubt);
}

TEST(BreakpointTable, CompletedButStillReceivedIsReleased) {
  ExpectDecision(DecideOp(kSeq, ClientOpState::kCompleted,
                          Server(ServerOpState::kReceived), Context()),
                 Breakpoint::kAckLost, Action::kRelease);
}

// A probe that keeps getting the same answer ends (FLOWS.md §4): after
// kMaxSameProbeAnswers identical answers every pending case but a handler
// still running is decided answer_in_doubt.
TEST(BreakpointTable, SameProbeAnswerRepeatedEndsInDoubtUnlessStillExecuting) {
  DecisionContext ctx = Context();
  ctx.same_answers = kMaxSameProbeAnswers - 1;
  ExpectDecision(
      DecideOp(kSeq, ClientOpState::kSent, Server(ServerOpState::kNone), ctx),
      Breakpoint::kRequestLost, Action::kResendRequest);
  ExpectDecision(DecideOp(kSeq, ClientOpState::kSent,
                          Server(ServerOpState::kExecuted), ctx),
                 Breakpoint::kResponseLost, Action::kResendResponse);
  ctx.same_answers = kMaxSameProbeAnswers;
  for (ServerOpView view :
       {Server(ServerOpState::kNone), Server(ServerOpState::kExecuted),
        Server(ServerOpState::kReleased),
        Server(ServerOpState::kReceived, /*restarted=*/true)}) {
    ExpectDecision(DecideOp(kSeq, ClientOpState::kSent, view, ctx),
                   Breakpoint::kUnknown, Action::kAnswerInDoubt);
  }
  ExpectDecision(DecideOp(kSeq, ClientOpState::kSent,
                          Server(ServerOpState::kReceived), ctx),
                 Breakpoint::kStillExecuting, Action::kWait);
  // Completed operations are never probed; the count changes nothing there.
  ExpectDecision(DecideOp(kSeq, ClientOpState::kCompleted,
                          Server(ServerOpState::kExecuted), ctx),
                 Breakpoint::kAckLost, Action::kRelease);
}

TEST(BreakpointSession, ReleaseBelowIsTheClientWatermark) {
  ClientVector c{"s", 1, 1, 10, 6, {6, 8}, {7}};
  ServerVector s{"srv", 1, 1, "s", 3, {{4, ServerOpState::kExecuted, 1}}};
  SessionDecision d = Decide(c, s, Context());
  EXPECT_EQ(d.release_below, 6u);
  ASSERT_EQ(d.ops.size(), 4u);
  EXPECT_EQ(d.ops[0], (OpDecision{4, Breakpoint::kAckLost, Action::kRelease}));
  EXPECT_EQ(d.ops[1],
            (OpDecision{6, Breakpoint::kRequestLost, Action::kResendRequest}));
  EXPECT_EQ(d.ops[2], (OpDecision{7, Breakpoint::kConsistent, Action::kNone}));
  EXPECT_EQ(d.ops[3],
            (OpDecision{8, Breakpoint::kRequestLost, Action::kResendRequest}));
}

TEST(BreakpointSession, LostClientJournalTurnsHeldOperationsIntoOrphans) {
  // The client came back with a new journal: its counters restarted, so
  // whatever the server holds is unknown to it even where the seqs overlap.
  ClientVector c{"s", 1, 99, 1, 1, {}, {}};
  ServerVector s{
      "srv",
      2,
      1,
      "s",
      1,
      {{1, ServerOpState::kExecuted, 1}, {2, ServerOpState::kReceived, 2}}};
  DecisionContext ctx = Context();
  ctx.client_journal_lost = true;
  SessionDecision d = Decide(c, s, ctx);
  ASSERT_EQ(d.ops.size(), 2u);
  for (const OpDecision& op : d.ops) {
    EXPECT_EQ(op.breakpoint, Breakpoint::kOrphanResponse);
    EXPECT_EQ(op.action, Action::kKeepOrphan);
  }
}

// ---- Exhaustive universe --------------------------------------------------

constexpr std::size_t kOps = 4;  // seqs 1..4
constexpr Incarnation kServerIncarnation = 2;

// One operation as the simulator sees it: what each side has, plus how many
// times the handler ran because of a decision.
struct ModelOp {
  ClientOpState client = ClientOpState::kNone;
  ServerOpState server = ServerOpState::kNone;
  Incarnation received_incarnation = 0;
  int decided_executions = 0;
};

struct Model {
  std::vector<ModelOp> ops;  // index seq - 1
  Seq next_seq = 1;
  Seq released_watermark = 1;

  ClientVector ClientVec() const {
    ClientVector c{"s", 1, 1, next_seq, next_seq, {}, {}};
    for (Seq seq = 1; seq < next_seq; ++seq) {
      if (ops[seq - 1].client != ClientOpState::kCompleted) {
        c.completed_watermark = seq;
        break;
      }
    }
    for (Seq seq = c.completed_watermark; seq < next_seq; ++seq) {
      if (ops[seq - 1].client == ClientOpState::kCompleted) {
        c.completed.push_back(seq);
      } else {
        c.pending.push_back(seq);
      }
    }
    return c;
  }

  ServerVector ServerVec() const {
    ServerVector s{"srv", kServerIncarnation, 1, "s", released_watermark, {}};
    for (Seq seq = released_watermark; seq <= ops.size(); ++seq) {
      const ModelOp& op = ops[seq - 1];
      if (op.server == ServerOpState::kReceived ||
          op.server == ServerOpState::kExecuted) {
        s.held.push_back({seq, op.server, op.received_incarnation});
      }
    }
    return s;
  }
};

// Every valid client vector over seqs 1..kOps: a watermark, a next_seq, and a
// pending/completed choice for each seq between them.
std::vector<std::vector<ClientOpState>> AllClientAssignments() {
  std::vector<std::vector<ClientOpState>> out;
  for (std::size_t next = 1; next <= kOps + 1; ++next) {
    for (std::size_t wm = 1; wm <= next; ++wm) {
      const std::size_t open = next - wm;
      for (std::size_t bits = 0; bits < (std::size_t{1} << open); ++bits) {
        std::vector<ClientOpState> a(kOps, ClientOpState::kNone);
        for (std::size_t i = 1; i < wm; ++i) {
          a[i - 1] = ClientOpState::kCompleted;
        }
        for (std::size_t k = 0; k < open; ++k) {
          a[wm - 1 + k] = (bits >> k) & 1 ? ClientOpState::kCompleted
                                          : ClientOpState::kPrepared;
        }
        out.push_back(a);
      }
    }
  }
  return out;
}

// Every valid server vector: a released watermark, then for each seq above
// it none, received in this incarnation, received before a restart, or
// executed.
struct ServerAssignment {
  Seq released_watermark;
  std::vector<ModelOp> ops;
};
std::vector<ServerAssignment> AllServerAssignments() {
  std::vector<ServerAssignment> out;
  for (std::size_t rw = 1; rw <= kOps + 1; ++rw) {
    const std::size_t open = kOps + 1 - rw;
    std::size_t combos = 1;
    for (std::size_t k = 0; k < open; ++k) combos *= 4;
    for (std::size_t code = 0; code < combos; ++code) {
      ServerAssignment a{rw, std::vector<ModelOp>(kOps)};
      for (std::size_t i = 1; i < rw; ++i) {
        a.ops[i - 1].server = ServerOpState::kReleased;
      }
      std::size_t rest = code;
      for (std::size_t k = 0; k < open; ++k, rest /= 4) {
        ModelOp& op = a.ops[rw - 1 + k];
        switch (rest % 4) {
          case 0:
            break;
          case 1:
            op.server = ServerOpState::kReceived;
            op.received_incarnation = kServerIncarnation;
            break;
          case 2:
            op.server = ServerOpState::kReceived;
            op.received_incarnation = kServerIncarnation - 1;
            break;
          case 3:
            op.server = ServerOpState::kExecuted;
            op.received_incarnation = 1;
            break;
        }
      }
      out.push_back(a);
    }
  }
  return out;
}

std::vector<DecisionContext> AllContexts() {
  std::vector<DecisionContext> out;
  for (int bits = 0; bits < 16; ++bits) {
    for (InDoubtPolicy p :
         {InDoubtPolicy::kReexecute, InDoubtPolicy::kResolveHook,
          InDoubtPolicy::kAnswerInDoubt}) {
      DecisionContext ctx;
      ctx.client_journal_lost = bits & 1;
      ctx.server_journal_lost = bits & 2;
      ctx.grace_period = bits & 4;
      ctx.idempotent = bits & 8;
      ctx.policy = p;
      out.push_back(ctx);
    }
  }
  return out;
}

// Safety properties of one decision, given what the server really held.
void CheckSafety(const OpDecision& d, const ModelOp& op,
                 const DecisionContext& ctx) {
  const bool server_has_it = op.server != ServerOpState::kNone;
  const bool may_reexecute =
      ctx.idempotent || ctx.policy == InDoubtPolicy::kReexecute;
  // An executed (or released) operation is never executed again.
  if (op.server == ServerOpState::kExecuted ||
      op.server == ServerOpState::kReleased) {
    EXPECT_NE(d.action, Action::kResendRequest);
    EXPECT_NE(d.action, Action::kReexecute);
    EXPECT_NE(d.action, Action::kResolve);
  }
  // A request the server may be running now is not sent again.
  if (op.server == ServerOpState::kReceived &&
      op.received_incarnation == kServerIncarnation) {
    EXPECT_NE(d.action, Action::kResendRequest);
    EXPECT_NE(d.action, Action::kReexecute);
  }
  // Re-execution only where the service allowed it.
  if (d.action == Action::kReexecute) {
    EXPECT_TRUE(may_reexecute);
  }
  // A request is resent only to a server that has no record of it; a
  // response only by a server that has one. Never both for one operation.
  if (d.action == Action::kResendRequest) {
    EXPECT_FALSE(server_has_it);
  }
  if (d.action == Action::kResendResponse) {
    EXPECT_EQ(op.server, ServerOpState::kExecuted);
  }
  // A server's lost journal never reads as "request lost". (A client with a
  // lost journal resends only requests its new journal holds.)
  if (ctx.server_journal_lost) {
    EXPECT_NE(d.breakpoint, Breakpoint::kRequestLost);
  }
  if (ctx.server_journal_lost && !ctx.idempotent) {
    EXPECT_NE(d.action, Action::kResendRequest);
  }
  // Nobody acts on what nobody could act on.
  if (d.action == Action::kKeepOrphan) {
    EXPECT_TRUE(op.client == ClientOpState::kNone || ctx.client_journal_lost);
  }
}

// Carries out one round of decisions on the model. Returns false when every
// operation is settled (kNone or kKeepOrphan).
bool Apply(const SessionDecision& decision, Model& m) {
  bool acted = false;
  for (const OpDecision& d : decision.ops) {
    ModelOp& op = m.ops[d.seq - 1];
    switch (d.action) {
      case Action::kNone:
      case Action::kKeepOrphan:
        break;
      case Action::kWait:
        // Time passes: a running handler finishes; a grace period ends.
        if (op.server == ServerOpState::kReceived) {
          op.server = ServerOpState::kExecuted;
        }
        acted = true;
        break;
      case Action::kResendRequest:
        op.server = ServerOpState::kExecuted;
        op.received_incarnation = kServerIncarnation;
        ++op.decided_executions;
        acted = true;
        break;
      case Action::kReexecute:
        op.server = ServerOpState::kExecuted;
        ++op.decided_executions;
        acted = true;
        break;
      case Action::kResolve:
        // The stored answer comes from the resolve hook: the handler does
        // not run.
        op.server = ServerOpState::kExecuted;
        acted = true;
        break;
      case Action::kAnswerInDoubt:
        // A held operation gets a journaled IN_DOUBT answer, sent as a
        // response; one already released is answered without a record.
        if (op.server == ServerOpState::kReleased) {
          op.client = ClientOpState::kCompleted;
        } else {
          if (op.server == ServerOpState::kNone) {
            op.received_incarnation = kServerIncarnation;
          }
          op.server = ServerOpState::kExecuted;
        }
        acted = true;
        break;
      case Action::kResendResponse:
        op.client = ClientOpState::kCompleted;
        acted = true;
        break;
      case Action::kRelease:
        op.server = ServerOpState::kNone;
        acted = true;
        break;
    }
  }
  // The server releases everything below the client's watermark.
  for (Seq seq = m.released_watermark; seq < decision.release_below; ++seq) {
    m.ops[seq - 1].server = ServerOpState::kReleased;
  }
  if (decision.release_below > m.released_watermark) {
    m.released_watermark = decision.release_below;
    acted = true;
  }
  return acted;
}

struct UniverseStats {
  long cases = 0;
  long decisions = 0;
  std::map<Action, long> actions;
};

TEST(BreakpointUniverse, EveryCombinationIsSafeAndConverges) {
  const auto clients = AllClientAssignments();
  const auto servers = AllServerAssignments();
  const auto contexts = AllContexts();
  UniverseStats stats;

  for (const auto& client : clients) {
    for (const auto& server : servers) {
      for (const DecisionContext& ctx0 : contexts) {
        Model m;
        m.ops = server.ops;
        m.released_watermark = server.released_watermark;
        m.next_seq = 1;
        for (std::size_t i = 0; i < kOps; ++i) {
          m.ops[i].client = client[i];
          if (client[i] != ClientOpState::kNone) m.next_seq = i + 2;
        }
        // A server can hold as released only what the client completed,
        // unless the client lost its journal; the vectors do not forbid the
        // other cases, so they stay in the universe.
        const Model initial = m;
        ++stats.cases;

        DecisionContext ctx = ctx0;
        int rounds = 0;
        for (;; ++rounds) {
          ASSERT_LT(rounds, 8) << "no convergence";
          const ClientVector cv = m.ClientVec();
          const ServerVector sv = m.ServerVec();
          ASSERT_TRUE(cv.Validate().ok()) << cv.Validate().ToString();
          ASSERT_TRUE(sv.Validate().ok()) << sv.Validate().ToString();
          const SessionDecision d = Decide(cv, sv, ctx);
          // Exactly the seqs either side mentions, once each, in order.
          Seq previous = 0;
          for (const OpDecision& op : d.ops) {
            ASSERT_GT(op.seq, previous);
            previous = op.seq;
            ++stats.decisions;
            ++stats.actions[op.action];
            ModelOp truth = m.ops[op.seq - 1];
            CheckSafety(op, truth, ctx);
            if (HasFailure()) {
              FAIL() << "seq " << op.seq << " client "
                     << ClientOpStateName(truth.client) << " server "
                     << ServerOpStateName(truth.server) << " -> "
                     << BreakpointName(op.breakpoint) << "/"
                     << ActionName(op.action) << " round " << rounds;
            }
          }
          if (!Apply(d, m)) break;
          // After the first exchange, the fresh journals have records and the
          // grace period is over.
          ctx.client_journal_lost = false;
          ctx.server_journal_lost = false;
          ctx.grace_period = false;
        }

        for (std::size_t i = 0; i < kOps; ++i) {
          const ModelOp& before = initial.ops[i];
          const ModelOp& after = m.ops[i];
          // Executed before: never executed again.
          if (before.server == ServerOpState::kExecuted ||
              before.server == ServerOpState::kReleased ||
              (before.server == ServerOpState::kReceived &&
               before.received_incarnation == kServerIncarnation)) {
            ASSERT_EQ(after.decided_executions, 0);
          }
          ASSERT_LE(after.decided_executions, 1);
          // Every operation the client holds ends completed: nothing is lost.
          if (before.client != ClientOpState::kNone) {
            ASSERT_EQ(after.client, ClientOpState::kCompleted)
                << "seq " << i + 1;
          }
          // What the client has completed, the server no longer holds.
          if (after.client == ClientOpState::kCompleted) {
            ASSERT_NE(after.server, ServerOpState::kReceived)
                << "seq " << i + 1;
            ASSERT_NE(after.server, ServerOpState::kExecuted)
                << "seq " << i + 1;
          }
        }
      }
    }
  }
  // The universe really covers the table: every action occurs.
  for (Action a :
       {Action::kNone, Action::kWait, Action::kResendRequest,
        Action::kResendResponse, Action::kRelease, Action::kReexecute,
        Action::kResolve, Action::kAnswerInDoubt, Action::kKeepOrphan}) {
    EXPECT_GT(stats.actions[a], 0) << ActionName(a);
  }
  EXPECT_GT(stats.cases, 500000);
}

// ---- Decide() is DecideOp() over the merged vectors -----------------------

TEST(BreakpointProperty, SessionDecisionMatchesPerOperationDecision) {
  std::mt19937_64 rng(20261126);
  for (int round = 0; round < 2000; ++round) {
    const Seq n = 1 + rng() % 300;
    ClientVector c{"s", 1, 1, n + 1, 1, {}, {}};
    c.completed_watermark = 1 + rng() % (n + 1);
    for (Seq seq = c.completed_watermark; seq <= n; ++seq) {
      switch (rng() % 3) {
        case 0:
          c.pending.push_back(seq);
          break;
        case 1:
          c.completed.push_back(seq);
          break;
        default:
          break;  // forgotten after completion
      }
    }
    ServerVector s{"srv", 3, 1, "s", 1 + rng() % (n + 10), {}};
    for (Seq seq = s.released_watermark; seq <= n + 10; ++seq) {
      switch (rng() % 4) {
        case 0:
          s.held.push_back({seq, ServerOpState::kReceived, 1 + rng() % 3});
          break;
        case 1:
          s.held.push_back({seq, ServerOpState::kExecuted, 1 + rng() % 3});
          break;
        default:
          break;
      }
    }
    ASSERT_TRUE(c.Validate().ok());
    ASSERT_TRUE(s.Validate().ok());
    DecisionContext ctx;
    ctx.idempotent = rng() % 2;
    ctx.grace_period = rng() % 2;
    ctx.server_journal_lost = rng() % 2;
    ctx.policy = static_cast<InDoubtPolicy>(1 + rng() % 3);

    const SessionDecision d = Decide(c, s, ctx);
    EXPECT_EQ(d.release_below, c.completed_watermark);
    std::vector<Seq> mentioned;
    for (Seq seq = 1; seq <= n + 10; ++seq) {
      const bool client_lists =
          std::binary_search(c.pending.begin(), c.pending.end(), seq) ||
          std::binary_search(c.completed.begin(), c.completed.end(), seq);
      if (client_lists || s.Find(seq) != nullptr) mentioned.push_back(seq);
    }
    ASSERT_EQ(d.ops.size(), mentioned.size());
    for (std::size_t i = 0; i < mentioned.size(); ++i) {
      const Seq seq = mentioned[i];
      const HeldOp* held = s.Find(seq);
      ServerOpView view{s.StateOf(seq),
                        held != nullptr &&
                            held->state == ServerOpState::kReceived &&
                            held->received_incarnation < s.incarnation};
      EXPECT_EQ(d.ops[i], DecideOp(seq, c.StateOf(seq), view, ctx));
    }
  }
}

TEST(BreakpointNames, EveryValueHasAName) {
  for (int b = 0; b <= 8; ++b) {
    EXPECT_NE(BreakpointName(static_cast<Breakpoint>(b)), "invalid");
  }
  for (int a = 0; a <= 8; ++a) {
    EXPECT_NE(ActionName(static_cast<Action>(a)), "invalid");
  }
  EXPECT_EQ(ActorOf(Action::kResendRequest), Actor::kClient);
  EXPECT_EQ(ActorOf(Action::kResendResponse), Actor::kServer);
  EXPECT_EQ(ActorOf(Action::kWait), Actor::kNobody);
}

}  // namespace
}  // namespace rejoin
