// The client model (sim_client.h).
#include "sim_client.h"

#include <algorithm>

namespace rejoin::sim {
namespace {

constexpr std::int64_t kResendUs = 200'000;       // R (FLOWS.md §1)
constexpr std::int64_t kResendMaxUs = 2'000'000;  // R_max
constexpr std::int64_t kAckDelayUs = 20'000;      // ack delay
// Seqs start at the time in microseconds (FLOWS.md §2.2): this is the
// simulated clock's "Unix time" at its zero.
constexpr Seq kSeqClockBase = 1'700'000'000'000'000ull;

const char* const kServices[] = {"idem", "once", "hook"};

}  // namespace

SimClient::SimClient(World& world, int client)
    : SimEndpoint(world, world.ClientParty(client), Role::kClient,
                  "s" + std::to_string(client)),
      client_(client) {
  crash_p_ = world.config().faults.crash_client;
}

bool SimClient::idle() const {
  const SimConfig& c = world_.config();
  return calls_made_ >= c.calls_per_client + c.final_calls && pending_.empty();
}

std::size_t SimClient::journal_ops() const {
  if (!journal_) return 0;
  std::size_t n = 0;
  for (const auto& [sid, s] : journal_->state().sessions) n += s.ops.size();
  return n;
}

void SimClient::Booted() {
  pending_.clear();
  completed_.clear();
  unacked_.clear();
  accepted_now_.clear();
  answers_now_.clear();
  ack_at_ = INT64_MAX;
  forget_after_boot_ = false;
  next_seq_ = kSeqClockBase + static_cast<Seq>(world_.now_us());
  const auto& sessions = journal_->state().sessions;
  auto it = sessions.find(id());
  if (it == sessions.end()) return;
  next_seq_ = std::max(next_seq_, it->second.next_seq);
  for (const auto& [seq, op] : it->second.ops) {
    if (op.state == static_cast<std::uint8_t>(ClientOpState::kCompleted)) {
      completed_.insert(seq);
      unacked_.insert(seq);
      forget_after_boot_ = true;
      if (app_has_.count(seq) == 0) {
        world_.checker().Accepted(client_, seq);
        answers_now_.push_back({seq, op.status, op.payload});
      }
      continue;
    }
    // PREPARED in the journal: the call is recorded, and it is resent.
    Pending& p = pending_[seq];
    p.service = op.service;
    p.payload = op.payload;
    p.resend = true;
    world_.checker().Accepted(client_, seq);
  }
}

void SimClient::Halted() {
  pending_.clear();
  completed_.clear();
  unacked_.clear();
  accepted_now_.clear();
  answers_now_.clear();
}

bool SimClient::HasRecords() const {
  return !pending_.empty() || !completed_.empty() || !unacked_.empty();
}

Hello SimClient::MakeHello() const {
  return Hello{Role::kClient,          id(), incarnation(),
               journal_->journal_id(), 0,    {}};
}

Seq SimClient::Watermark() const {
  return pending_.empty() ? next_seq_ : pending_.begin()->first;
}

ClientVector SimClient::Vector(const std::vector<Seq>* only) const {
  ClientVector v;
  v.session = id();
  v.incarnation = incarnation();
  v.journal_id = journal_->journal_id();
  v.next_seq = next_seq_;
  v.completed_watermark = Watermark();
  for (const auto& [seq, p] : pending_) {
    if (only == nullptr || std::binary_search(only->begin(), only->end(), seq))
      v.pending.push_back(seq);
  }
  for (Seq seq : completed_) {
    if (seq < v.completed_watermark) continue;
    if (only == nullptr || std::binary_search(only->begin(), only->end(), seq))
      v.completed.push_back(seq);
  }
  return v;
}

void SimClient::QueueStateExchange() {
  StateExchange se;
  se.role = Role::kClient;
  se.clients.push_back(Vector(nullptr));
  se.last = true;
  Send(se);
}

void SimClient::OnWelcomed() {
  // First sends wait for WELCOME; what was journaled meanwhile goes now.
  for (auto& [seq, p] : pending_) {
    if (!p.sent) SendRequest(seq, p);
  }
}

bool SimClient::MayCall() const {
  const SimConfig& c = world_.config();
  if (static_cast<int>(pending_.size()) >= c.window) return false;
  if (calls_made_ < c.calls_per_client) return true;
  return !world_.faults_on() &&
         calls_made_ < c.calls_per_client + c.final_calls;
}

bool SimClient::SendBeforeCommit() const {
  return world_.config().defect == Defect::kClientSendsBeforeJournal;
}

void SimClient::Call() {
  const Seq seq = next_seq_++;
  const int n = world_.config().with_hook_service ? 3 : 2;
  const std::string service =
      kServices[world_.rng().Below(static_cast<std::uint64_t>(n))];
  const std::string payload =
      "p" + std::to_string(client_) + "." + std::to_string(calls_made_);
  ++calls_made_;
  world_.checker().Attempted(client_, seq, service, payload);
  world_.Note(TraceKind::kCall, party(), client_, seq);
  JournalOp op;
  op.state = static_cast<std::uint8_t>(ClientOpState::kPrepared);
  op.service = service;
  op.payload = payload;
  Pending& p = pending_[seq];
  p.service = service;
  p.payload = payload;
  if (SendBeforeCommit()) SendRequest(seq, p);  // the seeded defect
  if (Status s = journal_->AppendOp(id(), seq, std::move(op)); !s.ok()) {
    Crash(CrashHow::kDiskFailed);
    return;
  }
  accepted_now_.push_back(seq);
}

void SimClient::SendRequest(Seq seq, Pending& p) {
  if (!welcomed()) {
    p.sent = false;  // it goes when the session is welcomed again
    return;
  }
  Request r;
  r.session = id();
  r.seq = seq;
  r.service = p.service;
  r.completed_watermark = std::min(Watermark(), seq);
  r.flags = p.resend ? kRequestResend : 0;
  Send(r, p.payload);
  p.sent = true;
  p.resend = true;
  p.backoff =
      p.backoff == 0 ? kResendUs : std::min(p.backoff * 2, kResendMaxUs);
  p.resend_at = world_.now_us() + p.backoff;
}

void SimClient::AfterCommit() {
  for (Seq seq : accepted_now_) {
    world_.checker().Accepted(client_, seq);
    world_.Note(TraceKind::kAccepted, party(), client_, seq);
    auto it = pending_.find(seq);
    if (it != pending_.end() && !it->second.sent) {
      SendRequest(seq, it->second);
    }
  }
  accepted_now_.clear();
  // COMPLETED is durable: the application gets its answer.
  for (const Answer& a : answers_now_) {
    app_has_.insert(a.seq);
    world_.Note(TraceKind::kAnswered, party(), client_, a.seq,
                static_cast<int>(a.status));
    world_.checker().Delivered(client_, a.seq, a.status, a.payload);
  }
  // Forgotten only once the application has them; committed with the next
  // turn (a crash before only keeps them a little longer).
  if (!answers_now_.empty() || forget_after_boot_) Forget();
  forget_after_boot_ = false;
  answers_now_.clear();
}

void SimClient::OnMessage(Message& m, const std::string& payload) {
  world_.Note(TraceKind::kDeliver, party(), -1, 0, static_cast<int>(TypeOf(m)));
  if (auto* r = std::get_if<Response>(&m)) {
    if (r->session == id()) OnResponse(*r, payload);
    return;
  }
  if (auto* p = std::get_if<Probe>(&m)) {
    if (p->session != id()) return;
    ProbeReply reply;
    reply.probe_id = p->probe_id;
    reply.role = Role::kClient;
    reply.clients.push_back(Vector(&p->seqs));
    Send(reply);
    return;
  }
  if (auto* rec = std::get_if<Recover>(&m)) {
    for (const RecoverSession& rs : rec->sessions) {
      if (rs.session != id()) continue;
      for (const OpDecision& d : rs.ops) {
        world_.Note(TraceKind::kDecision, party(), client_, d.seq,
                    static_cast<int>(d.action), static_cast<int>(d.breakpoint));
        if (d.action != Action::kResendRequest) continue;
        auto it = pending_.find(d.seq);
        if (it != pending_.end()) SendRequest(d.seq, it->second);
      }
    }
  }
}

void SimClient::OnResponse(const Response& r, const std::string& payload) {
  next_seq_ = std::max(next_seq_, r.seq + 1);
  auto it = pending_.find(r.seq);
  world_.Note(TraceKind::kDeliver, party(), client_, r.seq,
              static_cast<int>(MessageType::kResponse),
              static_cast<int>(r.status));
  if (it == pending_.end()) return;  // a duplicate: dropped
  JournalOp op;
  op.state = static_cast<std::uint8_t>(ClientOpState::kCompleted);
  op.service = it->second.service;
  op.payload = payload;
  op.status = r.status;
  if (Status s = journal_->AppendOp(id(), r.seq, std::move(op)); !s.ok()) {
    Crash(CrashHow::kDiskFailed);
    return;
  }
  pending_.erase(it);
  completed_.insert(r.seq);
  unacked_.insert(r.seq);
  answers_now_.push_back({r.seq, r.status, payload});
  if (ack_at_ == INT64_MAX) ack_at_ = world_.now_us() + kAckDelayUs;
}

void SimClient::Forget() {
  // Completed below the watermark: the journal forgets them.
  const Seq wm = Watermark();
  const auto& sessions = journal_->state().sessions;
  auto it = sessions.find(id());
  if (it == sessions.end() || wm <= it->second.released_below) return;
  if (Status s = journal_->AppendRelease(id(), wm); !s.ok()) {
    Crash(CrashHow::kDiskFailed);
    return;
  }
  completed_.erase(completed_.begin(), completed_.lower_bound(wm));
}

void SimClient::Timers() {
  const std::int64_t now = world_.now_us();
  while (alive() && MayCall()) Call();
  if (!alive()) return;
  for (auto& [seq, p] : pending_) {
    if (p.sent && p.resend_at <= now) SendRequest(seq, p);
  }
  if (ack_at_ <= now) {
    Ack a;
    a.session = id();
    a.completed_watermark = Watermark();
    for (Seq s : unacked_) {
      if (s >= a.completed_watermark) a.seqs.push_back(s);
    }
    Send(a);
    unacked_.clear();
    ack_at_ = INT64_MAX;
  }
}

std::int64_t SimClient::NextTimerUs() const {
  if (MayCall()) return world_.now_us();
  std::int64_t next = ack_at_;
  for (const auto& [seq, p] : pending_) {
    if (p.sent) next = std::min(next, p.resend_at);
  }
  // Waiting for the faults to end before the final calls.
  if (!pending_.empty() || !world_.faults_on()) return next;
  const SimConfig& c = world_.config();
  if (calls_made_ < c.calls_per_client + c.final_calls) {
    next = std::min<std::int64_t>(next, c.fault_time.count());
  }
  return next;
}

}  // namespace rejoin::sim
