// A scripted stand-in for rejoin-broker in client tests: one ROUTER socket on
// 127.0.0.1 that the test drives message by message through
// rejoin::transport. It keeps no protocol state of its own beyond the routing
// id of the last peer it heard, so each test spells out what the broker says.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>
#include <zmq.hpp>

#include "rejoin/proto/messages.h"

namespace rejoin::testing {

using namespace std::chrono_literals;

inline constexpr Epoch kFirstEpoch = 0x1111;
inline constexpr Epoch kSecondEpoch = 0x2222;

// One decoded message with its payload frame.
template <typename T>
struct Received {
  T msg;
  std::string payload;
};

class FakeBroker {
 public:
  // Binds a free port on 127.0.0.1, or `port` when non-zero (retrying while
  // the previous owner's socket goes away).
  explicit FakeBroker(int port = 0);
  ~FakeBroker();
  FakeBroker(const FakeBroker&) = delete;
  FakeBroker& operator=(const FakeBroker&) = delete;

  std::string endpoint() const;
  int port() const { return port_; }

  // Next decodable message within `timeout`, from any peer; remembers the
  // peer's route for Send. Undecodable frames are skipped.
  std::optional<Received<Message>> Next(std::chrono::milliseconds timeout);

  // Next message of type T within `timeout`; messages of other types are
  // skipped (and kept in skipped()).
  template <typename T>
  std::optional<Received<T>> Expect(std::chrono::milliseconds timeout = 3s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      auto m = Next(left);
      if (!m) return std::nullopt;
      if (auto* t = std::get_if<T>(&m->msg)) {
        return Received<T>{*t, std::move(m->payload)};
      }
      skipped_.push_back(std::move(m->msg));
    }
  }

  // Waits for HELLO and answers WELCOME with `epoch`. The long default
  // heartbeat keeps the client from declaring this quiet broker dead.
  std::optional<Hello> AcceptHello(Epoch epoch = kFirstEpoch,
                                   std::uint32_t max_outstanding = 1024,
                                   std::uint32_t heartbeat_ms = 5000);

  // Sends to the last peer heard from.
  bool Send(const Message& m, std::string_view payload = {});
  // Sends arbitrary frames (after the route) to the last peer.
  bool SendRaw(const std::vector<std::string>& frames);
  void Respond(const SessionId& session, Seq seq, std::string_view payload,
               ErrorCode status = ErrorCode::kOk);

  const std::vector<Message>& skipped() const { return skipped_; }

 private:
  zmq::context_t context_;
  std::optional<zmq::socket_t> router_;
  int port_ = 0;
  std::string route_;
  std::vector<Message> skipped_;
};

// Polls `done` every few milliseconds until it holds or `timeout` passes.
bool WaitFor(const std::function<bool()>& done,
             std::chrono::milliseconds timeout = 3s);

}  // namespace rejoin::testing
