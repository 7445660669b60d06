// Returns and recovery (FLOWS.md §5): what a server reports after a restart,
// how it settles operations whose execution is in doubt under each policy,
// and how it carries out each RECOVER action.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "rejoin/proto/request_digest.h"
#include "server/server_fixture.h"
#include "support/fake_broker.h"

namespace rejoin::testing {
namespace {

// A service with the given in-doubt behaviour whose handler and hook count
// their calls. The hook reports `hook_reply` (nullopt: "not done").
struct PolicyService {
  std::atomic<int> runs{0};
  std::atomic<int> hook_calls{0};
  std::optional<HandlerReply> hook_reply;

  ServiceOptions Make(InDoubtPolicy policy, bool idempotent = false) {
    ServiceOptions s;
    s.name = "pay";
    s.idempotent = idempotent;
    s.policy = policy;
    s.handler = [this](const RequestView& r) {
      ++runs;
      return HandlerReply{ErrorCode::kOk, "ran:" + std::string(r.payload)};
    };
    s.resolve = [this](const RequestView& r) -> std::optional<HandlerReply> {
      ++hook_calls;
      EXPECT_EQ(r.payload, "req");
      return hook_reply;
    };
    return s;
  }
};

// Seq 1 of "alice" was RECEIVED by incarnation 1, which then died.
void CrashedWhileExecuting(const std::string& dir) {
  CraftedJournal j(dir);
  j.Received("alice", 1, "pay", "req");
}

// Opens a server on `dir` and completes its return: HELLO, WELCOME and the
// STATE_EXCHANGE that a restarted server sends.
std::unique_ptr<Server> Return(FakeBroker& broker, const std::string& dir,
                               ServiceOptions service) {
  auto server = MustOpen(TestOptions(broker, dir), {std::move(service)});
  auto hello = broker.AcceptHello();
  EXPECT_TRUE(hello);
  if (hello) {
    EXPECT_EQ(hello->incarnation, 2u);
  }
  auto exchange = broker.NextAs<StateExchange>();
  EXPECT_TRUE(exchange);
  return server;
}

// A server that died while executing seq 1 of "alice" (CrashedWhileExecuting)
// returns with PolicyService under the policy each test picks.
class AfterCrash : public ::testing::Test {
 protected:
  void SetUp() override { CrashedWhileExecuting(dir.path()); }
  void ReturnWith(InDoubtPolicy policy, bool idempotent = false) {
    server = Return(broker, dir.path(), svc.Make(policy, idempotent));
  }
  // The client asks for seq 1 again.
  void Resend() { broker.SendRequest("alice", 1, "req", "pay"); }

