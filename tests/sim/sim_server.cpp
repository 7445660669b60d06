// The server model (sim_server.h).
#include "sim_server.h"

#include <algorithm>

#include "rejoin/proto/breakpoint.h"

namespace rejoin::sim {
namespace {

ServerOpState StateOf(const JournalOp& op) {
  return static_cast<ServerOpState>(op.state);
}

}  // namespace

std::vector<ServiceSpec> SimServer::Specs(bool with_hook) {
  std::vector<ServiceSpec> v = {
      {"idem", 4, true, InDoubtPolicy::kReexecute},
      {"once", 4, false, InDoubtPolicy::kAnswerInDoubt},
  };
  if (with_hook) v.push_back({"hook", 4, false, InDoubtPolicy::kResolveHook});
  return v;
}

SimServer::SimServer(World& world, int server)
    : SimEndpoint(world, world.ServerParty(server), Role::kServer,
                  "srv" + std::to_string(server)),
      server_(server),
      specs_(Specs(world.config().with_hook_service)) {
  crash_p_ = world.config().faults.crash_server;
}

std::size_t SimServer::held_ops() const {
  if (!journal_) return 0;
  std::size_t n = 0;
  for (const auto& [sid, s] : journal_->state().sessions) {
    for (const auto& [seq, op] : s.ops) {
      if (StateOf(op) == ServerOpState::kReceived ||
          StateOf(op) == ServerOpState::kExecuted) {
        ++n;
      }
    }
  }
  return n;
}

void SimServer::AfterCommit() {
  for (const auto& [s, seq] : received_now_) {
    world_.checker().Received(server_, world_.ClientOf(s), seq,
                              world_.now_us());
  }
  received_now_.clear();
}

void SimServer::Booted() {
  // Receipts whose commit did not finish may still be in the journal (the
  // write reached the file, the sync failed, and no power loss followed):
  // then this server took the call on when it first appended them.
  for (const auto& [key, at_us] : unconfirmed_) {
    const JournalOp* op = FindOp(key.first, key.second);
    if (op != nullptr && StateOf(*op) != ServerOpState::kReleased) {
      world_.checker().Received(server_, world_.ClientOf(key.first), key.second,
                                at_us);
    }
  }
  unconfirmed_.clear();
  received_now_.clear();
  jobs_.clear();
  send_early_ = false;
}

void SimServer::Halted() {
  for (const auto& [s, seq] : received_now_) {
    unconfirmed_.emplace(std::make_pair(s, seq), world_.now_us());
  }
  received_now_.clear();
  jobs_.clear();
  send_early_ = false;
}

Hello SimServer::MakeHello() const {
  return Hello{Role::kServer,          id(), incarnation(),
               journal_->journal_id(), 0,    specs_};
}

const ServiceSpec* SimServer::SpecOf(const std::string& service) const {
  for (const ServiceSpec& s : specs_) {
    if (s.name == service) return &s;
  }
  return nullptr;
}

const JournalOp* SimServer::FindOp(const SessionId& s, Seq seq) const {
  const auto& sessions = journal_->state().sessions;
  auto it = sessions.find(s);
  if (it == sessions.end()) return nullptr;
  auto op = it->second.ops.find(seq);
  return op == it->second.ops.end() ? nullptr : &op->second;
}

bool SimServer::IsReleased(const SessionId& s, Seq seq) const {
  const auto& sessions = journal_->state().sessions;
  auto it = sessions.find(s);
  if (it == sessions.end()) return false;
  if (seq < it->second.released_below) return true;
  auto op = it->second.ops.find(seq);
  return op != it->second.ops.end() &&
         StateOf(op->second) == ServerOpState::kReleased;
}

ServerVector SimServer::VectorOf(const SessionId& s,
                                 const std::vector<Seq>* only) const {
  ServerVector v;
  v.server = id();
  v.incarnation = incarnation();
  v.journal_id = journal_->journal_id();
  v.session = s;
  const auto& sessions = journal_->state().sessions;
  auto it = sessions.find(s);
  if (it == sessions.end()) return v;
  v.released_watermark = it->second.released_below;
  for (const auto& [seq, op] : it->second.ops) {
    if (StateOf(op) != ServerOpState::kReceived &&
        StateOf(op) != ServerOpState::kExecuted) {
      continue;
    }
    if (only != nullptr &&
        !std::binary_search(only->begin(), only->end(), seq)) {
      continue;
    }
    v.held.push_back(HeldOp{seq, StateOf(op), op.incarnation});
  }
  return v;
}

void SimServer::QueueStateExchange() {
  StateExchange se;
  se.role = Role::kServer;
  for (const auto& [sid, s] : journal_->state().sessions) {
    ServerVector v = VectorOf(sid, nullptr);
    if (!v.held.empty()) se.servers.push_back(std::move(v));
  }
  se.last = true;
  Send(se);
}

void SimServer::OnMessage(Message& m, const std::string& payload) {
  send_early_ = false;
  switch (TypeOf(m)) {
    case MessageType::kRequest:
      OnRequest(std::get<Request>(m), payload);
      return;
    case MessageType::kAck: {
      const Ack& a = std::get<Ack>(m);
      Release(a.session, a.completed_watermark, a.seqs);
      return;
    }
    case MessageType::kProbe: {
      const Probe& p = std::get<Probe>(m);
      ProbeReply reply;
      reply.probe_id = p.probe_id;
      reply.role = Role::kServer;
      reply.servers.push_back(VectorOf(p.session, &p.seqs));
      Send(reply);
      return;
    }
    case MessageType::kRecover:
      for (const RecoverSession& rs : std::get<Recover>(m).sessions) {
        ReleaseBelow(rs.session, rs.release_below);
        for (const OpDecision& d : rs.ops) {
          if (!alive()) return;
          world_.Note(
              TraceKind::kDecision, party(), world_.ClientOf(rs.session), d.seq,
              static_cast<int>(d.action), static_cast<int>(d.breakpoint));
          ApplyDecision(rs.session, d);
        }
      }
      return;
    default:
      return;
  }
}

void SimServer::OnRequest(const Request& r, const std::string& payload) {
  world_.Note(TraceKind::kDeliver, party(), world_.ClientOf(r.session), r.seq,
              static_cast<int>(MessageType::kRequest), r.flags);
  ReleaseBelow(r.session, r.completed_watermark);
  if (!alive()) return;
  if (IsReleased(r.session, r.seq)) {
    Respond(r.session, r.seq, ErrorCode::kInDoubt, {});  // not journaled
    return;
  }
  if (const JournalOp* op = FindOp(r.session, r.seq)) {
    switch (StateOf(*op)) {
      case ServerOpState::kExecuted:
        Respond(r.session, r.seq, op->status, op->payload);
        return;
      case ServerOpState::kReceived:
        if (op->incarnation != incarnation()) {
          SettleInDoubt(r.session, r.seq, InDoubtAction(op->service));
        }
        return;  // running in this incarnation: its answer will come
      case ServerOpState::kReleased:
      case ServerOpState::kNone:
        return;
    }
  }
  if (SpecOf(r.service) == nullptr) {
    Execute(r.session, r.seq, ErrorCode::kUnknownService, {});
    return;
  }
  JournalOp received;
  received.state = static_cast<std::uint8_t>(ServerOpState::kReceived);
  received.service = r.service;
  received.payload = payload;
  if (Status s = journal_->AppendOp(r.session, r.seq, std::move(received));
      !s.ok()) {
    Crash(CrashHow::kDiskFailed);
    return;
  }
  // The handler starts after this turn's commit (the job's first event is
  // later than the commit).
  StartJob(r.session, r.seq, r.service, payload, false);
}

Action SimServer::InDoubtAction(const std::string& service) const {
  const ServiceSpec* spec = SpecOf(service);
  if (spec == nullptr) return Action::kAnswerInDoubt;
  DecisionContext ctx;
  ctx.idempotent = spec->idempotent;
  ctx.policy = spec->policy;
  return DecideOp(1, ClientOpState::kSent,
                  ServerOpView{ServerOpState::kReceived, true}, ctx)
      .action;
}

void SimServer::ApplyDecision(const SessionId& s, const OpDecision& d) {
  const JournalOp* op = FindOp(s, d.seq);
  const ServerOpState state = op ? StateOf(*op) : ServerOpState::kNone;
  const bool released = IsReleased(s, d.seq);
  switch (d.action) {
    case Action::kNone:
    case Action::kWait:
    case Action::kKeepOrphan:
    case Action::kResendRequest:
      return;
    case Action::kResendResponse:
      if (state == ServerOpState::kExecuted) {
        Respond(s, d.seq, op->status, op->payload);
      } else if (state == ServerOpState::kReceived &&
                 op->incarnation != incarnation()) {
        SettleInDoubt(s, d.seq, InDoubtAction(op->service));
      } else if (released) {
        Respond(s, d.seq, ErrorCode::kInDoubt, {});
      }
      return;
    case Action::kReexecute:
    case Action::kResolve:
    case Action::kAnswerInDoubt:
      if (state == ServerOpState::kExecuted) {
        Respond(s, d.seq, op->status, op->payload);
      } else if (state == ServerOpState::kReceived &&
                 op->incarnation != incarnation()) {
        SettleInDoubt(s, d.seq, d.action);
      } else if (released) {
        Respond(s, d.seq, ErrorCode::kInDoubt, {});
      } else if (state == ServerOpState::kNone &&
                 d.action == Action::kAnswerInDoubt) {
        Execute(s, d.seq, ErrorCode::kInDoubt, {});
      }
      return;
    case Action::kRelease:
      if (state == ServerOpState::kReceived ||
          state == ServerOpState::kExecuted) {
        Release(s, 0, {d.seq});
      }
      return;
  }
}

void SimServer::SettleInDoubt(const SessionId& s, Seq seq, Action action) {
  const JournalOp* op = FindOp(s, seq);
  if (op == nullptr) return;
  const std::string service = op->service;
  const ServiceSpec* spec = SpecOf(service);
  if (spec == nullptr) {
    action = Action::kAnswerInDoubt;
  } else if (action == Action::kResolve &&
             spec->policy != InDoubtPolicy::kResolveHook) {
    action = InDoubtAction(service);  // no hook here
  }
  if (action == Action::kAnswerInDoubt) {
    Execute(s, seq, ErrorCode::kInDoubt, {});
    return;
  }
  if (action != Action::kReexecute && action != Action::kResolve) return;
  const std::string request = op->payload;
  JournalOp received;  // RECEIVED again, in this incarnation
  received.state = static_cast<std::uint8_t>(ServerOpState::kReceived);
  received.service = service;
  if (Status st = journal_->AppendOp(s, seq, std::move(received)); !st.ok()) {
    Crash(CrashHow::kDiskFailed);
    return;
  }
  StartJob(s, seq, service, request, action == Action::kResolve);
}

void SimServer::StartJob(const SessionId& s, Seq seq,
                         const std::string& service, const std::string& request,
                         bool resolve) {
  received_now_.emplace_back(s, seq);
  const std::uint64_t id = next_job_++;
  jobs_[id] = Job{s, seq, service, request, resolve};
  Rng& rng = world_.rng();
  const bool slow =
      world_.faults_on() && rng.Chance(world_.config().faults.slow_handler);
  const std::int64_t took =
      slow ? rng.Between(20'000, 600'000) : rng.Between(20, 300);
  world_.Schedule(world_.now_us() + took, EventKind::kHandlerDone, party(),
                  life(), id);
}

void SimServer::OnHandlerDone(std::uint64_t id) {
  send_early_ = false;
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return;
  Job job = std::move(it->second);
  jobs_.erase(it);
  const JournalOp* op = FindOp(job.session, job.seq);
  // Released or settled while it ran: its result is dropped.
  if (op == nullptr || StateOf(*op) != ServerOpState::kReceived ||
      op->incarnation != incarnation()) {
    return;
  }
  const auto key = std::make_pair(job.session, job.seq);
  const int client = world_.ClientOf(job.session);
  if (job.resolve) {
    // The hook reads the application's records: a reply if it ran.
    auto done = db_.find(key);
    if (done != db_.end()) {
      Execute(job.session, job.seq, done->second.first, done->second.second);
      return;
    }
  }
  // The handler: its side effect, then its result.
  const ServiceSpec* spec = SpecOf(job.service);
  const bool fails =
      world_.faults_on() &&
      world_.rng().Chance(world_.config().faults.failing_handler);
  const ErrorCode status = fails ? ErrorCode::kHandlerFailed : ErrorCode::kOk;
  const std::string result = (fails ? "f:" : "r:") + job.request;
  db_[key] = {status, result};
  world_.checker().Executed(server_, client, job.seq,
                            spec != nullptr && spec->idempotent, status, result,
                            world_.now_us());
  world_.Note(TraceKind::kExecuted, party(), client, job.seq,
              static_cast<int>(status));
  if (MaybeCrash(crash_p_, CrashHow::kInHandler)) return;
  send_early_ = world_.config().defect == Defect::kServerSendsBeforeJournal;
  Execute(job.session, job.seq, status, result);
}

void SimServer::Execute(const SessionId& s, Seq seq, ErrorCode status,
                        const std::string& payload) {
  JournalOp executed;
  executed.state = static_cast<std::uint8_t>(ServerOpState::kExecuted);
  executed.status = status;
  const bool with_payload =
      status == ErrorCode::kOk || status == ErrorCode::kHandlerFailed;
  executed.payload = with_payload ? payload : std::string();
  if (Status st = journal_->AppendOp(s, seq, std::move(executed)); !st.ok()) {
    Crash(CrashHow::kDiskFailed);
    return;
  }
  Respond(s, seq, status, with_payload ? payload : std::string());
}

void SimServer::Respond(const SessionId& s, Seq seq, ErrorCode status,
                        const std::string& payload) {
  Send(Response{s, seq, status}, payload);
}

void SimServer::ReleaseBelow(const SessionId& s, Seq below) {
  const auto& sessions = journal_->state().sessions;
  auto it = sessions.find(s);
  const Seq current = it == sessions.end() ? 1 : it->second.released_below;
  if (below <= current) return;
  Release(s, below, {});
}

void SimServer::Release(const SessionId& s, Seq below,
                        const std::vector<Seq>& seqs) {
  const auto& sessions = journal_->state().sessions;
  auto it = sessions.find(s);
  const Seq current = it == sessions.end() ? 1 : it->second.released_below;
  std::vector<Seq> held;
  bool dropped = false;
  if (it != sessions.end()) {
    for (const auto& [seq, op] : it->second.ops) {
      if (seq >= below) break;
      if (StateOf(op) != ServerOpState::kReleased) dropped = true;
    }
    for (Seq seq : seqs) {
      if (seq < below) continue;
      auto op = it->second.ops.find(seq);
      if (op == it->second.ops.end() ||
          StateOf(op->second) == ServerOpState::kReleased) {
        continue;
      }
      held.push_back(seq);
      dropped = true;
    }
  }
  if (!dropped && below <= current) return;
  if (Status st = journal_->AppendRelease(s, std::max(below, current), held);
      !st.ok()) {
    if (st.code() == ErrorCode::kInvalidArgument) return;
    Crash(CrashHow::kDiskFailed);
  }
}

}  // namespace rejoin::sim
