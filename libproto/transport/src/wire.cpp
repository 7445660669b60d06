// Frame-level I/O for rejoin messages. zmq::error_t is translated here, once,
// into results; nothing escapes to the run loops.
#include "rejoin/transport/wire.h"

#include <cerrno>
#include <cstddef>
#include <span>

namespace rejoin::transport {
namespace {

SendResult FromErrno(int err) {
  switch (err) {
    case EAGAIN:
      return SendResult::kWouldBlock;
    case EHOSTUNREACH:
      return SendResult::kUnreachable;
    default:
      return SendResult::kClosed;
  }
}

// Sends one frame; `more` marks a following frame.
SendResult SendFrame(zmq::socket_t& socket, zmq::message_t& frame, bool more) {
  try {
    auto flags = zmq::send_flags::dontwait;
    if (more) flags = flags | zmq::send_flags::sndmore;
    auto sent = socket.send(frame, flags);
    return sent ? SendResult::kOk : SendResult::kWouldBlock;
  } catch (const zmq::error_t& e) {
    return FromErrno(e.num());
  }
}

SendResult SendRoute(zmq::socket_t& socket, std::string_view route) {
  if (route.empty()) return SendResult::kOk;
  zmq::message_t frame(route.data(), route.size());
  return SendFrame(socket, frame, true);
}

}  // namespace

ReadResult Reader::Next(zmq::socket_t& socket, Frames& out) {
  out.count = 0;
  try {
    if (next_ >= batch_.size()) {
      batch_.clear();
      next_ = 0;
      zmq::message_t first;
      if (!socket.recv(first, zmq::recv_flags::dontwait)) {
        return ReadResult::kNothing;
      }
      // The rest of a multipart message is already here: zmq delivers whole
      // messages, so blocking reads below cannot wait.
      bool more = first.more();
      if (routed_) {
        route_.assign(static_cast<const char*>(first.data()), first.size());
      } else {
        batch_.push_back(std::move(first));
      }
      while (more) {
        batch_.emplace_back();
        (void)socket.recv(batch_.back(), zmq::recv_flags::none);
        more = batch_.back().more();
      }
      if (batch_.empty()) {  // a routing id alone: count 0, malformed
        out.route = route_;
        return ReadResult::kMessage;
      }
    }
    out.route = route_;
    out.header = std::move(batch_[next_++]);
    out.count = 1;
    out.payload.rebuild(std::size_t{0});
    Result<MessageType> type = PeekType(std::span<const std::byte>(
        static_cast<const std::byte*>(out.header.data()), out.header.size()));
    if (!type.ok()) {
      dropped_frames_ += batch_.size() - next_;
      next_ = batch_.size();
    } else if (HasPayloadFrame(type.value()) && next_ < batch_.size()) {
      out.payload = std::move(batch_[next_++]);
      out.count = 2;
    }
    return ReadResult::kMessage;
  } catch (const zmq::error_t&) {
    return ReadResult::kClosed;
  }
}

Result<Message> Decode(const Frames& frames, const CodecLimits& limits) {
  if (frames.count == 0) {
    return Result<Message>(ErrorCode::kMalformed, "message with no frames");
  }
  std::span<const std::byte> header(
      static_cast<const std::byte*>(frames.header.data()),
      frames.header.size());
  return DecodeHeader(header, frames.count,
                      frames.count >= 2 ? frames.payload.size() : 0, limits);
}

SendResult Send(zmq::socket_t& socket, std::string_view route, const Message& m,
                zmq::message_t* payload) {
  std::string bytes = EncodeHeader(m);
  zmq::message_t header(bytes.data(), bytes.size());
  zmq::message_t empty;
  return Forward(socket, route, header, payload ? *payload : empty,
                 HasPayloadFrame(TypeOf(m)));
}

void Batch::Add(const Message& m, zmq::message_t* payload) {
  std::string bytes = EncodeHeader(m);
  zmq::message_t header(bytes.data(), bytes.size());
  zmq::message_t empty;
  AddFrames(header, payload ? *payload : empty, HasPayloadFrame(TypeOf(m)));
}

void Batch::AddFrames(zmq::message_t& header, zmq::message_t& payload,
                      bool with_payload) {
  frames_.push_back(std::move(header));
  if (with_payload) frames_.push_back(std::move(payload));
  ++messages_;
}

SendResult Batch::Send(zmq::socket_t& socket, std::string_view route) {
  if (frames_.empty()) return SendResult::kOk;
  SendResult r = SendRoute(socket, route);
  for (std::size_t i = 0; r == SendResult::kOk && i < frames_.size(); ++i) {
    r = SendFrame(socket, frames_[i], i + 1 < frames_.size());
  }
  Clear();
  return r;
}

void Batch::Clear() {
  frames_.clear();
  messages_ = 0;
}

SendResult Forward(zmq::socket_t& socket, std::string_view route,
                   zmq::message_t& header, zmq::message_t& payload,
                   bool with_payload) {
  if (SendResult r = SendRoute(socket, route); r != SendResult::kOk) return r;
  if (SendResult r = SendFrame(socket, header, with_payload);
      r != SendResult::kOk) {
    return r;
  }
  if (!with_payload) return SendResult::kOk;
  return SendFrame(socket, payload, false);
}

zmq::message_t Share(zmq::message_t& m) {
  zmq::message_t copy;
  copy.copy(m);
  return copy;
}

std::string_view View(const zmq::message_t& m) {
  return std::string_view(static_cast<const char*>(m.data()), m.size());
}

}  // namespace rejoin::transport