  TempDir dir;
  FakeBroker broker;
  PolicyService svc;
  std::unique_ptr<Server> server;
};

TEST(ServerRecovery, StateExchangeAfterRestartListsHeldOps) {
  TempDir dir;
  FakeBroker broker;
  JournalId journal_id = 0;
  {
    CraftedJournal j(dir.path());
    j.Received("alice", 3, "pay", "a3");
    j.Received("alice", 4, "pay", "a4");
    j.Received("bob", 9, "pay", "b9");
    ASSERT_TRUE(j.journal().AppendRelease("bob", 9, {}).ok());
    ASSERT_TRUE(j.journal().AppendRelease("carol", 5, {}).ok());
    journal_id = j.journal().journal_id();
  }
  PolicyService svc;
  auto server = MustOpen(TestOptions(broker, dir.path()),
                         {svc.Make(InDoubtPolicy::kAnswerInDoubt)});
  auto hello = broker.AcceptHello();
  ASSERT_TRUE(hello);
  EXPECT_EQ(hello->incarnation, 2u);
  EXPECT_EQ(hello->journal_id, journal_id);

  auto exchange = broker.NextAs<StateExchange>();
  ASSERT_TRUE(exchange);
  EXPECT_EQ(exchange->role, Role::kServer);
  EXPECT_TRUE(exchange->last);
  // carol holds nothing and is not reported.
  ASSERT_EQ(exchange->servers.size(), 2u);
  const ServerVector& alice = exchange->servers[0];
  EXPECT_EQ(alice.session, "alice");
  EXPECT_EQ(alice.server, kServerId);
  EXPECT_EQ(alice.incarnation, 2u);
  EXPECT_EQ(alice.journal_id, journal_id);
  EXPECT_EQ(alice.released_watermark, 1u);
  EXPECT_EQ(alice.held,
            (std::vector<HeldOp>{{3, ServerOpState::kReceived, 1},
                                 {4, ServerOpState::kReceived, 1}}));
  EXPECT_EQ(exchange->servers[1].session, "bob");
  EXPECT_EQ(exchange->servers[1].released_watermark, 9u);
  EXPECT_EQ(server->stats().state_exchanges, 1u);
}

TEST(ServerRecovery, LargeStateExchangeIsSplitWithLastOnTheFinalMessage) {
  TempDir dir;
  FakeBroker broker;
  constexpr int kSessions = 600;
  {
    CraftedJournal j(dir.path());
    for (int i = 0; i < kSessions; ++i) {
      j.Received("session-" + std::to_string(i), 1, "pay", "r");
    }
  }
  PolicyService svc;
  auto server = MustOpen(TestOptions(broker, dir.path()),
                         {svc.Make(InDoubtPolicy::kAnswerInDoubt)});
  ASSERT_TRUE(broker.AcceptHello());
  std::size_t vectors = 0;
  int messages = 0;
  for (;;) {
    auto exchange = broker.NextAs<StateExchange>();
    ASSERT_TRUE(exchange);
    ++messages;
    EXPECT_LE(exchange->servers.size(), 256u);
    vectors += exchange->servers.size();
    if (exchange->last) break;
  }
  EXPECT_EQ(vectors, static_cast<std::size_t>(kSessions));
  EXPECT_GE(messages, 3);
  EXPECT_EQ(server->stats().state_exchanges, 1u);
}

TEST(ServerRecovery, SessionTooLargeForOneMessageIsSplitIntoParts) {
  TempDir dir;
  FakeBroker broker;
  // Seqs start at the clock in microseconds (PROTOCOL.md §1.2), so each
  // takes 9 bytes: 6,000 held operations of one session are more than one
  // 64 KiB header holds.
  constexpr Seq kFirst = 1'700'000'000'000'000;
  constexpr std::size_t kOps = 6000;
  {
    CraftedJournal j(dir.path());
    for (std::size_t i = 0; i < kOps; ++i)
      j.Received("alice", kFirst + i, "pay", "r");
  }
  PolicyService svc;
  auto server = MustOpen(TestOptions(broker, dir.path()),
                         {svc.Make(InDoubtPolicy::kAnswerInDoubt)});
  ASSERT_TRUE(broker.AcceptHello());
  std::vector<HeldOp> held;
  int messages = 0;
  for (;;) {
    // Every part decodes within the default limits of every v1 receiver.
    auto exchange = broker.NextAs<StateExchange>();
    ASSERT_TRUE(exchange);
    ++messages;
    for (const ServerVector& v : exchange->servers) {
      EXPECT_EQ(v.session, "alice");
      EXPECT_EQ(v.released_watermark, 1u);
      EXPECT_EQ(v.incarnation, 2u);
      held.insert(held.end(), v.held.begin(), v.held.end());
    }
    if (exchange->last) break;
  }
  EXPECT_GE(messages, 2);
  // The parts are consecutive slices: together, the whole list in order.
  ASSERT_EQ(held.size(), kOps);
  for (std::size_t i = 0; i < kOps; ++i) {
    EXPECT_EQ(held[i].seq, kFirst + i);
  }
}

TEST_F(AfterCrash, StaleResendResponseForInDoubtOpSettlesByPolicy) {
  // The decision read an EXECUTED record that this journal no longer has:
  // only RECEIVED by the dead incarnation is left.
  ReturnWith(InDoubtPolicy::kReexecute);

  broker.Send(RecoverWith("alice", Action::kResendResponse));
  std::string payload;
  auto response = broker.NextAs<Response>(&payload);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, ErrorCode::kOk);
  EXPECT_EQ(payload, "ran:req");
  EXPECT_EQ(svc.runs, 1);
  EXPECT_EQ(server->stats().reexecuted, 1u);
}

TEST_F(AfterCrash, StaleResendResponseUnderAnswerInDoubtPolicyIsAnswered) {
  ReturnWith(InDoubtPolicy::kAnswerInDoubt);

  broker.Send(RecoverWith("alice", Action::kResendResponse));
  auto response = broker.NextAs<Response>();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, ErrorCode::kInDoubt);
  EXPECT_EQ(svc.runs, 0);
}

