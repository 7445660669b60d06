// The server's operation logic (libserver/src/server_core.h) without a
// socket or a thread: messages in, journal records, answers and jobs out, on
// a fake clock, over a journal on the in-memory FaultEnv, so restarts, power
// losses and failing disks are steps of a test.
#include "server_core.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "rejoin/proto/codec.h"
#include "support/fault_env.h"

namespace rejoin::server_internal {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using Clock = ServerCore::Clock;

class RecordingOutbox final : public Outbox {
 public:
  void Add(const Message& m, std::string_view payload) override {
    sent.emplace_back(m, std::string(payload));
  }
  // The RESPONSEs queued, with their payloads, and forgets everything.
  std::vector<std::pair<Response, std::string>> TakeResponses() {
    std::vector<std::pair<Response, std::string>> out;
    for (auto& [m, payload] : sent) {
      if (const Response* r = std::get_if<Response>(&m)) {
        out.emplace_back(*r, payload);
      }
    }
    sent.clear();
    return out;
  }
  std::vector<std::pair<Message, std::string>> sent;
};

ServerOpState StateOf(const JournalOp& op) {
  return static_cast<ServerOpState>(op.state);
}

class ServerCoreTest : public ::testing::Test {
 protected:
  ServerCoreTest() {
    options_.server_id = "s1";
    options_.session_expiry = hours(1);
    services_.resize(3);
    services_[0].name = "idem";
    services_[0].idempotent = true;
    services_[0].policy = InDoubtPolicy::kReexecute;
    services_[1].name = "once";
    services_[1].policy = InDoubtPolicy::kAnswerInDoubt;
    services_[2].name = "hook";
    services_[2].policy = InDoubtPolicy::kResolveHook;
    services_[2].resolve = [](const RequestView&) {
      return std::optional<HandlerReply>();
    };
    Boot();
  }

  // A process starts: its journal opens (a new incarnation) and a core
  // runs over it.
  void Boot() {
    core_.reset();
    journal_.reset();
    JournalOptions o;
    o.dir = "/journal";
    o.durability = Durability::kSync;
    o.role = JournalRole::kServer;
    o.owner_id = options_.server_id;
    o.env = &env_;
    Result<std::unique_ptr<Journal>> j = Journal::Open(std::move(o));
    ASSERT_TRUE(j.ok()) << j.status().ToString();
    journal_ = std::move(*j);
    outbox_.sent.clear();
    core_ = std::make_unique<ServerCore>(options_, services_, *journal_,
                                         outbox_, counters_, now_);
  }

  // The end of a turn, as the I/O loop does it.
  void Commit() { ASSERT_TRUE(journal_->Commit().ok()); }

  // The jobs the turn started, taken as the I/O loop takes them.
  std::vector<Job> TakeJobs() {
    std::vector<Job> jobs = std::move(core_->jobs());
    core_->jobs().clear();
    return jobs;
  }

  void Deliver(Seq seq, const std::string& service = "once",
               const std::string& payload = "pay", Seq watermark = 1) {
    Request r;
    r.session = "c1";
    r.seq = seq;
    r.service = service;
    r.completed_watermark = watermark;
    core_->OnRequest(r, payload, now_);
  }

  void Finish(Job job, ErrorCode status, const std::string& payload) {
    Completion c;
    c.job = std::move(job);
    c.reply = HandlerReply{status, payload};
    core_->OnCompletion(std::move(c));
  }

  void Decide(Seq seq, Action action) {
    Recover r;
    RecoverSession rs;
    rs.session = "c1";
    rs.ops.push_back(OpDecision{seq, Breakpoint::kConsistent, action});
    r.sessions.push_back(rs);
    core_->OnRecover(r, now_);
  }

  const JournalOp* Op(Seq seq) const {
    const auto& sessions = journal_->state().sessions;
    auto s = sessions.find("c1");
    if (s == sessions.end()) return nullptr;
    auto op = s->second.ops.find(seq);
    return op == s->second.ops.end() ? nullptr : &op->second;
  }

