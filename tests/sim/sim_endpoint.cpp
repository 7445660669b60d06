// The process, disk and connection of a simulated endpoint (sim_endpoint.h).
#include "sim_endpoint.h"

#include <cerrno>
#include <climits>

#include "rejoin/proto/codec.h"

namespace rejoin::sim {
namespace {

constexpr std::int64_t kReconnectUs = 10'000;  // ZMQ_RECONNECT_IVL

std::int64_t MicrosOf(Time t) {
  if (t == Time::max()) return INT64_MAX;
  return std::chrono::duration_cast<Micros>(t -
                                            (Time{} + std::chrono::hours(1)))
      .count();
}

}  // namespace

SimEndpoint::SimEndpoint(World& world, int party, Role role, std::string id)
    : world_(world), party_(party), role_(role), id_(std::move(id)) {
  env_seed_ = world_.rng().Next();
  env_ = std::make_unique<testing::FaultEnv>(env_seed_);
}

SimEndpoint::~SimEndpoint() {
  // The journal holds its lock and files in the env: it goes first.
  journal_.reset();
}

void SimEndpoint::Start() { Boot(); }

std::string SimEndpoint::Describe() const {
  std::string d = id_ + (alive_ ? " alive" : " down");
  if (gone_for_good_) d += " for good";
  if (machine_) {
    d += " endpoint=" + std::string(EndpointStateName(machine_->state()));
  }
  d += " conn=" + std::to_string(conn_) + " life=" + std::to_string(life_);
  if (journal_) {
    d += " incarnation=" + std::to_string(journal_->incarnation());
    std::size_t ops = 0;
    for (const auto& [sid, s] : journal_->state().sessions) ops += s.ops.size();
    d += " journal_ops=" + std::to_string(ops);
  }
  return d;
}

void SimEndpoint::Boot() {
  const FaultKnobs& f = world_.config().faults;
  if (life_ > 1 && world_.faults_on() && world_.rng().Chance(f.journal_lost)) {
    // The directory is wiped: a new disk, a new journal id.
    env_ = std::make_unique<testing::FaultEnv>(world_.rng().Next());
    left_.clear();
    world_.DropGhosts(party_);
    ++world_.stats().journals_lost;
    world_.Note(TraceKind::kJournalLost, party_, -1, 0);
    if (role_ == Role::kClient) {
      world_.checker().ClientJournalLost(party_ - 1);
    } else {
      world_.checker().ServerJournalLost(party_ - 1 - world_.config().clients);
    }
  }
  JournalOptions o;
  o.dir = "/journal";
  o.durability = Durability::kSync;
  o.role = journal_role();
  o.owner_id = id_;
  Rng& rng = world_.rng();
  const JournalId jid = rng.Next() | 1;
  o.new_journal_id = [jid] { return jid; };
  o.env = env_.get();
  o.segment_bytes = world_.config().segment_bytes;
  o.compact_min_bytes = world_.config().compact_min_bytes;
  Result<std::unique_ptr<Journal>> j = Journal::Open(std::move(o));
  if (!j.ok()) {
    world_.checker().Fail("journal_open_failed", -1, 0,
                          id_ + ": " + j.status().ToString());
    gone_for_good_ = true;
    return;
  }
  journal_ = std::move(j).value();
  WriteAheadCheck();
  alive_ = true;
  world_.Note(TraceKind::kRestart, party_, -1, 0,
              static_cast<int>(journal_->incarnation() & 0xff));
  // The machine first: the client's core reads it (is it welcomed).
  EndpointTimers timers;
  machine_ = std::make_unique<EndpointMachine>(
      timers, journal_->incarnation() > 1 || HasRecords(), rng.Next());
  Booted();
  BeginTurn();
  OpenSocket();
  EndTurn();
}

void SimEndpoint::WriteAheadCheck() {
  // What left the previous process must be in the journal it left behind.
  const JournalState& st = journal_->state();
  for (const Left& l : left_) {
    auto s = st.sessions.find(l.session);
    bool ok = false;
    std::string why = "no record";
    if (s != st.sessions.end()) {
      if (l.seq < s->second.released_below) {
        ok = true;
      } else if (role_ == Role::kClient && l.seq < s->second.next_seq &&
                 s->second.ops.count(l.seq) == 0) {
        // Forgotten on its own, above the watermark (libclient drops an
        // outcome its caller has once the broker acknowledged it): a client
        // journals its calls in seq order, so a later seq's record means
        // this one's was durable too.
        ok = true;
      } else if (auto op = s->second.ops.find(l.seq);
                 op != s->second.ops.end()) {
        if (role_ == Role::kClient) {
          ok = true;
        } else if (op->second.state ==
                   static_cast<std::uint8_t>(ServerOpState::kReleased)) {
          ok = true;
        } else if (op->second.state ==
                   static_cast<std::uint8_t>(ServerOpState::kExecuted)) {
          ok = op->second.status == l.status &&
               (op->second.payload == l.payload ||
                (l.status != ErrorCode::kOk &&
                 l.status != ErrorCode::kHandlerFailed));
          why = "journaled with another outcome";
        } else {
          why = "journaled only RECEIVED";
        }
      }
    }
    if (!ok) {
      world_.checker().Fail(
          "sent_before_journaled", world_.ClientOf(l.session), l.seq,
          id_ + ": a " +
              std::string(role_ == Role::kClient ? "REQUEST" : "RESPONSE") +
              " the previous process sent is not in its journal (" + why + ")");
    }
  }
  left_.clear();
}

void SimEndpoint::OnEvent(const Event& e) {
  if (e.kind == EventKind::kRestart) {
    if (!alive_ && !gone_for_good_ && e.life == life_) {
      ++world_.stats().restarts;
      Boot();
    }
    return;
  }
  if (!alive_ || e.life != life_) return;
  switch (e.kind) {
    case EventKind::kWake:
      if (e.arg != wake_gen_) return;
      wake_at_ = INT64_MAX;
      BeginTurn();
      Drive(EndpointEvent::kTimer);
      if (alive_) Timers();
      EndTurn();
      return;
    case EventKind::kConnect:
      if (e.arg != socket_gen_ || !socket_open_ || conn_ != 0) return;
      conn_ = world_.Connect(party_);
      if (conn_ == 0) {
        world_.Schedule(world_.now_us() + kReconnectUs, EventKind::kConnect,
                        party_, life_, socket_gen_);
        return;
      }
      BeginTurn();
      Drive(EndpointEvent::kLinkUp);
      EndTurn();
      return;
    case EventKind::kLinkDown:
      if (e.arg != conn_ || conn_ == 0) return;
      conn_ = 0;
      BeginTurn();
      Drive(EndpointEvent::kLinkDown);
      EndTurn();
      // The socket reconnects by itself.
      world_.Schedule(world_.now_us() + kReconnectUs, EventKind::kConnect,
                      party_, life_, socket_gen_);
      return;
    case EventKind::kHandlerDone:
      BeginTurn();
      OnHandlerDone(e.arg);
      EndTurn();
      return;
    default:
      return;
  }
}

void SimEndpoint::OnPacket(std::uint64_t conn, const std::string& header,
                           const std::string& payload) {
  if (!alive_ || conn != conn_ || conn_ == 0) return;
  last_heard_ = world_.now();
  Result<MessageType> type = PeekType(std::span<const std::byte>(
      reinterpret_cast<const std::byte*>(header.data()), header.size()));
  const std::size_t frames = type.ok() && HasPayloadFrame(*type) ? 2 : 1;
  Result<Message> m = DecodeHeader(header, frames, payload.size());
  if (!m.ok()) {
    world_.checker().Fail("undecodable_from_broker", -1, 0,
                          id_ + ": " + m.status().ToString());
    return;
  }
  BeginTurn();
  switch (TypeOf(*m)) {
    case MessageType::kWelcome: {
      const Welcome& w = std::get<Welcome>(*m);
      if (w.id != id_) break;
      Drive(EndpointEvent::kWelcome, w.epoch,
            std::chrono::milliseconds(w.heartbeat_ms));
      break;
    }
    case MessageType::kHeartbeat:
      Drive(EndpointEvent::kHeartbeat, std::get<Heartbeat>(*m).epoch);
      break;
    case MessageType::kGoodbye:
      Drive(EndpointEvent::kGoodbye);
      break;
    case MessageType::kError: {
      const Error& err = std::get<Error>(*m);
      if (!err.session.empty() && err.session != id_) break;
      if (auto ev = EndpointEventOf(err)) Drive(*ev);
      break;
    }
    default:
      OnMessage(*m, payload);
      break;
  }
  EndTurn();
}

void SimEndpoint::Drive(EndpointEvent e, Epoch epoch,
                        std::chrono::milliseconds hb) {
  if (!alive_ || !machine_) return;
  EndpointMachine::Input in;
  in.event = e;
  in.now = world_.now();
  in.epoch = epoch;
  in.heartbeat = hb;
  in.records = HasRecords();
  in.last_heard = last_heard_;
  in.last_sent = last_sent_;
  Carry(machine_->Step(in));
}

void SimEndpoint::Carry(const EndpointMachine::Output& out) {
  if (out.empty()) return;
  // The order of libserver's and libclient's I/O loops.
  if (out.Has(EndpointAction::kDropLink)) DropSocket();
  if (out.Has(EndpointAction::kReportWelcomed)) OnWelcomed();
  if (out.Has(EndpointAction::kSendStateExchange)) QueueStateExchange();
  if (out.Has(EndpointAction::kSendHeartbeat)) {
    SendNowOnWire(Heartbeat{machine_->epoch()}, {});
  }
  if (out.Has(EndpointAction::kSendGoodbye)) {
    SendNowOnWire(Goodbye{"leaving", id_}, {});
  }
  if (out.Has(EndpointAction::kSendHello)) SendHello();
  if (out.Has(EndpointAction::kReplaceLink)) {
    DropSocket();
    OpenSocket();
  }
  if (out.Has(EndpointAction::kOpenLink)) OpenSocket();
}

void SimEndpoint::SendNowOnWire(const Message& m, std::string_view payload) {
  if (conn_ == 0) return;
  last_sent_ = world_.now();
  world_.SendToBroker(party_, conn_, m, payload);
}

void SimEndpoint::SendHello() {
  if (!socket_open_) {
    Drive(EndpointEvent::kLinkClosed);
    return;
  }
  if (conn_ == 0) {
    Drive(EndpointEvent::kHelloNoPeer);
    return;
  }
  Hello h = MakeHello();
  h.last_epoch = machine_->epoch();
  SendNowOnWire(h, {});
  Drive(EndpointEvent::kHelloLeft);
}

void SimEndpoint::OpenSocket() {
  if (socket_open_) DropSocket();
  socket_open_ = true;
  ++socket_gen_;
  // Connecting takes a moment (TCP and ZMTP handshakes).
  world_.Schedule(world_.now_us() + world_.rng().Between(50, 400),
                  EventKind::kConnect, party_, life_, socket_gen_);
  Drive(EndpointEvent::kLinkOpened);
}

void SimEndpoint::DropSocket() {
  if (conn_ != 0) world_.CloseConn(conn_);
  conn_ = 0;
  socket_open_ = false;
  ++socket_gen_;
}

void SimEndpoint::Send(const Message& m, std::string payload) {
  if (!welcomed() && TypeOf(m) != MessageType::kStateExchange) return;
  Outgoing o{EncodeHeader(m), std::move(payload), 0, {}, ErrorCode::kOk, false};
  int flags = 0;
  if (const auto* r = std::get_if<Request>(&m)) {
    flags = r->flags;
    o.session = r->session;
    o.seq = r->seq;
    o.tracked = true;
  } else if (const auto* resp = std::get_if<Response>(&m)) {
    o.session = resp->session;
    o.seq = resp->seq;
    o.status = resp->status;
    o.tracked = true;
  }
  world_.Note(TraceKind::kSend, party_, world_.ClientOf(o.session), o.seq,
              static_cast<int>(TypeOf(m)), flags << 1);
  outbox_.push_back(std::move(o));
}

void SimEndpoint::FlushSends() {
  for (Outgoing& o : outbox_) {
    if (conn_ == 0) break;
    if (o.tracked) {
      left_.push_back({std::move(o.session), o.seq, o.status, o.payload});
    }
    last_sent_ = world_.now();
    world_.SendToBroker(party_, conn_, std::move(o.header),
                        std::move(o.payload));
  }
  outbox_.clear();
}

bool SimEndpoint::MaybeCrash(double p, CrashHow how) {
  if (!alive_ || !world_.faults_on() || !world_.rng().Chance(p)) return false;
  Crash(how);
  return true;
}

void SimEndpoint::EndTurn() {
  in_turn_ = false;
  if (!alive_) return;
  if (SendBeforeCommit()) FlushSends();
  if (journal_->pending_records() > 0) {
    if (MaybeCrash(crash_p_, CrashHow::kBeforeSync)) return;
    const FaultKnobs& f = world_.config().faults;
    Rng& rng = world_.rng();
    if (world_.faults_on()) {
      if (rng.Chance(f.disk_full)) {
        env_->LimitSpace(rng.Below(96));
        ++world_.stats().disk_faults;
        world_.Note(TraceKind::kDiskFault, party_, -1, 0, ENOSPC);
      } else if (rng.Chance(f.disk_error)) {
        if (rng.Chance(0.5)) {
          env_->FailFileSyncs(EIO);
        } else {
          env_->FailFrom(env_->mutations() + rng.Below(3), EIO);
        }
        ++world_.stats().disk_faults;
        world_.Note(TraceKind::kDiskFault, party_, -1, 0, EIO);
      }
    }
    if (Status s = journal_->Commit(); !s.ok()) {
      Crash(CrashHow::kDiskFailed);
      return;
    }
    if (journal_->NeedsCompaction()) {
      // A crash inside compaction: the process stops after a random number
      // of the compaction's disk mutations; nothing after them happens, its
      // own clean-up included (the environment fails them all). The next
      // process opens what is on disk, with the unsynced part subject to
      // the power loss of its crash.
      const bool inside =
          world_.faults_on() && world_.rng().Chance(f.crash_in_compaction);
      if (inside)
        env_->FailFrom(env_->mutations() + world_.rng().Below(8), EIO);
      const Status s = journal_->Compact();
      if (inside) {
        ++world_.stats().compaction_crashes;
        Crash(CrashHow::kInCompaction);
        return;
      }
      if (!s.ok()) {
        Crash(CrashHow::kDiskFailed);
        return;
      }
    }
    // What the commit made durable reaches the application at once (a
    // call returns, an answer is handed over); the crash point is after.
    AfterCommit();
    if (MaybeCrash(crash_p_, CrashHow::kAfterSync)) return;
  } else {
    AfterCommit();
  }
  if (!alive_) return;
  FlushSends();
  Reschedule();
}

void SimEndpoint::Reschedule() {
  std::int64_t next = NextTimerUs();
  if (machine_) {
    next =
        std::min(next, MicrosOf(machine_->NextWakeup(last_heard_, last_sent_)));
  }
  if (next == INT64_MAX) return;
  next = std::max(next, world_.now_us());
  if (next < wake_at_ || wake_at_ < world_.now_us()) {
    wake_at_ = next;
    world_.Schedule(next, EventKind::kWake, party_, life_, ++wake_gen_);
  }
}

void SimEndpoint::Crash(CrashHow how) {
  if (!alive_) return;
  world_.Note(TraceKind::kCrash, party_, -1, 0, static_cast<int>(how));
  ++world_.stats().crashes;
  world_.AddGhost(party_, MakeHello());
  Halted();
  journal_.reset();
  machine_.reset();
  outbox_.clear();
  if (conn_ != 0) world_.CloseConn(conn_);
  conn_ = 0;
  socket_open_ = false;
  alive_ = false;
  ++life_;
  wake_at_ = INT64_MAX;
  const FaultKnobs& f = world_.config().faults;
  Rng& rng = world_.rng();
  if (world_.faults_on() && rng.Chance(f.power_loss)) {
    ++world_.stats().power_losses;
    if (rng.Chance(f.torn_write)) {
      ++world_.stats().torn_writes;
      env_->PowerLoss(testing::PowerLossMode::kTearLastWrite, rng.Below(40));
    } else {
      env_->PowerLoss(testing::PowerLossMode::kDropUnsynced);
    }
  } else {
    env_->ClearFaults();
  }
  // The process, not the disk, stopped the compaction: the next one writes.
  if (how == CrashHow::kInCompaction) env_->ClearFaults();
  world_.EndpointCrashed(party_, static_cast<int>(how));
}

}  // namespace rejoin::sim
