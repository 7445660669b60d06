// The endpoint connection state machine (endpoint.h, FLOWS.md §1.1). Each
// event is a switch over the states with no default, so a new state or event
// does not build until every cell has an answer.
#include "rejoin/proto/endpoint.h"

#include <algorithm>

namespace rejoin {
namespace {

using Action = EndpointAction;
using State = EndpointState;

void Add(EndpointMachine::Output& out, Action a) {
  out.actions |= static_cast<std::uint16_t>(a);
}
void Remove(EndpointMachine::Output& out, Action a) {
  out.actions &= static_cast<std::uint16_t>(~static_cast<std::uint16_t>(a));
}

}  // namespace

EndpointMachine::EndpointMachine(const EndpointTimers& timers, bool returning,
                                 std::uint64_t seed)
    : timers_(timers),
      heartbeat_(timers.heartbeat),
      returning_(returning),
      rng_(seed) {
  // No socket yet: open one on the first timer step.
  Arm(EndpointTimer::kRelink, TimePoint{});
}

void EndpointMachine::Arm(EndpointTimer timer, TimePoint due) {
  timer_ = timer;
  due_ = due;
}

std::chrono::milliseconds EndpointMachine::Jitter(std::chrono::milliseconds d) {
  // splitmix64: small, seeded, and the same sequence on every platform.
  rng_ += 0x9e3779b97f4a7c15ULL;
  std::uint64_t z = rng_;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  // Up to a quarter more, so endpoints refused together do not ask again
  // together.
  const auto extra = static_cast<std::int64_t>(z % 1024) * d.count() / 4096;
  return d + std::chrono::milliseconds(extra);
}

// The broker behind a live socket went away: a welcomed endpoint has lost
// it; every state with a socket waits for the reconnect, with the HELLO
// timer as the fallback.
void EndpointMachine::AwaitReconnect(Output& out, TimePoint now,
                                     const char* why) {
  switch (state_) {
    case State::kWelcomed:
      Lose(out, why);
      [[fallthrough]];
    case State::kConnecting:
    case State::kHelloSent:
    case State::kRefused:
      state_ = State::kConnecting;
      Arm(EndpointTimer::kHello, now + heartbeat_);
      break;
    case State::kNoLink:
    case State::kFenced:
    case State::kDenied:
    case State::kClosed:
      break;
  }
}

// A welcomed endpoint learns the broker no longer knows it: it has lost the
// broker and says HELLO again at once, on the same socket.
void EndpointMachine::HelloAgain(Output& out, TimePoint now, const char* why) {
  Lose(out, why);
  state_ = State::kConnecting;
  Add(out, Action::kSendHello);
  Arm(EndpointTimer::kHello, now + heartbeat_);
}

void EndpointMachine::AskAgainRarely(TimePoint now) {
  Arm(EndpointTimer::kRetry, now + Jitter(timers_.fenced_retry));
}

void EndpointMachine::Lose(Output& out, const char* why) {
  if (state_ != State::kWelcomed) return;
  // Messages may have been lost with the broker, or the broker may have
  // declared this endpoint dead: the next WELCOME is a return (FLOWS.md §5).
  returning_ = true;
  Add(out, Action::kReportLost);
  out.why = why;
}

EndpointMachine::TimePoint EndpointMachine::NextWakeup(
    TimePoint last_heard, TimePoint last_sent) const {
  switch (timer_) {
    case EndpointTimer::kNone:
      return TimePoint::max();
    case EndpointTimer::kLiveness:
      return std::min(last_sent + heartbeat_, last_heard + peer_timeout());
    case EndpointTimer::kRelink:
    case EndpointTimer::kHello:
    case EndpointTimer::kHelloWait:
    case EndpointTimer::kRetry:
      return due_;
  }
  return TimePoint::max();
}

EndpointMachine::Output EndpointMachine::Step(const Input& in) {
  Output out;
  const TimePoint now = in.now;
  const bool live = state_ != State::kNoLink && state_ != State::kClosed;
  switch (in.event) {
    case EndpointEvent::kLinkOpened:
      switch (state_) {
        case State::kClosed:
        case State::kFenced:
        case State::kDenied:
          // Fenced or denied stays so on a new socket: the broker would
          // refuse again; the retry timer asks it.
          break;
        case State::kWelcomed:
          Lose(out, "connection replaced");
          [[fallthrough]];
        case State::kNoLink:
        case State::kConnecting:
        case State::kHelloSent:
        case State::kRefused:
          state_ = State::kConnecting;
          Add(out, Action::kSendHello);
          Arm(EndpointTimer::kHello, now + heartbeat_);
          break;
      }
      break;
    case EndpointEvent::kLinkOpenFailed:
      if (state_ == State::kClosed) break;
      Lose(out, "connection failed");
      state_ = State::kNoLink;
      Arm(EndpointTimer::kRelink, now + timers_.relink_delay);
      break;
    case EndpointEvent::kLinkUp:
      switch (state_) {
        case State::kConnecting:
          // The first HELLO on this connection. One that left before the
          // event was read is on it already (kHelloSent): not again.
          Add(out, Action::kSendHello);
          Arm(EndpointTimer::kHello, now + heartbeat_);
          break;
        case State::kNoLink:
        case State::kHelloSent:
        case State::kRefused:
        case State::kFenced:
        case State::kDenied:
        case State::kWelcomed:
        case State::kClosed:
          break;
      }
      break;
    case EndpointEvent::kLinkDown:
      // The socket reconnects by itself and reports it (kLinkUp).
      AwaitReconnect(out, now, "disconnected");
      break;
    case EndpointEvent::kLinkClosed:
      if (!live) break;
      Lose(out, "connection closed");
      Add(out, Action::kDropLink);
      state_ = State::kNoLink;
      Arm(EndpointTimer::kRelink, now + timers_.relink_delay);
      break;
    case EndpointEvent::kHelloLeft:
      switch (state_) {
        case State::kConnecting:
        case State::kHelloSent:
        case State::kRefused:
          // An unanswered HELLO is sent again after `H`, then after twice
          // as long, up to the peer timeout: one lost HELLO or WELCOME
          // after a broker restart costs less than the grace period, so a
          // server holding operations still reports within it.
          if (state_ == State::kHelloSent) {
            hello_wait_ = std::min(hello_wait_ * 2, peer_timeout());
          } else {
            hello_sent_ = now;
            hello_wait_ = heartbeat_;
          }
          state_ = State::kHelloSent;
          Arm(EndpointTimer::kHelloWait, now + hello_wait_);
          break;
        case State::kFenced:
        case State::kDenied:
          AskAgainRarely(now);
          break;
        case State::kNoLink:
        case State::kWelcomed:
        case State::kClosed:
          break;
      }
      break;
    case EndpointEvent::kHelloBlocked:
    case EndpointEvent::kHelloNoPeer: {
      const auto wait = in.event == EndpointEvent::kHelloBlocked
                            ? timers_.handshake_retry
                            : heartbeat_;
      switch (state_) {
        case State::kConnecting:
        case State::kHelloSent:
          Arm(EndpointTimer::kHello, now + wait);
          break;
        case State::kRefused:
        case State::kFenced:
        case State::kDenied:
          Arm(EndpointTimer::kRetry, now + wait);
          break;
        case State::kNoLink:
        case State::kWelcomed:
        case State::kClosed:
          break;
      }
      break;
    }
    case EndpointEvent::kWelcome:
      if (!live) break;
      if (epoch_ != 0 && in.epoch != epoch_) {
        // Another broker than the last one: it knows nothing of us.
        returning_ = true;
        Add(out, Action::kReportBrokerReturned);
      }
      epoch_ = in.epoch;
      if (in.heartbeat.count() > 0) heartbeat_ = in.heartbeat;
      refusals_ = 0;
      Add(out, Action::kReportWelcomed);
      if (returning_ || in.records) Add(out, Action::kSendStateExchange);
      returning_ = false;
      state_ = State::kWelcomed;
      Arm(EndpointTimer::kLiveness, now);
      break;
    case EndpointEvent::kHeartbeat:
      // A broker we have not said HELLO to: it restarted between two of its
      // heartbeats (epoch 0: a broker that does not say).
      if (state_ != State::kWelcomed || in.epoch == 0 || in.epoch == epoch_) {
        break;
      }
      HelloAgain(out, now, "new broker epoch in heartbeat");
      break;
    case EndpointEvent::kUnknownSession:
      // One HELLO per loss: every message in flight may be refused, and
      // the HELLO timer covers a HELLO that is lost.
      if (state_ != State::kWelcomed) break;
      HelloAgain(out, now, "broker does not know the session");
      break;
    case EndpointEvent::kRefused:
      switch (state_) {
        case State::kConnecting:
        case State::kHelloSent:
        case State::kRefused:
        case State::kFenced:
        case State::kDenied: {
          // The holder may be a process killed a moment ago that the broker
          // has not noticed yet: the first retry comes soon.
          const int shift = std::min(refusals_++, 4);
          state_ = State::kRefused;
          Arm(EndpointTimer::kRetry,
              now +
                  Jitter(std::min(timers_.refused_retry,
                                  timers_.first_refused_retry * (1 << shift))));
          break;
        }
        case State::kWelcomed:
          // The answer to a HELLO this endpoint no longer waits for.
        case State::kNoLink:
        case State::kClosed:
          break;
      }
      break;
    case EndpointEvent::kFenced:
      if (!live) break;
      if (state_ != State::kFenced) Add(out, Action::kReportFenced);
      Lose(out, "fenced");
      state_ = State::kFenced;
      AskAgainRarely(now);
      break;
    case EndpointEvent::kDenied:
      switch (state_) {
        case State::kConnecting:
        case State::kHelloSent:
        case State::kRefused:
        case State::kFenced:
          Add(out, Action::kReportDenied);
          [[fallthrough]];
        case State::kDenied:
          // Reported once. The keys file may change (SIGHUP): ask rarely.
          state_ = State::kDenied;
          AskAgainRarely(now);
          break;
        case State::kWelcomed:
          // The answer to a HELLO it no longer waits for.
        case State::kNoLink:
        case State::kClosed:
          break;
      }
      break;
    case EndpointEvent::kGoodbye:
      // Its successor on the endpoint gets a HELLO once the socket
      // reconnects (kLinkUp).
      AwaitReconnect(out, now, "broker said goodbye");
      break;
    case EndpointEvent::kTimer:
      out = OnTimer(in);
      break;
    case EndpointEvent::kDrain:
      draining_ = true;
      break;
    case EndpointEvent::kStop:
      if (state_ == State::kWelcomed) Add(out, Action::kSendGoodbye);
      state_ = State::kClosed;
      Arm(EndpointTimer::kNone, now);
      break;
  }
  if (draining_ && state_ != State::kWelcomed) {
    // Stopping: reconnecting only to say GOODBYE is pointless.
    if (out.Has(Action::kReplaceLink)) {
      Remove(out, Action::kReplaceLink);
      Add(out, Action::kDropLink);
    }
    Remove(out, Action::kSendHello);
    Remove(out, Action::kOpenLink);
    Arm(EndpointTimer::kNone, now);
  }
  return out;
}

EndpointMachine::Output EndpointMachine::OnTimer(const Input& in) {
  Output out;
  const TimePoint now = in.now;
  switch (state_) {
    case State::kNoLink:
      if (now < due_) break;
      Add(out, Action::kOpenLink);
      out.why = "opening a new socket";
      Arm(EndpointTimer::kRelink, now + timers_.relink_delay);
      break;
    case State::kConnecting:
    case State::kRefused:
    case State::kFenced:
    case State::kDenied:
      if (now < due_) break;
      Add(out, Action::kSendHello);
      Arm(timer_, now + heartbeat_);  // until the outcome re-arms it
      break;
    case State::kHelloSent:
      if (now < due_) break;
      if (in.last_heard <= hello_sent_ && now - hello_sent_ >= peer_timeout()) {
        // Nothing at all came back for a peer timeout: the connection is
        // presumed stuck (a broker that died mid-handshake).
        Add(out, Action::kReplaceLink);
        out.why = "no WELCOME for 3 heartbeats";
        state_ = State::kNoLink;
        Arm(EndpointTimer::kRelink, now);
        break;
      }
      Add(out, Action::kSendHello);
      Arm(EndpointTimer::kHello, now + heartbeat_);
      break;
    case State::kWelcomed:
      if (now - in.last_heard >= peer_timeout()) {
        Lose(out, "broker silent for 3 heartbeats");
        Add(out, Action::kReplaceLink);
        state_ = State::kNoLink;
        Arm(EndpointTimer::kRelink, now);
      } else if (now - in.last_sent >= heartbeat_) {
        Add(out, Action::kSendHeartbeat);
      }
      break;
    case State::kClosed:
      break;
  }
  return out;
}

std::string_view EndpointStateName(EndpointState s) {
  switch (s) {
    case State::kNoLink:
      return "no_link";
    case State::kConnecting:
      return "connecting";
    case State::kHelloSent:
      return "hello_sent";
    case State::kRefused:
      return "refused";
    case State::kFenced:
      return "fenced";
    case State::kDenied:
      return "denied";
    case State::kWelcomed:
      return "welcomed";
    case State::kClosed:
      return "closed";
  }
  return "?";
}

std::string_view EndpointEventName(EndpointEvent e) {
  switch (e) {
    case EndpointEvent::kLinkOpened:
      return "link_opened";
    case EndpointEvent::kLinkOpenFailed:
      return "link_open_failed";
    case EndpointEvent::kLinkUp:
      return "link_up";
    case EndpointEvent::kLinkDown:
      return "link_down";
    case EndpointEvent::kLinkClosed:
      return "link_closed";
    case EndpointEvent::kHelloLeft:
      return "hello_left";
    case EndpointEvent::kHelloBlocked:
      return "hello_blocked";
    case EndpointEvent::kHelloNoPeer:
      return "hello_no_peer";
    case EndpointEvent::kWelcome:
      return "welcome";
    case EndpointEvent::kHeartbeat:
      return "heartbeat";
    case EndpointEvent::kUnknownSession:
      return "unknown_session";
    case EndpointEvent::kRefused:
      return "refused";
    case EndpointEvent::kFenced:
      return "fenced";
    case EndpointEvent::kDenied:
      return "denied";
    case EndpointEvent::kGoodbye:
      return "goodbye";
    case EndpointEvent::kTimer:
      return "timer";
    case EndpointEvent::kDrain:
      return "drain";
    case EndpointEvent::kStop:
      return "stop";
  }
  return "?";
}

}  // namespace rejoin
