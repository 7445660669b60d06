// The core's entry points and output: decoded messages in, timers, the end
// of a turn, and what leaves through the Outbox.
#include "core/broker_core.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "rejoin/proto/codec.h"
#ifdef REJOIN_SIM_DEFECTS
#include "sim_defects.h"  // the test-only build of tests/sim
#endif

namespace rejoin::broker_internal {

std::string Printable(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  const std::size_t n = std::min(text.size(), kMaxLoggedPeerText);
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto b = static_cast<unsigned char>(text[i]);
    if (b >= 0x20 && b < 0x7f && b != '\\') {
      out.push_back(static_cast<char>(b));
    } else {
      out += "\\x";
      out.push_back(kHex[b >> 4]);
      out.push_back(kHex[b & 0xf]);
    }
  }
  if (text.size() > n) out += "...";
  return out;
}

BrokerCore::BrokerCore(const BrokerOptions& options, Epoch epoch, Outbox& out)
    : options_(options), epoch_(epoch), out_(out) {}

void BrokerCore::Start(Time now) {
  start_ = now;
  grace_end_ = now + options_.grace;
#ifdef REJOIN_SIM_DEFECTS
  if (sim_defects::Active() == sim_defects::kGraceEndedEarly) grace_end_ = now;
#endif
  roster_sweep_at_ = grace_end_ + options_.lease;
  // A complete roster that lists nobody: no server can hold anything.
  if (roster_trusted_ && roster_awaiting_.empty() && InGrace(now)) {
    EndGrace(now);
  }
}

void BrokerCore::OnMessage(const std::string& route, Message& msg,
                           InFrames& frames, Time now,
                           std::string_view principal) {
  principal_ = principal;
  if (access_ != nullptr && !Permitted(route, msg)) return;
  // The grace period's end (or its extension for a welcomed server that has
  // not reported) takes effect at G itself, not at the next timer turn: a
  // resend read in between must be held like one read before G.
  if (!grace_over_handled_) CheckGrace(now);
  switch (TypeOf(msg)) {
    case MessageType::kHello:
      OnHello(route, std::get<Hello>(msg), now);
      return;
    case MessageType::kRequest:
      OnRequest(route, std::get<Request>(msg), frames, now);
      return;
    case MessageType::kResponse:
      OnResponse(route, std::get<Response>(msg), frames, now);
      return;
    case MessageType::kAck:
      OnAck(route, std::get<Ack>(msg), frames, now);
      return;
    case MessageType::kHeartbeat: {
      // A client connection's liveness, which all its sessions share, was
      // noted by Known.
      // Known notes that the connection spoke, whatever it holds.
      if (Known(route, MessageType::kHeartbeat, now) == nullptr) return;
      SendTo(route, Heartbeat{epoch_});
      return;
    }
    case MessageType::kStateExchange:
      OnStateExchange(route, std::get<StateExchange>(msg), now);
      return;
    case MessageType::kProbeReply:
      OnProbeReply(route, std::get<ProbeReply>(msg), now);
      return;
    case MessageType::kError: {
      const Error& e = std::get<Error>(msg);
      LogOnce("peer-error:" + route + std::to_string(static_cast<int>(e.code)),
              "peer reported " + std::string(ErrorCodeName(e.code)) + ": " +
                  Printable(e.message));
      return;
    }
    case MessageType::kGoodbye:
      OnGoodbye(route, std::get<Goodbye>(msg), now);
      return;
    case MessageType::kWelcome:
    case MessageType::kRecover:
    case MessageType::kProbe:
      SendError(route, ErrorCode::kProtocolViolation,
                std::string(MessageTypeName(TypeOf(msg))) +
                    " is sent by the broker, not to it",
                TypeOf(msg));
      return;
  }
}

