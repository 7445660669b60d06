// The server of the simulation (sim_server.h).
#include "sim_server.h"

#include <spdlog/spdlog.h>

#include <optional>

namespace rejoin::server_internal {
// libserver/src/log.h (declared here: libclient/src has a log.h too).
spdlog::logger& Log();
}  // namespace rejoin::server_internal

namespace rejoin::sim {
namespace {

ServerOpState StateOf(const JournalOp& op) {
  return static_cast<ServerOpState>(op.state);
}

std::vector<ServiceOptions> Services(bool with_hook) {
  std::vector<ServiceOptions> v(2);
  v[0].name = "idem";
  v[0].idempotent = true;
  v[0].policy = InDoubtPolicy::kReexecute;
  v[1].name = "once";
  v[1].policy = InDoubtPolicy::kAnswerInDoubt;
  if (with_hook) {
    ServiceOptions hook;
    hook.name = "hook";
    hook.policy = InDoubtPolicy::kResolveHook;
    // Never called: the simulation's worker answers resolve jobs from the
    // application's records. The core only looks whether there is one.
    hook.resolve = [](const RequestView&) {
      return std::optional<HandlerReply>();
    };
    v.push_back(std::move(hook));
  }
  return v;
}

}  // namespace

SimServer::SimServer(World& world, int server)
    : SimEndpoint(world, world.ServerParty(server), Role::kServer,
                  "srv" + std::to_string(server)),
      server_(server),
      services_(Services(world.config().with_hook_service)) {
  crash_p_ = world.config().faults.crash_server;
  options_.server_id = id();
  options_.concurrency = 4;
  for (const ServiceOptions& s : services_) {
    specs_.push_back(
        ServiceSpec{s.name, options_.concurrency, s.idempotent, s.policy});
  }
  // The core's warnings (a RECOVER action meant for a client, a conflict)
  // are counted in counters_; thousands of restarts would repeat them.
  server_internal::Log().set_level(spdlog::level::off);
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

const JournalOp* SimServer::FindOp(const SessionId& s, Seq seq) const {
  const auto& sessions = journal_->state().sessions;
  auto it = sessions.find(s);
  if (it == sessions.end()) return nullptr;
  auto op = it->second.ops.find(seq);
  return op == it->second.ops.end() ? nullptr : &op->second;
}

void SimServer::Add(const Message& m, std::string_view payload) {
  Send(m, std::string(payload));
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
  server_internal::Outbox& outbox = *this;
  core_ = std::make_unique<server_internal::ServerCore>(
      options_, services_, *journal_, outbox, counters_, world_.now());
}

void SimServer::Halted() {
  for (const auto& [s, seq] : received_now_) {
    unconfirmed_.emplace(std::make_pair(s, seq), world_.now_us());
  }
  received_now_.clear();
  jobs_.clear();
  send_early_ = false;
  core_.reset();
}

Hello SimServer::MakeHello() const {
  return Hello{Role::kServer,          id(), incarnation(),
               journal_->journal_id(), 0,    specs_};
}

void SimServer::QueueStateExchange() {
  core_->QueueStateExchange();
  AfterCore();
}

void SimServer::OnMessage(Message& m, const std::string& payload) {
  send_early_ = false;
  const Time now = world_.now();
  switch (TypeOf(m)) {
    case MessageType::kRequest: {
      const Request& r = std::get<Request>(m);
      world_.Note(TraceKind::kDeliver, party(), world_.ClientOf(r.session),
                  r.seq, static_cast<int>(MessageType::kRequest), r.flags);
      core_->OnRequest(r, payload, now);
      break;
    }
    case MessageType::kAck:
      core_->OnAck(std::get<Ack>(m), now);
      break;
    case MessageType::kProbe:
      core_->OnProbe(std::get<Probe>(m), now);
      break;
    case MessageType::kRecover: {
      const Recover& r = std::get<Recover>(m);
      for (const RecoverSession& rs : r.sessions) {
        for (const OpDecision& d : rs.ops) {
          world_.Note(
              TraceKind::kDecision, party(), world_.ClientOf(rs.session), d.seq,
              static_cast<int>(d.action), static_cast<int>(d.breakpoint));
        }
      }
      core_->OnRecover(r, now);
      break;
    }
    default:
      return;
  }
  AfterCore();
}

void SimServer::AfterCore() {
  if (core_->failed()) {
    Crash(CrashHow::kDiskFailed);
    return;
  }
  for (server_internal::Job& job : core_->jobs()) StartJob(std::move(job));
  core_->jobs().clear();
}

void SimServer::StartJob(server_internal::Job job) {
  received_now_.emplace_back(job.session, job.seq);
  const std::uint64_t id = next_job_++;
  jobs_[id] = std::move(job);
  Rng& rng = world_.rng();
  const bool slow =
      world_.faults_on() && rng.Chance(world_.config().faults.slow_handler);
  const std::int64_t took =
      slow ? rng.Between(20'000, 600'000) : rng.Between(20, 300);
  // The handler starts after this turn's commit (the job's first event is
  // later than the commit).
  world_.Schedule(world_.now_us() + took, EventKind::kHandlerDone, party(),
                  life(), id);
}

void SimServer::OnHandlerDone(std::uint64_t id) {
  send_early_ = false;
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return;
  server_internal::Completion done;
  done.job = std::move(it->second);
  jobs_.erase(it);
  const server_internal::Job& job = done.job;
  const auto key = std::make_pair(job.session, job.seq);
  if (job.kind == server_internal::JobKind::kResolve) {
    // The hook reads the application's records: a reply if it ran; none,
    // and the core runs the handler next.
    auto found = db_.find(key);
    if (found != db_.end()) {
      done.reply = HandlerReply{found->second.first, found->second.second};
    }
  } else {
    // The handler, as a worker runs it whatever the journal says meanwhile:
    // its side effect, then its result.
    const int client = world_.ClientOf(job.session);
    const ServiceOptions& service = services_[job.service];
    const bool fails =
        world_.faults_on() &&
        world_.rng().Chance(world_.config().faults.failing_handler);
    const ErrorCode status = fails ? ErrorCode::kHandlerFailed : ErrorCode::kOk;
    std::string result = (fails ? "f:" : "r:") + job.request;
    db_[key] = {status, result};
    world_.checker().Executed(server_, client, job.seq, service.idempotent,
                              status, result, world_.now_us());
    world_.Note(TraceKind::kExecuted, party(), client, job.seq,
                static_cast<int>(status));
    if (MaybeCrash(crash_p_, CrashHow::kInHandler)) return;
    send_early_ = world_.config().defect == Defect::kServerSendsBeforeJournal;
    done.reply = HandlerReply{status, std::move(result)};
  }
  core_->OnCompletion(std::move(done));
  AfterCore();
}

}  // namespace rejoin::sim
