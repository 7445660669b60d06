// An endpoint's connection to the broker: a DEALER socket that connects (and
// keeps reconnecting) to the broker's endpoint, and the PAIR socket on which
// libzmq reports that DEALER's completed handshakes and disconnects. Shared by
// libclient and libserver; the broker binds and has no Link.
//
// Ownership and threading: a Link is created on any thread and from then on
// used by exactly one thread at a time (creating it, then handing it to an
// I/O thread across a thread start, is the pattern libzmq allows). Destroying
// the Link closes both sockets; the context must outlive it.
//
// Failures: no exception escapes; zmq::error_t is translated here. Open
// reports zmq errors as a Status (kInvalidArgument for an endpoint libzmq
// rejects, kIoError otherwise); ReadEvent reports a dead monitor or context
// as kClosed; Read and Send report as wire.h does (kClosed, kWouldBlock).
//
// Connection facts: after kConnected the socket accepts messages, at once
// or a moment later (libzmq can report the handshake before the new pipe is
// attached); with ZMQ_IMMEDIATE nothing queues before that; after kDisconnected
// libzmq is reconnecting on its own. hello_sent() says whether a HELLO left
// since the last disconnect, so that a handshake that is read after the HELLO
// already went out on the new connection does not send a second one.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <zmq.hpp>

#include "rejoin/proto/messages.h"
#include "rejoin/proto/status.h"
#include "rejoin/transport/curve.h"
#include "rejoin/transport/wire.h"

namespace rejoin::transport {

// Checks a ZeroMQ endpoint before libzmq sees it, which reads a tcp port
// leniently (tcp://h:99999 binds another port). A tcp endpoint must be
// tcp://HOST:PORT with a non-empty HOST (an IPv6 address in brackets) and
// PORT a decimal number in 1..65535, or `*` when `bind` (any free port).
// Other transports go to libzmq as they are; an endpoint without
// "transport://" is refused. kInvalidArgument with the reason, else OK.
// Used by the broker (bind), Link::Open and the endpoints' option checks.
Status CheckEndpoint(const std::string& endpoint, bool bind);

class Link {
 public:
  enum class Event {
    kNone,          // nothing waiting
    kConnected,     // a connection finished its handshake: say HELLO
    kDisconnected,  // the connection closed; libzmq is reconnecting
    kClosed,        // the monitor failed (context ending): drop the Link
  };

  // Creates both sockets and starts connecting to `endpoint`. Each Link gets
  // its own inproc monitor address, unique within the process. With `curve`
  // the connection speaks CurveZMQ with those keys; a broker that refuses
  // them fails the handshake, which libzmq retries (kConnected never comes).
  static Result<std::unique_ptr<Link>> Open(zmq::context_t& context,
                                            const std::string& endpoint,
                                            const CurveKeys* curve = nullptr);
  ~Link();
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;

  // Handles for zmq_poll: ZMQ_POLLIN on the first means Read has a message,
  // on the second that ReadEvent has an event.
  void* socket_handle() { return socket_.handle(); }
  void* monitor_handle() { return monitor_.handle(); }

  // Reads one message from the broker if one is waiting (wire.h Reader).
  ReadResult Read(Frames& out);
  // Whether Read would hand out a message now (without reading it), and
  // whether it would without looking at the socket.
  bool InputWaiting();
  bool buffered() const { return reader_.buffered(); }
  // Sends `m` to the broker (wire.h Send); a HELLO that leaves is remembered
  // in hello_sent(). A HELLO waits for kConnected (kWouldBlock before).
  SendResult Send(const Message& m, zmq::message_t* payload = nullptr);
  // Sends a batch (wire.h Batch::Send); it must not hold a HELLO.
  SendResult Send(Batch& batch);

  // Reads one monitor event if one is waiting; events other than the two
  // subscribed to are skipped.
  Event ReadEvent();

  // True between kConnected and the next kDisconnected.
  bool connected() const { return connected_; }
  // True when a HELLO left since the Link opened or last disconnected.
  bool hello_sent() const { return hello_sent_; }

  // How long messages still queued may wait in the socket at close. Errors
  // are ignored: the socket is about to close either way.
  void SetLinger(std::chrono::milliseconds linger);

 private:
  Link(zmq::context_t& context, const std::string& endpoint,
       const CurveKeys* curve);

  zmq::socket_t socket_;
  zmq::socket_t monitor_;
  Reader reader_{/*routed=*/false};
  bool connected_ = false;
  bool hello_sent_ = false;
};

}  // namespace rejoin::transport