void BrokerCore::OnUndecodable(const std::string& route, const Status& status,
                               std::string_view header) {
  Bump(counters_.malformed);
  switch (status.code()) {
    case ErrorCode::kUnsupportedVersion:
      Bump(counters_.bad_version);
      break;
    case ErrorCode::kUnknownType:
      Bump(counters_.unknown_type);
      break;
    case ErrorCode::kTooLarge:
      Bump(counters_.too_large);
      break;
    default:
      break;
  }
  LogOnce("bad:" + route + ":" + std::string(ErrorCodeName(status.code())),
          "dropped frame from peer: " + Printable(status.ToString()));
  // Never answer an ERROR with an ERROR: two confused peers would loop.
  MessageType ref{0};
  if (!header.empty()) {
    if (auto type = PeekType(std::as_bytes(std::span(header))); type.ok()) {
      if (*type == MessageType::kError) return;
      ref = *type;
    }
  }
  const ErrorCode code =
      IsWireCode(status.code()) ? status.code() : ErrorCode::kMalformed;
  SendError(route, code, status.message(), ref);
}
// Answers for the others are on their way to the connection when every
// session with a held replay still has kReplayHoldInFlight operations out at
// servers; otherwise nothing may come to carry the replays soon.
bool BrokerCore::AnswersComing(const std::vector<HeldReplay>& held) const {
  for (const HeldReplay& r : held) {
    auto s = sessions_.find(r.session);
    if (s == sessions_.end() || s->second.unanswered < kReplayHoldInFlight) {
      return false;
    }
  }
  return true;
}

void BrokerCore::EndTurn(Time now) {
  counters_.connections.store(routes_.size(), std::memory_order_relaxed);
  // The credit is the server's, not one service's: a response for one
  // service lets a request queued for another go (FLOWS.md §3).
  while (!credit_returned_.empty()) {
    std::vector<std::string> ids = std::move(credit_returned_);
    credit_returned_.clear();
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    for (const std::string& id : ids) {
      auto srv = servers_.find(id);
      if (srv == servers_.end() || !srv->second.holder.alive) continue;
      const std::vector<ServiceSpec> services = srv->second.services;
      for (const ServiceSpec& spec : services) DrainQueue(spec.name, now);
    }
  }
  if (held_.empty()) return;
  const bool due = now >= held_due_;
  for (auto it = held_.begin(); it != held_.end();) {
    const bool company = out_.Waiting(it->first);
    if (!due && !company && AnswersComing(it->second)) {
      for (HeldReplay& r : it->second) {
        if (!std::exchange(r.waited, true)) Bump(counters_.replays_held);
      }
      ++it;
      continue;
    }
    // A connection that went away meanwhile gets nothing: its client
    // resends after it returns.
    if (routes_.count(it->first) != 0) {
      for (HeldReplay& r : it->second) {
        SendEnvelope(it->first, r.header, r.payload);
      }
    }
    it = held_.erase(it);
  }
  // Replays held after the first are released with it when it falls due,
  // a little early rather than late.
  if (held_.empty()) held_due_ = Time::max();
}

void BrokerCore::OnGone(const std::string& route, Time now) {
  auto it = routes_.find(route);
  if (it == routes_.end()) return;
  if (it->second.role == Role::kClient) {
    DropClientConnection(route, now);
  } else if (ServerOf(route, it->second) != nullptr) {
    MarkServerDead(it->second.server, now);
  }
  counters_.connections.store(routes_.size(), std::memory_order_relaxed);
}

void BrokerCore::Shutdown() {
  // Tell everyone we are leaving so they do not wait for heartbeats: one
  // GOODBYE per connection that holds a live id, however many sessions it
  // carries.
  for (const auto& [route, c] : routes_) {
    bool live = false;
    if (c.role == Role::kServer) {
      const auto srv = servers_.find(c.server);
      live = srv != servers_.end() && srv->second.holder.route == route &&
             srv->second.holder.alive;
    } else {
      for (const SessionId& sid : c.sessions) {
        auto s = sessions_.find(sid);
        if (s != sessions_.end() && s->second.holder.alive) {
          live = true;
          break;
        }
      }
    }
    if (live) SendTo(route, Goodbye{"broker shutting down", {}});
  }
}

void BrokerCore::SendRecover(const std::string& route, RecoverSession block) {
  Bump(counters_.recover_messages);
  Recover r{epoch_, {}};
  r.sessions.push_back(std::move(block));
  SendTo(route, r);
}

void BrokerCore::SendError(const std::string& route, ErrorCode code,
                           std::string text, MessageType ref,
                           const SessionId& sid, Seq seq) {
  CountCode(errors_by_code_, code);
  Error e;
  e.code = code;
  if (text.size() > 1024) text.resize(1024);
  e.message = std::move(text);
  e.ref_type = static_cast<std::uint8_t>(ref);
  if (IsValidId(sid)) e.session = sid;
  e.seq = seq;
  SendTo(route, e);
}

void BrokerCore::LogOnce(const std::string& key, const std::string& text) {
  if (logged_.size() > 10000) return;  // bounded: a flood logs nothing more
  if (logged_.insert(key).second) spdlog::warn("rejoin-broker: {}", text);
}

}  // namespace rejoin::broker_internal
