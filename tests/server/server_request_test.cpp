// The request path of a server (FLOWS.md §3, §6): handlers run once per
// operation, duplicates are answered from the journal, releases drop stored
// responses, and nothing the broker sends can stop the server.
#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <string>
#include <vector>

#include "rejoin/proto/codec.h"
#include "server/server_fixture.h"
#include "support/fake_broker.h"

namespace rejoin::testing {
namespace {

TEST(ServerRequest, RequestRunsHandlerOnceAndAnswers) {
  FakeBroker broker;
  std::atomic<int> runs{0};
  auto server = MustOpen(TestOptions(broker), {CountingEcho(runs)});
  ASSERT_TRUE(broker.AcceptHello());

  broker.SendRequest("alice", 1, "hi");
  std::string payload;
  auto response = broker.NextAs<Response>(&payload);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->session, "alice");
  EXPECT_EQ(response->seq, 1u);
  EXPECT_EQ(response->status, ErrorCode::kOk);
  EXPECT_EQ(payload, "echo:hi");
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(server->stats().executed, 1u);
}

TEST(ServerRequest, InlineHandlersRunOnceAndAnswerEveryRequest) {
  FakeBroker broker;
  std::atomic<int> runs{0};
  ServerOptions options = TestOptions(broker);
  options.inline_handlers = true;
  auto server = MustOpen(options, {CountingEcho(runs)});
  ASSERT_TRUE(broker.AcceptHello());

  // A burst larger than one turn's batch, then a duplicate of the first.
  for (Seq seq = 1; seq <= 20; ++seq) {
    broker.SendRequest("alice", seq, "m" + std::to_string(seq));
  }
  std::vector<bool> seen(21, false);
  for (int i = 0; i < 20; ++i) {
    std::string payload;
    auto response = broker.NextAs<Response>(&payload);
    ASSERT_TRUE(response);
    EXPECT_EQ(payload, "echo:m" + std::to_string(response->seq));
    seen[response->seq] = true;
  }
  for (Seq seq = 1; seq <= 20; ++seq) EXPECT_TRUE(seen[seq]) << seq;
  broker.SendRequest("alice", 1, "m1");
  std::string payload;
  auto again = broker.NextAs<Response>(&payload);
  ASSERT_TRUE(again);
  EXPECT_EQ(payload, "echo:m1");
  EXPECT_EQ(runs, 20);
  EXPECT_EQ(server->stats().duplicates, 1u);
}

TEST(ServerRequest, DuplicateRequestResendsStoredResponse) {
  FakeBroker broker;
  std::atomic<int> runs{0};
  auto server = MustOpen(TestOptions(broker), {CountingEcho(runs)});
  ASSERT_TRUE(broker.AcceptHello());

  broker.SendRequest("alice", 1, "hi");
  ASSERT_TRUE(broker.NextAs<Response>());
  broker.SendRequest("alice", 1, "hi");
  std::string payload;
  auto again = broker.NextAs<Response>(&payload);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->seq, 1u);
  EXPECT_EQ(payload, "echo:hi");
  EXPECT_EQ(runs, 1);
  ServerStats stats = server->stats();
  EXPECT_EQ(stats.duplicates, 1u);
  EXPECT_EQ(stats.responses_resent, 1u);
}

TEST(ServerRequest, DuplicateWhileRunningIsIgnored) {
  FakeBroker broker;
  Gate gate;
  std::atomic<int> runs{0};
  ServiceOptions slow;
  slow.name = "echo";
  slow.handler = [&](const RequestView& r) {
    ++runs;
    gate.Wait();
    return HandlerReply{ErrorCode::kOk, std::string(r.payload)};
  };
  auto server = MustOpen(TestOptions(broker), {slow});
  ASSERT_TRUE(broker.AcceptHello());

  broker.SendRequest("alice", 1, "x");
  ASSERT_TRUE(gate.AwaitWaiting(1));
  broker.SendRequest("alice", 1, "x");
  auto vector = broker.ProbeBarrier("alice", {1});
  ASSERT_TRUE(vector);
  ASSERT_EQ(vector->held.size(), 1u);
  EXPECT_EQ(vector->held[0].state, ServerOpState::kReceived);
  EXPECT_EQ(vector->held[0].received_incarnation, server->incarnation());

  gate.Open();
  ASSERT_TRUE(broker.NextAs<Response>());
  EXPECT_EQ(runs, 1);
}

