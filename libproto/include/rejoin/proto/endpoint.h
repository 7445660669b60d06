// The connection life cycle of an endpoint (a client session or a server),
// FLOWS.md §1.1: one state machine that both endpoint libraries drive. It
// decides when HELLO goes out, when the endpoint returns (STATE_EXCHANGE),
// when the broker is presumed dead and the connection replaced, and how
// refused HELLOs are retried; the library's I/O loop carries out the actions
// it returns and feeds it what happened.
//
// Pure: the time is an input (no clock reads), nothing here touches a socket,
// and the jitter of retries comes from a generator seeded by the caller, so a
// run replays from its inputs. Not thread-safe; one owner drives it.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

#include "rejoin/proto/types.h"

namespace rejoin {

struct Error;

enum class EndpointState : std::uint8_t {
  kNoLink,      // no socket; one is opened when the relink timer fires
  kConnecting,  // a socket, and no HELLO on it yet
  kHelloSent,   // HELLO left; waiting for WELCOME
  kRefused,     // HELLO refused (duplicate_identity, limit_exceeded): retry
  kFenced,      // HELLO refused as an older incarnation: retry rarely
  kDenied,      // HELLO refused as not authorized: retry rarely
  kWelcomed,    // admitted: messages flow, heartbeats and the silence check
  kClosed,      // left (or failed); every event is ignored
};
inline constexpr int kEndpointStates = 8;

enum class EndpointEvent : std::uint8_t {
  kLinkOpened,      // a new socket (first one, or a replacement)
  kLinkOpenFailed,  // opening a socket failed
  kLinkUp,          // the socket reported its handshake with the broker
  kLinkDown,        // the socket reported the connection lost
  kLinkClosed,      // the socket is unusable: drop it, open another later
  kHelloLeft,       // the HELLO asked for was taken by the socket
  kHelloBlocked,    // ...not taken, though the socket is connected
  kHelloNoPeer,     // ...not taken: no connection (yet)
  kWelcome,         // WELCOME (Input::epoch, heartbeat, records)
  kHeartbeat,       // HEARTBEAT from the broker (Input::epoch)
  kUnknownSession,  // ERROR unknown_session
  kRefused,         // ERROR duplicate_identity or limit_exceeded
  kFenced,          // ERROR fenced
  kDenied,          // ERROR not_authorized in answer to a HELLO
  kGoodbye,         // GOODBYE from the broker
  kTimer,           // time passed (Input::now, last_heard, last_sent)
  kDrain,           // the endpoint is stopping: no reconnecting any more
  kStop,            // the endpoint leaves now
};
inline constexpr int kEndpointEvents = 18;

// The life-cycle event an ERROR from the broker is: unknown_session,
// duplicate_identity, fenced, and, in answer to a HELLO, limit_exceeded (the
// broker holds its maximum of sessions) and not_authorized (the principal
// may not use the id or serve a service it names). Any other ERROR is about
// something else and only worth a log line: nullopt.
std::optional<EndpointEvent> EndpointEventOf(const Error& e);

// What the I/O loop is asked to do, in this order when several are set.
enum class EndpointAction : std::uint16_t {
  kDropLink = 1 << 0,              // close the socket
  kReplaceLink = 1 << 1,           // close the socket and open a new one
  kOpenLink = 1 << 2,              // open a socket (report the outcome)
  kReportLost = 1 << 3,            // the broker was lost (Output::why)
  kReportBrokerReturned = 1 << 4,  // WELCOME from a new broker epoch
  kReportWelcomed = 1 << 5,        // adopt WELCOME's values
  kReportFenced = 1 << 6,          // newly fenced: tell the application
  kSendHello = 1 << 7,             // send HELLO (report the outcome)
  kSendStateExchange = 1 << 8,     // return: send STATE_EXCHANGE
  kSendHeartbeat = 1 << 9,         // HEARTBEAT carrying epoch()
  kSendGoodbye = 1 << 10,          // GOODBYE, before the socket closes
  kReportDenied = 1 << 11,         // newly not authorized: tell the app
};

// Which timer runs after a step; the machine keeps one at a time.
enum class EndpointTimer : std::uint8_t {
  kNone,
  kRelink,     // open a socket at due()
  kHello,      // send HELLO at due()
  kHelloWait,  // HELLO unanswered: send it again, or replace the socket
  kRetry,      // refused: ask again
  kLiveness,   // welcomed: heartbeat and silence, from last_sent / last_heard
};

// The timers (FLOWS.md §1; the defaults are the table's).
struct EndpointTimers {
  // The heartbeat interval until a WELCOME names one.
  std::chrono::milliseconds heartbeat{100};
  // Peer timeout: this many heartbeat intervals with nothing received.
  int peer_timeout_intervals = 3;
  // Socket connected but HELLO not taken: ask the socket again.
  std::chrono::milliseconds handshake_retry{10};
  // After refusal n (from 0): first_refused_retry × 2^n, at most
  // refused_retry; plus up to a quarter of jitter.
  std::chrono::milliseconds first_refused_retry{10};
  std::chrono::milliseconds refused_retry{100};
  // Fenced or not authorized: ask again this rarely (plus up to a quarter
  // of jitter). Neither goes away soon: a newer process holds the id, or
  // the broker's keys file must change (it is re-read on SIGHUP).
  std::chrono::milliseconds fenced_retry{1000};
  // A socket that closed or failed to open is opened again after this.
  std::chrono::milliseconds relink_delay{100};
};

class EndpointMachine {
 public:
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;

