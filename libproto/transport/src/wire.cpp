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

// A pack frame starts like a header frame whose type is 0 (PROTOCOL.md
// §2.2); every entry is a 4-byte little-endian size and that many bytes.
constexpr std::string_view kPackSignature("RJ\x01\x00", 4);
constexpr std::size_t kSizeBytes = 4;

void PutSize(char* at, std::size_t n) {
  for (std::size_t i = 0; i < kSizeBytes; ++i) {
    at[i] = static_cast<char>((n >> (8 * i)) & 0xffu);
  }
}

void PutSized(std::string& out, std::string_view bytes) {
  const std::size_t at = out.size();
  out.append(kSizeBytes, '\0');
  PutSize(out.data() + at, bytes.size());
  out.append(bytes);
}

// Takes one sized entry off the front of `rest`; false if it runs past the
// end.
bool TakeSized(std::string_view& rest, std::string_view& out) {
  if (rest.size() < kSizeBytes) return false;
  std::size_t n = 0;
  for (std::size_t i = 0; i < kSizeBytes; ++i) {
    n |= static_cast<std::size_t>(static_cast<unsigned char>(rest[i]))
         << (8 * i);
  }
  rest.remove_prefix(kSizeBytes);
  if (n > rest.size()) return false;
  out = rest.substr(0, n);
  rest.remove_prefix(n);
  return true;
}

SendResult SendRoute(zmq::socket_t& socket, std::string_view route) {
  if (route.empty()) return SendResult::kOk;
  zmq::message_t frame(route.data(), route.size());
  return SendFrame(socket, frame, true);
}

}  // namespace

ReadResult Reader::Next(zmq::socket_t& socket, Frames& out) {
  out.count = 0;
  out.header = {};
  out.payload = {};
  header_frame_ = payload_frame_ = kNone;
  header_ = payload_ = {};
  try {
    for (;;) {
      if (NextPacked(out)) return ReadResult::kMessage;
      if (next_ >= batch_.size()) {
        batch_.clear();
        next_ = 0;
        zmq::message_t first;
        if (!socket.recv(first, zmq::recv_flags::dontwait)) {
          return ReadResult::kNothing;
        }
        // The rest of a multipart message is already here: zmq delivers
        // whole messages, so blocking reads below cannot wait.
        bool more = first.more();
        source_fd_ = zmq_msg_get(first.handle(), ZMQ_SRCFD);
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
        if (authenticated_) {
          // Every frame of a connection carries its metadata; the first
          // data frame is read (the routing id frame is made by the
          // ROUTER).
          zmq::message_t& data = batch_.empty() ? first : batch_.front();
          const char* uid = zmq_msg_gets(data.handle(), "User-Id");
          user_id_.assign(uid != nullptr ? uid : "");
        }
        if (batch_.empty()) {  // a routing id alone: count 0, malformed
          out.route = route_;
          out.user_id = user_id_;
          out.source_fd = source_fd_;
          return ReadResult::kMessage;
        }
      }
      const std::string_view frame = View(batch_[next_]);
      if (IsPackFrame(frame)) {
        pack_ = frame;
        pack_pos_ = kPackSignature.size();
        ++next_;
        continue;  // an empty pack frame holds nothing: read on
      }
      out.route = route_;
      out.user_id = user_id_;
      out.source_fd = source_fd_;
      header_frame_ = next_++;
      header_ = frame;
      out.count = 1;
      Result<MessageType> type = PeekType(std::as_bytes(std::span(frame)));
      if (!type.ok()) {
        dropped_frames_ += batch_.size() - next_;
        next_ = batch_.size();
      } else if (HasPayloadFrame(type.value()) && next_ < batch_.size()) {
        payload_frame_ = next_++;
        payload_ = View(batch_[payload_frame_]);
        out.count = 2;
      }
      out.header = header_;
      out.payload = payload_;
      return ReadResult::kMessage;
    }
  } catch (const zmq::error_t&) {
    return ReadResult::kClosed;
  }
}

bool Reader::NextPacked(Frames& out) {
  if (pack_pos_ >= pack_.size()) return false;
  out.route = route_;
  out.user_id = user_id_;
  out.source_fd = source_fd_;
  std::string_view rest = pack_.substr(pack_pos_);
  // Ends the pack frame here, and with it the batch when nothing after this
  // point can be told apart.
  auto end_pack = [&](bool whole_batch) {
    pack_ = {};
    pack_pos_ = 0;
    if (whole_batch) {
      dropped_frames_ += batch_.size() - next_;
      next_ = batch_.size();
    }
  };
  std::string_view header;
  if (!TakeSized(rest, header)) {
    end_pack(false);
    return true;  // count 0: malformed
  }
  header_ = header;
  out.header = header;
  out.count = 1;
  Result<MessageType> type = PeekType(std::as_bytes(std::span(header)));
  if (!type.ok()) {
    end_pack(true);
    return true;
  }
  if (HasPayloadFrame(type.value())) {
    std::string_view payload;
    if (!TakeSized(rest, payload)) {
      end_pack(false);
      return true;  // count 1: REQUEST/RESPONSE without payload, malformed
    }
    payload_ = payload;
    out.payload = payload;
    out.count = 2;
  }
  pack_pos_ = pack_.size() - rest.size();
  if (pack_pos_ >= pack_.size()) end_pack(false);
  return true;
}

