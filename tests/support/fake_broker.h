// A scripted stand-in for rejoin-broker in the client and server tests: one
// ROUTER socket on 127.0.0.1 that the test drives message by message through
// rejoin::transport. It keeps no protocol state beyond the routing id of the
// last peer it heard, so each test spells out what the broker says and checks
// what the endpoint sends. Single-threaded: use it from the test's thread.
// A message that cannot be sent, and one from the endpoint that does not
// decode, are test failures.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>
#include <zmq.hpp>

#include "rejoin/proto/messages.h"
#include "rejoin/transport/wire.h"

namespace rejoin::testing {

using namespace std::chrono_literals;

inline constexpr Epoch kFirstEpoch = 0x1111;
inline constexpr Epoch kSecondEpoch = 0x2222;

// One decoded message with its payload frame and the sender's routing id.
template <typename T>
struct Received {
  T message;
  std::string payload;
  std::string route;
};

// The WELCOME that AcceptHello answers with. The long default heartbeat keeps
// the endpoint from declaring this quiet broker dead.
Welcome TestWelcome(Epoch epoch = kFirstEpoch,
                    std::uint32_t heartbeat_ms = 5000,
                    std::uint32_t max_outstanding = 1024);

class FakeBroker {
 public:
  // Binds `endpoint`, by default a free loopback port. Binding the
  // endpoint() of a broker that just closed is a broker restart; the bind is
  // retried while the old socket lets go of the port.
  explicit FakeBroker(const std::string& endpoint = "tcp://127.0.0.1:*");
  ~FakeBroker();
  FakeBroker(const FakeBroker&) = delete;
  FakeBroker& operator=(const FakeBroker&) = delete;

  // "tcp://127.0.0.1:<port>", the address endpoints connect to.
  const std::string& endpoint() const { return endpoint_; }
  // The routing id of the connection that sent the last message.
  const std::string& route() const { return route_; }

  // The next message within `timeout`, from any peer; Send answers that
  // peer. HEARTBEATs are skipped unless `heartbeats` is set.
  std::optional<Received<Message>> Next(std::chrono::milliseconds timeout = 5s,
                                        bool heartbeats = false);

  // The next message of type T within `timeout`; messages of other types
  // are skipped.
  template <typename T>
  std::optional<Received<T>> Expect(std::chrono::milliseconds timeout = 3s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      std::optional<Received<Message>> m = Next(left, /*heartbeats=*/true);
      if (!m) return std::nullopt;
      if (auto* t = std::get_if<T>(&m->message)) {
        return Received<T>{std::move(*t), std::move(m->payload),
                           std::move(m->route)};
      }
    }
  }

  // The next message, which must be a T: anything else, or nothing within
  // `timeout`, is a test failure (and nullopt).
  template <typename T>
  std::optional<T> NextAs(std::string* payload = nullptr,
                          std::chrono::milliseconds timeout = 5s,
                          bool heartbeats = false) {
    std::optional<Received<Message>> r = Next(timeout, heartbeats);
    if (!r) {
      Fail("no message within " + std::to_string(timeout.count()) + " ms");
      return std::nullopt;
    }
    if (!std::holds_alternative<T>(r->message)) {
      Fail("expected another type, got " +
           std::string(MessageTypeName(TypeOf(r->message))));
      return std::nullopt;
    }
    if (payload) *payload = r->payload;
    return std::get<T>(std::move(r->message));
  }

  // Waits for HELLO and answers `welcome`. Only HEARTBEATs and GOODBYEs
  // (from a previous process of the endpoint) may come first; anything else
  // is a test failure.
  std::optional<Hello> AcceptHello(const Welcome& welcome = TestWelcome());

  // Sends to the last peer heard from; true when it left. A WELCOME without
  // an id gets the id of the last HELLO.
  bool Send(const Message& m, std::string_view payload = {});
  // Sends raw frames after the routing id, for malformed input.
  bool SendFrames(const std::vector<std::string>& frames);

  // A RESPONSE, as the broker forwards it to a client.
  void Respond(const SessionId& session, Seq seq, std::string_view payload,
               ErrorCode status = ErrorCode::kOk);
  // A REQUEST, as the broker dispatches it to a server.
  void SendRequest(const SessionId& session, Seq seq, std::string_view payload,
                   const std::string& service = "echo", Seq watermark = 1);

  // Sends a PROBE to a server and returns its one server vector from the
  // next message, which must be the reply. Everything the server did with
  // earlier messages (that was not handed to a handler) has then been sent:
  // the server answers in order.
  std::optional<ServerVector> ProbeBarrier(const SessionId& session,
                                           std::vector<Seq> seqs);

 private:
  static void Fail(const std::string& what);

  zmq::context_t context_{1};
  std::optional<zmq::socket_t> socket_;
  transport::Reader reader_{/*routed=*/true};
  std::string endpoint_;
  std::string route_;
  std::string hello_id_;  // of the last HELLO seen, for WELCOME's id
  std::uint64_t probe_id_ = 0;
};

// Polls `done` every few milliseconds until it holds or `timeout` passes.
bool Eventually(const std::function<bool()>& done,
                std::chrono::milliseconds timeout = 5s);

}  // namespace rejoin::testing