  struct Input {
    EndpointEvent event = EndpointEvent::kTimer;
    TimePoint now{};
    Epoch epoch = 0;                        // kWelcome, kHeartbeat
    std::chrono::milliseconds heartbeat{};  // kWelcome; 0 keeps the current
    // kWelcome: the endpoint holds records the broker should hear about
    // (operations sent before, completions not acknowledged).
    bool records = false;
    TimePoint last_heard{};  // kTimer: the connection's last receive
    TimePoint last_sent{};   // kTimer: the connection's last send
  };

  struct Output {
    std::uint16_t actions = 0;
    const char* why = "";  // for kReportLost, kReplaceLink and kOpenLink

    bool Has(EndpointAction a) const {
      return (actions & static_cast<std::uint16_t>(a)) != 0;
    }
    bool empty() const { return actions == 0; }
  };

  // `returning`: the first WELCOME starts a return (the process restarted,
  // or its journal holds operations). `seed` seeds the retry jitter.
  EndpointMachine(const EndpointTimers& timers, bool returning,
                  std::uint64_t seed);

  [[nodiscard]] Output Step(const Input& in);

  EndpointState state() const { return state_; }
  bool welcomed() const { return state_ == EndpointState::kWelcomed; }
  // The epoch of the current (or last) WELCOME, 0 before any.
  Epoch epoch() const { return epoch_; }
  std::chrono::milliseconds heartbeat() const { return heartbeat_; }
  bool returning() const { return returning_; }
  bool draining() const { return draining_; }
  EndpointTimer timer() const { return timer_; }
  // When the running timer fires (kLiveness: see NextWakeup).
  TimePoint due() const { return due_; }
  // When a kTimer step may have something to do; TimePoint::max() if never.
  TimePoint NextWakeup(TimePoint last_heard, TimePoint last_sent) const;
  std::chrono::milliseconds peer_timeout() const {
    return heartbeat_ * timers_.peer_timeout_intervals;
  }

 private:
  Output OnTimer(const Input& in);
  // Leaves kWelcomed (if there) for `next`: the next WELCOME is a return.
  void Lose(Output& out, const char* why);
  void AwaitReconnect(Output& out, TimePoint now, const char* why);
  void HelloAgain(Output& out, TimePoint now, const char* why);
  void Arm(EndpointTimer timer, TimePoint due);
  // Fenced or denied: HELLO again after the fenced retry (with jitter).
  void AskAgainRarely(TimePoint now);
  std::chrono::milliseconds Jitter(std::chrono::milliseconds d);

  const EndpointTimers timers_;
  EndpointState state_ = EndpointState::kNoLink;
  EndpointTimer timer_ = EndpointTimer::kNone;
  TimePoint due_{};
  // The first HELLO of the current wait for WELCOME, and the wait before
  // the next one: `H`, doubling up to the peer timeout (FLOWS.md §1).
  TimePoint hello_sent_{};
  std::chrono::milliseconds hello_wait_{};
  std::chrono::milliseconds heartbeat_;
  Epoch epoch_ = 0;
  int refusals_ = 0;  // since the last WELCOME
  bool returning_ = false;
  bool draining_ = false;
  std::uint64_t rng_;
};

std::string_view EndpointStateName(EndpointState s);
std::string_view EndpointEventName(EndpointEvent e);

}  // namespace rejoin