// Seq 1 of "alice" is running in this incarnation: its handler waits at
// `gate` and then answers `kAnswer`.
class RunningOperation : public ::testing::Test {
 protected:
  static constexpr const char* kAnswer = "done";
  void SetUp() override {
    ServiceOptions slow;
    slow.name = "echo";
    slow.handler = [this](const RequestView&) {
      ++runs;
      gate.Wait();
      return HandlerReply{ErrorCode::kOk, kAnswer};
    };
    server = MustOpen(TestOptions(broker), {slow});
    ASSERT_TRUE(broker.AcceptHello());
    broker.SendRequest("alice", 1, "x");
    ASSERT_TRUE(gate.AwaitWaiting(1));
  }

  FakeBroker broker;
  Gate gate;
  std::atomic<int> runs{0};
  std::unique_ptr<Server> server;
};

TEST_F(RunningOperation, ResendResponseWaitsForTheHandler) {
  // A stale decision for the running operation: nothing is sent for it.
  broker.Send(RecoverWith("alice", Action::kResendResponse));
  auto vector = broker.ProbeBarrier("alice", {1});
  ASSERT_TRUE(vector);
  ASSERT_EQ(vector->held.size(), 1u);
  EXPECT_EQ(vector->held[0].state, ServerOpState::kReceived);
  gate.Open();
  std::string payload;
  auto response = broker.NextAs<Response>(&payload);
  ASSERT_TRUE(response);
  EXPECT_EQ(payload, "done");
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(server->stats().responses_resent, 0u);
}

TEST_F(AfterCrash, RequestResentWhileResolveHookRunsDoesNotStartItTwice) {
  // resolve journals RECEIVED in this incarnation before the hook runs
  // (PROTOCOL.md §4.8), so a resend meanwhile finds the operation running.
  Gate gate;
  std::atomic<int> hook_calls{0};
  ServiceOptions s = svc.Make(InDoubtPolicy::kResolveHook);
  s.resolve = [&](const RequestView&) -> std::optional<HandlerReply> {
    ++hook_calls;
    gate.Wait();
    return std::nullopt;  // not done: the handler runs
  };
  server = Return(broker, dir.path(), std::move(s));

  broker.Send(RecoverWith("alice", Action::kResolve));
  ASSERT_TRUE(gate.AwaitWaiting(1));
  Resend();
  Resend();
  auto vector = broker.ProbeBarrier("alice", {1});
  ASSERT_TRUE(vector);
  ASSERT_EQ(vector->held.size(), 1u);
  EXPECT_EQ(vector->held[0].state, ServerOpState::kReceived);
  EXPECT_EQ(vector->held[0].received_incarnation, 2u);
  gate.Open();
  std::string payload;
  ASSERT_TRUE(broker.NextAs<Response>(&payload));
  EXPECT_EQ(payload, "ran:req");
  // Nothing else: a barrier after the answer finds it EXECUTED, and no
  // second response was queued before it.
  vector = broker.ProbeBarrier("alice", {1});
  ASSERT_TRUE(vector);
  ASSERT_EQ(vector->held.size(), 1u);
  EXPECT_EQ(vector->held[0].state, ServerOpState::kExecuted);
  EXPECT_EQ(hook_calls, 1);
  EXPECT_EQ(svc.runs, 1);
}

