// The simulated world: one thread, one simulated clock, one queue of events
// ordered by (time, insertion), one seeded generator. It hosts a broker (the
// real BrokerCore), clients and servers (sim_client.h, sim_server.h) and the
// network between them (ZeroMQ-like connections that reset and reconnect,
// messages lost, duplicated, reordered and delayed), and injects the faults
// of SimConfig. Every message crosses the real codec in both directions.
// Nothing sleeps, nothing touches a socket or a real file.
//
// Several brokers: the network addresses parties by index and connections
// by id, so a second broker is one more party; this increment hosts one.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <queue>
#include <string>
#include <vector>

#include "rejoin/proto/messages.h"
#include "sim_checker.h"
#include "sim_config.h"
#include "sim_random.h"
#include "sim_trace.h"

namespace rejoin::sim {

enum class CrashHow : std::uint8_t;  // sim_endpoint.h

using Clock = std::chrono::steady_clock;
using Time = Clock::time_point;

class SimBroker;
class SimEndpoint;

enum class EventKind : std::uint8_t {
  kPacket,       // arg: packet slot
  kWake,         // an endpoint's timers (arg: generation)
  kConnect,      // an endpoint's socket tries to connect
  kLinkDown,     // arg: connection id that went
  kHandlerDone,  // a server's handler finished (arg: job id)
  kRestart,      // a crashed party starts again
  kBrokerTick,
  kPartitionEnd,
  kFaultTick,    // once per simulated millisecond while faults run
  kGhost,        // a stale old process says HELLO (arg: ghost slot)
  kBrokerCrash,  // the broker died inside its turn (life: its life)
};

struct Event {
  std::int64_t at_us;
  std::uint64_t order;
  EventKind kind;
  std::uint16_t party;
  std::uint32_t life;  // the party's process life it was meant for
  std::uint64_t arg;
  bool operator>(const Event& o) const {
    return at_us != o.at_us ? at_us > o.at_us : order > o.order;
  }
};

// What a run measured, for the report and the speed test.
struct RunStats {
  std::uint64_t messages = 0;  // delivered to a party, duplicates included
  std::uint64_t sent = 0;
  std::uint64_t lost = 0;
  std::uint64_t duplicated = 0;
  std::uint64_t reordered = 0;
  std::uint64_t resets = 0;
  std::uint64_t partitions = 0;
  std::uint64_t crashes = 0;  // of endpoints and the broker
  std::uint64_t broker_crashes = 0;
  std::uint64_t broker_crashes_in_turn = 0;
  std::uint64_t compaction_crashes = 0;
  std::uint64_t restarts = 0;
  std::uint64_t power_losses = 0;
  std::uint64_t torn_writes = 0;
  std::uint64_t disk_faults = 0;
  std::uint64_t journals_lost = 0;
  std::uint64_t never_returned = 0;
  std::uint64_t ghosts = 0;
  std::uint64_t calls_answered = 0;
  std::uint64_t in_doubt = 0;
  std::uint64_t grace_misses = 0;  // see Checker::grace_misses
  std::uint64_t deadlines = 0;     // waits that ended at their deadline
  std::uint64_t executions = 0;
  std::uint64_t events = 0;
  std::int64_t sim_us = 0;
  std::uint64_t faults() const {
    return lost + duplicated + reordered + resets + partitions + crashes +
           power_losses + torn_writes + disk_faults + journals_lost;
  }
};

struct RunResult {
  bool ok = true;
  std::uint64_t trace_hash = 0;
  RunStats stats;
  std::vector<Violation> violations;
  std::string report;  // for a person: seed, invariant, last trace events
};

// The connection a party's socket holds to the broker (ZeroMQ: one TCP
// connection, a routing id at the broker).
struct Conn {
  int party = -1;
  bool open = false;
  std::uint32_t broker_life = 0;
  // When the last message each way is due: one connection is ordered.
  std::int64_t last_to_broker_us = 0;
  std::int64_t last_to_party_us = 0;
};

class World {
 public:
  explicit World(const SimConfig& config);
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  RunResult Run();