TEST(ServerRequest, EmptyResponseIsResentEmpty) {
  FakeBroker broker;
  ServiceOptions quiet;
  quiet.name = "echo";
  quiet.handler = [](const RequestView&) { return HandlerReply{}; };
  auto server = MustOpen(TestOptions(broker), {quiet});
  ASSERT_TRUE(broker.AcceptHello());

  broker.SendRequest("alice", 1, "a request that must not come back");
  std::string payload = "unset";
  ASSERT_TRUE(broker.NextAs<Response>(&payload));
  EXPECT_EQ(payload, "");
  broker.SendRequest("alice", 1, "a request that must not come back");
  payload = "unset";
  ASSERT_TRUE(broker.NextAs<Response>(&payload));
  EXPECT_EQ(payload, "");
}

TEST(ServerRequest, HandlerExceptionIsAnsweredHandlerFailed) {
  FakeBroker broker;
  ServiceOptions failing;
  failing.name = "echo";
  failing.handler = [](const RequestView&) -> HandlerReply {
    throw std::runtime_error("disk on fire");
  };
  auto server = MustOpen(TestOptions(broker), {failing});
  ASSERT_TRUE(broker.AcceptHello());

  broker.SendRequest("alice", 1, "x");
  std::string payload;
  auto response = broker.NextAs<Response>(&payload);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, ErrorCode::kHandlerFailed);
  EXPECT_EQ(payload, "disk on fire");
}

TEST(ServerRequest, HandlerStatusOtherThanOkBecomesHandlerFailed) {
  FakeBroker broker;
  ServiceOptions odd;
  odd.name = "echo";
  odd.handler = [](const RequestView&) {
    return HandlerReply{ErrorCode::kInDoubt, "why"};
  };
  auto server = MustOpen(TestOptions(broker), {odd});
  ASSERT_TRUE(broker.AcceptHello());

  broker.SendRequest("alice", 1, "x");
  std::string payload;
  auto response = broker.NextAs<Response>(&payload);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, ErrorCode::kHandlerFailed);
  EXPECT_EQ(payload, "why");
}

TEST(ServerRequest, UnknownServiceIsAnsweredUnknownService) {
  FakeBroker broker;
  std::atomic<int> runs{0};
  auto server = MustOpen(TestOptions(broker), {CountingEcho(runs)});
  ASSERT_TRUE(broker.AcceptHello());

  broker.SendRequest("alice", 1, "x", "nope");
  auto response = broker.NextAs<Response>();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, ErrorCode::kUnknownService);
  EXPECT_EQ(runs, 0);
}

TEST(ServerRequest, WatermarkReleasesAndLaterDuplicateIsAnsweredInDoubt) {
  FakeBroker broker;
  std::atomic<int> runs{0};
  auto server = MustOpen(TestOptions(broker), {CountingEcho(runs)});
  ASSERT_TRUE(broker.AcceptHello());

  broker.SendRequest("alice", 1, "one", "echo", /*watermark=*/1);
  ASSERT_TRUE(broker.NextAs<Response>());
  broker.SendRequest("alice", 2, "two", "echo", /*watermark=*/2);
  ASSERT_TRUE(broker.NextAs<Response>());
  EXPECT_EQ(server->stats().released, 1u);

  // Not run again; its outcome is gone, so the only answer is in_doubt
  // (a client with intact records drops it as a duplicate).
  broker.SendRequest("alice", 1, "one", "echo", /*watermark=*/1);
  auto again = broker.NextAs<Response>();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->seq, 1u);
  EXPECT_EQ(again->status, ErrorCode::kInDoubt);
  auto vector = broker.ProbeBarrier("alice", {1, 2});
  ASSERT_TRUE(vector);
  EXPECT_EQ(vector->released_watermark, 2u);
  ASSERT_EQ(vector->held.size(), 1u);
  EXPECT_EQ(vector->held[0].seq, 2u);
  EXPECT_EQ(vector->held[0].state, ServerOpState::kExecuted);
  EXPECT_EQ(runs, 2);
  EXPECT_EQ(server->stats().duplicates, 1u);
}

