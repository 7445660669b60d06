// ZMQ_IMMEDIATE keeps messages from queueing for a broker that is not there
// (they would leave much later, after the state they describe has moved on);
// the short reconnect interval makes a restarted broker visible within tens
// of milliseconds. The monitor lets the I/O loop say HELLO the moment a new
// connection is usable instead of waiting for a timer.
#include "link.h"

#include <atomic>
#include <cstdint>
#include <cstring>

namespace rejoin::server_internal {
namespace {

constexpr int kReconnectIvlMs = 20;
constexpr int kReconnectIvlMaxMs = 200;

std::string NextMonitorAddress() {
  // inproc names are per context; a process-wide counter keeps them unique
  // across Server objects and across socket re-creation.
  static std::atomic<std::uint64_t> next{0};
  return "inproc://rejoin-server-monitor-" + std::to_string(next++);
}

}  // namespace

Link::Link(zmq::context_t& context, const std::string& endpoint)
    : socket_(context, zmq::socket_type::dealer),
      monitor_(context, zmq::socket_type::pair) {
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
  zmq::message_t event;
  if (!monitor_.recv(event, zmq::recv_flags::dontwait)) return Event::kNone;
  // A monitor event is two frames: {uint16 event, uint32 value} and the
  // endpoint address. Read the second so the stream stays aligned.
  while (monitor_.get(zmq::sockopt::rcvmore) != 0) {
    zmq::message_t rest;
    (void)monitor_.recv(rest, zmq::recv_flags::none);
  }
  if (event.size() < sizeof(std::uint16_t)) return Event::kOther;
  std::uint16_t id = 0;
  std::memcpy(&id, event.data(), sizeof(id));
  switch (id) {
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
      return Event::kConnected;
    case ZMQ_EVENT_DISCONNECTED:
      return Event::kDisconnected;
    default:
      return Event::kOther;
  }
}

void Link::SetLinger(std::chrono::milliseconds linger) {
  socket_.set(zmq::sockopt::linger, static_cast<int>(linger.count()));
}

}  // namespace rejoin::server_internal
