// The broker of the simulation: the real BrokerCore, fed decoded messages
// from the simulated network, with an Outbox that encodes what it sends
// through the real codec and hands each turn's batch to the network. A
// send to a connection that is gone is reported to the core (OnGone), as
// ZMQ_ROUTER_MANDATORY's EHOSTUNREACH is by the real shell.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/broker_core.h"
#include "sim_world.h"

namespace rejoin::sim {

class SimBroker final : public broker_internal::Outbox {
 public:
  SimBroker(World& world, const BrokerOptions& options, Epoch epoch);

  // A message that crossed the network on connection `conn`.
  void OnPacket(std::uint64_t conn, const std::string& header,
                const std::string& payload);
  void Tick();
  // Tables the idle check reads.
  BrokerStatus Status() const;
  Epoch epoch() const { return core_.epoch(); }

  // Outbox.
  void Send(const std::string& route, const Message& m) override;
  void Envelope(const std::string& route, zmq::message_t& header,
                zmq::message_t& payload) override;
  void Forward(const std::string& route, std::string_view header) override;
  bool Waiting(const std::string& route) const override;
  bool SendNow(const std::string& route, const Message& m) override;

 private:
  struct Out {
    std::string route;
    std::string header;
    std::string payload;
  };
  // Sends the turn's batch; routes found gone are told to the core, whose
  // answers go out in the same way.
  void Flush();
  // Tells the checker when the core's grace period really ended (it may run
  // longer than G, or end early).
  void NoteGraceEnd();
  std::uint64_t ConnOf(const std::string& route) const;

  World& world_;
  broker_internal::BrokerCore core_;
  std::vector<Out> batch_;
  // Died inside a turn (FaultKnobs::crash_broker_in_turn): reads nothing
  // more until the world's crash event removes it.
  bool dead_ = false;
  bool grace_end_noted_ = false;
};

}  // namespace rejoin::sim