  // ---- for the parties ------------------------------------------------
  Time now() const { return Time{} + std::chrono::hours(1) + Micros(now_us_); }
  std::int64_t now_us() const { return now_us_; }
  const SimConfig& config() const { return config_; }
  Rng& rng() { return rng_; }
  Checker& checker() { return checker_; }
  RunStats& stats() { return stats_; }
  bool faults_on() const { return now_us_ < config_.fault_time.count(); }
  void Schedule(std::int64_t at_us, EventKind kind, int party,
                std::uint32_t life, std::uint64_t arg);
  void Note(TraceKind kind, int party, int client, Seq seq, int a = 0,
            int b = 0);
  // Party indexes: 0 the broker, 1..clients, then the servers.
  int ClientParty(int client) const { return 1 + client; }
  int ServerParty(int server) const { return 1 + config_.clients + server; }
  int ClientOf(const SessionId& sid) const;  // -1 when not a client's
  SimEndpoint& endpoint(int party) {
    return *endpoints_[static_cast<std::size_t>(party - 1)];
  }
  std::string RouteOf(std::uint64_t conn) const {
    return "c" + std::to_string(conn);
  }

  // The network. An endpoint sends on its connection; the broker sends to
  // a route. Both encode through the real codec.
  void SendToBroker(int party, std::uint64_t conn, const Message& m,
                    std::string_view payload);
  void SendToBroker(int party, std::uint64_t conn, std::string header,
                    std::string payload);
  void SendToEndpoint(std::uint64_t conn, std::string header,
                      std::string payload);
  bool ConnOpen(std::uint64_t conn) const {
    return conn < conns_.size() && conns_[conn].open;
  }
  // A socket's attempt to connect: a new connection id, or 0 when the
  // broker is down or the party cut off.
  std::uint64_t Connect(int party);
  // The party's end closes the connection (a crash, a replaced socket).
  void CloseConn(std::uint64_t conn);
  bool Partitioned(int party) const {
    return partitioned_until_[static_cast<std::size_t>(party)] > now_us_;
  }
  // A party's process stops (the endpoint's own Crash does its part).
  void EndpointCrashed(int party, int how);
  // A crashed client's old process may talk on with its old HELLO.
  void AddGhost(int party, const Hello& hello);
  // The party's journal was wiped: its old processes belong to a journal
  // nobody has any more, outside what fencing can tell (two journals for
  // one id); they fall silent.
  void DropGhosts(int party);
  // The broker process stops, `how` as the trace tells it.
  void BrokerCrash(CrashHow how);
  // The broker dies in the middle of its turn's sends: it is gone at once
  // (SimBroker stops reading), and crashed by an event at the same time.
  void BrokerDiesInTurn();

 private:
  struct Packet {
    bool to_broker;
    int party;  // the endpoint's party (sender or receiver)
    std::uint64_t conn;
    std::string header;
    std::string payload;
  };
  void Deliver(std::uint64_t slot);
  void Transmit(Packet p, int party);
  void FaultTick();
  void BrokerStart();
  void Ghost(int party, std::uint64_t slot);
  std::uint64_t NewSlot(Packet p);
  void FinalChecks();
  std::string Report() const;
  std::vector<std::string> PartyNames() const;

  const SimConfig config_;
  Rng rng_;
  Rng net_rng_;
  Trace trace_;
  Checker checker_;
  RunStats stats_;
  std::int64_t now_us_ = 0;
  std::uint64_t order_ = 0;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> queue_;
  std::vector<Packet> packets_;
  std::vector<std::uint64_t> free_slots_;
  std::vector<Conn> conns_;
  std::vector<std::int64_t> partitioned_until_;
  std::unique_ptr<SimBroker> broker_;
  std::uint32_t broker_life_ = 1;
  bool broker_up_ = false;
  std::vector<std::unique_ptr<SimEndpoint>> endpoints_;
  std::vector<Hello> ghosts_;
};

// Runs one seed and returns what happened.
RunResult RunSeed(const SimConfig& config);

}  // namespace rejoin::sim
