// A client session's operation logic (libclient/src/session_core.h) without
// a socket or a thread: calls, answers, timers and recovery in, journal
// records, REQUESTs, ACKs and reports out, on a fake clock, over a journal
// on the in-memory FaultEnv, so a restart is a step of a test.
#include "session_core.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "support/fault_env.h"

namespace rejoin::client_internal {
namespace {

using std::chrono::milliseconds;

const SessionId kSession = "s1";

class JournalRecords final : public SessionRecords {
 public:
  explicit JournalRecords(Journal& j) : j_(j) {}
  Status AppendOp(Seq seq, JournalOp op) override {
    return j_.AppendOp(kSession, seq, std::move(op));
  }
  Status AppendRelease(Seq below, const std::vector<Seq>& seqs) override {
    return j_.AppendRelease(kSession, below, seqs);
  }
  const JournalSession* session() const override {
    auto it = j_.state().sessions.find(kSession);
    return it == j_.state().sessions.end() ? nullptr : &it->second;
  }

 private:
  Journal& j_;
};

class RecordingWire final : public SessionWire {
 public:
  bool Send(const Message& m) override {
    sent.push_back(m);
    return true;
  }
  void AddRequest(const Request& r, std::string_view payload) override {
    batch.emplace_back(r, std::string(payload));
  }
  bool SendRequests() override {
    if (blocked) return false;
    for (auto& r : batch) requests.push_back(std::move(r));
    batch.clear();
    return true;
  }
  void ClearRequests() override { batch.clear(); }

  std::vector<Message> sent;
  std::vector<std::pair<Request, std::string>> requests;
  std::vector<std::pair<Request, std::string>> batch;
  bool blocked = false;
};

class SessionCoreTest : public ::testing::Test {
 protected:
  SessionCoreTest() {
    options_.session_id = kSession;
    Boot();
  }

  // A process of the session starts: its journal opens (a new incarnation),
  // its connection is welcomed, and a core runs over both.
  void Boot() {
    core_.reset();
    records_.reset();
    journal_.reset();
    JournalOptions o;
    o.dir = "/journal";
    o.durability = Durability::kSync;
    o.role = JournalRole::kClient;
    o.owner_id = kSession;
    o.env = &env_;
    Result<std::unique_ptr<Journal>> j = Journal::Open(std::move(o));
    ASSERT_TRUE(j.ok()) << j.status().ToString();
    journal_ = std::move(*j);
    records_ = std::make_unique<JournalRecords>(*journal_);
    conn_ = std::make_unique<EndpointMachine>(EndpointTimers{}, false, 1);
    core_ = std::make_unique<SessionCore>(
        options_, *records_, *conn_, journal_->incarnation(),
        journal_->journal_id(), stats_, wire_,
        [this](Seq next) { skipped_to_ = next; }, Seq{1000}, now_);
  }

  void Welcome() {
    for (EndpointEvent e :
         {EndpointEvent::kLinkOpened, EndpointEvent::kHelloLeft,
          EndpointEvent::kWelcome}) {
      EndpointMachine::Input in;
      in.event = e;
      in.now = now_;
      in.epoch = 7;
      if (e == EndpointEvent::kWelcome) core_->OnWelcomed();
      (void)conn_->Step(in);
    }
    ASSERT_TRUE(conn_->welcomed());
  }

  // The end of a turn, as the library's: commit, send, deliver.
  void EndTurn() {
    ASSERT_TRUE(journal_->Commit().ok());
    core_->Flush(now_, true);
    for (auto& [callback, result] : core_->deliveries()) {
      if (callback) callback(result);
    }
    core_->deliveries().clear();
  }

  Waiter WaiterInto(std::vector<Result<Reply>>* out) {
    Waiter w;
    w.id = core_->NewWaiterId();
    w.deadline = TimePoint::max();
    w.callback = [out](const Result<Reply>& r) { out->push_back(r); };
    return w;
  }

  Seq CallNow(const std::string& payload, std::vector<Result<Reply>>* out) {
    const Seq seq = core_->next_seq();
    core_->Call(seq, "svc", payload, WaiterInto(out));
    return seq;
  }

  void Answer(Seq seq, const std::string& payload,
              ErrorCode status = ErrorCode::kOk) {
    Message m = Response{kSession, seq, status};
    (void)core_->OnMessage(m, payload, now_);
  }

  const JournalOp* Op(Seq seq) const {
    const JournalSession* js = records_->session();
    if (js == nullptr) return nullptr;
    auto it = js->ops.find(seq);
    return it == js->ops.end() ? nullptr : &it->second;
  }

