// ZMQ_IMMEDIATE keeps messages from queueing for a broker that is not there
// (they would leave much later, after the state they describe has moved on);
// the short reconnect interval makes a restarted broker visible within tens
// of milliseconds. HANDSHAKE_SUCCEEDED rather than CONNECTED is watched
// because ZMQ_IMMEDIATE attaches the pipe only once the handshake is done:
// before that a HELLO cannot leave.
#include "rejoin/transport/link.h"

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

namespace rejoin::transport {
namespace {

constexpr int kReconnectIvlMs = 20;
constexpr int kReconnectIvlMaxMs = 50;

std::string NextMonitorAddress() {
  // inproc names are per context; a process-wide counter keeps them unique
  // across endpoints in one process and across socket re-creation.
  static std::atomic<std::uint64_t> next{0};
  return "inproc://rejoin-link-monitor-" + std::to_string(next++);
}

Status BadEndpoint(const std::string& endpoint, const std::string& why) {
  return Status(ErrorCode::kInvalidArgument,
                "invalid endpoint '" + endpoint + "': " + why);
}

}  // namespace

Status CheckEndpoint(const std::string& endpoint, bool bind) {
  const std::size_t scheme_end = endpoint.find("://");
  if (scheme_end == std::string::npos || scheme_end == 0) {
    return BadEndpoint(endpoint, "expected transport://address");
  }
  if (endpoint.compare(0, scheme_end, "tcp") != 0) return Status::Ok();
  const std::string address = endpoint.substr(scheme_end + 3);
  const std::size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    return BadEndpoint(endpoint, "tcp needs HOST:PORT");
  }
  const std::string host = address.substr(0, colon);
  const std::string port = address.substr(colon + 1);
  if (host.empty()) return BadEndpoint(endpoint, "empty host");
  for (char ch : host) {
    if (static_cast<unsigned char>(ch) <= 0x20 ||
        static_cast<unsigned char>(ch) >= 0x7f) {
      return BadEndpoint(endpoint, "host has a space or a control byte");
    }
  }
  if (host.find('[') != std::string::npos ||
      host.find(']') != std::string::npos) {
    if (host.front() != '[' || host.back() != ']' || host.size() < 3) {
      return BadEndpoint(endpoint, "an IPv6 host goes in [brackets]");
    }
  } else if (host.find(':') != std::string::npos) {
    return BadEndpoint(endpoint, "an IPv6 host goes in [brackets]");
  }
  if (port == "*") {
    if (bind) return Status::Ok();
    return BadEndpoint(endpoint, "port * only binds; connect needs a number");
  }
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos) {
    return BadEndpoint(endpoint, "port must be a number in 1..65535");
  }
  const long value = std::stol(port);
  if (value < 1 || value > 65535) {
    return BadEndpoint(endpoint, "port " + port + " is outside 1..65535");
  }
  return Status::Ok();
}

Result<std::unique_ptr<Link>> Link::Open(zmq::context_t& context,
                                         const std::string& endpoint,
                                         const CurveKeys* curve) {
  if (Status s = CheckEndpoint(endpoint, /*bind=*/false); !s.ok()) return s;
  try {
    return std::unique_ptr<Link>(new Link(context, endpoint, curve));
  } catch (const zmq::error_t& e) {
    const bool bad_endpoint = e.num() == EINVAL || e.num() == EPROTONOSUPPORT ||
                              e.num() == ENOCOMPATPROTO;
    return Status(
        bad_endpoint ? ErrorCode::kInvalidArgument : ErrorCode::kIoError,
        "cannot connect to '" + endpoint + "': " + e.what());
  }
}

Link::Link(zmq::context_t& context, const std::string& endpoint,
           const CurveKeys* curve)
    : socket_(context, zmq::socket_type::dealer),
      monitor_(context, zmq::socket_type::pair) {
  if (curve != nullptr) {
    socket_.set(zmq::sockopt::curve_serverkey, curve->broker_key);
    socket_.set(zmq::sockopt::curve_publickey, curve->own.public_key);
    socket_.set(zmq::sockopt::curve_secretkey, curve->own.secret_key);
  }
  socket_.set(zmq::sockopt::immediate, 1);
  socket_.set(zmq::sockopt::linger, 0);
  socket_.set(zmq::sockopt::reconnect_ivl, kReconnectIvlMs);
  socket_.set(zmq::sockopt::reconnect_ivl_max, kReconnectIvlMaxMs);
  const std::string address = NextMonitorAddress();
  if (zmq_socket_monitor(
          socket_.handle(), address.c_str(),
          ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED) != 0) {
    throw zmq::error_t();
  }
  monitor_.set(zmq::sockopt::linger, 0);
  monitor_.connect(address);
  socket_.connect(endpoint);
}

Link::~Link() {
  // Stop the monitor first so libzmq does not report this socket's own close
  // into a PAIR that is about to disappear.
  zmq_socket_monitor(socket_.handle(), nullptr, 0);
}

Link::Event Link::ReadEvent() {
  try {
    for (;;) {
      zmq::message_t event;
      if (!monitor_.recv(event, zmq::recv_flags::dontwait)) return Event::kNone;
      // A monitor event is two frames: {uint16 event, uint32 value} and the
      // endpoint address. Read the second so the stream stays aligned.
      while (monitor_.get(zmq::sockopt::rcvmore) != 0) {
        zmq::message_t rest;
        (void)monitor_.recv(rest, zmq::recv_flags::none);
      }
      if (event.size() < sizeof(std::uint16_t)) continue;
      std::uint16_t id = 0;
      std::memcpy(&id, event.data(), sizeof(id));
      switch (id) {
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
          connected_ = true;
          return Event::kConnected;
        case ZMQ_EVENT_DISCONNECTED:
          connected_ = false;
          hello_sent_ = false;
          return Event::kDisconnected;
        default:
          continue;
      }
    }
  } catch (const zmq::error_t&) {
    return Event::kClosed;
  }
}

ReadResult Link::Read(Frames& out) { return reader_.Next(socket_, out); }

bool Link::InputWaiting() {
  return reader_.buffered() ||
         (socket_.get(zmq::sockopt::events) & ZMQ_POLLIN) != 0;
}

SendResult Link::Send(Batch& batch) { return batch.Send(socket_, ""); }

SendResult Link::Send(const Message& m, zmq::message_t* payload) {
  const bool hello = TypeOf(m) == MessageType::kHello;
  if (hello && !connected_) {
    // Before the handshake event a HELLO either finds no pipe (ZMQ_IMMEDIATE)
    // or the pipe of a connection that just died, whose messages libzmq
    // drops once it notices: then hello_sent() would hold back the HELLO of
    // the next connection until a retry timer. kConnected says when.
    return SendResult::kWouldBlock;
  }
  SendResult r = transport::Send(socket_, "", m, payload);
  if (r == SendResult::kWouldBlock && hello) {
    // The handshake event can be read before the socket has processed the
    // command that attaches the new pipe (a send processes commands only now
    // and then); reading ZMQ_EVENTS processes them all.
    (void)socket_.get(zmq::sockopt::events);
    r = transport::Send(socket_, "", m, payload);
  }
  if (r == SendResult::kOk && hello) hello_sent_ = true;
  return r;
}

void Link::SetLinger(std::chrono::milliseconds linger) {
  try {
    socket_.set(zmq::sockopt::linger, static_cast<int>(linger.count()));
  } catch (const zmq::error_t&) {
  }
}

}  // namespace rejoin::transport