  testing::FaultEnv env_{7};
  ServerOptions options_;
  std::vector<ServiceOptions> services_;
  Counters counters_;
  RecordingOutbox outbox_;
  Clock::time_point now_ = Clock::time_point{} + hours(10);
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<ServerCore> core_;
};

TEST_F(ServerCoreTest, ARequestIsJournaledRunOnceAndAnsweredFromItsRecord) {
  Deliver(1);
  Commit();
  std::vector<Job> jobs = TakeJobs();
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].kind, JobKind::kHandle);
  EXPECT_EQ(jobs[0].request, "pay");
  EXPECT_EQ(services_[jobs[0].service].name, "once");
  ASSERT_NE(Op(1), nullptr);
  EXPECT_EQ(StateOf(*Op(1)), ServerOpState::kReceived);
  EXPECT_TRUE(outbox_.sent.empty());

  // A copy while the handler runs: no second job, no answer yet.
  Deliver(1);
  EXPECT_TRUE(TakeJobs().empty());
  EXPECT_TRUE(outbox_.sent.empty());

  Finish(jobs[0], ErrorCode::kOk, "done");
  Commit();
  EXPECT_EQ(StateOf(*Op(1)), ServerOpState::kExecuted);
  auto answers = outbox_.TakeResponses();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].first.status, ErrorCode::kOk);
  EXPECT_EQ(answers[0].second, "done");

  // Another copy gets the stored answer, not a new run.
  Deliver(1);
  EXPECT_TRUE(TakeJobs().empty());
  answers = outbox_.TakeResponses();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].second, "done");
  EXPECT_EQ(counters_.responses_resent.load(), 1u);
}

TEST_F(ServerCoreTest, ASeqReusedForAnotherRequestIsAConflict) {
  Deliver(1, "once", "first");
  Commit();
  Finish(TakeJobs().at(0), ErrorCode::kOk, "done");
  outbox_.sent.clear();
  Deliver(1, "once", "second");
  EXPECT_TRUE(TakeJobs().empty());
  auto answers = outbox_.TakeResponses();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].first.status, ErrorCode::kConflict);
  EXPECT_EQ(counters_.conflicts.load(), 1u);
}

TEST_F(ServerCoreTest, AReleasedSeqIsAnsweredInDoubtAndNeverRunAgain) {
  Deliver(1);
  Commit();
  Finish(TakeJobs().at(0), ErrorCode::kOk, "done");
  Commit();
  core_->OnAck(Ack{"c1", 2, {}}, now_);
  Commit();
  outbox_.sent.clear();
  EXPECT_TRUE(Op(1) == nullptr || StateOf(*Op(1)) == ServerOpState::kReleased);
  // Even after a restart: the release is durable.
  Boot();
  Deliver(1);
  EXPECT_TRUE(TakeJobs().empty());
  auto answers = outbox_.TakeResponses();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].first.status, ErrorCode::kInDoubt);
}

TEST_F(ServerCoreTest, AnOperationCutByARestartIsSettledByItsServicesPolicy) {
  Deliver(1, "idem", "a");
  Deliver(2, "once", "b");
  Deliver(3, "hook", "c");
  Commit();
  ASSERT_EQ(TakeJobs().size(), 3u);
  // The process dies with the three handlers running.
  Boot();
  Deliver(1, "idem", "a");
  Deliver(2, "once", "b");
  Deliver(3, "hook", "c");
  Commit();
  std::vector<Job> jobs = TakeJobs();
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0].seq, 1u);  // re-executed
  EXPECT_EQ(jobs[0].kind, JobKind::kHandle);
  EXPECT_EQ(jobs[1].seq, 3u);  // its hook is asked
  EXPECT_EQ(jobs[1].kind, JobKind::kResolve);
  auto answers = outbox_.TakeResponses();
  ASSERT_EQ(answers.size(), 1u);  // not idempotent, no hook: in doubt
  EXPECT_EQ(answers[0].first.seq, 2u);
  EXPECT_EQ(answers[0].first.status, ErrorCode::kInDoubt);
  EXPECT_EQ(StateOf(*Op(2)), ServerOpState::kExecuted);

  // The hook finds no trace: the handler runs now, in the same job's place.
  Completion none;
  none.job = jobs[1];
  core_->OnCompletion(std::move(none));
  std::vector<Job> next = TakeJobs();
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].kind, JobKind::kHandle);
  EXPECT_EQ(next[0].seq, 3u);
  EXPECT_EQ(next[0].request, "c");
}

TEST_F(ServerCoreTest, AResultOfAnOperationSettledMeanwhileIsDropped) {
  Deliver(1, "idem", "a");
  Commit();
  Job job = TakeJobs().at(0);
  Decide(1, Action::kRelease);
  Commit();
  Finish(job, ErrorCode::kOk, "late");
  EXPECT_TRUE(outbox_.TakeResponses().empty());
  EXPECT_TRUE(Op(1) == nullptr || StateOf(*Op(1)) == ServerOpState::kReleased);
}