TEST(ServerRequest, AckReleasesAndDuplicateIsAnsweredInDoubt) {
  FakeBroker broker;
  std::atomic<int> runs{0};
  auto server = MustOpen(TestOptions(broker), {CountingEcho(runs)});
  ASSERT_TRUE(broker.AcceptHello());

  for (Seq seq : {Seq{1}, Seq{2}, Seq{3}}) {
    broker.SendRequest("alice", seq, "x");
    ASSERT_TRUE(broker.NextAs<Response>());
  }
  // Seq 1 by the watermark, seq 3 by name; seq 2 stays.
  broker.Send(Ack{"alice", 2, {3}});
  broker.SendRequest("alice", 1, "x");
  broker.SendRequest("alice", 3, "x");
  for (Seq seq : {Seq{1}, Seq{3}}) {
    auto again = broker.NextAs<Response>();
    ASSERT_TRUE(again);
    EXPECT_EQ(again->seq, seq);
    EXPECT_EQ(again->status, ErrorCode::kInDoubt);
  }
  auto vector = broker.ProbeBarrier("alice", {1, 2, 3});
  ASSERT_TRUE(vector);
  EXPECT_EQ(vector->released_watermark, 2u);
  ASSERT_EQ(vector->held.size(), 1u);
  EXPECT_EQ(vector->held[0].seq, 2u);
  EXPECT_EQ(runs, 3);
  ServerStats stats = server->stats();
  EXPECT_EQ(stats.released, 2u);
  EXPECT_EQ(stats.duplicates, 2u);
  EXPECT_EQ(stats.responses_resent, 0u);
}

TEST(ServerRequest, IdleSessionIsReleasedAfterTheSessionExpiry) {
  FakeBroker broker;
  Gate gate;
  std::atomic<int> runs{0};
  ServiceOptions svc;
  svc.name = "echo";
  svc.handler = [&](const RequestView& r) {
    ++runs;
    if (r.session == "bob") gate.Wait();
    return HandlerReply{ErrorCode::kOk, "done"};
  };
  ServerOptions options = TestOptions(broker);
  // No heartbeats to a broker that does not answer them while the test
  // waits for the expiry.
  options.heartbeat = std::chrono::seconds(30);
  options.session_expiry = std::chrono::milliseconds(300);
  auto server = MustOpen(options, {svc});
  ASSERT_TRUE(broker.AcceptHello());

  broker.SendRequest("alice", 1, "x");
  ASSERT_TRUE(broker.NextAs<Response>());
  broker.Send(Ack{"alice", 1, {}});  // changes nothing: seq 1 stays held
  broker.SendRequest("bob", 1, "y");
  ASSERT_TRUE(gate.AwaitWaiting(1));

  // alice's client never comes back; bob's handler still runs.
  ASSERT_TRUE(Eventually([&] { return server->stats().sessions_expired == 1; },
                         std::chrono::seconds(5)));
  auto alice = broker.ProbeBarrier("alice", {1});
  ASSERT_TRUE(alice);
  EXPECT_TRUE(alice->held.empty());
  EXPECT_EQ(alice->released_watermark, 2u);
  // A client that returns after the expiry is answered, not run again.
  broker.SendRequest("alice", 1, "x");
  auto late = broker.NextAs<Response>();
  ASSERT_TRUE(late);
  EXPECT_EQ(late->status, ErrorCode::kInDoubt);

  auto bob = broker.ProbeBarrier("bob", {1});
  ASSERT_TRUE(bob);
  ASSERT_EQ(bob->held.size(), 1u);
  EXPECT_EQ(bob->held[0].state, ServerOpState::kReceived);
  gate.Open();
  std::string payload;
  ASSERT_TRUE(broker.NextAs<Response>(&payload));
  EXPECT_EQ(payload, "done");
  EXPECT_EQ(runs, 2);
}

TEST(ServerRequest, SessionExpiryMustBePositive) {
  FakeBroker broker;
  std::atomic<int> runs{0};
  ServerOptions options = TestOptions(broker);
  options.session_expiry = std::chrono::milliseconds(0);
  auto s = Server::Open(options, {CountingEcho(runs)});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), ErrorCode::kInvalidArgument);
}

