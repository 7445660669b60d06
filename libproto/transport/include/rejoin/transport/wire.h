// The one place where rejoin messages meet ZeroMQ frames: reading a whole
// multipart message without blocking, decoding it with the codec, and sending
// a Message or forwarding raw frames. Used by the broker, libclient and
// libserver; each socket is used by exactly one thread (its owner's).
//
// No function here throws: zmq errors become SendResult / empty optionals, and
// a dead context (ETERM) reads as kClosed.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <zmq.hpp>

#include "rejoin/proto/codec.h"
#include "rejoin/proto/messages.h"

namespace rejoin::transport {

// One multipart message as read from a socket.
struct Frames {
  std::string route;       // ROUTER sockets: the peer's routing id
  zmq::message_t header;   // first frame after the route
  zmq::message_t payload;  // second frame, if any
  std::size_t count = 0;   // frames after the route (extra ones dropped)
};

enum class ReadResult { kMessage, kNothing, kClosed };

// Reads one message if one is waiting. With `routed`, the first frame is taken
// as the routing id. Frames beyond the second are read and discarded (and
// counted in `count`) so a hostile message never desynchronises the stream.
ReadResult TryRead(zmq::socket_t& socket, bool routed, Frames& out);

// Decodes frames read by TryRead.
Result<Message> Decode(const Frames& frames,
                       const CodecLimits& limits = CodecLimits());

enum class SendResult {
  kOk,
  kWouldBlock,   // high-water mark, or (ZMQ_IMMEDIATE) not connected
  kUnreachable,  // ROUTER_MANDATORY: the peer's connection is gone
  kClosed,       // the context is terminating
};

// Encodes and sends `m`, preceded by `route` when non-empty, followed by
// `payload` when the type has a payload frame (an empty frame if null).
// `payload` is moved from (zero copy).
SendResult Send(zmq::socket_t& socket, std::string_view route, const Message& m,
                zmq::message_t* payload = nullptr);

// Sends already-encoded frames: the broker's forwarding path. `header` and
// `payload` are moved from; `payload` is sent only when `with_payload`.
SendResult Forward(zmq::socket_t& socket, std::string_view route,
                   zmq::message_t& header, zmq::message_t& payload,
                   bool with_payload);

// A zero-copy second reference to `m` (libzmq shares the buffer of large
// messages and copies small ones).
zmq::message_t Share(zmq::message_t& m);

std::string_view View(const zmq::message_t& m);

}  // namespace rejoin::transport
