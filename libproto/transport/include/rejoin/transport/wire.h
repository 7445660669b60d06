// The one place where rejoin messages meet ZeroMQ frames: reading multipart
// messages without blocking and splitting them into rejoin messages, decoding
// those with the codec, and sending Messages or forwarding raw frames, alone
// or batched. Used by the broker, libclient and libserver; each socket is
// used by exactly one thread (its owner's).
//
// Batches (PROTOCOL.md §2): one ZeroMQ message carries one or more rejoin
// messages back to back, each a header frame followed, for REQUEST and
// RESPONSE, by its payload frame, or many of them packed into one pack frame.
// Batching changes nothing about what each message means; it saves the
// per-message costs of libzmq (a pipe flush and often a thread wake-up per
// message), and packing its per-frame costs (a pipe entry, an allocation and
// a wire header per frame on each side), which dominate small operations.
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

// Messages whose payload is at most this size travel inside pack frames
// (PROTOCOL.md §2.2); larger payloads keep frames of their own, which libzmq
// hands over without copying.
inline constexpr std::size_t kPackMaxPayload = 8 * 1024;
// A pack frame is closed and a new one started once it passes this size.
inline constexpr std::size_t kPackTargetBytes = 64 * 1024;

// One rejoin message as read from a socket. The views point into the
// reader's buffers and stay valid until its next Next(); Reader::TakeHeader
// and TakePayload give copies that live on.
struct Frames {
  std::string route;         // ROUTER sockets: the peer's routing id
  std::string_view header;   // the header
  std::string_view payload;  // its payload, if any
  std::size_t count = 0;     // 1, or 2 with a payload; 0: malformed framing
  // Readers made with `authenticated`: the User-Id the ZAP handler gave the
  // sender's connection (empty when none). Every reader: the connection's
  // descriptor (ZMQ_SRCFD; -1 when unknown). Both are the same for every
  // message of a batch.
  std::string_view user_id;
  int source_fd = -1;
};

enum class ReadResult { kMessage, kNothing, kClosed };

// Hands out the rejoin messages of one socket one at a time, reading the
// next batch when the last one is used up. With `routed` (ROUTER sockets)
// the first frame of each batch is the routing id. A batch's frames are
// header and payload frames (§2.1) and pack frames (§2.2), in any mix.
//
// A header whose type cannot be read (bad signature or version, unknown
// type) ends its batch: without the type the frames after it cannot be told
// apart, so they are dropped (dropped_frames()) and the bad header is handed
// out alone for Decode to report. A REQUEST or RESPONSE header that ends the
// batch comes out with count 1, which Decode rejects. A pack frame entry that
// runs past the end of its frame comes out with count 0 (malformed), and the
// rest of that pack frame is dropped.
class Reader {
 public:
  // `authenticated`: fill Frames::user_id from each batch's metadata (a
  // ROUTER whose handshakes a ZAP handler authenticates).
  explicit Reader(bool routed, bool authenticated = false)
      : routed_(routed), authenticated_(authenticated) {}
  ReadResult Next(zmq::socket_t& socket, Frames& out);
  // The header and payload of the message Next() handed out last, to keep:
  // moved out when they came as frames of their own, copied out of their
  // pack frame otherwise. Each may be taken once.
  zmq::message_t TakeHeader();
  zmq::message_t TakePayload();
  std::uint64_t dropped_frames() const { return dropped_frames_; }
  // Messages of the last batch not yet handed out.
  bool buffered() const {
    return next_ < batch_.size() || pack_pos_ < pack_.size();
  }

 private:
  // Reads the next message out of the current pack frame, if any is left.
  bool NextPacked(Frames& out);
  zmq::message_t Take(std::size_t frame, std::string_view bytes);

  static constexpr std::size_t kNone = static_cast<std::size_t>(-1);
  bool routed_;
  bool authenticated_;
  std::string route_;
  std::string user_id_;
  int source_fd_ = -1;
  std::vector<zmq::message_t> batch_;
  std::size_t next_ = 0;
  // The pack frame being read (a view of one of batch_'s frames) and the
  // offset of its next entry.
  std::string_view pack_;
  std::size_t pack_pos_ = 0;
  // Where the last message handed out came from: frame indexes into batch_
  // for frames of its own (kNone inside a pack frame), and its bytes.
  std::size_t header_frame_ = kNone;
  std::size_t payload_frame_ = kNone;
  std::string_view header_;
  std::string_view payload_;
  std::uint64_t dropped_frames_ = 0;
};

// Decodes a message handed out by Reader::Next.
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

// Rejoin messages for one peer, sent together as one ZeroMQ message: small
// ones packed into pack frames, large payloads in frames of their own, in the
// order they were added.
class Batch {
 public:
  // Encodes `m`; `payload` (shared, not copied, when it travels in a frame of
  // its own) follows when the type has a payload frame (an empty one if
  // null).
  void Add(const Message& m, zmq::message_t* payload = nullptr);
  // Encodes `m` followed by a copy of `payload`.
  void Add(const Message& m, std::string_view payload);
  // Adds already-encoded bytes, as the broker forwards them.
  void AddEncoded(std::string_view header, std::string_view payload,
                  bool with_payload);
  // Adds already-encoded frames, which stay the caller's: small ones are
  // copied into the pack frame, a large payload and its header are shared
  // (libzmq counts references; no bytes are copied).
  void AddFrames(zmq::message_t& header, zmq::message_t& payload,
                 bool with_payload);
  bool empty() const { return messages_ == 0; }
  std::size_t messages() const { return messages_; }
  // Sends the batch after `route` (when not empty) and empties it, whatever
  // the result: libzmq delivers a multipart message whole or not at all.
  SendResult Send(zmq::socket_t& socket, std::string_view route);
  // Empties the batch without sending.
  void Clear();

 private:
  // Encodes `m` into the pack frame, followed by `payload` when the type has
  // a payload frame.
  void Pack(const Message& m, std::string_view payload);
  // Moves the open pack frame into frames_.
  void ClosePack();
  // Appends a message that keeps frames of its own, after what was packed
  // so far.
  void AddOwnFrames(zmq::message_t header, zmq::message_t payload);

  std::vector<zmq::message_t> frames_;
  std::string pack_;  // the open pack frame; empty when none
  std::size_t messages_ = 0;
};

// A zero-copy second reference to `m` (libzmq shares the buffer of large
// messages and copies small ones).
zmq::message_t Share(zmq::message_t& m);

std::string_view View(const zmq::message_t& m);
inline std::string_view View(std::string_view bytes) { return bytes; }

// Whether `frame` is a pack frame (PROTOCOL.md §2.2).
bool IsPackFrame(std::string_view frame);

}  // namespace rejoin::transport