  testing::FaultEnv env_{3};
  ClientOptions options_;
  AtomicStats stats_;
  RecordingWire wire_;
  TimePoint now_ = TimePoint{} + std::chrono::hours(10);
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<JournalRecords> records_;
  std::unique_ptr<EndpointMachine> conn_;
  std::unique_ptr<SessionCore> core_;
  std::optional<Seq> skipped_to_;
};

TEST_F(SessionCoreTest, ACallIsJournaledPreparedAndSentOnlyAfterTheCommit) {
  Welcome();
  std::vector<Result<Reply>> got;
  const Seq seq = CallNow("p", &got);
  EXPECT_EQ(seq, 1000u);
  ASSERT_NE(Op(seq), nullptr);
  EXPECT_EQ(static_cast<ClientOpState>(Op(seq)->state),
            ClientOpState::kPrepared);
  EXPECT_TRUE(wire_.requests.empty());
  EndTurn();
  ASSERT_EQ(wire_.requests.size(), 1u);
  EXPECT_EQ(wire_.requests[0].first.seq, seq);
  EXPECT_EQ(wire_.requests[0].first.flags, 0);
  EXPECT_EQ(wire_.requests[0].first.completed_watermark, seq);
  EXPECT_EQ(wire_.requests[0].second, "p");
  EXPECT_EQ(core_->pending_count(), 1u);
  EXPECT_TRUE(got.empty());
}

TEST_F(SessionCoreTest, AnAnswerIsJournaledCompletedAndDeliveredOnce) {
  Welcome();
  std::vector<Result<Reply>> got;
  const Seq seq = CallNow("p", &got);
  EndTurn();
  Answer(seq, "r");
  EXPECT_EQ(static_cast<ClientOpState>(Op(seq)->state),
            ClientOpState::kCompleted);
  EXPECT_TRUE(got.empty());  // only after the commit
  EndTurn();
  ASSERT_EQ(got.size(), 1u);
  ASSERT_TRUE(got[0].ok());
  EXPECT_EQ(got[0]->payload, "r");
  // A second answer (a resend crossed the first) reaches nobody.
  Answer(seq, "r");
  EndTurn();
  EXPECT_EQ(got.size(), 1u);
  EXPECT_EQ(stats_.duplicate_responses.load(), 1u);
  EXPECT_EQ(core_->TakeSlotsFreed(), 1u);
}

TEST_F(SessionCoreTest, AnUnansweredCallIsResentWithTheFlagWhenItsTimerFires) {
  Welcome();
  std::vector<Result<Reply>> got;
  const Seq seq = CallNow("p", &got);
  EndTurn();
  // Before any round trip is measured the wait is the resend delay.
  now_ += options_.resend_delay - milliseconds(1);
  core_->Timers(now_);
  EndTurn();
  EXPECT_EQ(wire_.requests.size(), 1u);
  now_ += milliseconds(2);
  EXPECT_LE(core_->NextWakeup(TimePoint::max()), now_);
  core_->Timers(now_);
  EndTurn();
  ASSERT_EQ(wire_.requests.size(), 2u);
  EXPECT_EQ(wire_.requests[1].first.seq, seq);
  EXPECT_EQ(wire_.requests[1].first.flags & kRequestResend, kRequestResend);
  EXPECT_EQ(stats_.requests_resent.load(), 1u);
}

TEST_F(SessionCoreTest, NothingLeavesBeforeWelcomeAndTheWelcomeSendsIt) {
  std::vector<Result<Reply>> got;
  const Seq seq = CallNow("p", &got);
  EndTurn();
  EXPECT_TRUE(wire_.requests.empty());
  EXPECT_FALSE(core_->HasRecords());  // never sent: a first send, not news
  Welcome();
  EndTurn();
  ASSERT_EQ(wire_.requests.size(), 1u);
  EXPECT_EQ(wire_.requests[0].first.seq, seq);
}

TEST_F(SessionCoreTest, ABlockedSocketKeepsTheRequestsQueued) {
  Welcome();
  std::vector<Result<Reply>> got;
  CallNow("a", &got);
  CallNow("b", &got);
  wire_.blocked = true;
  EndTurn();
  EXPECT_TRUE(wire_.requests.empty());
  EXPECT_TRUE(core_->WantsToSend());
  wire_.blocked = false;
  core_->Flush(now_, true);
  EXPECT_EQ(wire_.requests.size(), 2u);
  EXPECT_FALSE(core_->WantsToSend());
}

TEST_F(SessionCoreTest, AnAcknowledgedOutcomeIsForgotten) {
  Welcome();
  std::vector<Result<Reply>> got;
  const Seq seq = CallNow("p", &got);
  EndTurn();
  Answer(seq, "r");
  EndTurn();
  ASSERT_NE(Op(seq), nullptr);
  now_ += kAckDelay;
  core_->Timers(now_);
  EndTurn();
  ASSERT_FALSE(wire_.sent.empty());
  const auto* ack = std::get_if<Ack>(&wire_.sent.back());
  ASSERT_NE(ack, nullptr);
  EXPECT_EQ(ack->completed_watermark, seq + 1);
  // The release is committed with the next turn.
  ASSERT_TRUE(journal_->Commit().ok());
  EXPECT_EQ(Op(seq), nullptr);
}

TEST_F(SessionCoreTest, ARestartInheritsPreparedCallsAndCollectsThem) {
  Welcome();
  std::vector<Result<Reply>> lost;
  const Seq seq = CallNow("p", &lost);
  EndTurn();
  Boot();  // the process dies; its waiter with it
  EXPECT_EQ(core_->pending_count(), 1u);
  EXPECT_GT(core_->next_seq(), seq);
  std::vector<Result<Reply>> got;
  core_->Collect(seq, WaiterInto(&got));
  Welcome();
  EXPECT_TRUE(core_->HasRecords());  // inherited: the broker must hear
  // An inherited call is resent when its timer fires, with the flag.
  now_ += options_.resend_delay + milliseconds(1);
  core_->Timers(now_);
  EndTurn();
  ASSERT_EQ(wire_.requests.size(), 2u);
  EXPECT_EQ(wire_.requests[1].first.flags & kRequestResend, kRequestResend);
  Answer(seq, "r");
  EndTurn();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0]->payload, "r");
  EXPECT_TRUE(lost.empty());
  // A collected outcome stays until the application forgets it.
  EXPECT_NE(Op(seq), nullptr);
  EXPECT_TRUE(core_->Forget(seq).ok());
  EXPECT_EQ(Op(seq), nullptr);
}