TEST(ServerRecovery, RestartKeepsExecutedResponses) {
  TempDir dir;
  FakeBroker broker;
  std::atomic<int> runs{0};
  {
    auto first =
        MustOpen(TestOptions(broker, dir.path()), {CountingEcho(runs)});
    auto hello = broker.AcceptHello();
    ASSERT_TRUE(hello);
    EXPECT_EQ(hello->incarnation, 1u);
    broker.SendRequest("alice", 1, "hi");
    ASSERT_TRUE(broker.NextAs<Response>());
    first.reset();
    ASSERT_TRUE(broker.NextAs<Goodbye>());
  }
  auto second = MustOpen(TestOptions(broker, dir.path()), {CountingEcho(runs)});
  auto hello = broker.AcceptHello(TestWelcome(/*epoch=*/77));
  ASSERT_TRUE(hello);
  EXPECT_EQ(hello->incarnation, 2u);
  auto exchange = broker.NextAs<StateExchange>();
  ASSERT_TRUE(exchange);
  ASSERT_EQ(exchange->servers.size(), 1u);
  EXPECT_EQ(exchange->servers[0].held,
            (std::vector<HeldOp>{{1, ServerOpState::kExecuted, 1}}));

  broker.SendRequest("alice", 1, "hi");
  std::string payload;
  ASSERT_TRUE(broker.NextAs<Response>(&payload));
  EXPECT_EQ(payload, "echo:hi");
  EXPECT_EQ(runs, 1);
}

TEST_F(AfterCrash, InDoubtRequestWithAnswerInDoubtPolicy) {
  ReturnWith(InDoubtPolicy::kAnswerInDoubt);

  Resend();
  std::string payload = "unset";
  auto response = broker.NextAs<Response>(&payload);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, ErrorCode::kInDoubt);
  EXPECT_EQ(payload, "");
  // The in-doubt answer is journaled: asked again, it is the same answer.
  Resend();
  response = broker.NextAs<Response>();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, ErrorCode::kInDoubt);
  EXPECT_EQ(svc.runs, 0);
  EXPECT_EQ(svc.hook_calls, 0);
  EXPECT_EQ(server->stats().answered_in_doubt, 1u);
}

TEST_F(AfterCrash, InDoubtRequestWithReexecutePolicy) {
  ReturnWith(InDoubtPolicy::kReexecute);

  Resend();
  std::string payload;
  auto response = broker.NextAs<Response>(&payload);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, ErrorCode::kOk);
  EXPECT_EQ(payload, "ran:req");
  EXPECT_EQ(svc.runs, 1);
  EXPECT_EQ(server->stats().reexecuted, 1u);
}

TEST_F(AfterCrash, InDoubtRequestOfIdempotentServiceReexecutes) {
  ReturnWith(InDoubtPolicy::kAnswerInDoubt, /*idempotent=*/true);

  Resend();
  auto response = broker.NextAs<Response>();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, ErrorCode::kOk);
  EXPECT_EQ(svc.runs, 1);
}

TEST_F(AfterCrash, InDoubtRequestResolvedByHookIsNotRunAgain) {
  svc.hook_reply = HandlerReply{ErrorCode::kOk, "from the ledger"};
  ReturnWith(InDoubtPolicy::kResolveHook);

  Resend();
  std::string payload;
  auto response = broker.NextAs<Response>(&payload);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, ErrorCode::kOk);
  EXPECT_EQ(payload, "from the ledger");
  EXPECT_EQ(svc.hook_calls, 1);
  EXPECT_EQ(svc.runs, 0);
  EXPECT_EQ(server->stats().resolved, 1u);
}

TEST_F(AfterCrash, InDoubtRequestHookFindsNothingAndHandlerRuns) {
  ReturnWith(InDoubtPolicy::kResolveHook);

  Resend();
  std::string payload;
  ASSERT_TRUE(broker.NextAs<Response>(&payload));
  EXPECT_EQ(payload, "ran:req");
  EXPECT_EQ(svc.hook_calls, 1);
  EXPECT_EQ(svc.runs, 1);
  EXPECT_EQ(server->stats().reexecuted, 1u);
}

TEST_F(AfterCrash, RecoverReexecuteRunsStoredRequestOnce) {
  ReturnWith(InDoubtPolicy::kAnswerInDoubt);

  broker.Send(RecoverWith("alice", Action::kReexecute));
  std::string payload;
  ASSERT_TRUE(broker.NextAs<Response>(&payload));
  EXPECT_EQ(payload, "ran:req");
  // The same decision again, now stale: answered from the journal.
  broker.Send(RecoverWith("alice", Action::kReexecute));
  payload.clear();
  ASSERT_TRUE(broker.NextAs<Response>(&payload));
  EXPECT_EQ(payload, "ran:req");
  auto vector = broker.ProbeBarrier("alice", {1});
  ASSERT_TRUE(vector);
  ASSERT_EQ(vector->held.size(), 1u);
  EXPECT_EQ(vector->held[0].state, ServerOpState::kExecuted);
  EXPECT_EQ(svc.runs, 1);
  EXPECT_EQ(server->stats().responses_resent, 1u);
}

