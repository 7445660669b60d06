// A scripted broker for server tests: a ROUTER bound to a free loopback port
// that speaks rejoin's wire protocol through rejoin::transport, so a test
// decides every message the server sees and checks every message it sends.
// Single-threaded: use it from the test's thread only.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>
#include <zmq.hpp>

#include "rejoin/proto/codec.h"
#include "rejoin/proto/messages.h"
#include "rejoin/transport/wire.h"

namespace rejoin::testing {

using namespace std::chrono_literals;

struct Received {
  Message message;
  std::string payload;
  std::string route;
};

inline Welcome TestWelcome(Epoch epoch = 77,
                           std::uint32_t heartbeat_ms = 1000) {
  Welcome w;
  w.epoch = epoch;
  w.heartbeat_ms = heartbeat_ms;
  w.max_message_bytes = 1 << 20;
  w.max_outstanding = 1024;
  w.grace_ms = 0;
  return w;
}

class FakeBroker {
 public:
  // Binds to a free port; `endpoint` rebinds a previous broker's endpoint
  // (a broker restart).
  explicit FakeBroker(const std::string& endpoint = "tcp://127.0.0.1:*")
      : socket_(context_, zmq::socket_type::router) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.set(zmq::sockopt::router_mandatory, 1);
    socket_.bind(endpoint);
    endpoint_ = socket_.get(zmq::sockopt::last_endpoint);
  }

  const std::string& endpoint() const { return endpoint_; }
  // The routing id of the connection that sent the last message.
  const std::string& route() const { return route_; }

  // The next message, or nullopt after `timeout`. HEARTBEATs are skipped
  // unless `heartbeats` is set.
  std::optional<Received> Next(std::chrono::milliseconds timeout = 5s,
                               bool heartbeats = false) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      transport::Frames frames;
      if (transport::TryRead(socket_, /*routed=*/true, frames) ==
          transport::ReadResult::kMessage) {
        Result<Message> m = transport::Decode(frames);
        if (!m.ok()) {
          ADD_FAILURE() << "server sent an undecodable message: "
                        << m.status().ToString();
          continue;
        }
        route_ = frames.route;
        if (!heartbeats && TypeOf(*m) == MessageType::kHeartbeat) continue;
        return Received{std::move(*m),
                        std::string(transport::View(frames.payload)),
                        frames.route};
      }
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) return std::nullopt;
      zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1,
                std::chrono::ceil<std::chrono::milliseconds>(deadline - now));
    }
  }

  // The next message as a T; a failure (and nullopt) for anything else.
  template <typename T>
  std::optional<T> NextAs(std::string* payload = nullptr,
                          std::chrono::milliseconds timeout = 5s,
                          bool heartbeats = false) {
    std::optional<Received> r = Next(timeout, heartbeats);
    if (!r) {
      ADD_FAILURE() << "no message within " << timeout.count() << " ms";
      return std::nullopt;
    }
    if (!std::holds_alternative<T>(r->message)) {
      ADD_FAILURE() << "expected another type, got "
                    << MessageTypeName(TypeOf(r->message));
      return std::nullopt;
    }
    if (payload) *payload = r->payload;
    return std::get<T>(std::move(r->message));
  }

  // Waits for HELLO and answers WELCOME.
  std::optional<Hello> AcceptHello(const Welcome& welcome = TestWelcome()) {
    std::optional<Hello> h = NextAs<Hello>();
    if (h) Send(welcome);
    return h;
  }

  void Send(const Message& m, std::string_view payload = {}) {
    zmq::message_t frame(payload.data(), payload.size());
    EXPECT_EQ(transport::Send(socket_, route_, m, &frame),
              transport::SendResult::kOk);
  }

  void SendRequest(const SessionId& session, Seq seq, std::string_view payload,
                   const std::string& service = "echo", Seq watermark = 1) {
    Request r;
    r.session = session;
    r.seq = seq;
    r.service = service;
    r.completed_watermark = watermark;
    Send(r, payload);
  }

  // Raw frames after the routing id, for malformed input.
  void SendFrames(const std::vector<std::string>& frames) {
    zmq::message_t route(route_.data(), route_.size());
    socket_.send(route, zmq::send_flags::sndmore);
    for (std::size_t i = 0; i < frames.size(); ++i) {
      zmq::message_t f(frames[i].data(), frames[i].size());
      socket_.send(f, i + 1 < frames.size() ? zmq::send_flags::sndmore
                                            : zmq::send_flags::none);
    }
  }

  // Sends a PROBE and returns the next message, which must be its reply.
  // Everything the server did with earlier messages (that was not handed to
  // a handler) has then been sent: the server answers in order.
  std::optional<ServerVector> ProbeBarrier(const SessionId& session,
                                           std::vector<Seq> seqs) {
    const std::uint64_t id = ++probe_id_;
    Send(Probe{id, session, std::move(seqs)});
    std::optional<ProbeReply> reply = NextAs<ProbeReply>();
    if (!reply) return std::nullopt;
    EXPECT_EQ(reply->probe_id, id);
    EXPECT_EQ(reply->role, Role::kServer);
    if (reply->servers.size() != 1) {
      ADD_FAILURE() << "PROBE_REPLY without exactly one server vector";
      return std::nullopt;
    }
    return reply->servers.front();
  }

 private:
  zmq::context_t context_{1};
  zmq::socket_t socket_;
  std::string endpoint_;
  std::string route_;
  std::uint64_t probe_id_ = 0;
};

// A fresh directory, removed with everything in it at scope end.
class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "rejoin-server-XXXXXX")
            .string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp failed";
    }
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace rejoin::testing
