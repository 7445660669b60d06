// An endpoint that speaks the protocol by hand over a DEALER socket, for
// tests of the broker itself: the test sends exactly the HELLO, REQUEST,
// STATE_EXCHANGE or GOODBYE it wants and reads what the broker answers. It
// sends no HEARTBEAT of its own, so the broker's heartbeat interval must
// outlast the test's use of it. Single-threaded: use it from the test's
// thread.
#pragma once

#include <chrono>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <zmq.hpp>

#include "rejoin/proto/codec.h"
#include "rejoin/proto/messages.h"
#include "rejoin/transport/curve.h"
#include "rejoin/transport/wire.h"

namespace rejoin::testing {

class RawEndpoint {
 public:
  // With `curve`, the connection speaks CurveZMQ with those keys.
  RawEndpoint(zmq::context_t& ctx, const std::string& endpoint,
              const transport::CurveKeys* curve = nullptr)
      : socket_(ctx, zmq::socket_type::dealer) {
    socket_.set(zmq::sockopt::linger, 0);
    if (curve != nullptr) {
      socket_.set(zmq::sockopt::curve_serverkey, curve->broker_key);
      socket_.set(zmq::sockopt::curve_publickey, curve->own.public_key);
      socket_.set(zmq::sockopt::curve_secretkey, curve->own.secret_key);
    }
    socket_.connect(endpoint);
  }
  // A header-only message (not REQUEST or RESPONSE).
  void Send(const Message& m) {
    std::string h = EncodeHeader(m);
    socket_.send(zmq::buffer(h), zmq::send_flags::none);
  }
  // REQUEST or RESPONSE with its payload frame.
  void Send(const Message& m, std::string_view payload) {
    std::string h = EncodeHeader(m);
    socket_.send(zmq::buffer(h), zmq::send_flags::sndmore);
    socket_.send(zmq::buffer(payload), zmq::send_flags::none);
  }
  // Several messages as one batch (PROTOCOL.md §2): one ZeroMQ message.
  void Send(transport::Batch& batch) { (void)batch.Send(socket_, {}); }
  // The next message other than HEARTBEAT within `wait`; GOODBYE "timeout"
  // if none came. Batches, frames and pack frames alike, are split as
  // PROTOCOL.md §2 says; the payload of a REQUEST or RESPONSE is kept for
  // payload().
  Message Next(std::chrono::milliseconds wait = std::chrono::seconds(5)) {
    const auto deadline = std::chrono::steady_clock::now() + wait;
    for (;;) {
      transport::Frames frames;
      if (reader_.Next(socket_, frames) == transport::ReadResult::kMessage) {
        payload_.assign(frames.payload);
        auto m = transport::Decode(frames);
        if (m.ok() && !std::holds_alternative<Heartbeat>(*m)) return *m;
        continue;
      }
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) return Goodbye{"timeout", {}};
      zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1,
                std::chrono::ceil<std::chrono::milliseconds>(deadline - now));
    }
  }
  // The payload frame of the last REQUEST or RESPONSE Next() returned.
  const std::string& payload() const { return payload_; }
  void Close() { socket_.close(); }

 private:
  zmq::socket_t socket_;
  transport::Reader reader_{/*routed=*/false};
  std::string payload_;
};

}  // namespace rejoin::testing