// Servers of one service may register different in-doubt policies; the
// broker decides with the first one's. A server asked to resolve without a
// hook of its own settles by its own policy, through the decision table.
TEST_F(AfterCrash, RecoverResolveWithoutAHookSettlesByTheServersOwnPolicy) {
  ServiceOptions spec = svc.Make(InDoubtPolicy::kReexecute);
  spec.resolve = nullptr;
  server = Return(broker, dir.path(), std::move(spec));

  broker.Send(RecoverWith("alice", Action::kResolve));
  std::string payload;
  ASSERT_TRUE(broker.NextAs<Response>(&payload));
  EXPECT_EQ(payload, "ran:req");
  EXPECT_EQ(svc.runs, 1);
  EXPECT_EQ(svc.hook_calls, 0);
  EXPECT_EQ(server->stats().reexecuted, 1u);
}

TEST_F(AfterCrash, RecoverResolveAsksTheHook) {
  svc.hook_reply = HandlerReply{ErrorCode::kOk, "done before"};
  ReturnWith(InDoubtPolicy::kResolveHook);

  broker.Send(RecoverWith("alice", Action::kResolve));
  std::string payload;
  ASSERT_TRUE(broker.NextAs<Response>(&payload));
  EXPECT_EQ(payload, "done before");
  EXPECT_EQ(svc.runs, 0);
}

TEST_F(AfterCrash, RecoverAnswerInDoubtJournalsTheAnswer) {
  ReturnWith(InDoubtPolicy::kReexecute);

  broker.Send(RecoverWith("alice", Action::kAnswerInDoubt));
  auto response = broker.NextAs<Response>();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, ErrorCode::kInDoubt);
  // A later duplicate request gets the journaled answer, not a run.
  Resend();
  response = broker.NextAs<Response>();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, ErrorCode::kInDoubt);
  EXPECT_EQ(svc.runs, 0);
}

TEST(ServerRecovery, RecoverResendResponseSendsStoredResponse) {
  FakeBroker broker;
  std::atomic<int> runs{0};
  auto server = MustOpen(TestOptions(broker), {CountingEcho(runs)});
  ASSERT_TRUE(broker.AcceptHello());
  broker.SendRequest("alice", 4, "hi", "echo", 4);
  ASSERT_TRUE(broker.NextAs<Response>());

  broker.Send(RecoverWith("alice", Action::kResendResponse, 4));
  std::string payload;
  auto response = broker.NextAs<Response>(&payload);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->seq, 4u);
  EXPECT_EQ(payload, "echo:hi");
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(server->stats().responses_resent, 1u);
}

TEST(ServerRecovery, RecoverReleaseAndReleaseBelow) {
  FakeBroker broker;
  std::atomic<int> runs{0};
  auto server = MustOpen(TestOptions(broker), {CountingEcho(runs)});
  ASSERT_TRUE(broker.AcceptHello());
  for (Seq seq : {Seq{1}, Seq{2}, Seq{3}}) {
    broker.SendRequest("alice", seq, "x");
    ASSERT_TRUE(broker.NextAs<Response>());
  }
  broker.Send(RecoverWith("alice", Action::kRelease, 3, /*release_below=*/2));
  auto vector = broker.ProbeBarrier("alice", {1, 2, 3});
  ASSERT_TRUE(vector);
  EXPECT_EQ(vector->released_watermark, 2u);
  ASSERT_EQ(vector->held.size(), 1u);
  EXPECT_EQ(vector->held[0].seq, 2u);
  EXPECT_EQ(server->stats().released, 2u);
  // A released operation asked for again is not run again; it is answered
  // in_doubt, since its stored outcome is gone.
  broker.SendRequest("alice", 3, "x");
  auto response = broker.NextAs<Response>();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->seq, 3u);
  EXPECT_EQ(response->status, ErrorCode::kInDoubt);
  EXPECT_EQ(runs, 3);
}