zmq::message_t Reader::Take(std::size_t frame, std::string_view bytes) {
  if (frame != kNone && frame < batch_.size()) {
    return std::move(batch_[frame]);
  }
  return zmq::message_t(bytes.data(), bytes.size());
}

zmq::message_t Reader::TakeHeader() {
  zmq::message_t m = Take(header_frame_, header_);
  header_frame_ = kNone;
  header_ = {};
  return m;
}

zmq::message_t Reader::TakePayload() {
  zmq::message_t m = Take(payload_frame_, payload_);
  payload_frame_ = kNone;
  payload_ = {};
  return m;
}

Result<Message> Decode(const Frames& frames, const CodecLimits& limits) {
  if (frames.count == 0) {
    return Result<Message>(ErrorCode::kMalformed, "message with no frames");
  }
  return DecodeHeader(std::as_bytes(std::span(frames.header)), frames.count,
                      frames.count >= 2 ? frames.payload.size() : 0, limits);
}

SendResult Send(zmq::socket_t& socket, std::string_view route, const Message& m,
                zmq::message_t* payload) {
  std::string bytes = EncodeHeader(m);
  zmq::message_t header(bytes.data(), bytes.size());
  const bool with_payload = HasPayloadFrame(TypeOf(m));
  if (SendResult r = SendRoute(socket, route); r != SendResult::kOk) return r;
  if (SendResult r = SendFrame(socket, header, with_payload);
      r != SendResult::kOk) {
    return r;
  }
  if (!with_payload) return SendResult::kOk;
  zmq::message_t empty;
  return SendFrame(socket, payload != nullptr ? *payload : empty, false);
}

void Batch::ClosePack() {
  if (pack_.empty()) return;
  frames_.emplace_back(pack_.data(), pack_.size());
  pack_.clear();
}

void Batch::Add(const Message& m, zmq::message_t* payload) {
  if (HasPayloadFrame(TypeOf(m)) && payload != nullptr &&
      payload->size() > kPackMaxPayload) {
    std::string bytes = EncodeHeader(m);
    AddOwnFrames(zmq::message_t(bytes.data(), bytes.size()), Share(*payload));
    return;
  }
  Pack(m, payload != nullptr ? View(*payload) : std::string_view());
}

void Batch::Add(const Message& m, std::string_view payload) {
  if (HasPayloadFrame(TypeOf(m)) && payload.size() > kPackMaxPayload) {
    zmq::message_t frame(payload.data(), payload.size());
    Add(m, &frame);
    return;
  }
  Pack(m, payload);
}

void Batch::Pack(const Message& m, std::string_view payload) {
  // The header is encoded straight into the pack frame, its size filled in
  // after.
  if (pack_.empty()) pack_.append(kPackSignature);
  const std::size_t at = pack_.size();
  pack_.append(kSizeBytes, '\0');
  EncodeHeader(m, pack_);
  PutSize(pack_.data() + at, pack_.size() - at - kSizeBytes);
  if (HasPayloadFrame(TypeOf(m))) PutSized(pack_, payload);
  ++messages_;
  if (pack_.size() >= kPackTargetBytes) ClosePack();
}

void Batch::AddEncoded(std::string_view header, std::string_view payload,
                       bool with_payload) {
  if (with_payload && payload.size() > kPackMaxPayload) {
    AddOwnFrames(zmq::message_t(header.data(), header.size()),
                 zmq::message_t(payload.data(), payload.size()));
    return;
  }
  if (pack_.empty()) pack_.append(kPackSignature);
  PutSized(pack_, header);
  if (with_payload) PutSized(pack_, payload);
  ++messages_;
  if (pack_.size() >= kPackTargetBytes) ClosePack();
}

void Batch::AddFrames(zmq::message_t& header, zmq::message_t& payload,
                      bool with_payload) {
  if (!with_payload || payload.size() <= kPackMaxPayload) {
    AddEncoded(View(header), View(payload), with_payload);
    return;
  }
  AddOwnFrames(Share(header), Share(payload));
}

void Batch::AddOwnFrames(zmq::message_t header, zmq::message_t payload) {
  // Order is kept: what was packed so far goes first.
  ClosePack();
  frames_.push_back(std::move(header));
  frames_.push_back(std::move(payload));
  ++messages_;
}

SendResult Batch::Send(zmq::socket_t& socket, std::string_view route) {
  if (empty()) return SendResult::kOk;
  ClosePack();
  SendResult r = SendRoute(socket, route);
  for (std::size_t i = 0; r == SendResult::kOk && i < frames_.size(); ++i) {
    r = SendFrame(socket, frames_[i], i + 1 < frames_.size());
  }
  Clear();
  return r;
}

void Batch::Clear() {
  frames_.clear();
  pack_.clear();  // keeps its capacity for the next batch
  messages_ = 0;
}

zmq::message_t Share(zmq::message_t& m) {
  zmq::message_t copy;
  copy.copy(m);
  return copy;
}

std::string_view View(const zmq::message_t& m) {
  return std::string_view(static_cast<const char*>(m.data()), m.size());
}

bool IsPackFrame(std::string_view frame) {
  return frame.size() >= kPackSignature.size() &&
         frame.substr(0, kPackSignature.size()) == kPackSignature;
}

}  // namespace rejoin::transport
