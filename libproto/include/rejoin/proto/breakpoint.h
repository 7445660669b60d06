// The breakpoint decision: a pure function from a client's and a server's state
// vectors for one session, plus context, to what each party must do for each
// operation (DESIGN.md §4, PROTOCOL.md §6). No I/O, no clock, no randomness:
// the same inputs always give the same decisions.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "rejoin/proto/state_vector.h"
#include "rejoin/proto/types.h"

namespace rejoin {

// Where the exchange of records broke off (wire, inside RECOVER).
enum class Breakpoint : std::uint8_t {
  kConsistent = 0,        // both sides agree; nothing is missing
  kRequestLost = 1,       // client holds the request, server never saw it
  kStillExecuting = 2,    // server received it in this incarnation
  kExecutionInDoubt = 3,  // server received it, then restarted
  kResponseLost = 4,      // server executed it, client has no response
  kAckLost = 5,           // client completed it, server still holds it
  kOrphanResponse = 6,    // server holds it, client has no record of it
  kUnknown = 7,           // client pending, server's memory of it is gone
  kAwaitingGrace = 8,     // broker restarted; servers may still report it
};

// What to do about it (wire, inside RECOVER). Each action names one actor;
// no decision ever asks both parties to resend.
enum class Action : std::uint8_t {
  kNone = 0,            // nothing to do
  kWait = 1,            // server is executing; the response will come
  kResendRequest = 2,   // client resends the journaled request
  kResendResponse = 3,  // server resends the stored response
  kRelease = 4,         // server releases: the client has the outcome
  kReexecute = 5,       // server re-runs the handler (in-doubt, idempotent)
  kResolve = 6,         // server asks the application's resolve hook
  kAnswerInDoubt = 7,   // server answers IN_DOUBT and journals that answer
  kKeepOrphan = 8,      // server keeps the response until session expiry
};

std::string_view BreakpointName(Breakpoint b);
std::string_view ActionName(Action a);

// Who carries out an action: the client, the server, or nobody.
enum class Actor : std::uint8_t { kNobody = 0, kClient = 1, kServer = 2 };
Actor ActorOf(Action a);

// A probe of one operation that got the same server answer this many times
// in a row ends in a decision that needs nothing more from the server
// (DecisionContext::same_answers, FLOWS.md §4): no operation is probed for
// ever.
inline constexpr std::uint32_t kMaxSameProbeAnswers = 16;

// Facts about the two parties that the vectors alone do not carry. The I/O
// shell (the broker) derives them from hellos, journal ids and its timers.
struct DecisionContext {
  // The client's journal id differs from the one the server knew for the
  // session: the client's "no record" means forgotten, not never issued.
  bool client_journal_lost = false;
  // The server's journal is new (or differs from the one that was dispatched
  // to): its "no record" means forgotten, not never received.
  bool server_journal_lost = false;
  // The broker restarted recently and not every server has reported yet: a
  // pending operation the server does not hold may be held elsewhere.
  bool grace_period = false;
  // The service declared its handler idempotent.
  bool idempotent = false;
  // What the service does with operations whose execution is in doubt.
  InDoubtPolicy policy = InDoubtPolicy::kAnswerInDoubt;
  // The broker's probes of this one operation got the same server answer
  // (state and restart flag) this many times in a row, this one included; 0
  // outside probes. At kMaxSameProbeAnswers the actions already asked of
  // the parties evidently change nothing: any answer but `still_executing`
  // (the server is running the handler, and its liveness governs that) is
  // decided `unknown` / `answer_in_doubt`, which the broker carries out
  // itself (FLOWS.md §4).
  std::uint32_t same_answers = 0;

  bool operator==(const DecisionContext&) const = default;
};

// The server's view of one operation, as the decision sees it.
struct ServerOpView {
  ServerOpState state = ServerOpState::kNone;
  // Only for kReceived: the server restarted since it journaled RECEIVED.
  bool restarted_since_received = false;
};

struct OpDecision {
  Seq seq = 0;
  Breakpoint breakpoint = Breakpoint::kConsistent;
  Action action = Action::kNone;
  bool operator==(const OpDecision&) const = default;
};

struct SessionDecision {
  // One entry per seq that either side mentions (pending, completed above the
  // watermark, or held), strictly increasing by seq, kNone entries included.
  std::vector<OpDecision> ops;
  // The server may release every seq below this (the client's completed
  // watermark) that it still holds, and raise its released watermark to it.
  Seq release_below = 1;
};

// The decision for one operation.
OpDecision DecideOp(Seq seq, ClientOpState client, ServerOpView server,
                    const DecisionContext& ctx);

// The decision for every operation either vector mentions. Both vectors must
// be for the same session and pass Validate(); the result is undefined
// otherwise (the codec rejects invalid vectors before they get here).
// O(n) in the number of entries in both vectors.
SessionDecision Decide(const ClientVector& client, const ServerVector& server,
                       const DecisionContext& ctx);

}  // namespace rejoin
