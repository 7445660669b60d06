// An endpoint that speaks the protocol by hand over a DEALER socket, for
// tests of the broker itself: the test sends exactly the HELLO, REQUEST,
// STATE_EXCHANGE or GOODBYE it wants and reads what the broker answers. It
// sends no HEARTBEAT of its own, so the broker's heartbeat interval must
// outlast the test's use of it. Single-threaded: use it from the test's
// thread.
#pragma once

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
  // The next message other than HEARTBEAT within 5 s; GOODBYE "timeout" if
  // none came.
  Message Next() {
    socket_.set(zmq::sockopt::rcvtimeo, 5000);
    for (;;) {
      zmq::message_t frame;
      if (!socket_.recv(frame)) return Goodbye{"timeout", {}};
      auto m =
          DecodeHeader(std::string_view(static_cast<const char*>(frame.data()),
                                        frame.size()),
                       1);
      if (m.ok() && !std::holds_alternative<Heartbeat>(*m)) return *m;
    }
  }
  void Close() { socket_.close(); }

 private:
  zmq::socket_t socket_;
};

}  // namespace rejoin::testing
