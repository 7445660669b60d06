// The server's connection to the broker: a DEALER socket and the PAIR socket
// on which libzmq reports that socket's handshakes and disconnects. Created
// on the opening thread and then used only by the I/O thread. Constructors
// and methods may throw zmq::error_t; the I/O loop translates it.
#pragma once

#include <chrono>
#include <string>
#include <zmq.hpp>

namespace rejoin::server_internal {

class Link {
 public:
  enum class Event {
    kNone,          // nothing waiting
    kConnected,     // a connection finished its handshake: say HELLO
    kDisconnected,  // the connection closed; libzmq is reconnecting
    kOther,
  };

  // Creates both sockets and starts connecting to `endpoint` (libzmq
  // reconnects on its own from then on).
  Link(zmq::context_t& context, const std::string& endpoint);
  ~Link();
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;

  zmq::socket_t& socket() { return socket_; }
  zmq::socket_t& monitor() { return monitor_; }

  // Reads one monitor event if one is waiting.
  Event ReadEvent();

  // How long a final message may wait in the socket at close.
  void SetLinger(std::chrono::milliseconds linger);

 private:
  zmq::socket_t socket_;
  zmq::socket_t monitor_;
};

}  // namespace rejoin::server_internal
