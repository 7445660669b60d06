// The one place where rejoin messages meet ZeroMQ frames: reading multipart
// messages without blocking and splitting them into rejoin messages, decoding
// those with the codec, and sending Messages or forwarding raw frames, alone
// or batched. Used by the broker, libclient and libserver; each socket is
// used by exactly one thread (its owner's).
//
// Batches (PROTOCOL.md §2): one ZeroMQ message carries one or more rejoin
// messages back to back, each a header frame followed, for REQUEST and
// RESPONSE, by its payload frame. Batching changes nothing about what each
// message means; it saves the per-message costs of libzmq (a pipe flush and
// often a thread wake-up per message), which dominate small operations.
//
// No function here throws: zmq errors become SendResult / empty optionals, and
// a dead context (ETERM) reads as kClosed.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>
#include <zmq.hpp>

#include "rejoin/proto/codec.h"
#include "rejoin/proto/messages.h"

namespace rejoin::transport {

// One rejoin message as read from a socket.
struct Frames {
  std::string route;       // ROUTER sockets: the peer's routing id
  zmq::message_t header;   // the header frame
  zmq::message_t payload;  // its payload frame, if any
  std::size_t count = 0;   // 1, or 2 with a payload frame; 0: no frames
};

enum class ReadResult { kMessage, kNothing, kClosed };

// Hands out the rejoin messages of one socket one at a time, reading the
// next batch when the last one is used up. With `routed` (ROUTER sockets)
// the first frame of each batch is the routing id.
//
// A header frame whose type cannot be read (bad signature or version,
// unknown type) ends its batch: without the type the frames after it cannot
// be told apart, so they are dropped (dropped_frames()) and the bad header is
// handed out alone for Decode to report. A REQUEST or RESPONSE header that
// ends the batch comes out with count 1, which Decode rejects.
class Reader {
 public:
  explicit Reader(bool routed) : routed_(routed) {}
  ReadResult Next(zmq::socket_t& socket, Frames& out);
  std::uint64_t dropped_frames() const { return dropped_frames_; }
  // Messages of the last batch not yet handed out.
  bool buffered() const { return next_ < batch_.size(); }

 private:
  bool routed_;
  std::string route_;
  std::vector<zmq::message_t> batch_;
  std::size_t next_ = 0;
  std::uint64_t dropped_frames_ = 0;
};

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

// Rejoin messages for one peer, sent together as one ZeroMQ message.
class Batch {
 public:
  // Encodes `m`; `payload` (moved from) follows when the type has a payload
  // frame (an empty frame if null).
  void Add(const Message& m, zmq::message_t* payload = nullptr);
  // Adds already-encoded frames (moved from), as Forward sends them.
  void AddFrames(zmq::message_t& header, zmq::message_t& payload,
                 bool with_payload);
  bool empty() const { return frames_.empty(); }
  std::size_t messages() const { return messages_; }
  // Sends the batch after `route` (when not empty) and empties it, whatever
  // the result: libzmq delivers a multipart message whole or not at all.
  SendResult Send(zmq::socket_t& socket, std::string_view route);
  // Empties the batch without sending.
  void Clear();

 private:
  std::vector<zmq::message_t> frames_;
  std::size_t messages_ = 0;
};

// A zero-copy second reference to `m` (libzmq shares the buffer of large
// messages and copies small ones).
zmq::message_t Share(zmq::message_t& m);

std::string_view View(const zmq::message_t& m);

}  // namespace rejoin::transport
