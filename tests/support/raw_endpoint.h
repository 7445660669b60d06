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

namespace rejoin::testing {

class RawEndpoint {
 public:
  RawEndpoint(zmq::context_t& ctx, const std::string& endpoint)
      : socket_(ctx, zmq::socket_type::dealer) {
    socket_.set(zmq::sockopt::linger, 0);
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
  // The next message other than HEARTBEAT within `wait`; GOODBYE "timeout"
  // if none came. Batches are split as PROTOCOL.md §2.1 says; the payload of
  // a REQUEST or RESPONSE is kept for payload().
  Message Next(std::chrono::milliseconds wait = std::chrono::seconds(5)) {
    socket_.set(zmq::sockopt::rcvtimeo, static_cast<int>(wait.count()));
    for (;;) {
      zmq::message_t frame;
      if (!socket_.recv(frame)) return Goodbye{"timeout", {}};
      const std::string_view header(static_cast<const char*>(frame.data()),
                                    frame.size());
      payload_.clear();
      std::size_t frames = 1;
      auto type = PeekType(std::as_bytes(std::span(header)));
      if (type.ok() && HasPayloadFrame(*type) && frame.more()) {
        zmq::message_t body;
        if (!socket_.recv(body)) return Goodbye{"timeout", {}};
        payload_.assign(static_cast<const char*>(body.data()), body.size());
        frames = 2;
      }
      auto m = DecodeHeader(header, frames, payload_.size());
      if (m.ok() && !std::holds_alternative<Heartbeat>(*m)) return *m;
    }
  }
  // The payload frame of the last REQUEST or RESPONSE Next() returned.
  const std::string& payload() const { return payload_; }
  void Close() { socket_.close(); }

 private:
  zmq::socket_t socket_;
  std::string payload_;
};

}  // namespace rejoin::testing