TEST(ServerRecovery, RecoverKeepOrphanKeepsAndCounts) {
  FakeBroker broker;
  std::atomic<int> runs{0};
  auto server = MustOpen(TestOptions(broker), {CountingEcho(runs)});
  ASSERT_TRUE(broker.AcceptHello());
  broker.SendRequest("alice", 1, "x");
  ASSERT_TRUE(broker.NextAs<Response>());

  broker.Send(RecoverWith("alice", Action::kKeepOrphan, 1));
  auto vector = broker.ProbeBarrier("alice", {1});
  ASSERT_TRUE(vector);
  ASSERT_EQ(vector->held.size(), 1u);
  EXPECT_EQ(vector->held[0].state, ServerOpState::kExecuted);
  EXPECT_EQ(server->stats().orphans, 1u);
}

TEST_F(RunningOperation, RecoverDoesNotStartItTwice) {
  broker.Send(RecoverWith("alice", Action::kReexecute));
  broker.Send(RecoverWith("alice", Action::kAnswerInDoubt));
  broker.Send(RecoverWith("alice", Action::kResendResponse));
  ASSERT_TRUE(broker.ProbeBarrier("alice", {1}));
  gate.Open();
  std::string payload;
  auto response = broker.NextAs<Response>(&payload);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, ErrorCode::kOk);
  EXPECT_EQ(payload, kAnswer);
  ASSERT_TRUE(broker.ProbeBarrier("alice", {1}));
  EXPECT_EQ(runs, 1);
}

// PREPARED/SENT against RELEASED (§6.1): a client whose journal was rolled
// back waits for an outcome the server released. Every decision for such a
// seq ends in an answer, below the released watermark and for a tombstone.
TEST(ServerRecovery, DecisionsForReleasedSeqsAreAnsweredInDoubt) {
  FakeBroker broker;
  std::atomic<int> runs{0};
  auto server = MustOpen(TestOptions(broker), {CountingEcho(runs)});
  ASSERT_TRUE(broker.AcceptHello());
  for (Seq seq : {Seq{1}, Seq{2}, Seq{3}}) {
    broker.SendRequest("alice", seq, "x");
    ASSERT_TRUE(broker.NextAs<Response>());
  }
  // Seq 1 below the watermark, seq 3 a tombstone; seq 2 stays held.
  broker.Send(Ack{"alice", 2, {3}});
  ASSERT_TRUE(broker.ProbeBarrier("alice", {1, 3}));

  const std::vector<std::pair<Seq, Action>> decisions = {
      {1, Action::kAnswerInDoubt},
      {3, Action::kAnswerInDoubt},
      {1, Action::kResendResponse},
      {3, Action::kReexecute},
      {1, Action::kResolve}};
  for (const auto& [seq, action] : decisions) {
    broker.Send(RecoverWith("alice", action, seq));
    std::string payload = "unset";
    auto response = broker.NextAs<Response>(&payload);
    ASSERT_TRUE(response) << ActionName(action);
    EXPECT_EQ(response->seq, seq);
    EXPECT_EQ(response->status, ErrorCode::kInDoubt);
    EXPECT_EQ(payload, "");
  }
  // Nothing ran again and nothing came back to life.
  auto vector = broker.ProbeBarrier("alice", {1, 2, 3});
  ASSERT_TRUE(vector);
  EXPECT_EQ(vector->released_watermark, 2u);
  ASSERT_EQ(vector->held.size(), 1u);
  EXPECT_EQ(vector->held[0].seq, 2u);
  EXPECT_EQ(runs, 3);
  EXPECT_EQ(server->stats().answered_in_doubt, decisions.size());
}

