// The client of the simulation (sim_client.h).
#include "sim_client.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace rejoin::client_internal {
// libclient/src/log.h (declared here: libserver/src has a log.h too).
spdlog::logger& Log();
}  // namespace rejoin::client_internal

namespace rejoin::sim {
namespace {

// Seqs start at the time in microseconds (FLOWS.md §2.2): this is the
// simulated clock's "Unix time" at its zero.
constexpr Seq kSeqClockBase = 1'700'000'000'000'000ull;

const char* const kServices[] = {"idem", "once", "hook"};

std::int64_t MicrosAt(Time t) {
  if (t == Time::max()) return INT64_MAX;
  return std::chrono::duration_cast<Micros>(t -
                                            (Time{} + std::chrono::hours(1)))
      .count();
}

}  // namespace

SimClient::SimClient(World& world, int client)
    : SimEndpoint(world, world.ClientParty(client), Role::kClient,
                  "s" + std::to_string(client)),
      client_(client) {
  crash_p_ = world.config().faults.crash_client;
  options_.session_id = id();
  options_.endpoint = "sim";
  // The core's warnings (a seq above any issued, a journal that failed)
  // would repeat at thousands of restarts.
  client_internal::Log().set_level(spdlog::level::off);
}

// ---------------------------------------------------------------------------
// The core's records and wire.

Status SimClient::Records::AppendOp(Seq seq, JournalOp op) {
  return c_.journal_->AppendOp(c_.id(), seq, std::move(op));
}

Status SimClient::Records::AppendRelease(Seq below,
                                         const std::vector<Seq>& seqs) {
  return c_.journal_->AppendRelease(c_.id(), below, seqs);
}

const JournalSession* SimClient::Records::session() const {
  const auto& sessions = c_.journal_->state().sessions;
  auto it = sessions.find(c_.id());
  return it == sessions.end() ? nullptr : &it->second;
}

bool SimClient::Wire::Send(const Message& m) {
  c_.Send(m);
  return true;
}

void SimClient::Wire::AddRequest(const Request& r, std::string_view payload) {
  batch_.emplace_back(r, std::string(payload));
}

bool SimClient::Wire::SendRequests() {
  for (auto& [r, payload] : batch_) c_.Send(r, std::move(payload));
  batch_.clear();
  return true;
}

// ---------------------------------------------------------------------------
// The process.

bool SimClient::idle() const {
  const SimConfig& c = world_.config();
  return calls_made_ >= c.calls_per_client + c.final_calls && core_ &&
         !core_->has_pending() && collecting_ == 0;
}

std::size_t SimClient::journal_ops() const {
  if (!journal_) return 0;
  std::size_t n = 0;
  for (const auto& [sid, s] : journal_->state().sessions) n += s.ops.size();
  return n;
}

bool SimClient::HasRecords() const {
  if (core_) return core_->HasRecords();
  const JournalSession* js = records_.session();
  return js != nullptr && !js->ops.empty();
}

void SimClient::Booted() {
  accepted_now_.clear();
  collecting_ = 0;
  core_ = std::make_unique<client_internal::SessionCore>(
      options_, records_, machine(), incarnation(), journal_->journal_id(),
      stats_, wire_, [](Seq) {},
      kSeqClockBase + static_cast<Seq>(world_.now_us()), world_.now());
  // What the library asks of an application after a restart: look at what
  // the journal holds; collect the answers it does not have, forget the
  // outcomes it has.
  for (const OperationInfo& op : core_->List()) {
    const bool completed = op.state == ClientOpState::kCompleted;
    if (completed && app_has_.count(op.seq) != 0) {
      (void)core_->Forget(op.seq);
      continue;
    }
    // Journaled: the call was made (a PREPARED record that reached the
    // disk although its commit failed counts too).
    world_.checker().Accepted(client_, op.seq);
    ++collecting_;
    core_->Collect(op.seq, WaiterFor(op.seq, true));
  }
}

void SimClient::Halted() {
  core_.reset();
  accepted_now_.clear();
  collecting_ = 0;
}

Hello SimClient::MakeHello() const {
  return Hello{Role::kClient,          id(), incarnation(),
               journal_->journal_id(), 0,    {}};
}

void SimClient::QueueStateExchange() { core_->QueueStateExchange(); }

void SimClient::OnWelcomed() { core_->OnWelcomed(); }

bool SimClient::SendBeforeCommit() const {
  return world_.config().defect == Defect::kClientSendsBeforeJournal;
}

// ---------------------------------------------------------------------------
// The application.

bool SimClient::MayCall() const {
  const SimConfig& c = world_.config();
  if (!core_ || static_cast<int>(core_->pending_count()) >= c.window) {
    return false;
  }
  if (calls_made_ < c.calls_per_client) return true;
  return !world_.faults_on() &&
         calls_made_ < c.calls_per_client + c.final_calls;
}

client_internal::Waiter SimClient::WaiterFor(Seq seq, bool collected) {
  client_internal::Waiter w;
  w.id = core_->NewWaiterId();
  w.deadline = Time::max();
  if (world_.faults_on() &&
      world_.rng().Chance(world_.config().faults.call_deadline)) {
    w.deadline = world_.now() + Micros(world_.rng().Between(1'000, 500'000));
  }
  w.callback = [this, seq, collected](const Result<Reply>& r) {
    OnAnswer(seq, collected, r);
  };
  return w;
}

void SimClient::Call() {
  const Seq seq = core_->next_seq();
  const int n = world_.config().with_hook_service ? 3 : 2;
  const std::string service =
      kServices[world_.rng().Below(static_cast<std::uint64_t>(n))];
  const std::string payload =
      "p" + std::to_string(client_) + "." + std::to_string(calls_made_);
  ++calls_made_;
  world_.checker().Attempted(client_, seq, service, payload);
  world_.Note(TraceKind::kCall, party(), client_, seq);
  const std::size_t before = core_->pending_count();
  core_->Call(seq, service, payload, WaiterFor(seq, false));
  if (core_->pending_count() == before) return;  // not journaled: refused
  accepted_now_.push_back(seq);
  // The seeded defect: the REQUEST leaves before its PREPARED record is
  // durable.
  if (SendBeforeCommit()) core_->Flush(world_.now(), true);
}

void SimClient::OnAnswer(Seq seq, bool collected, const Result<Reply>& r) {
  if (collected) --collecting_;
  if (!r.ok()) {
    // The wait ended, not the operation: after its deadline the application
    // collects it again (what the library's message says to do). A failed
    // journal or the process's end leave it to the next process.
    if (r.status().code() == ErrorCode::kDeadlineExceeded) {
      ++world_.stats().deadlines;
      ++collecting_;
      core_->Collect(seq, WaiterFor(seq, true));
    }
    return;
  }
  app_has_.insert(seq);
  world_.Note(TraceKind::kAnswered, party(), client_, seq,
              static_cast<int>(r->status));
  world_.checker().Delivered(client_, seq, r->status, r->payload,
                             world_.now_us());
  // A caller's outcome is dropped by the library once acknowledged; a
  // collected one is the application's to forget.
  if (collected) (void)core_->Forget(seq);
}

// ---------------------------------------------------------------------------
// The turn.

void SimClient::OnMessage(Message& m, const std::string& payload) {
  world_.Note(TraceKind::kDeliver, party(), -1, 0, static_cast<int>(TypeOf(m)));
  if (const auto* r = std::get_if<Response>(&m)) {
    world_.Note(TraceKind::kDeliver, party(), client_, r->seq,
                static_cast<int>(MessageType::kResponse),
                static_cast<int>(r->status));
  } else if (const auto* rec = std::get_if<Recover>(&m)) {
    for (const RecoverSession& rs : rec->sessions) {
      if (rs.session != id()) continue;
      for (const OpDecision& d : rs.ops) {
        world_.Note(TraceKind::kDecision, party(), client_, d.seq,
                    static_cast<int>(d.action), static_cast<int>(d.breakpoint));
      }
    }
  }
  (void)core_->OnMessage(m, payload, world_.now());
}

void SimClient::Timers() {
  while (alive() && MayCall()) Call();
  if (!alive()) return;
  core_->Timers(world_.now());
}

void SimClient::AfterCommit() {
  for (Seq seq : accepted_now_) {
    world_.checker().Accepted(client_, seq);
    world_.Note(TraceKind::kAccepted, party(), client_, seq);
  }
  accepted_now_.clear();
  // As the library's turn: after the commit, send, then hand the outcomes
  // the commit made durable to their waiters.
  core_->Flush(world_.now(), true);
  // A callback's Collect of an outcome already journaled delivers at once:
  // those go out in this turn too.
  while (!core_->deliveries().empty()) {
    client_internal::SessionCore::Deliveries deliveries;
    deliveries.swap(core_->deliveries());
    for (auto& [callback, result] : deliveries) {
      if (callback) callback(result);
    }
  }
  core_->events().clear();
  (void)core_->TakeSlotsFreed();
  core_->DropStaleResendTimers();
}

std::int64_t SimClient::NextTimerUs() const {
  if (MayCall()) return world_.now_us();
  std::int64_t next = MicrosAt(core_->NextWakeup(Time::max()));
  // Waiting for the faults to end before the final calls.
  if (core_->has_pending() || !world_.faults_on()) return next;
  const SimConfig& c = world_.config();
  if (calls_made_ < c.calls_per_client + c.final_calls) {
    next = std::min<std::int64_t>(next, c.fault_time.count());
  }
  return next;
}

}  // namespace rejoin::sim
