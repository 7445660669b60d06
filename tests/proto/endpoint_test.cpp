// The endpoint connection state machine (FLOWS.md §1.1): every state meets
// every event, and the resulting state, actions, timer and return flag are
// checked against the table below; then the timers' values and the branches
// a single canonical input cannot reach. No sockets, no clock: time is an
// input.
#include "rejoin/proto/endpoint.h"

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "rejoin/proto/messages.h"

namespace rejoin {
namespace {

using namespace std::chrono_literals;
using A = EndpointAction;
using E = EndpointEvent;
using S = EndpointState;
using T = EndpointTimer;
using Machine = EndpointMachine;
using TimePoint = Machine::TimePoint;

constexpr Epoch kEpoch = 5;
constexpr Epoch kNewEpoch = 6;
constexpr std::uint64_t kSeed = 42;
const TimePoint kStart = TimePoint{} + 1h;
const TimePoint kLater = kStart + 10s;  // every timer is due

std::uint16_t Set(std::initializer_list<A> actions) {
  std::uint16_t bits = 0;
  for (A a : actions) bits |= static_cast<std::uint16_t>(a);
  return bits;
}

Machine::Input At(E event, TimePoint now) {
  Machine::Input in;
  in.event = event;
  in.now = now;
  in.epoch = kEpoch;
  in.heartbeat = 100ms;
  // Nothing heard or sent since the machine was set up.
  in.last_heard = kStart;
  in.last_sent = kStart;
  return in;
}

// A machine brought into `state` by the events an I/O loop would feed it.
Machine In(S state) {
  Machine m(EndpointTimers{}, /*returning=*/false, kSeed);
  auto feed = [&](std::initializer_list<E> events) {
    for (E e : events) (void)m.Step(At(e, kStart));
  };
  switch (state) {
    case S::kNoLink:
      break;
    case S::kConnecting:
      feed({E::kLinkOpened});
      break;
    case S::kHelloSent:
      feed({E::kLinkOpened, E::kHelloLeft});
      break;
    case S::kRefused:
      feed({E::kLinkOpened, E::kHelloLeft, E::kRefused});
      break;
    case S::kFenced:
      feed({E::kLinkOpened, E::kHelloLeft, E::kFenced});
      break;
    case S::kDenied:
      feed({E::kLinkOpened, E::kHelloLeft, E::kDenied});
      break;
    case S::kWelcomed:
      feed({E::kLinkOpened, E::kHelloLeft, E::kWelcome});
      break;
    case S::kClosed:
      feed({E::kLinkOpened, E::kStop});
      break;
  }
  EXPECT_EQ(m.state(), state);
  return m;
}

struct Cell {
  S from;
  E event;
  S to;
  std::uint16_t actions;
  T timer;
  bool returning;
};

// The canonical inputs: WELCOME names the epoch the machine knows (kEpoch),
// HEARTBEAT a new one (kNewEpoch); the timer step comes 10 s after the
// machine was set up, with nothing heard or sent since.
const std::vector<Cell>& Table() {
  static const std::vector<Cell> table = {
      // --- kNoLink: only a socket, the timer and the stop matter.
      {S::kNoLink, E::kLinkOpened, S::kConnecting, Set({A::kSendHello}),
       T::kHello, false},
      {S::kNoLink, E::kLinkOpenFailed, S::kNoLink, 0, T::kRelink, false},
      {S::kNoLink, E::kLinkUp, S::kNoLink, 0, T::kRelink, false},
      {S::kNoLink, E::kLinkDown, S::kNoLink, 0, T::kRelink, false},
      {S::kNoLink, E::kLinkClosed, S::kNoLink, 0, T::kRelink, false},
      {S::kNoLink, E::kHelloLeft, S::kNoLink, 0, T::kRelink, false},
      {S::kNoLink, E::kHelloBlocked, S::kNoLink, 0, T::kRelink, false},
      {S::kNoLink, E::kHelloNoPeer, S::kNoLink, 0, T::kRelink, false},
      {S::kNoLink, E::kWelcome, S::kNoLink, 0, T::kRelink, false},
      {S::kNoLink, E::kHeartbeat, S::kNoLink, 0, T::kRelink, false},
      {S::kNoLink, E::kUnknownSession, S::kNoLink, 0, T::kRelink, false},
      {S::kNoLink, E::kRefused, S::kNoLink, 0, T::kRelink, false},
      {S::kNoLink, E::kFenced, S::kNoLink, 0, T::kRelink, false},
      {S::kNoLink, E::kDenied, S::kNoLink, 0, T::kRelink, false},
      {S::kNoLink, E::kGoodbye, S::kNoLink, 0, T::kRelink, false},
      {S::kNoLink, E::kTimer, S::kNoLink, Set({A::kOpenLink}), T::kRelink,
       false},
      {S::kNoLink, E::kDrain, S::kNoLink, 0, T::kNone, false},
      {S::kNoLink, E::kStop, S::kClosed, 0, T::kNone, false},

      // --- kConnecting: a socket without a HELLO on it.
      {S::kConnecting, E::kLinkOpened, S::kConnecting, Set({A::kSendHello}),
       T::kHello, false},
      {S::kConnecting, E::kLinkOpenFailed, S::kNoLink, 0, T::kRelink, false},
      {S::kConnecting, E::kLinkUp, S::kConnecting, Set({A::kSendHello}),
       T::kHello, false},
      {S::kConnecting, E::kLinkDown, S::kConnecting, 0, T::kHello, false},
      {S::kConnecting, E::kLinkClosed, S::kNoLink, Set({A::kDropLink}),
       T::kRelink, false},
      {S::kConnecting, E::kHelloLeft, S::kHelloSent, 0, T::kHelloWait, false},
      {S::kConnecting, E::kHelloBlocked, S::kConnecting, 0, T::kHello, false},
      {S::kConnecting, E::kHelloNoPeer, S::kConnecting, 0, T::kHello, false},
      {S::kConnecting, E::kWelcome, S::kWelcomed, Set({A::kReportWelcomed}),
       T::kLiveness, false},
      {S::kConnecting, E::kHeartbeat, S::kConnecting, 0, T::kHello, false},
      {S::kConnecting, E::kUnknownSession, S::kConnecting, 0, T::kHello, false},
      {S::kConnecting, E::kRefused, S::kRefused, 0, T::kRetry, false},
      {S::kConnecting, E::kFenced, S::kFenced, Set({A::kReportFenced}),
       T::kRetry, false},
      {S::kConnecting, E::kDenied, S::kDenied, Set({A::kReportDenied}),
       T::kRetry, false},
      {S::kConnecting, E::kGoodbye, S::kConnecting, 0, T::kHello, false},
      {S::kConnecting, E::kTimer, S::kConnecting, Set({A::kSendHello}),
       T::kHello, false},
      {S::kConnecting, E::kDrain, S::kConnecting, 0, T::kNone, false},
      {S::kConnecting, E::kStop, S::kClosed, 0, T::kNone, false},

      // --- kHelloSent: waiting for WELCOME.
      {S::kHelloSent, E::kLinkOpened, S::kConnecting, Set({A::kSendHello}),
       T::kHello, false},
      {S::kHelloSent, E::kLinkOpenFailed, S::kNoLink, 0, T::kRelink, false},
      {S::kHelloSent, E::kLinkUp, S::kHelloSent, 0, T::kHelloWait, false},
      {S::kHelloSent, E::kLinkDown, S::kConnecting, 0, T::kHello, false},
      {S::kHelloSent, E::kLinkClosed, S::kNoLink, Set({A::kDropLink}),
       T::kRelink, false},
      {S::kHelloSent, E::kHelloLeft, S::kHelloSent, 0, T::kHelloWait, false},
      {S::kHelloSent, E::kHelloBlocked, S::kHelloSent, 0, T::kHello, false},
      {S::kHelloSent, E::kHelloNoPeer, S::kHelloSent, 0, T::kHello, false},
      {S::kHelloSent, E::kWelcome, S::kWelcomed, Set({A::kReportWelcomed}),
       T::kLiveness, false},
      {S::kHelloSent, E::kHeartbeat, S::kHelloSent, 0, T::kHelloWait, false},
      {S::kHelloSent, E::kUnknownSession, S::kHelloSent, 0, T::kHelloWait,
       false},
      {S::kHelloSent, E::kRefused, S::kRefused, 0, T::kRetry, false},
      {S::kHelloSent, E::kFenced, S::kFenced, Set({A::kReportFenced}),
       T::kRetry, false},
      {S::kHelloSent, E::kDenied, S::kDenied, Set({A::kReportDenied}),
       T::kRetry, false},
      {S::kHelloSent, E::kGoodbye, S::kConnecting, 0, T::kHello, false},
      // Nothing heard since the HELLO for a peer timeout: a new socket.
      {S::kHelloSent, E::kTimer, S::kNoLink, Set({A::kReplaceLink}), T::kRelink,
       false},
      {S::kHelloSent, E::kDrain, S::kHelloSent, 0, T::kNone, false},
      {S::kHelloSent, E::kStop, S::kClosed, 0, T::kNone, false},

      // --- kRefused: duplicate_identity or limit_exceeded, retrying.
      {S::kRefused, E::kLinkOpened, S::kConnecting, Set({A::kSendHello}),
       T::kHello, false},
      {S::kRefused, E::kLinkOpenFailed, S::kNoLink, 0, T::kRelink, false},
      {S::kRefused, E::kLinkUp, S::kRefused, 0, T::kRetry, false},
      {S::kRefused, E::kLinkDown, S::kConnecting, 0, T::kHello, false},
      {S::kRefused, E::kLinkClosed, S::kNoLink, Set({A::kDropLink}), T::kRelink,
       false},
      {S::kRefused, E::kHelloLeft, S::kHelloSent, 0, T::kHelloWait, false},
      {S::kRefused, E::kHelloBlocked, S::kRefused, 0, T::kRetry, false},
      {S::kRefused, E::kHelloNoPeer, S::kRefused, 0, T::kRetry, false},
      {S::kRefused, E::kWelcome, S::kWelcomed, Set({A::kReportWelcomed}),
       T::kLiveness, false},
      {S::kRefused, E::kHeartbeat, S::kRefused, 0, T::kRetry, false},
      {S::kRefused, E::kUnknownSession, S::kRefused, 0, T::kRetry, false},
      {S::kRefused, E::kRefused, S::kRefused, 0, T::kRetry, false},
      {S::kRefused, E::kFenced, S::kFenced, Set({A::kReportFenced}), T::kRetry,
       false},
      {S::kRefused, E::kDenied, S::kDenied, Set({A::kReportDenied}), T::kRetry,
       false},
      {S::kRefused, E::kGoodbye, S::kConnecting, 0, T::kHello, false},
      {S::kRefused, E::kTimer, S::kRefused, Set({A::kSendHello}), T::kRetry,
       false},
      {S::kRefused, E::kDrain, S::kRefused, 0, T::kNone, false},
      {S::kRefused, E::kStop, S::kClosed, 0, T::kNone, false},

      // --- kFenced: sticky until WELCOME, a refusal or a lost socket.
      {S::kFenced, E::kLinkOpened, S::kFenced, 0, T::kRetry, false},
      {S::kFenced, E::kLinkOpenFailed, S::kNoLink, 0, T::kRelink, false},
      {S::kFenced, E::kLinkUp, S::kFenced, 0, T::kRetry, false},
      {S::kFenced, E::kLinkDown, S::kFenced, 0, T::kRetry, false},
      {S::kFenced, E::kLinkClosed, S::kNoLink, Set({A::kDropLink}), T::kRelink,
       false},
      {S::kFenced, E::kHelloLeft, S::kFenced, 0, T::kRetry, false},
      {S::kFenced, E::kHelloBlocked, S::kFenced, 0, T::kRetry, false},
      {S::kFenced, E::kHelloNoPeer, S::kFenced, 0, T::kRetry, false},
      {S::kFenced, E::kWelcome, S::kWelcomed, Set({A::kReportWelcomed}),
       T::kLiveness, false},
      {S::kFenced, E::kHeartbeat, S::kFenced, 0, T::kRetry, false},
      {S::kFenced, E::kUnknownSession, S::kFenced, 0, T::kRetry, false},
      {S::kFenced, E::kRefused, S::kRefused, 0, T::kRetry, false},
      // Reported once, not per refusal.
      {S::kFenced, E::kFenced, S::kFenced, 0, T::kRetry, false},
      {S::kFenced, E::kDenied, S::kDenied, Set({A::kReportDenied}), T::kRetry,
       false},
      {S::kFenced, E::kGoodbye, S::kFenced, 0, T::kRetry, false},
      {S::kFenced, E::kTimer, S::kFenced, Set({A::kSendHello}), T::kRetry,
       false},
      {S::kFenced, E::kDrain, S::kFenced, 0, T::kNone, false},
      {S::kFenced, E::kStop, S::kClosed, 0, T::kNone, false},

      // --- kDenied: not authorized; like kFenced, asking again rarely (the
      // broker re-reads its keys file on SIGHUP).
      {S::kDenied, E::kLinkOpened, S::kDenied, 0, T::kRetry, false},
      {S::kDenied, E::kLinkOpenFailed, S::kNoLink, 0, T::kRelink, false},
      {S::kDenied, E::kLinkUp, S::kDenied, 0, T::kRetry, false},
      {S::kDenied, E::kLinkDown, S::kDenied, 0, T::kRetry, false},
      {S::kDenied, E::kLinkClosed, S::kNoLink, Set({A::kDropLink}), T::kRelink,
       false},
      {S::kDenied, E::kHelloLeft, S::kDenied, 0, T::kRetry, false},
      {S::kDenied, E::kHelloBlocked, S::kDenied, 0, T::kRetry, false},
      {S::kDenied, E::kHelloNoPeer, S::kDenied, 0, T::kRetry, false},
      {S::kDenied, E::kWelcome, S::kWelcomed, Set({A::kReportWelcomed}),
       T::kLiveness, false},
      {S::kDenied, E::kHeartbeat, S::kDenied, 0, T::kRetry, false},
      {S::kDenied, E::kUnknownSession, S::kDenied, 0, T::kRetry, false},
      {S::kDenied, E::kRefused, S::kRefused, 0, T::kRetry, false},
      {S::kDenied, E::kFenced, S::kFenced, Set({A::kReportFenced}), T::kRetry,
       false},
      // Reported once, not per refusal.
      {S::kDenied, E::kDenied, S::kDenied, 0, T::kRetry, false},
      {S::kDenied, E::kGoodbye, S::kDenied, 0, T::kRetry, false},
      {S::kDenied, E::kTimer, S::kDenied, Set({A::kSendHello}), T::kRetry,
       false},
      {S::kDenied, E::kDrain, S::kDenied, 0, T::kNone, false},
      {S::kDenied, E::kStop, S::kClosed, 0, T::kNone, false},

      // --- kWelcomed: every way out of it is a loss, and then a return.
      {S::kWelcomed, E::kLinkOpened, S::kConnecting,
       Set({A::kReportLost, A::kSendHello}), T::kHello, true},
      {S::kWelcomed, E::kLinkOpenFailed, S::kNoLink, Set({A::kReportLost}),
       T::kRelink, true},
      {S::kWelcomed, E::kLinkUp, S::kWelcomed, 0, T::kLiveness, false},
      {S::kWelcomed, E::kLinkDown, S::kConnecting, Set({A::kReportLost}),
       T::kHello, true},
      {S::kWelcomed, E::kLinkClosed, S::kNoLink,
       Set({A::kReportLost, A::kDropLink}), T::kRelink, true},
      {S::kWelcomed, E::kHelloLeft, S::kWelcomed, 0, T::kLiveness, false},
      {S::kWelcomed, E::kHelloBlocked, S::kWelcomed, 0, T::kLiveness, false},
      {S::kWelcomed, E::kHelloNoPeer, S::kWelcomed, 0, T::kLiveness, false},
      {S::kWelcomed, E::kWelcome, S::kWelcomed, Set({A::kReportWelcomed}),
       T::kLiveness, false},
      {S::kWelcomed, E::kHeartbeat, S::kConnecting,
       Set({A::kReportLost, A::kSendHello}), T::kHello, true},
      {S::kWelcomed, E::kUnknownSession, S::kConnecting,
       Set({A::kReportLost, A::kSendHello}), T::kHello, true},
      // The answer to a HELLO it no longer waits for.
      {S::kWelcomed, E::kRefused, S::kWelcomed, 0, T::kLiveness, false},
      {S::kWelcomed, E::kFenced, S::kFenced,
       Set({A::kReportLost, A::kReportFenced}), T::kRetry, true},
      // The answer to a HELLO it no longer waits for.
      {S::kWelcomed, E::kDenied, S::kWelcomed, 0, T::kLiveness, false},
      {S::kWelcomed, E::kGoodbye, S::kConnecting, Set({A::kReportLost}),
       T::kHello, true},
      // Silent for a peer timeout: the broker is presumed dead.
      {S::kWelcomed, E::kTimer, S::kNoLink,
       Set({A::kReportLost, A::kReplaceLink}), T::kRelink, true},
      {S::kWelcomed, E::kDrain, S::kWelcomed, 0, T::kLiveness, false},
      {S::kWelcomed, E::kStop, S::kClosed, Set({A::kSendGoodbye}), T::kNone,
       false},

      // --- kClosed: the end.
      {S::kClosed, E::kLinkOpened, S::kClosed, 0, T::kNone, false},
      {S::kClosed, E::kLinkOpenFailed, S::kClosed, 0, T::kNone, false},
      {S::kClosed, E::kLinkUp, S::kClosed, 0, T::kNone, false},
      {S::kClosed, E::kLinkDown, S::kClosed, 0, T::kNone, false},
      {S::kClosed, E::kLinkClosed, S::kClosed, 0, T::kNone, false},
      {S::kClosed, E::kHelloLeft, S::kClosed, 0, T::kNone, false},
      {S::kClosed, E::kHelloBlocked, S::kClosed, 0, T::kNone, false},
      {S::kClosed, E::kHelloNoPeer, S::kClosed, 0, T::kNone, false},
      {S::kClosed, E::kWelcome, S::kClosed, 0, T::kNone, false},
      {S::kClosed, E::kHeartbeat, S::kClosed, 0, T::kNone, false},
      {S::kClosed, E::kUnknownSession, S::kClosed, 0, T::kNone, false},
      {S::kClosed, E::kRefused, S::kClosed, 0, T::kNone, false},
      {S::kClosed, E::kFenced, S::kClosed, 0, T::kNone, false},
      {S::kClosed, E::kDenied, S::kClosed, 0, T::kNone, false},
      {S::kClosed, E::kGoodbye, S::kClosed, 0, T::kNone, false},
      {S::kClosed, E::kTimer, S::kClosed, 0, T::kNone, false},
      {S::kClosed, E::kDrain, S::kClosed, 0, T::kNone, false},
      {S::kClosed, E::kStop, S::kClosed, 0, T::kNone, false},
  };
  return table;
}

std::string Describe(std::uint16_t actions) {
  static constexpr std::array<const char*, 12> kNames = {
      "drop_link",
      "replace_link",
      "open_link",
      "report_lost",
      "report_broker_returned",
      "report_welcomed",
      "report_fenced",
      "send_hello",
      "send_state_exchange",
      "send_heartbeat",
      "send_goodbye",
      "report_denied"};
  std::string out = "{";
  for (std::size_t i = 0; i < kNames.size(); ++i) {
    if ((actions & (1u << i)) == 0) continue;
    if (out.size() > 1) out += ",";
    out += kNames[i];
  }
  return out + "}";
}

TEST(EndpointMachine, EveryStateAnswersEveryEventAsTheTableSays) {
  const auto& table = Table();
  ASSERT_EQ(table.size(),
            static_cast<std::size_t>(kEndpointStates * kEndpointEvents));
  // Each (state, event) exactly once, in order.
  for (int s = 0; s < kEndpointStates; ++s) {
    for (int e = 0; e < kEndpointEvents; ++e) {
      const Cell& c = table[static_cast<std::size_t>(s * kEndpointEvents + e)];
      ASSERT_EQ(static_cast<int>(c.from), s);
      ASSERT_EQ(static_cast<int>(c.event), e);
    }
  }
  for (const Cell& c : table) {
    SCOPED_TRACE(std::string(EndpointStateName(c.from)) + " x " +
                 std::string(EndpointEventName(c.event)));
    Machine m = In(c.from);
    Machine::Input in = At(c.event, kLater);
    if (c.event == E::kHeartbeat) in.epoch = kNewEpoch;
    const Machine::Output out = m.Step(in);
    EXPECT_EQ(EndpointStateName(m.state()), EndpointStateName(c.to));
    EXPECT_EQ(Describe(out.actions), Describe(c.actions));
    EXPECT_EQ(static_cast<int>(m.timer()), static_cast<int>(c.timer));
    EXPECT_EQ(m.returning(), c.returning);
  }
}

// --- Timers (FLOWS.md §1 table) ------------------------------------------

TEST(EndpointTimers, UnansweredHelloIsSentAgainAfterOneInterval) {
  Machine m = In(S::kHelloSent);
  // One heartbeat interval, well inside the grace period of a broker that
  // just started: a lost HELLO or WELCOME does not keep a server from
  // reporting within it.
  EXPECT_EQ(m.due(), kStart + 100ms);
  Machine::Input in = At(E::kTimer, kStart + 100ms);
  in.last_heard = kStart;  // nothing heard since
  EXPECT_EQ(Describe(m.Step(in).actions), Describe(Set({A::kSendHello})));
  EXPECT_EQ(m.state(), S::kHelloSent);
  // The next wait is twice as long, up to the peer timeout; the connection
  // is replaced once a peer timeout passed since the first HELLO with
  // nothing heard.
  (void)m.Step(At(E::kHelloLeft, kStart + 100ms));
  EXPECT_EQ(m.due(), kStart + 300ms);
  in = At(E::kTimer, kStart + 300ms);
  in.last_heard = kStart;
  EXPECT_EQ(Describe(m.Step(in).actions), Describe(Set({A::kReplaceLink})));
  EXPECT_EQ(m.state(), S::kNoLink);
}

TEST(EndpointTimers, HelloWaitDoublesUpToThePeerTimeoutOnAWorkingConnection) {
  Machine m = In(S::kHelloSent);
  TimePoint now = kStart;
  const std::chrono::milliseconds waits[] = {100ms, 200ms, 300ms, 300ms};
  for (auto w : waits) {
    EXPECT_EQ(m.due(), now + w);
    now = m.due();
    // Something was heard since the HELLO left (an ERROR, a HEARTBEAT):
    // the connection works, so the HELLO is said again on it.
    Machine::Input in = At(E::kTimer, now);
    in.last_heard = kStart + 1ms;
    EXPECT_EQ(Describe(m.Step(in).actions), Describe(Set({A::kSendHello})));
    (void)m.Step(At(E::kHelloLeft, now));
  }
  // A WELCOME, then a new wait for one: it starts again at one interval.
  (void)m.Step(At(E::kWelcome, now));
  (void)m.Step(At(E::kLinkDown, now));
  (void)m.Step(At(E::kHelloLeft, now));
  EXPECT_EQ(m.due(), now + 100ms);
}

TEST(EndpointTimers, HelloTimerDoesNotFireEarly) {
  Machine m = In(S::kHelloSent);
  EXPECT_TRUE(m.Step(At(E::kTimer, kStart + 99ms)).empty());
  EXPECT_EQ(m.state(), S::kHelloSent);
}

TEST(EndpointTimers, RefusalsBackOffFromTenToOneHundredMsWithJitter) {
  Machine m = In(S::kHelloSent);
  const std::chrono::milliseconds base[] = {10ms, 20ms,  40ms,
                                            80ms, 100ms, 100ms};
  TimePoint now = kStart;
  for (auto b : base) {
    (void)m.Step(At(E::kRefused, now));
    ASSERT_EQ(m.timer(), T::kRetry);
    EXPECT_GE(m.due() - now, b);
    EXPECT_LE(m.due() - now, b + b / 4);
    now = m.due();
    EXPECT_EQ(Describe(m.Step(At(E::kTimer, now)).actions),
              Describe(Set({A::kSendHello})));
    (void)m.Step(At(E::kHelloLeft, now));
  }
  // A WELCOME starts the back-off over.
  (void)m.Step(At(E::kWelcome, now));
  (void)m.Step(At(E::kStop, now));
  Machine fresh = In(S::kHelloSent);
  (void)fresh.Step(At(E::kRefused, kStart));
  EXPECT_LE(fresh.due() - kStart, 10ms + 10ms / 4);
}

TEST(EndpointTimers, WelcomeResetsTheRefusalBackOff) {
  Machine m = In(S::kHelloSent);
  for (int i = 0; i < 5; ++i) (void)m.Step(At(E::kRefused, kStart));
  (void)m.Step(At(E::kWelcome, kStart));
  (void)m.Step(At(E::kLinkDown, kStart));
  (void)m.Step(At(E::kHelloLeft, kStart));
  (void)m.Step(At(E::kRefused, kStart));
  EXPECT_LE(m.due() - kStart, 10ms + 10ms / 4);
}

TEST(EndpointTimers, FencedAsksAgainAfterASecond) {
  Machine m = In(S::kFenced);
  EXPECT_GE(m.due() - kStart, 1000ms);
  EXPECT_LE(m.due() - kStart, 1250ms);
  EXPECT_TRUE(m.Step(At(E::kTimer, m.due() - 1ms)).empty());
  const TimePoint at = m.due();
  EXPECT_TRUE(m.Step(At(E::kTimer, at)).Has(A::kSendHello));
  (void)m.Step(At(E::kHelloLeft, at));
  EXPECT_EQ(m.state(), S::kFenced);
  EXPECT_GE(m.due() - at, 1000ms);
}

TEST(EndpointTimers, SameSeedSameJitter) {
  auto dues = [](std::uint64_t seed) {
    Machine m(EndpointTimers{}, false, seed);
    (void)m.Step(At(E::kLinkOpened, kStart));
    std::vector<TimePoint> out;
    for (int i = 0; i < 8; ++i) {
      (void)m.Step(At(E::kFenced, kStart));
      out.push_back(m.due());
    }
    return out;
  };
  EXPECT_EQ(dues(7), dues(7));
  EXPECT_NE(dues(7), dues(8));
}

TEST(EndpointTimers, HelloSocketOutcomes) {
  Machine m = In(S::kConnecting);
  (void)m.Step(At(E::kHelloBlocked, kStart));
  EXPECT_EQ(m.due(), kStart + 10ms);
  (void)m.Step(At(E::kHelloNoPeer, kStart));
  EXPECT_EQ(m.due(), kStart + 100ms);
}

TEST(EndpointTimers, ClosedSocketIsReopenedAfterTheRelinkDelay) {
  Machine m = In(S::kWelcomed);
  (void)m.Step(At(E::kLinkClosed, kStart));
  EXPECT_EQ(m.due(), kStart + 100ms);
  EXPECT_TRUE(m.Step(At(E::kTimer, kStart + 99ms)).empty());
  EXPECT_TRUE(m.Step(At(E::kTimer, kStart + 100ms)).Has(A::kOpenLink));
}

TEST(EndpointTimers, WelcomedSendsHeartbeatWhenIdleAndWakesForIt) {
  Machine m = In(S::kWelcomed);
  Machine::Input in = At(E::kTimer, kStart + 150ms);
  in.last_heard = kStart + 100ms;
  in.last_sent = kStart;
  EXPECT_EQ(Describe(m.Step(in).actions), Describe(Set({A::kSendHeartbeat})));
  in.last_sent = kStart + 100ms;
  EXPECT_TRUE(m.Step(in).empty());
  EXPECT_EQ(m.NextWakeup(kStart + 100ms, kStart + 120ms),
            kStart + 220ms);  // the next heartbeat
  EXPECT_EQ(m.NextWakeup(kStart, kStart + 290ms),
            kStart + 300ms);  // the silence check
}

TEST(EndpointTimers, WelcomeAdoptsTheBrokersHeartbeat) {
  Machine m = In(S::kHelloSent);
  Machine::Input in = At(E::kWelcome, kStart);
  in.heartbeat = 40ms;
  (void)m.Step(in);
  EXPECT_EQ(m.heartbeat(), 40ms);
  EXPECT_EQ(m.peer_timeout(), 120ms);
}

// --- Returns (FLOWS.md §5) -------------------------------------------------

TEST(EndpointReturn, RestartedProcessReturnsAtFirstWelcome) {
  Machine m(EndpointTimers{}, /*returning=*/true, kSeed);
  (void)m.Step(At(E::kLinkOpened, kStart));
  (void)m.Step(At(E::kHelloLeft, kStart));
  const auto out = m.Step(At(E::kWelcome, kStart));
  EXPECT_TRUE(out.Has(A::kSendStateExchange));
  EXPECT_FALSE(out.Has(A::kReportBrokerReturned));
  EXPECT_FALSE(m.returning());
}

TEST(EndpointReturn, RecordsAloneAskForAStateExchange) {
  Machine m = In(S::kHelloSent);
  Machine::Input in = At(E::kWelcome, kStart);
  in.records = true;
  EXPECT_TRUE(m.Step(in).Has(A::kSendStateExchange));
}

TEST(EndpointReturn, NewBrokerEpochInWelcomeIsAReturn) {
  Machine m = In(S::kWelcomed);
  (void)m.Step(At(E::kLinkDown, kStart));
  (void)m.Step(At(E::kLinkUp, kStart));
  (void)m.Step(At(E::kHelloLeft, kStart));
  Machine::Input in = At(E::kWelcome, kStart);
  in.epoch = kNewEpoch;
  const auto out = m.Step(in);
  EXPECT_TRUE(out.Has(A::kReportBrokerReturned));
  EXPECT_TRUE(out.Has(A::kSendStateExchange));
  EXPECT_EQ(m.epoch(), kNewEpoch);
}

TEST(EndpointReturn, ReconnectAfterWelcomeIsAReturnEvenOnTheSameBroker) {
  Machine m = In(S::kWelcomed);
  (void)m.Step(At(E::kLinkDown, kStart));
  (void)m.Step(At(E::kHelloLeft, kStart));
  const auto out = m.Step(At(E::kWelcome, kStart));
  EXPECT_FALSE(out.Has(A::kReportBrokerReturned));
  EXPECT_TRUE(out.Has(A::kSendStateExchange));
}

TEST(EndpointReturn, HeartbeatOfTheSameOrNoEpochChangesNothing) {
  Machine m = In(S::kWelcomed);
  for (Epoch e : {kEpoch, Epoch{0}}) {
    Machine::Input in = At(E::kHeartbeat, kStart);
    in.epoch = e;
    EXPECT_TRUE(m.Step(in).empty());
    EXPECT_EQ(m.state(), S::kWelcomed);
  }
}

// --- Stopping ------------------------------------------------------------

TEST(EndpointDrain, SilentBrokerWhileDrainingDropsTheSocketWithoutANewOne) {
  Machine m = In(S::kWelcomed);
  (void)m.Step(At(E::kDrain, kStart));
  const auto out = m.Step(At(E::kTimer, kLater));
  EXPECT_EQ(Describe(out.actions),
            Describe(Set({A::kReportLost, A::kDropLink})));
  EXPECT_EQ(m.timer(), T::kNone);
  EXPECT_EQ(m.NextWakeup(kLater, kLater), TimePoint::max());
  EXPECT_TRUE(m.Step(At(E::kTimer, kLater + 1h)).empty());
}

TEST(EndpointDrain, NoHelloWhileDraining) {
  Machine m = In(S::kConnecting);
  (void)m.Step(At(E::kDrain, kStart));
  EXPECT_TRUE(m.Step(At(E::kLinkUp, kStart)).empty());
  EXPECT_TRUE(m.Step(At(E::kTimer, kLater)).empty());
}

// Denied: the HELLO is asked again about once a second (plus jitter), never
// faster, also across a reconnect; a WELCOME (the keys file changed) ends
// it.
TEST(EndpointTimers, DeniedAsksAgainRarelyUntilWelcomed) {
  Machine m = In(S::kDenied);
  EXPECT_EQ(m.timer(), T::kRetry);
  EXPECT_GE(m.due(), kStart + 1000ms);
  EXPECT_LE(m.due(), kStart + 1250ms);
  EXPECT_TRUE(m.Step(At(E::kTimer, kStart + 999ms)).empty());
  const TimePoint due = m.due();
  EXPECT_TRUE(m.Step(At(E::kTimer, due)).Has(A::kSendHello));
  (void)m.Step(At(E::kHelloLeft, due));
  EXPECT_GE(m.due(), due + 1000ms);
  // A reconnect does not hurry it.
  EXPECT_FALSE(m.Step(At(E::kLinkDown, due + 10ms)).Has(A::kSendHello));
  EXPECT_FALSE(m.Step(At(E::kLinkUp, due + 20ms)).Has(A::kSendHello));
  EXPECT_EQ(m.state(), S::kDenied);
  EXPECT_TRUE(m.Step(At(E::kWelcome, due + 2s)).Has(A::kReportWelcomed));
  EXPECT_EQ(m.state(), S::kWelcomed);
}

// Which broker ERRORs drive the life cycle, for both libraries.
TEST(EndpointErrors, OnlyAdmissionErrorsAreLifeCycleEvents) {
  auto of = [](ErrorCode code, MessageType ref) {
    Error e;
    e.code = code;
    e.ref_type = static_cast<std::uint8_t>(ref);
    return EndpointEventOf(e);
  };
  EXPECT_EQ(of(ErrorCode::kUnknownSession, MessageType::kRequest),
            EndpointEvent::kUnknownSession);
  EXPECT_EQ(of(ErrorCode::kDuplicateIdentity, MessageType::kHello),
            EndpointEvent::kRefused);
  EXPECT_EQ(of(ErrorCode::kLimitExceeded, MessageType::kHello),
            EndpointEvent::kRefused);
  EXPECT_EQ(of(ErrorCode::kFenced, MessageType::kHello),
            EndpointEvent::kFenced);
  EXPECT_EQ(of(ErrorCode::kNotAuthorized, MessageType::kHello),
            EndpointEvent::kDenied);
  // A bound on a REQUEST is not about the connection.
  EXPECT_EQ(of(ErrorCode::kLimitExceeded, MessageType::kRequest), std::nullopt);
  EXPECT_EQ(of(ErrorCode::kProtocolViolation, MessageType::kAck), std::nullopt);
  EXPECT_EQ(of(ErrorCode::kNotAuthorized, MessageType::kRequest), std::nullopt);
}

}  // namespace
}  // namespace rejoin
