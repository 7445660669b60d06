// The scripted broker of the client tests (see fake_broker.h).
#include "client/fake_broker.h"

#include <thread>

#include "rejoin/transport/wire.h"

namespace rejoin::testing {

FakeBroker::FakeBroker(int port) {
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (true) {
    router_.emplace(context_, zmq::socket_type::router);
    router_->set(zmq::sockopt::linger, 0);
    try {
      router_->bind(port == 0 ? std::string("tcp://127.0.0.1:*")
                              : "tcp://127.0.0.1:" + std::to_string(port));
      break;
    } catch (const zmq::error_t&) {
      // The port of a broker that just closed may take a moment to free.
      router_.reset();
      if (std::chrono::steady_clock::now() > deadline) throw;
      std::this_thread::sleep_for(10ms);
    }
  }
  std::string last = router_->get(zmq::sockopt::last_endpoint);
  port_ = std::stoi(last.substr(last.rfind(':') + 1));
}

FakeBroker::~FakeBroker() { router_.reset(); }

std::string FakeBroker::endpoint() const {
  return "tcp://127.0.0.1:" + std::to_string(port_);
}

std::optional<Received<Message>> FakeBroker::Next(
    std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    transport::Frames frames;
    if (transport::TryRead(*router_, true, frames) ==
        transport::ReadResult::kMessage) {
      auto m = transport::Decode(frames);
      if (!m.ok()) continue;
      route_ = frames.route;
      return Received<Message>{std::move(m).value(),
                               std::string(transport::View(frames.payload))};
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    zmq::pollitem_t item{router_->handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, left);
  }
}

std::optional<Hello> FakeBroker::AcceptHello(Epoch epoch,
                                             std::uint32_t max_outstanding,
                                             std::uint32_t heartbeat_ms) {
  auto hello = Expect<Hello>();
  if (!hello) return std::nullopt;
  Welcome w;
  w.epoch = epoch;
  w.heartbeat_ms = heartbeat_ms;
  w.max_message_bytes = 1 << 20;
  w.max_outstanding = max_outstanding;
  Send(w);
  return hello->msg;
}

bool FakeBroker::Send(const Message& m, std::string_view payload) {
  zmq::message_t frame(payload.data(), payload.size());
  return transport::Send(*router_, route_, m, &frame) ==
         transport::SendResult::kOk;
}

bool FakeBroker::SendRaw(const std::vector<std::string>& frames) {
  zmq::message_t route(route_.data(), route_.size());
  if (!router_->send(route, zmq::send_flags::sndmore)) return false;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    zmq::message_t f(frames[i].data(), frames[i].size());
    auto flags = i + 1 < frames.size() ? zmq::send_flags::sndmore
                                       : zmq::send_flags::none;
    if (!router_->send(f, flags)) return false;
  }
  return true;
}

void FakeBroker::Respond(const SessionId& session, Seq seq,
                         std::string_view payload, ErrorCode status) {
  Response r;
  r.session = session;
  r.seq = seq;
  r.status = status;
  Send(r, payload);
}

bool WaitFor(const std::function<bool()>& done,
             std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

}  // namespace rejoin::testing
