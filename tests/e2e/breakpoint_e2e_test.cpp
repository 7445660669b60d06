// Every row of the breakpoint table (DESIGN.md §4, PROTOCOL.md §6) reproduced
// end to end: a real broker on loopback with deterministic fault injection,
// real server processes killed with kill -9, and a real client. Executions
// are counted by the test server's own ledger, never by the library.
#include <filesystem>
#include <future>
#include <thread>

#include "e2e/e2e_fixture.h"

namespace rejoin::testing {
namespace {

using Where = FaultPoint::Where;
constexpr auto kWait = std::chrono::seconds(20);

class BreakpointEndToEnd : public EndToEnd {};

TEST_F(BreakpointEndToEnd, HealthyCallExecutesOnceAndAnswers) {
  StartBroker();
  StartServer("s1");
  auto client = OpenClient("alice");
  auto r = client->Call("echo", "hello", kWait);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, ErrorCode::kOk);
  EXPECT_EQ(r->payload, Expected("hello", r->seq));
  EXPECT_EQ(Executions("alice", r->seq), 1);
}

TEST_F(BreakpointEndToEnd, RequestLostBetweenBrokerAndServerIsResentOnce) {
  StartBroker();
  StartServer("s1");
  auto client = OpenClient("alice");
  DropNext(Where::kLeaving, MessageType::kRequest);
  auto r = client->Call("echo", "lost-request", kWait);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->payload, Expected("lost-request", r->seq));
  EXPECT_EQ(Dropped(), 1);
  EXPECT_EQ(Executions("alice", r->seq), 1);
  EXPECT_GE(BrokerCounters().probes, 1u);
}

TEST_F(BreakpointEndToEnd, RequestLostBeforeBrokerIsResentByClient) {
  StartBroker();
  StartServer("s1");
  auto client = OpenClient("alice");
  DropNext(Where::kArrived, MessageType::kRequest);
  auto r = client->Call("echo", "lost-early", kWait);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->payload, Expected("lost-early", r->seq));
  EXPECT_EQ(Executions("alice", r->seq), 1);
  EXPECT_GE(client->stats().requests_resent, 1u);
}

TEST_F(BreakpointEndToEnd, ResponseLostAfterBrokerIsReplayedNotReexecuted) {
  StartBroker();
  StartServer("s1");
  auto client = OpenClient("alice");
  DropNext(Where::kLeaving, MessageType::kResponse);
  auto r = client->Call("echo", "lost-response", kWait);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->payload, Expected("lost-response", r->seq));
  EXPECT_EQ(Executions("alice", r->seq), 1);
  EXPECT_GE(BrokerCounters().responses_replayed, 1u);
}

TEST_F(BreakpointEndToEnd, ResponseLostBeforeBrokerIsResentByServer) {
  StartBroker();
  StartServer("s1");
  auto client = OpenClient("alice");
  DropNext(Where::kArrived, MessageType::kResponse);
  auto r = client->Call("echo", "lost-at-server", kWait);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->payload, Expected("lost-at-server", r->seq));
  EXPECT_EQ(Executions("alice", r->seq), 1);
  // Found by probing the holder, answered from its journal.
  EXPECT_GE(BrokerCounters().probes, 1u);
  EXPECT_GE(BrokerCounters().recover_messages, 1u);
}

TEST_F(BreakpointEndToEnd, AcknowledgementLostIsRepairedWhenServerReturns) {
  StartBroker();
  Process& server = StartServer("s1");
  auto client = OpenClient("alice");
  DropNext(Where::kArrived, MessageType::kAck, 1000);
  auto r = client->Call("echo", "ack-lost", kWait);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  // The server still holds the executed response; it comes back with it and
  // the decision (client COMPLETED, server EXECUTED) releases it.
  server.Kill9();
  StartServer("s1");
  const std::uint64_t before = BrokerCounters().recover_messages;
  ASSERT_TRUE(WaitFor(
      [&] { return BrokerCounters().recover_messages > before; }, kWait));
  // And nothing ran twice.
  EXPECT_EQ(Executions("alice", r->seq), 1);
  auto again = client->Call("echo", "after", kWait);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->payload, Expected("after", again->seq));
}

// Execution in doubt: the server dies inside the handler (after the
// application's side effect, before EXECUTED is journaled) and returns.
class InDoubt : public EndToEnd {
 protected:
  Result<Reply> CrashInHandlerThenReturn(const std::string& policy) {
    StartBroker();
    Process& first =
        StartServer("s1", {"--policy", policy, "--crash-in-handler", "1"});
    auto client = OpenClient("alice");
    auto future = client->CallFuture("echo", "doubt", kWait);
    EXPECT_TRUE(WaitFor([&] { return !first.running(); }, kWait));
    StartServer("s1", {"--policy", policy});
    return future.get();
  }
};

TEST_F(InDoubt, ReexecutePolicyRunsTheHandlerAgain) {
  auto r = CrashInHandlerThenReturn("reexecute");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, ErrorCode::kOk);
  EXPECT_EQ(r->payload, Expected("doubt", r->seq));
  // Chosen by the service: the handler ran in both incarnations.
  EXPECT_EQ(Executions("alice", r->seq), 2);
}

TEST_F(InDoubt, ResolveHookFindsTheApplicationRecord) {
  auto r = CrashInHandlerThenReturn("resolve");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, ErrorCode::kOk);
  EXPECT_EQ(r->payload, Expected("doubt", r->seq));
  EXPECT_EQ(Executions("alice", r->seq), 1);
}

TEST_F(InDoubt, AnswerPolicyReportsInDoubtWithoutRunningAgain) {
  auto r = CrashInHandlerThenReturn("answer");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, ErrorCode::kInDoubt);
  EXPECT_EQ(Executions("alice", r->seq), 1);
}