TEST(ServerRequest, ProbeReportsOnlyProbedSeqs) {
  FakeBroker broker;
  Gate gate;
  ServiceOptions svc;
  svc.name = "echo";
  svc.handler = [&](const RequestView& r) {
    if (r.seq == 7) gate.Wait();
    return HandlerReply{ErrorCode::kOk, "ok"};
  };
  auto server = MustOpen(TestOptions(broker), {svc});
  ASSERT_TRUE(broker.AcceptHello());

  broker.SendRequest("alice", 5, "x", "echo", 5);
  ASSERT_TRUE(broker.NextAs<Response>());
  broker.SendRequest("alice", 6, "x", "echo", 5);
  ASSERT_TRUE(broker.NextAs<Response>());
  broker.SendRequest("alice", 7, "x", "echo", 5);
  ASSERT_TRUE(gate.AwaitWaiting(1));

  auto vector = broker.ProbeBarrier("alice", {5, 7, 9});
  ASSERT_TRUE(vector);
  EXPECT_EQ(vector->server, kServerId);
  EXPECT_EQ(vector->session, "alice");
  EXPECT_EQ(vector->incarnation, server->incarnation());
  EXPECT_EQ(vector->released_watermark, 5u);
  ASSERT_EQ(vector->held.size(), 2u);
  EXPECT_EQ(vector->held[0],
            (HeldOp{5, ServerOpState::kExecuted, server->incarnation()}));
  EXPECT_EQ(vector->held[1],
            (HeldOp{7, ServerOpState::kReceived, server->incarnation()}));
  EXPECT_TRUE(vector->Validate().ok());

  auto unknown = broker.ProbeBarrier("bob", {1});
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->session, "bob");
  EXPECT_EQ(unknown->released_watermark, 1u);
  EXPECT_TRUE(unknown->held.empty());
  gate.Open();
  ASSERT_TRUE(broker.NextAs<Response>());
}

TEST(ServerRequest, ReleaseWhileRunningDropsTheLateResult) {
  FakeBroker broker;
  Gate gate;
  ServiceOptions slow;
  slow.name = "echo";
  slow.handler = [&](const RequestView&) {
    gate.Wait();
    return HandlerReply{ErrorCode::kOk, "late"};
  };
  auto server = MustOpen(TestOptions(broker), {slow});
  ASSERT_TRUE(broker.AcceptHello());

  broker.SendRequest("alice", 1, "x");
  ASSERT_TRUE(gate.AwaitWaiting(1));
  // The client got an outcome elsewhere (say IN_DOUBT from the broker).
  broker.Send(Ack{"alice", 2, {}});
  // The ACK is handled before the handler may finish.
  ASSERT_TRUE(broker.ProbeBarrier("alice", {1}));
  gate.Open();
  ASSERT_TRUE(Eventually([&] { return server->stats().executed == 1; }));
  // The completion is handled before a later PROBE is read or after; either
  // way nothing may be sent for seq 1.
  for (int i = 0; i < 3; ++i) {
    auto vector = broker.ProbeBarrier("alice", {1});
    ASSERT_TRUE(vector);
    EXPECT_TRUE(vector->held.empty());
    EXPECT_EQ(vector->released_watermark, 2u);
  }
}

TEST(ServerRequest, ConcurrencyLimitBoundsRunningHandlers) {
  FakeBroker broker;
  Gate gate;
  std::atomic<int> runs{0};
  ServiceOptions slow;
  slow.name = "echo";
  slow.handler = [&](const RequestView& r) {
    ++runs;
    gate.Wait();
    return HandlerReply{ErrorCode::kOk, std::string(r.payload)};
  };
  ServerOptions options = TestOptions(broker);
  options.concurrency = 3;
  auto server = MustOpen(options, {slow});
  auto hello = broker.AcceptHello();
  ASSERT_TRUE(hello);
  ASSERT_EQ(hello->services.size(), 1u);
  EXPECT_EQ(hello->services[0].credit, 3u);

  for (Seq seq = 1; seq <= 8; ++seq) broker.SendRequest("alice", seq, "x");
  ASSERT_TRUE(gate.AwaitWaiting(3));
  // Every request is journaled (PROBE is answered after all eight are read),
  // yet only three handlers run.
  auto vector = broker.ProbeBarrier("alice", {1, 2, 3, 4, 5, 6, 7, 8});
  ASSERT_TRUE(vector);
  EXPECT_EQ(vector->held.size(), 8u);
  EXPECT_EQ(runs, 3);
  gate.Open();
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(broker.NextAs<Response>());
  EXPECT_EQ(gate.max_waiting(), 3);
  EXPECT_EQ(runs, 8);
}

