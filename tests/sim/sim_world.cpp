// The event loop, the network and the faults of the simulation
// (sim_world.h).
#include "sim_world.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <sstream>

#include "rejoin/proto/codec.h"
#include "sim_broker.h"
#include "sim_client.h"
#include "sim_endpoint.h"
#include "sim_server.h"

namespace rejoin::sim {
namespace {

constexpr std::int64_t kTickUs = 5'000;       // the broker shell's loop
constexpr std::int64_t kFaultTickUs = 1'000;  // fault draws per party
// After the last answer, time for ACKs and releases to settle before the
// idle check.
constexpr std::int64_t kQuietUs = 3'000'000;

int TypeByte(const std::string& header) {
  Result<MessageType> t = PeekType(std::span<const std::byte>(
      reinterpret_cast<const std::byte*>(header.data()), header.size()));
  return t.ok() ? static_cast<int>(*t) : 0;
}

}  // namespace

World::World(const SimConfig& config)
    : config_(config),
      rng_(config.seed * 0x9e3779b97f4a7c15ull + 1),
      net_rng_(rng_.Fork()),
      trace_(config.trace_keep),
      checker_(config.clients, config.servers),
      partitioned_until_(
          static_cast<std::size_t>(1 + config.clients + config.servers), 0) {
  // The broker core logs through spdlog; the simulation reads its trace.
  spdlog::set_level(config.verbose ? spdlog::level::info : spdlog::level::off);
  conns_.push_back({});  // id 0: none
  for (int c = 0; c < config_.clients; ++c) {
    endpoints_.push_back(std::make_unique<SimClient>(*this, c));
  }
  for (int s = 0; s < config_.servers; ++s) {
    endpoints_.push_back(std::make_unique<SimServer>(*this, s));
  }
}

World::~World() = default;

int World::ClientOf(const SessionId& sid) const {
  if (sid.size() < 2 || sid[0] != 's') return -1;
  return std::atoi(sid.c_str() + 1);
}

void World::Schedule(std::int64_t at_us, EventKind kind, int party,
                     std::uint32_t life, std::uint64_t arg) {
  queue_.push(Event{at_us, order_++, kind, static_cast<std::uint16_t>(party),
                    life, arg});
}

void World::Note(TraceKind kind, int party, int client, Seq seq, int a, int b) {
  trace_.Add(TraceEvent{now_us_, kind, static_cast<std::uint8_t>(a),
                        static_cast<std::uint8_t>(b),
                        static_cast<std::uint16_t>(party),
                        static_cast<std::uint32_t>(client + 1), seq});
}

std::uint64_t World::NewSlot(Packet p) {
  if (!free_slots_.empty()) {
    const std::uint64_t slot = free_slots_.back();
    free_slots_.pop_back();
    packets_[slot] = std::move(p);
    return slot;
  }
  packets_.push_back(std::move(p));
  return packets_.size() - 1;
}

void World::SendToBroker(int party, std::uint64_t conn, const Message& m,
                         std::string_view payload) {
  if (const auto* h = std::get_if<Hello>(&m)) {
    checker_.HelloSent(RouteOf(conn), h->id, h->incarnation, h->journal_id);
  }
  Transmit(Packet{true, party, conn, EncodeHeader(m), std::string(payload)},
           party);
}

void World::SendToBroker(int party, std::uint64_t conn, std::string header,
                         std::string payload) {
  Transmit(Packet{true, party, conn, std::move(header), std::move(payload)},
           party);
}

void World::SendToEndpoint(std::uint64_t conn, std::string header,
                           std::string payload) {
  const int party = conns_[conn].party;
  Transmit(Packet{false, party, conn, std::move(header), std::move(payload)},
           party);
}

void World::Transmit(Packet p, int party) {
  ++stats_.sent;
  const FaultKnobs& f = config_.faults;
  Conn& c = conns_[p.conn];
  std::int64_t delay =
      net_rng_.Between(f.delay_min.count(), f.delay_max.count());
  bool reorder = false;
  int copies = 1;
  if (faults_on()) {
    if (Partitioned(party) || Partitioned(0) || net_rng_.Chance(f.loss)) {
      ++stats_.lost;
      Note(TraceKind::kSend, party, -1, 0, TypeByte(p.header), 1);
      return;
    }
    if (net_rng_.Chance(f.delay_tail)) {
      delay += net_rng_.Between(0, 20 * f.delay_max.count());
    }
    if (net_rng_.Chance(f.reorder)) {
      reorder = true;
      ++stats_.reordered;
      delay += net_rng_.Between(0, f.reorder_spread.count());
    }
    if (net_rng_.Chance(f.duplicate)) {
      ++stats_.duplicated;
      copies = 2;
    }
  }
  // One connection is ordered (TCP) unless the fault reorders.
  std::int64_t& last = p.to_broker ? c.last_to_broker_us : c.last_to_party_us;
  std::int64_t at = now_us_ + delay;
  if (!reorder) at = std::max(at, last);
  last = std::max(last, at);
  if (copies == 2) {
    Packet dup = p;
    const std::int64_t at2 =
        std::max(at, now_us_ + net_rng_.Between(f.delay_min.count(),
                                                f.reorder_spread.count()));
    Schedule(at2, EventKind::kPacket, party, 0, NewSlot(std::move(dup)));
  }
  Schedule(at, EventKind::kPacket, party, 0, NewSlot(std::move(p)));
}

void World::Deliver(std::uint64_t slot) {
  Packet p = std::move(packets_[slot]);
  free_slots_.push_back(slot);
  const Conn& c = conns_[p.conn];
  if (!c.open) return;  // the connection is gone with what was on it
  if (faults_on() && (Partitioned(p.party) || Partitioned(0))) {
    ++stats_.lost;
    return;
  }
  ++stats_.messages;
  if (p.to_broker) {
    if (!broker_up_ || c.broker_life != broker_life_) return;
    if (p.party > config_.clients &&
        TypeByte(p.header) == static_cast<int>(MessageType::kStateExchange)) {
      Result<Message> m = DecodeHeader(p.header, 1);
      if (m.ok() && std::get<StateExchange>(*m).last) {
        checker_.ServerReported(p.party - 1 - config_.clients, now_us_);
      }
    }
    broker_->OnPacket(p.conn, p.header, p.payload);
  } else {
    endpoint(p.party).OnPacket(p.conn, p.header, p.payload);
  }
}

std::uint64_t World::Connect(int party) {
  if (!broker_up_ || Partitioned(party)) return 0;
  conns_.push_back(Conn{party, true, broker_life_, 0, 0});
  Note(TraceKind::kNote, party, -1, conns_.size() - 1, 1);
  return conns_.size() - 1;
}

void World::CloseConn(std::uint64_t conn) {
  if (conn < conns_.size()) conns_[conn].open = false;
}

void World::EndpointCrashed(int party, int /*how*/) {
  const bool client = party <= config_.clients;
  // At most all but one of each kind stay away for good.
  int gone = 0;
  for (const auto& e : endpoints_) {
    if (e->gone_for_good() && (e->party() <= config_.clients) == client) {
      ++gone;
    }
  }
  const int kind_count = client ? config_.clients : config_.servers;
  if (faults_on() && gone + 1 < kind_count &&
      rng_.Chance(config_.faults.never_return)) {
    ++stats_.never_returned;
    Note(TraceKind::kNote, party, -1, 0, 2);
    endpoint(party).MarkGone();
    if (client) checker_.ClientGone(party - 1);
    return;
  }
  const std::uint32_t life = endpoint(party).life();
  Schedule(now_us_ + rng_.Between(config_.faults.restart_min.count(),
                                  config_.faults.restart_max.count()),
           EventKind::kRestart, party, life, 0);
}

void World::AddGhost(int party, const Hello& hello) {
  if (!faults_on() || !rng_.Chance(config_.faults.stale)) return;
  ++stats_.ghosts;
  ghosts_.push_back(hello);
  // The old process talks on for a while after its successor started.
  for (int i = 0; i < 3; ++i) {
    Schedule(now_us_ + rng_.Between(config_.faults.restart_max.count() / 2,
                                    config_.faults.restart_max.count() * 2),
             EventKind::kGhost, party, 0, ghosts_.size() - 1);
  }
}

void World::DropGhosts(int party) {
  const std::string id = endpoint(party).id();
  for (Hello& h : ghosts_) {
    if (h.id == id) h.id.clear();
  }
}

void World::Ghost(int party, std::uint64_t slot) {
  if (ghosts_[slot].id.empty()) return;
  const std::uint64_t conn = Connect(party);
  if (conn == 0) return;
  Note(TraceKind::kNote, party, -1, 0, 3);
  SendToBroker(party, conn, ghosts_[slot], {});
  // Its connection closes a little later: nobody reads it.
  Schedule(now_us_ + 50'000, EventKind::kLinkDown, 0, 0, conn);
}

void World::BrokerStart() {
  BrokerOptions o;
  o.epoch = rng_.Next() | 1;
  broker_up_ = true;
  broker_ = std::make_unique<SimBroker>(*this, o, o.epoch);
  checker_.BrokerStarted(now_us_,
                         std::chrono::duration_cast<Micros>(o.grace).count());
  Note(TraceKind::kBrokerStart, 0, -1, 0, static_cast<int>(o.epoch & 0xff));
  Schedule(now_us_ + kTickUs, EventKind::kBrokerTick, 0, broker_life_, 0);
}

void World::BrokerDiesInTurn() {
  Schedule(now_us_, EventKind::kBrokerCrash, 0, broker_life_, 0);
}

void World::BrokerCrash(CrashHow how) {
  ++stats_.crashes;
  ++stats_.broker_crashes;
  Note(TraceKind::kCrash, 0, -1, 0, static_cast<int>(how));
  broker_.reset();
  broker_up_ = false;
  ++broker_life_;
  for (std::uint64_t id = 1; id < conns_.size(); ++id) {
    Conn& c = conns_[id];
    if (!c.open) continue;
    c.open = false;
    Schedule(now_us_ + net_rng_.Between(50, 500), EventKind::kLinkDown, c.party,
             endpoint(c.party).life(), id);
  }
  Schedule(now_us_ + rng_.Between(config_.faults.restart_min.count(),
                                  config_.faults.restart_max.count()),
           EventKind::kRestart, 0, broker_life_, 0);
}

void World::FaultTick() {
  const FaultKnobs& f = config_.faults;
  if (broker_up_ && rng_.Chance(f.crash_broker)) BrokerCrash(CrashHow::kBroker);
  for (auto& e : endpoints_) {
    const int party = e->party();
    if (rng_.Chance(f.partition) && !Partitioned(party)) {
      ++stats_.partitions;
      const std::int64_t until =
          now_us_ +
          rng_.Between(f.partition_min.count(), f.partition_max.count());
      partitioned_until_[static_cast<std::size_t>(party)] = until;
      Note(TraceKind::kPartition, party, -1, 0, 1);
      Schedule(until, EventKind::kPartitionEnd, party, 0, 0);
    }
    if (rng_.Chance(f.reset)) {
      // Both ends see the connection go: the broker at its next send to
      // it, the endpoint when its socket reports it.
      for (std::uint64_t id = conns_.size() - 1; id > 0; --id) {
        Conn& c = conns_[id];
        if (c.party != party || !c.open) continue;
        c.open = false;
        ++stats_.resets;
        Note(TraceKind::kReset, party, -1, 0);
        Schedule(now_us_ + net_rng_.Between(50, 2000), EventKind::kLinkDown,
                 party, e->life(), id);
        break;
      }
    }
  }
}

RunResult World::Run() {
  BrokerStart();
  for (auto& e : endpoints_) e->Start();
  Schedule(kFaultTickUs, EventKind::kFaultTick, 0, 0, 0);
  const std::int64_t limit =
      config_.fault_time.count() + config_.settle.count();
  std::int64_t quiet_since = -1;
  while (!queue_.empty()) {
    const Event e = queue_.top();
    if (e.at_us > limit) break;
    queue_.pop();
    now_us_ = e.at_us;
    ++stats_.events;
    switch (e.kind) {
      case EventKind::kPacket:
        Deliver(e.arg);
        break;
      case EventKind::kBrokerTick:
        if (broker_up_ && e.life == broker_life_) {
          broker_->Tick();
          Schedule(now_us_ + kTickUs, EventKind::kBrokerTick, 0, broker_life_,
                   0);
        }
        break;
      case EventKind::kFaultTick:
        if (faults_on()) {
          FaultTick();
          Schedule(now_us_ + kFaultTickUs, EventKind::kFaultTick, 0, 0, 0);
        }
        break;
      case EventKind::kRestart:
        if (e.party == 0) {
          if (!broker_up_ && e.life == broker_life_) {
            ++stats_.restarts;
            BrokerStart();
          }
        } else {
          endpoint(e.party).OnEvent(e);
        }
        break;
      case EventKind::kGhost:
        Ghost(e.party, e.arg);
        break;
      case EventKind::kBrokerCrash:
        if (broker_up_ && e.life == broker_life_) {
          ++stats_.broker_crashes_in_turn;
          BrokerCrash(CrashHow::kBrokerInTurn);
        }
        break;
      case EventKind::kLinkDown:
        if (e.party == 0) {
          CloseConn(e.arg);  // a ghost's connection
        } else {
          endpoint(e.party).OnEvent(e);
        }
        break;
      case EventKind::kPartitionEnd:
        Note(TraceKind::kPartition, e.party, -1, 0, 0);
        break;
      case EventKind::kWake:
      case EventKind::kConnect:
      case EventKind::kHandlerDone:
        endpoint(e.party).OnEvent(e);
        break;
    }
    if (!checker_.ok()) break;
    if (!faults_on() && (stats_.events & 255) == 0) {
      bool idle = true;
      for (int c = 0; c < config_.clients && idle; ++c) {
        auto& client = static_cast<SimClient&>(endpoint(ClientParty(c)));
        if (!client.gone_for_good() && !client.idle()) idle = false;
      }
      if (idle && checker_.outstanding() == 0) {
        if (quiet_since < 0) quiet_since = now_us_;
        if (now_us_ - quiet_since >= kQuietUs) break;
      } else {
        quiet_since = -1;
      }
    }
  }
  stats_.sim_us = now_us_;
  if (checker_.ok()) FinalChecks();
  RunResult r;
  r.ok = checker_.ok();
  r.trace_hash = trace_.hash();
  stats_.calls_answered = checker_.answered();
  stats_.in_doubt = checker_.in_doubt();
  stats_.grace_misses = checker_.grace_misses();
  stats_.executions = checker_.executions();
  r.stats = stats_;
  r.violations = checker_.violations();
  if (!r.ok) r.report = Report();
  return r;
}

void World::FinalChecks() {
  checker_.CheckAllAnswered();
  if (!checker_.ok()) return;
  // Idle size: with every client still there and every journal kept, the
  // broker tracks nothing and the journals hold nothing live.
  bool healthy = stats_.journals_lost == 0 && stats_.never_returned == 0;
  for (auto& e : endpoints_) {
    if (!e->alive()) healthy = false;
  }
  if (!healthy || !broker_up_) return;
  const BrokerStatus st = broker_->Status();
  if (st.tracked_operations != 0) {
    checker_.MemoryOver("broker tracked operations", st.tracked_operations, 0);
  }
  for (int c = 0; c < config_.clients; ++c) {
    auto& client = static_cast<SimClient&>(endpoint(ClientParty(c)));
    if (client.journal_ops() != 0) {
      checker_.MemoryOver(client.id() + " journal operations",
                          client.journal_ops(), 0);
    }
  }
  for (int s = 0; s < config_.servers; ++s) {
    auto& server = static_cast<SimServer&>(endpoint(ServerParty(s)));
    if (server.held_ops() != 0) {
      checker_.MemoryOver(server.id() + " journal held operations",
                          server.held_ops(), 0);
    }
  }
}

std::vector<std::string> World::PartyNames() const {
  std::vector<std::string> names{"broker"};
  for (const auto& e : endpoints_) names.push_back(e->id());
  return names;
}

std::string World::Report() const {
  std::ostringstream o;
  const std::vector<std::string> names = PartyNames();
  for (const Violation& v : checker_.violations()) {
    o << "VIOLATION seed=" << config_.seed << " invariant=" << v.invariant;
    if (v.client != 0) {
      o << " session=s" << (v.client - 1) << " seq=" << v.seq;
    }
    o << " at t=" << now_us_ << "us\n  " << v.detail << "\n";
    o << "  last trace events" << (v.client != 0 ? " of this operation" : "")
      << ":\n";
    for (const std::string& line : trace_.Last(v.client, v.seq, 40, names)) {
      o << "    " << line << "\n";
    }
  }
  if (config_.dump_all > 0) {
    o << "  last events of all parties:\n";
    for (const std::string& line : trace_.Last(0, 0, config_.dump_all, names)) {
      o << "    " << line << "\n";
    }
  }
  if (broker_up_) {
    const BrokerStatus st = broker_->Status();
    o << "  broker: tracked=" << st.tracked_operations
      << (st.in_grace ? " in grace" : "") << "\n";
    for (const ServerStatus& sv : st.servers) {
      o << "    server " << sv.id << (sv.alive ? " alive" : " dead")
        << (sv.reported ? " reported" : "") << " credit=" << sv.credit
        << " in_flight=" << sv.in_flight << "\n";
    }
    for (const ServiceStatus& sv : st.services) {
      o << "    service " << sv.name << " servers=" << sv.servers
        << " credit=" << sv.credit << " queued=" << sv.queued << "\n";
    }
  }
  o << "  parties at the end:";
  for (const auto& e : endpoints_) o << "\n    " << e->Describe();
  o << "\n";
  o << "replay: rejoin-sim --seed " << config_.seed << "\n";
  return o.str();
}

RunResult RunSeed(const SimConfig& config) {
  World w(config);
  return w.Run();
}

}  // namespace rejoin::sim
