// The scripted broker of the endpoint tests (see fake_broker.h).
#include "support/fake_broker.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <thread>

#include "rejoin/transport/wire.h"

namespace rejoin::testing {

Welcome TestWelcome(Epoch epoch, std::uint32_t heartbeat_ms,
                    std::uint32_t max_outstanding) {
  Welcome w;
  w.epoch = epoch;
  w.heartbeat_ms = heartbeat_ms;
  w.max_message_bytes = 1 << 20;
  w.max_outstanding = max_outstanding;
  w.grace_ms = 0;
  return w;
}

FakeBroker::FakeBroker(const std::string& endpoint) {
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  for (;;) {
    socket_.emplace(context_, zmq::socket_type::router);
    socket_->set(zmq::sockopt::linger, 0);
    socket_->set(zmq::sockopt::router_mandatory, 1);
    try {
      socket_->bind(endpoint);
      break;
    } catch (const zmq::error_t&) {
      // The port of a broker that just closed may take a moment to free.
      socket_.reset();
      if (std::chrono::steady_clock::now() > deadline) throw;
      std::this_thread::sleep_for(10ms);
    }
  }
  endpoint_ = socket_->get(zmq::sockopt::last_endpoint);
}

FakeBroker::~FakeBroker() { socket_.reset(); }

std::optional<Received<Message>> FakeBroker::Next(
    std::chrono::milliseconds timeout, bool heartbeats) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    transport::Frames frames;
    if (reader_.Next(*socket_, frames) == transport::ReadResult::kMessage) {
      Result<Message> m = transport::Decode(frames);
      if (!m.ok()) {
        Fail("endpoint sent an undecodable message: " + m.status().ToString());
        continue;
      }
      route_ = frames.route;
      if (const auto* hello = std::get_if<Hello>(&*m)) hello_id_ = hello->id;
      if (!heartbeats && TypeOf(*m) == MessageType::kHeartbeat) continue;
      return Received<Message>{std::move(*m),
                               std::string(transport::View(frames.payload)),
                               frames.route};
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return std::nullopt;
    zmq::pollitem_t item{socket_->handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1,
              std::chrono::ceil<std::chrono::milliseconds>(deadline - now));
  }
}

std::optional<Hello> FakeBroker::AcceptHello(const Welcome& welcome) {
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  for (;;) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    std::optional<Received<Message>> r = Next(std::max(left, 0ms));
    if (!r) {
      Fail("no HELLO within 5000 ms");
      return std::nullopt;
    }
    // The GOODBYE of an endpoint's previous process may still come first.
    if (std::holds_alternative<Goodbye>(r->message)) continue;
    if (!std::holds_alternative<Hello>(r->message)) {
      Fail("expected HELLO, got " +
           std::string(MessageTypeName(TypeOf(r->message))));
      return std::nullopt;
    }
    Send(welcome);
    return std::get<Hello>(std::move(r->message));
  }
}

bool FakeBroker::Send(const Message& m, std::string_view payload) {
  zmq::message_t frame(payload.data(), payload.size());
  const Welcome* w = std::get_if<Welcome>(&m);
  if (w != nullptr && w->id.empty()) {
    // A WELCOME names the id it accepts: the last HELLO's.
    Welcome named = *w;
    named.id = hello_id_.empty() ? "unnamed" : hello_id_;
    return Send(named, payload);
  }
  const transport::SendResult r = transport::Send(*socket_, route_, m, &frame);
  EXPECT_EQ(r, transport::SendResult::kOk)
      << "could not send " << MessageTypeName(TypeOf(m));
  return r == transport::SendResult::kOk;
}

bool FakeBroker::SendFrames(const std::vector<std::string>& frames) {
  try {
    zmq::message_t route(route_.data(), route_.size());
    if (!socket_->send(route, zmq::send_flags::sndmore)) return false;
    for (std::size_t i = 0; i < frames.size(); ++i) {
      zmq::message_t f(frames[i].data(), frames[i].size());
      if (!socket_->send(f, i + 1 < frames.size() ? zmq::send_flags::sndmore
                                                  : zmq::send_flags::none)) {
        return false;
      }
    }
    return true;
  } catch (const zmq::error_t& e) {
    Fail(std::string("could not send raw frames: ") + e.what());
    return false;
  }
}

void FakeBroker::Respond(const SessionId& session, Seq seq,
                         std::string_view payload, ErrorCode status) {
  Response r;
  r.session = session;
  r.seq = seq;
  r.status = status;
  Send(r, payload);
}

void FakeBroker::SendRequest(const SessionId& session, Seq seq,
                             std::string_view payload,
                             const std::string& service, Seq watermark) {
  Request r;
  r.session = session;
  r.seq = seq;
  r.service = service;
  r.completed_watermark = watermark;
  Send(r, payload);
}

std::optional<ServerVector> FakeBroker::ProbeBarrier(const SessionId& session,
                                                     std::vector<Seq> seqs) {
  const std::uint64_t id = ++probe_id_;
  Send(Probe{id, session, std::move(seqs)});
  std::optional<ProbeReply> reply = NextAs<ProbeReply>();
  if (!reply) return std::nullopt;
  EXPECT_EQ(reply->probe_id, id);
  EXPECT_EQ(reply->role, Role::kServer);
  if (reply->servers.size() != 1) {
    Fail("PROBE_REPLY without exactly one server vector");
    return std::nullopt;
  }
  return reply->servers.front();
}

void FakeBroker::Fail(const std::string& what) { ADD_FAILURE() << what; }

bool Eventually(const std::function<bool()>& done,
                std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

}  // namespace rejoin::testing
