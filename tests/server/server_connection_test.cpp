// Registration and the link to the broker (FLOWS.md §1, §2, §5, §7): what
// HELLO says, when a server says it again, heartbeats and the peer timeout,
// broker restarts, and the checks Server::Open makes.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "server/server_fixture.h"
#include "support/fake_broker.h"

namespace rejoin::testing {
namespace {

TEST(ServerConnection, HelloCarriesIdentityServicesAndCredit) {
  FakeBroker broker;
  std::atomic<int> runs{0};
  ServiceOptions pay = CountingEcho(runs, "pay");
  pay.policy = InDoubtPolicy::kResolveHook;
  pay.resolve = [](const RequestView&) { return std::nullopt; };
  ServiceOptions echo = CountingEcho(runs, "echo");
  echo.idempotent = true;
  echo.policy = InDoubtPolicy::kReexecute;
  ServerOptions options = TestOptions(broker);
  options.concurrency = 5;
  auto server = MustOpen(options, {pay, echo});

  auto hello = broker.NextAs<Hello>();
  ASSERT_TRUE(hello);
  EXPECT_EQ(hello->role, Role::kServer);
  EXPECT_EQ(hello->id, kServerId);
  EXPECT_EQ(hello->incarnation, 1u);
  EXPECT_EQ(hello->incarnation, server->incarnation());
  EXPECT_NE(hello->journal_id, 0u);
  EXPECT_EQ(hello->last_epoch, 0u);
  EXPECT_EQ(
      hello->services,
      (std::vector<ServiceSpec>{{"pay", 5, false, InDoubtPolicy::kResolveHook},
                                {"echo", 5, true, InDoubtPolicy::kReexecute}}));
}

TEST(ServerConnection, FirstStartWithEmptyJournalSendsNoStateExchange) {
  FakeBroker broker;
  std::atomic<int> runs{0};
  auto server = MustOpen(TestOptions(broker), {CountingEcho(runs)});
  ASSERT_TRUE(broker.AcceptHello());
  // The first message after WELCOME is the probe's answer.
  ASSERT_TRUE(broker.ProbeBarrier("alice", {1}));
  EXPECT_EQ(server->stats().state_exchanges, 0u);
}

TEST(ServerConnection, NewEpochInHeartbeatLeadsToHelloAndStateExchange) {
  FakeBroker broker;
  std::atomic<int> runs{0};
  auto server = MustOpen(TestOptions(broker), {CountingEcho(runs)});
  ASSERT_TRUE(broker.AcceptHello(TestWelcome(/*epoch=*/5)));

  broker.Send(Heartbeat{6});
  auto hello = broker.AcceptHello(TestWelcome(/*epoch=*/6));
  ASSERT_TRUE(hello);
  EXPECT_EQ(hello->last_epoch, 5u);
  auto exchange = broker.NextAs<StateExchange>();
  ASSERT_TRUE(exchange);
  EXPECT_TRUE(exchange->last);
  EXPECT_TRUE(exchange->servers.empty());
  EXPECT_EQ(server->stats().state_exchanges, 1u);
}

TEST(ServerConnection, UnknownSessionErrorLeadsToHello) {
  FakeBroker broker;
  std::atomic<int> runs{0};
  auto server = MustOpen(TestOptions(broker), {CountingEcho(runs)});
  ASSERT_TRUE(broker.AcceptHello(TestWelcome(/*epoch=*/5)));

  Error e;
  e.code = ErrorCode::kUnknownSession;
  e.message = "who are you";
  broker.Send(e);
  auto hello = broker.AcceptHello(TestWelcome(/*epoch=*/9));
  ASSERT_TRUE(hello);
  EXPECT_EQ(hello->last_epoch, 5u);
  ASSERT_TRUE(broker.NextAs<StateExchange>());
}

TEST(ServerConnection, RefusedHelloIsRetried) {
  FakeBroker broker;
  std::atomic<int> runs{0};
  auto server = MustOpen(TestOptions(broker), {CountingEcho(runs)});
  for (ErrorCode code : {ErrorCode::kDuplicateIdentity, ErrorCode::kFenced}) {
    ASSERT_TRUE(broker.NextAs<Hello>());
    Error e;
    e.code = code;
    e.message = "taken";
    broker.Send(e);
  }
  ASSERT_TRUE(broker.AcceptHello());
  broker.SendRequest("alice", 1, "x");
  ASSERT_TRUE(broker.NextAs<Response>());
}

TEST(ServerConnection, HelloIsRepeatedUntilWelcomed) {
  FakeBroker broker;
  std::atomic<int> runs{0};
  auto server = MustOpen(TestOptions(broker), {CountingEcho(runs)});
  auto first = broker.NextAs<Hello>();
  ASSERT_TRUE(first);
  auto second = broker.NextAs<Hello>();
  ASSERT_TRUE(second);
  EXPECT_EQ(*first, *second);
}

// One rule for both endpoint libraries (FLOWS.md §1): a fenced HELLO is
// asked again after a second, not in a tight loop.
TEST(ServerConnection, FencedHelloIsAskedAgainAfterASecond) {
  FakeBroker broker;
  std::atomic<int> runs{0};
  auto server = MustOpen(TestOptions(broker), {CountingEcho(runs)});
  ASSERT_TRUE(broker.NextAs<Hello>());
  Error e;
  e.code = ErrorCode::kFenced;
  e.message = "a newer incarnation holds it";
  e.ref_type = static_cast<std::uint8_t>(MessageType::kHello);
  broker.Send(e);
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(broker.NextAs<Hello>());
  EXPECT_GE(std::chrono::steady_clock::now() - start,
            std::chrono::milliseconds(1000));
}

// A HELLO without WELCOME is said again after the peer timeout (3 heartbeat
// intervals), on a new connection when nothing at all came back.
TEST(ServerConnection, UnansweredHelloIsSaidAgainThenANewConnectionIsUsed) {
  FakeBroker broker;
  std::atomic<int> runs{0};
  auto server = MustOpen(TestOptions(broker), {CountingEcho(runs)});
  const auto heartbeat = TestOptions(broker).heartbeat;
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(broker.NextAs<Hello>());
  const std::string first_route = broker.route();
  // The HELLO is said again on the same connection after one heartbeat
  // interval (a lost HELLO costs less than the grace period); only after a
  // peer timeout with nothing heard is the connection replaced. On a busy
  // machine the first timer may fire after the peer timeout already, so
  // the repeat on the same connection may be skipped, never come early.
  int same_route = 0;
  for (;;) {
    ASSERT_TRUE(broker.NextAs<Hello>());
    const auto waited = std::chrono::steady_clock::now() - start;
    if (broker.route() != first_route) {
      EXPECT_GE(waited, 3 * heartbeat);
      break;
    }
    EXPECT_GE(waited, heartbeat);
    ASSERT_LT(++same_route, 3) << "the connection was never replaced";
  }
}

TEST(ServerConnection, SendsHeartbeatsAndReconnectsWhenBrokerIsSilent) {
  FakeBroker broker;
  std::atomic<int> runs{0};
  auto server = MustOpen(TestOptions(broker), {CountingEcho(runs)});
  ASSERT_TRUE(
      broker.AcceptHello(TestWelcome(/*epoch=*/5, /*heartbeat_ms=*/30)));
  const std::string first_route = broker.route();

  auto heartbeat = broker.Next(1s, /*heartbeats=*/true);
  ASSERT_TRUE(heartbeat);
  ASSERT_TRUE(std::holds_alternative<Heartbeat>(heartbeat->message));
  EXPECT_EQ(std::get<Heartbeat>(heartbeat->message).epoch, 5u);

  // The broker says nothing more: after three intervals the server drops
  // the connection and registers on a new one.
  auto hello = broker.AcceptHello(TestWelcome(/*epoch=*/5, 1000));
  ASSERT_TRUE(hello);
  EXPECT_NE(broker.route(), first_route);
  // Reconnecting after a peer timeout is a return.
  ASSERT_TRUE(broker.NextAs<StateExchange>());
}

TEST(ServerConnection, ReturnsToRestartedBroker) {
  TempDir dir;
  std::string endpoint;
  std::atomic<int> runs{0};
  std::unique_ptr<Server> server;
  {
    FakeBroker broker;
    endpoint = broker.endpoint();
    server = MustOpen(TestOptions(broker, dir.path()), {CountingEcho(runs)});
    ASSERT_TRUE(broker.AcceptHello(TestWelcome(/*epoch=*/5)));
    broker.SendRequest("alice", 1, "x");
    ASSERT_TRUE(broker.NextAs<Response>());
  }
  FakeBroker restarted(endpoint);
  auto hello = restarted.AcceptHello(TestWelcome(/*epoch=*/6));
  ASSERT_TRUE(hello);
  EXPECT_EQ(hello->last_epoch, 5u);
  auto exchange = restarted.NextAs<StateExchange>();
  ASSERT_TRUE(exchange);
  ASSERT_EQ(exchange->servers.size(), 1u);
  EXPECT_EQ(exchange->servers[0].held,
            (std::vector<HeldOp>{{1, ServerOpState::kExecuted, 1}}));
}

TEST(ServerConnection, DestructionAnswersRunningHandlersThenSaysGoodbye) {
  FakeBroker broker;
  Gate gate;
  ServiceOptions slow;
  slow.name = "echo";
  slow.handler = [&](const RequestView&) {
    gate.Wait();
    return HandlerReply{ErrorCode::kOk, "finished"};
  };
  auto server = MustOpen(TestOptions(broker), {slow});
  ASSERT_TRUE(broker.AcceptHello());
  broker.SendRequest("alice", 1, "x");
  ASSERT_TRUE(gate.AwaitWaiting(1));

  std::thread closer([&] { server.reset(); });
  gate.Open();
  std::string payload;
  ASSERT_TRUE(broker.NextAs<Response>(&payload));
  EXPECT_EQ(payload, "finished");
  ASSERT_TRUE(broker.NextAs<Goodbye>());
  closer.join();
}

TEST(ServerConnection, OpenRejectsInvalidOptions) {
  FakeBroker broker;
  std::atomic<int> runs{0};
  auto expect_invalid = [&](ServerOptions o, std::vector<ServiceOptions> s) {
    Result<std::unique_ptr<Server>> r =
        Server::Open(std::move(o), std::move(s));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument)
        << r.status().ToString();
  };
  ServerOptions bad_id = TestOptions(broker);
  bad_id.server_id = "has space";
  expect_invalid(bad_id, {CountingEcho(runs)});
  expect_invalid(TestOptions(broker), {});
  ServiceOptions no_handler;
  no_handler.name = "echo";
  expect_invalid(TestOptions(broker), {no_handler});
  ServiceOptions no_hook = CountingEcho(runs);
  no_hook.policy = InDoubtPolicy::kResolveHook;
  expect_invalid(TestOptions(broker), {no_hook});
  expect_invalid(TestOptions(broker), {CountingEcho(runs), CountingEcho(runs)});
  ServerOptions no_workers = TestOptions(broker);
  no_workers.concurrency = 0;
  expect_invalid(no_workers, {CountingEcho(runs)});
  ServerOptions no_dir = TestOptions(broker);
  no_dir.durability = Durability::kProcess;
  expect_invalid(no_dir, {CountingEcho(runs)});
  ServerOptions bad_endpoint = TestOptions(broker);
  bad_endpoint.endpoint = "nonsense";
  expect_invalid(bad_endpoint, {CountingEcho(runs)});
}

TEST(ServerConnection, SecondServerOnSameJournalIsRefused) {
  TempDir dir;
  FakeBroker broker;
  std::atomic<int> runs{0};
  auto first = MustOpen(TestOptions(broker, dir.path()), {CountingEcho(runs)});
  Result<std::unique_ptr<Server>> second =
      Server::Open(TestOptions(broker, dir.path()), {CountingEcho(runs)});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), ErrorCode::kJournalLocked);
}

}  // namespace
}  // namespace rejoin::testing
