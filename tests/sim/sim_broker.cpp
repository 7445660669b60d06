// The broker host: decode, hand in, encode, send (see sim_broker.h).
#include "sim_broker.h"

#include <cstdlib>
#include <limits>
#include <set>

#include "rejoin/proto/codec.h"
#include "support/view_frames.h"

namespace rejoin::sim {
namespace {

std::string Bytes(const zmq::message_t& m) {
  return std::string(static_cast<const char*>(m.data()), m.size());
}

}  // namespace

SimBroker::SimBroker(World& world, const BrokerOptions& options, Epoch epoch)
    : world_(world), core_(options, epoch, *this) {
  core_.Start(world_.now());
}

std::uint64_t SimBroker::ConnOf(const std::string& route) const {
  // Routes are "c<id>" (World::RouteOf).
  return std::strtoull(route.c_str() + 1, nullptr, 10);
}

void SimBroker::OnPacket(std::uint64_t conn, const std::string& header,
                         const std::string& payload) {
  if (dead_) return;
  const std::string route = world_.RouteOf(conn);
  // REQUEST and RESPONSE travel as two frames, everything else as one.
  Result<MessageType> type = PeekType(std::span<const std::byte>(
      reinterpret_cast<const std::byte*>(header.data()), header.size()));
  const std::size_t count = type.ok() && HasPayloadFrame(*type) ? 2 : 1;
  Result<Message> m = DecodeHeader(header, count, payload.size());
  if (!m.ok()) {
    core_.OnUndecodable(route, m.status(), header);
  } else {
    // Views: the simulated wire owns the bytes.
    testing::ViewFrames frames(header, payload);
    core_.OnMessage(route, *m, frames, world_.now());
  }
  NoteGraceEnd();
  core_.EndTurn(world_.now());
  Flush();
}

void SimBroker::NoteGraceEnd() {
  if (grace_end_noted_ || !core_.grace_over()) return;
  grace_end_noted_ = true;
  world_.checker().GraceEnded(world_.now_us());
}

void SimBroker::Tick() {
  if (dead_) return;
  core_.Tick(world_.now());
  NoteGraceEnd();
  core_.EndTurn(world_.now());
  Flush();
}

BrokerStatus SimBroker::Status() const {
  BrokerStatus st;
  core_.FillStatus(st, world_.now());
  return st;
}

void SimBroker::Send(const std::string& route, const Message& m) {
  if (const auto* w = std::get_if<Welcome>(&m)) {
    world_.checker().WelcomeSent(route, w->id);
  }
  batch_.push_back({route, EncodeHeader(m), {}});
}

void SimBroker::Envelope(const std::string& route, zmq::message_t& header,
                         zmq::message_t& payload) {
  batch_.push_back({route, Bytes(header), Bytes(payload)});
}

void SimBroker::Forward(const std::string& route, std::string_view header) {
  batch_.push_back({route, std::string(header), {}});
}

bool SimBroker::Waiting(const std::string& route) const {
  for (const Out& o : batch_) {
    if (o.route == route) return true;
  }
  return false;
}

bool SimBroker::SendNow(const std::string& route, const Message& m) {
  const std::uint64_t conn = ConnOf(route);
  if (!world_.ConnOpen(conn)) return false;
  world_.SendToEndpoint(conn, EncodeHeader(m), {});
  return true;
}

void SimBroker::Flush() {
  // A crash in the middle of the turn's sends: `left` messages leave, the
  // process dies before the rest (the batch is at least one message).
  std::size_t left = std::numeric_limits<std::size_t>::max();
  if (!batch_.empty() && world_.faults_on() &&
      world_.rng().Chance(world_.config().faults.crash_broker_in_turn)) {
    left = static_cast<std::size_t>(world_.rng().Below(batch_.size()));
  }
  while (!batch_.empty()) {
    std::vector<Out> batch = std::move(batch_);
    batch_.clear();
    std::set<std::string> gone;
    for (Out& o : batch) {
      if (left-- == 0) {
        dead_ = true;
        world_.BrokerDiesInTurn();
        return;
      }
      const std::uint64_t conn = ConnOf(o.route);
      if (!world_.ConnOpen(conn)) {
        gone.insert(o.route);
        continue;
      }
      world_.SendToEndpoint(conn, std::move(o.header), std::move(o.payload));
    }
    for (const std::string& route : gone) core_.OnGone(route, world_.now());
    if (!gone.empty()) core_.EndTurn(world_.now());
  }
}

}  // namespace rejoin::sim