TEST_F(BreakpointEndToEnd, LostClientJournalOrphansOldResponses) {
  StartBroker();
  StartServer("s1");
  Seq old_seq = 0;
  {
    auto client = OpenClient("alice");
    DropNext(Where::kLeaving, MessageType::kResponse, 1000);
    auto r = client->Call("echo", "orphan", std::chrono::milliseconds(300));
    EXPECT_EQ(r.status().code(), ErrorCode::kDeadlineExceeded);
    ASSERT_TRUE(
        WaitFor([&] { return ReadExecutions(Ledger()).size() == 1; }, kWait));
    old_seq = ReadExecutions(Ledger()).begin()->first.second;
  }
  // The client's journal is gone; the same session comes back with no memory.
  std::filesystem::remove_all(ClientOptionsFor("alice").journal_dir);
  ClearDrops();
  auto client = OpenClient("alice");
  auto r = client->Call("echo", "fresh", kWait);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->payload, Expected("fresh", r->seq));
  // New seqs start above every old one, so the two never mix.
  EXPECT_GT(r->seq, old_seq);
  EXPECT_GE(BrokerCounters().orphans, 1u);
  EXPECT_EQ(Executions("alice", old_seq), 1);
  EXPECT_EQ(Executions("alice", r->seq), 1);
  EXPECT_EQ(client->stats().duplicate_responses, 0u);
}

// A client journal restored from an older copy (a backup, a salvage):
// the copy holds seq `first` as SENT, while the lost run completed it and
// made another call, so the server has released `first` and holds `second`.
// PREPARED/SENT against RELEASED is answered in_doubt (§6.1) instead of
// leaving the call waiting for ever, and the next call's seq is above
// everything the lost run issued, so it never gets an old answer.
TEST_F(BreakpointEndToEnd, ClientJournalRolledBackGetsNoOldAnswerAndNoHang) {
  StartBroker();
  StartServer("s1");
  const std::string journal = ClientOptionsFor("alice").journal_dir;
  const std::string backup = dir_.Sub("alice-backup");
  Seq first = 0;
  Seq second = 0;
  {
    auto client = OpenClient("alice");
    DropNext(Where::kLeaving, MessageType::kResponse, 1000);
    std::promise<Result<Reply>> done;
    auto outcome = done.get_future();
    auto seq = client->CallAsync(
        "echo", "a", [&](const Result<Reply>& r) { done.set_value(r); }, kWait);
    ASSERT_TRUE(seq.ok()) << seq.status().ToString();
    first = *seq;
    // The handler ran, so the request left the client (SENT is journaled);
    // its answer is held back until the copy is taken.
    ASSERT_TRUE(
        WaitFor([&] { return Executions("alice", first) == 1; }, kWait));
    std::filesystem::copy(journal, backup,
                          std::filesystem::copy_options::recursive);
    ClearDrops();
    Result<Reply> a = outcome.get();
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    EXPECT_EQ(a->payload, Expected("a", first));
    // Carries a watermark above `first`: the server releases it.
    auto b = client->Call("echo", "b", kWait);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    EXPECT_EQ(b->payload, Expected("b", b->seq));
    second = b->seq;
  }
  std::filesystem::remove_all(journal);
  std::filesystem::copy(backup, journal,
                        std::filesystem::copy_options::recursive);

  auto client = OpenClient("alice");
  auto again = client->Collect(first, kWait);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->status, ErrorCode::kInDoubt);
  auto c = client->Call("echo", "c", kWait);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->status, ErrorCode::kOk);
  EXPECT_EQ(c->payload, Expected("c", c->seq));
  EXPECT_GT(c->seq, second);
  EXPECT_EQ(Executions("alice", first), 1);
  EXPECT_EQ(Executions("alice", second), 1);
}

TEST_F(BreakpointEndToEnd, LostServerJournalAnswersInDoubtForUnsafeService) {
  StartBroker();
  Process& server = StartServer("s1");
  auto client = OpenClient("alice");
  // The response never reaches the broker; then the server loses everything.
  DropNext(Where::kArrived, MessageType::kResponse, 1000);
  auto future = client->CallFuture("echo", "forgotten", kWait);
  ASSERT_TRUE(
      WaitFor([&] { return ReadExecutions(Ledger()).size() == 1; }, kWait));
  server.Kill9();
  std::filesystem::remove_all(dir_.Sub("server-s1"));
  ClearDrops();
  StartServer("s1");
  auto r = future.get();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  // "No record" from a server that lost its memory is not "never ran".
  EXPECT_EQ(r->status, ErrorCode::kInDoubt);
  EXPECT_EQ(Executions("alice", r->seq), 1);
}

TEST_F(BreakpointEndToEnd, LostServerJournalReexecutesIdempotentService) {
  StartBroker();
  Process& server = StartServer("s1", {"--idempotent"});
  auto client = OpenClient("alice");
  DropNext(Where::kArrived, MessageType::kResponse, 1000);
  auto future = client->CallFuture("echo", "safe", kWait);
  ASSERT_TRUE(
      WaitFor([&] { return ReadExecutions(Ledger()).size() == 1; }, kWait));
  server.Kill9();
  std::filesystem::remove_all(dir_.Sub("server-s1"));
  ClearDrops();
  StartServer("s1", {"--idempotent"});
  auto r = future.get();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, ErrorCode::kOk);
  EXPECT_EQ(r->payload, Expected("safe", r->seq));
  EXPECT_EQ(Executions("alice", r->seq), 2);
}

}  // namespace
}  // namespace rejoin::testing