TEST_F(SessionCoreTest, RecoverResendsAndASeqAboveAnyIssuedIsSkipped) {
  Welcome();
  std::vector<Result<Reply>> got;
  const Seq seq = CallNow("p", &got);
  EndTurn();
  Recover r;
  RecoverSession rs;
  rs.session = kSession;
  rs.ops.push_back({seq, Breakpoint::kRequestLost, Action::kResendRequest});
  rs.ops.push_back({seq + 50, Breakpoint::kConsistent, Action::kNone});
  r.sessions.push_back(rs);
  Message m = r;
  EXPECT_TRUE(core_->OnMessage(m, {}, now_));
  EndTurn();
  ASSERT_EQ(wire_.requests.size(), 2u);
  EXPECT_EQ(wire_.requests[1].first.flags & kRequestResend, kRequestResend);
  ASSERT_TRUE(skipped_to_.has_value());
  EXPECT_EQ(*skipped_to_, seq + 51);
  EXPECT_EQ(core_->next_seq(), seq + 51);
}

TEST_F(SessionCoreTest, AProbeAndAStateExchangeReportWhatTheJournalHolds) {
  Welcome();
  std::vector<Result<Reply>> got;
  const Seq a = CallNow("a", &got);
  const Seq b = CallNow("b", &got);
  EndTurn();
  Answer(b, "rb");
  EndTurn();
  wire_.sent.clear();
  Message probe = Probe{5, kSession, {a, b}};
  EXPECT_TRUE(core_->OnMessage(probe, {}, now_));
  core_->QueueStateExchange();
  EndTurn();
  ASSERT_EQ(wire_.sent.size(), 2u);
  const auto& reply = std::get<ProbeReply>(wire_.sent[0]);
  EXPECT_EQ(reply.probe_id, 5u);
  ASSERT_EQ(reply.clients.size(), 1u);
  EXPECT_EQ(reply.clients[0].pending, std::vector<Seq>{a});
  EXPECT_EQ(reply.clients[0].completed, std::vector<Seq>{b});
  const auto& se = std::get<StateExchange>(wire_.sent[1]);
  ASSERT_EQ(se.clients.size(), 1u);
  EXPECT_EQ(se.clients[0].completed_watermark, a);
  EXPECT_EQ(se.clients[0].incarnation, journal_->incarnation());
}

TEST_F(SessionCoreTest, AFailedJournalFailsEveryWaiterAndSendsNothing) {
  Welcome();
  std::vector<Result<Reply>> got;
  CallNow("p", &got);
  core_->JournalFailed(Status(ErrorCode::kIoError, "disk"));
  EndTurn();
  EXPECT_TRUE(wire_.requests.empty());
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].status().code(), ErrorCode::kIoError);
  // Later calls are refused at once, with the journal's error.
  CallNow("q", &got);
  EndTurn();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].status().code(), ErrorCode::kIoError);
}

}  // namespace
}  // namespace rejoin::client_internal