// The digest of the request is journaled with the response: a restarted
// server still tells a true duplicate from a reused seq.
TEST(ServerRecovery, ConflictingDuplicateIsRecognisedAfterRestart) {
  TempDir dir;
  FakeBroker broker;
  std::atomic<int> runs{0};
  {
    auto first =
        MustOpen(TestOptions(broker, dir.path()), {CountingEcho(runs)});
    ASSERT_TRUE(broker.AcceptHello());
    broker.SendRequest("alice", 1, "a");
    ASSERT_TRUE(broker.NextAs<Response>());
  }
  auto second = MustOpen(TestOptions(broker, dir.path()), {CountingEcho(runs)});
  ASSERT_TRUE(broker.AcceptHello(TestWelcome(/*epoch=*/78)));
  ASSERT_TRUE(broker.NextAs<StateExchange>());

  broker.SendRequest("alice", 1, "b");
  std::string payload = "unset";
  auto conflict = broker.NextAs<Response>(&payload);
  ASSERT_TRUE(conflict);
  EXPECT_EQ(conflict->status, ErrorCode::kConflict);
  EXPECT_EQ(payload, "");

  broker.SendRequest("alice", 1, "a");
  auto again = broker.NextAs<Response>(&payload);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, ErrorCode::kOk);
  EXPECT_EQ(payload, "echo:a");
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(second->stats().conflicts, 1u);
}

// Journals written before the digest had a field of its own kept it in the
// service field of the EXECUTED record, as "rejoin.digest:" and 16 hex
// digits: still read, so a reused seq is still refused after an upgrade.
TEST(ServerRecovery, DigestInTheServiceFieldOfAnOlderJournalIsStillRead) {
  TempDir dir;
  {
    CraftedJournal j(dir.path());
    JournalOp received;
    received.state = static_cast<std::uint8_t>(ServerOpState::kReceived);
    received.service = "echo";
    received.payload = "a";
    ASSERT_TRUE(j.journal().AppendOp("alice", 1, std::move(received)).ok());
    char hex[17];
    std::snprintf(
        hex, sizeof hex, "%016llx",
        static_cast<unsigned long long>(proto::RequestDigest("echo", "a")));
    JournalOp executed;
    executed.state = static_cast<std::uint8_t>(ServerOpState::kExecuted);
    executed.service = std::string("rejoin.digest:") + hex;
    executed.payload = "echo:a";
    ASSERT_TRUE(j.journal().AppendOp("alice", 1, std::move(executed)).ok());
  }
  FakeBroker broker;
  std::atomic<int> runs{0};
  auto server = MustOpen(TestOptions(broker, dir.path()), {CountingEcho(runs)});
  ASSERT_TRUE(broker.AcceptHello());
  ASSERT_TRUE(broker.NextAs<StateExchange>());
  std::string payload;
  broker.SendRequest("alice", 1, "b");
  auto conflict = broker.NextAs<Response>(&payload);
  ASSERT_TRUE(conflict);
  EXPECT_EQ(conflict->status, ErrorCode::kConflict);
  broker.SendRequest("alice", 1, "a");
  auto same = broker.NextAs<Response>(&payload);
  ASSERT_TRUE(same);
  EXPECT_EQ(same->status, ErrorCode::kOk);
  EXPECT_EQ(payload, "echo:a");
  EXPECT_EQ(runs, 0);
}

// A response journaled before digests were kept names the service instead:
// its duplicates are answered from the record, as before.
TEST(ServerRecovery, ExecutedRecordWithoutDigestAnswersDuplicatesUnchecked) {
  TempDir dir;
  {
    CraftedJournal j(dir.path());
    JournalOp op;
    op.state = static_cast<std::uint8_t>(ServerOpState::kExecuted);
    op.service = "echo";
    op.payload = "stored";
    ASSERT_TRUE(j.journal().AppendOp("alice", 1, std::move(op)).ok());
  }
  FakeBroker broker;
  std::atomic<int> runs{0};
  auto server = MustOpen(TestOptions(broker, dir.path()), {CountingEcho(runs)});
  ASSERT_TRUE(broker.AcceptHello());
  ASSERT_TRUE(broker.NextAs<StateExchange>());
  broker.SendRequest("alice", 1, "anything");
  std::string payload;
  auto response = broker.NextAs<Response>(&payload);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, ErrorCode::kOk);
  EXPECT_EQ(payload, "stored");
  EXPECT_EQ(server->stats().conflicts, 0u);
}

}  // namespace
}  // namespace rejoin::testing