TEST_F(ServerCoreTest, AnOperationItsJournalLostIsAnsweredInDoubtOnce) {
  // The broker saw this server's journal id change and decided in_doubt
  // for an operation the new journal never held.
  Decide(4, Action::kAnswerInDoubt);
  Commit();
  auto answers = outbox_.TakeResponses();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].first.status, ErrorCode::kInDoubt);
  ASSERT_NE(Op(4), nullptr);
  EXPECT_EQ(StateOf(*Op(4)), ServerOpState::kExecuted);
  // A client's copy of the request later gets that same answer.
  Deliver(4);
  EXPECT_TRUE(TakeJobs().empty());
  answers = outbox_.TakeResponses();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].first.status, ErrorCode::kInDoubt);
}

TEST_F(ServerCoreTest, AFailingDiskStopsEveryAnswer) {
  Deliver(1);
  Commit();
  Job job = TakeJobs().at(0);
  env_.FailFrom(env_.mutations(), EIO);
  // The EXECUTED record is queued; the turn's commit fails (the shell then
  // drops the turn's answers and stops).
  Finish(job, ErrorCode::kOk, "done");
  EXPECT_FALSE(journal_->Commit().ok());
  // A journal that failed takes no record: the next turn fails the core,
  // which from then on starts nothing and answers nothing.
  outbox_.sent.clear();
  Deliver(2);
  EXPECT_TRUE(core_->failed());
  EXPECT_FALSE(core_->failure().ok());
  Deliver(3);
  Deliver(1);
  core_->QueueStateExchange();
  EXPECT_TRUE(TakeJobs().empty());
  EXPECT_TRUE(outbox_.sent.empty());
  env_.ClearFaults();
}

TEST_F(ServerCoreTest, AnAnswerTooLargeForTheWireIsJournaledTooLarge) {
  Deliver(1);
  Commit();
  Finish(TakeJobs().at(0), ErrorCode::kOk,
         std::string(CodecLimits().max_payload_bytes + 1, 'x'));
  Commit();
  auto answers = outbox_.TakeResponses();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].first.status, ErrorCode::kTooLarge);
  EXPECT_TRUE(answers[0].second.empty());
  // The record says the same, so a copy of the request gets it again.
  EXPECT_EQ(Op(1)->status, ErrorCode::kTooLarge);
  EXPECT_FALSE(core_->failed());
}

TEST_F(ServerCoreTest, AnIdleSessionExpiresUnlessAHandlerRuns) {
  Deliver(1);
  Commit();
  Job job = TakeJobs().at(0);
  now_ += hours(2);
  core_->ExpireSessions(now_);
  Commit();
  ASSERT_NE(Op(1), nullptr);  // still running: kept
  EXPECT_EQ(StateOf(*Op(1)), ServerOpState::kReceived);
  Finish(job, ErrorCode::kOk, "done");
  Commit();
  now_ += hours(2);
  core_->ExpireSessions(now_);
  Commit();
  EXPECT_EQ(counters_.sessions_expired.load(), 1u);
  EXPECT_TRUE(Op(1) == nullptr || StateOf(*Op(1)) == ServerOpState::kReleased);
}

TEST_F(ServerCoreTest, AProbeAndAStateExchangeReportWhatTheJournalHolds) {
  Deliver(1);
  Deliver(2, "idem");
  Commit();
  std::vector<Job> jobs = TakeJobs();
  Finish(jobs[1], ErrorCode::kOk, "two");
  Commit();
  outbox_.sent.clear();
  core_->OnProbe(Probe{9, "c1", {1, 2, 3}}, now_);
  core_->QueueStateExchange();
  ASSERT_EQ(outbox_.sent.size(), 2u);
  const auto& reply = std::get<ProbeReply>(outbox_.sent[0].first);
  EXPECT_EQ(reply.probe_id, 9u);
  ASSERT_EQ(reply.servers.size(), 1u);
  ASSERT_EQ(reply.servers[0].held.size(), 2u);
  EXPECT_EQ(reply.servers[0].held[0].state, ServerOpState::kReceived);
  EXPECT_EQ(reply.servers[0].held[1].state, ServerOpState::kExecuted);
  const auto& se = std::get<StateExchange>(outbox_.sent[1].first);
  EXPECT_TRUE(se.last);
  ASSERT_EQ(se.servers.size(), 1u);
  EXPECT_EQ(se.servers[0].held.size(), 2u);
  EXPECT_EQ(se.servers[0].incarnation, journal_->incarnation());
}

}  // namespace
}  // namespace rejoin::server_internal