TEST(ServerRequest, MalformedFramesAreDroppedAndServerKeepsWorking) {
  FakeBroker broker;
  std::atomic<int> runs{0};
  auto server = MustOpen(TestOptions(broker), {CountingEcho(runs)});
  ASSERT_TRUE(broker.AcceptHello());

  broker.SendFrames({"garbage"});
  broker.SendFrames({""});
  broker.SendFrames({std::string("\xff\xff\xff\xff\x01\x03", 6)});
  // A valid REQUEST header without its payload frame: wrong frame count.
  Request r{"alice", 1, "echo", 1, 0, 0};
  broker.SendFrames({EncodeHeader(r)});
  // A header that travels without a payload, then a stray frame: the
  // heartbeat is taken, the stray frame is not a header.
  broker.SendFrames({EncodeHeader(Heartbeat{kFirstEpoch}), "extra"});
  // A batch whose middle header is bad: what follows it is dropped with it.
  broker.SendFrames({EncodeHeader(Heartbeat{kFirstEpoch}), "bad",
                     EncodeHeader(Request{"alice", 9, "echo", 1, 0, 0}),
                     "never read"});
  // Well-formed but never sent to a server.
  broker.Send(Hello{});
  broker.Send(Response{"alice", 1, ErrorCode::kOk});
  broker.Send(RecoverWith("alice", Action::kResendRequest));

  broker.SendRequest("alice", 1, "still here");
  std::string payload;
  ASSERT_TRUE(broker.NextAs<Response>(&payload));
  EXPECT_EQ(payload, "echo:still here");
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(server->stats().malformed, 9u);
}

// A REQUEST that reuses a held seq for another request (a client whose
// journal was rolled back) gets `conflict`, never the held request's
// outcome, and nothing runs; a true duplicate still gets the stored answer.
TEST(ServerRequest, DuplicateSeqWithOtherRequestIsAnsweredConflict) {
  FakeBroker broker;
  std::atomic<int> runs{0};
  std::atomic<int> other_runs{0};
  auto server =
      MustOpen(TestOptions(broker),
               {CountingEcho(runs), CountingEcho(other_runs, "other")});
  ASSERT_TRUE(broker.AcceptHello());
  broker.SendRequest("alice", 1, "a");
  ASSERT_TRUE(broker.NextAs<Response>());

  auto expect_conflict = [&](std::string_view request,
                             const std::string& service) {
    broker.SendRequest("alice", 1, request, service);
    std::string payload = "unset";
    auto response = broker.NextAs<Response>(&payload);
    ASSERT_TRUE(response);
    EXPECT_EQ(response->seq, 1u);
    EXPECT_EQ(response->status, ErrorCode::kConflict);
    EXPECT_EQ(payload, "");
  };
  expect_conflict("b", "echo");   // another payload
  expect_conflict("a", "other");  // another service
  expect_conflict("", "echo");    // an empty one

  broker.SendRequest("alice", 1, "a");
  std::string payload;
  auto same = broker.NextAs<Response>(&payload);
  ASSERT_TRUE(same);
  EXPECT_EQ(same->status, ErrorCode::kOk);
  EXPECT_EQ(payload, "echo:a");
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(other_runs, 0);
  EXPECT_EQ(server->stats().conflicts, 3u);
  EXPECT_EQ(server->stats().responses_resent, 1u);
}

TEST(ServerRequest,
     DuplicateSeqWithOtherRequestWhileRunningIsAnsweredConflict) {
  FakeBroker broker;
  Gate gate;
  std::atomic<int> runs{0};
  ServiceOptions slow;
  slow.name = "echo";
  slow.handler = [&](const RequestView& r) {
    ++runs;
    gate.Wait();
    return HandlerReply{ErrorCode::kOk, "ran:" + std::string(r.payload)};
  };
  auto server = MustOpen(TestOptions(broker), {slow});
  // A failed assertion must not leave the handler waiting (the server's
  // destructor waits for it).
  struct OpenOnExit {
    Gate& gate;
    ~OpenOnExit() { gate.Open(); }
  } open_on_exit{gate};
  ASSERT_TRUE(broker.AcceptHello());
  broker.SendRequest("alice", 1, "a");
  ASSERT_TRUE(gate.AwaitWaiting(1));

  broker.SendRequest("alice", 1, "b");
  auto conflict = broker.NextAs<Response>();
  ASSERT_TRUE(conflict);
  EXPECT_EQ(conflict->status, ErrorCode::kConflict);
  gate.Open();
  std::string payload;
  auto answer = broker.NextAs<Response>(&payload);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->status, ErrorCode::kOk);
  EXPECT_EQ(payload, "ran:a");
  EXPECT_EQ(runs, 1);
}

}  // namespace
}  // namespace rejoin::testing
