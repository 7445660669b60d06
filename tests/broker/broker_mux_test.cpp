// Several client sessions on one connection (PROTOCOL.md §1.4): an
// in-process broker driven by hand-made endpoints over loopback. Each
// session is welcomed on its own and checked against the connection on
// every message; liveness, GOODBYE and takeover act per connection or per
// session as the protocol says. Also the broker's replayed answers, which
// wait for other traffic to their client.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <variant>
#include <vector>
#include <zmq.hpp>

#include "e2e/harness.h"
#include "rejoin/broker/broker.h"
#include "support/raw_endpoint.h"

namespace rejoin::testing {
namespace {

using namespace std::chrono_literals;

class BrokerMux : public ::testing::Test {
 protected:
  // Hand-made endpoints send no heartbeats: a long interval keeps them
  // alive unless a test wants them silent. No grace period: requests are
  // dispatched at once.
  static BrokerOptions Options() {
    BrokerOptions o;
    o.endpoint = "tcp://127.0.0.1:*";
    o.heartbeat = 2000ms;
    o.probe = 1000ms;
    o.grace = 0ms;
    o.lease = 200ms;
    return o;
  }
  void StartBroker(BrokerOptions o = Options()) {
    auto b = Broker::Bind(o);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    broker_ = std::move(*b);
    broker_->Start();
  }
  std::unique_ptr<RawEndpoint> Connect() {
    return std::make_unique<RawEndpoint>(ctx_, broker_->bound_endpoint());
  }

  static Hello ClientHello(const std::string& id, JournalId journal = 42,
                           Incarnation incarnation = 1) {
    return Hello{Role::kClient, id, incarnation, journal, 0, {}};
  }
  static Hello ServerHello(const std::string& id) {
    return Hello{Role::kServer, id, 1, 99, 0, {ServiceSpec{"echo", 2000}}};
  }
  static Request Call(const std::string& session, Seq seq = 1) {
    return Request{session, seq, "echo", 1, 0, 0};
  }

  // HELLO and its WELCOME, which must name the id.
  void Hi(RawEndpoint& e, const Hello& hello) {
    e.Send(hello);
    Message m = e.Next();
    const auto* w = std::get_if<Welcome>(&m);
    ASSERT_NE(w, nullptr) << "HELLO of " << hello.id << " not welcomed";
    EXPECT_EQ(w->id, hello.id);
  }
  // The next message, which must be an ERROR.
  static Error NextError(RawEndpoint& e) {
    Message m = e.Next();
    const auto* err = std::get_if<Error>(&m);
    EXPECT_NE(err, nullptr)
        << "expected ERROR, got message type " << static_cast<int>(TypeOf(m));
    return err != nullptr ? *err : Error{};
  }
  // A server on its own connection that answers what it is sent.
  std::unique_ptr<RawEndpoint> StartServer(const std::string& id = "s1") {
    auto s = Connect();
    Hi(*s, ServerHello(id));
    return s;
  }
  // The server takes `n` REQUESTs and answers each with its payload, marked.
  // Returns the sessions they named.
  static std::multiset<SessionId> Echo(RawEndpoint& server, int n) {
    std::multiset<SessionId> seen;
    for (int i = 0; i < n; ++i) {
      Message m = server.Next();
      const auto* req = std::get_if<Request>(&m);
      EXPECT_NE(req, nullptr) << "request " << i << " of " << n;
      if (req == nullptr) break;
      seen.insert(req->session);
      server.Send(Response{req->session, req->seq, ErrorCode::kOk},
                  "re:" + server.payload());
    }
    return seen;
  }
  // The client takes `n` RESPONSEs: session -> payload.
  static std::map<SessionId, std::string> Collect(RawEndpoint& client, int n) {
    std::map<SessionId, std::string> got;
    for (int i = 0; i < n; ++i) {
      Message m = client.Next();
      const auto* resp = std::get_if<Response>(&m);
      EXPECT_NE(resp, nullptr) << "response " << i << " of " << n;
      if (resp == nullptr) break;
      EXPECT_EQ(resp->status, ErrorCode::kOk);
      EXPECT_EQ(got.count(resp->session), 0u) << resp->session;
      got[resp->session] = client.payload();
    }
    return got;
  }
  // One call of `session` from `client`, answered by `server`.
  void RoundTrip(RawEndpoint& client, RawEndpoint& server,
                 const std::string& session, Seq seq = 1) {
    client.Send(Call(session, seq), "ping-" + session);
    EXPECT_EQ(Echo(server, 1), std::multiset<SessionId>{session});
    Message m = client.Next();
    const auto* resp = std::get_if<Response>(&m);
    ASSERT_NE(resp, nullptr) << "no RESPONSE for " << session;
    EXPECT_EQ(resp->session, session);
    EXPECT_EQ(resp->seq, seq);
    EXPECT_EQ(client.payload(), "re:ping-" + session);
  }

  zmq::context_t ctx_;
  std::unique_ptr<Broker> broker_;
};

TEST_F(BrokerMux, SessionsShareOneConnection) {
  StartBroker();
  auto server = StartServer();
  auto client = Connect();
  Hi(*client, ClientHello("a"));
  Hi(*client, ClientHello("b"));
  Hi(*client, ClientHello("c"));
  client->Send(Call("a"), "1");
  client->Send(Call("b"), "2");
  client->Send(Call("c"), "3");
  EXPECT_EQ(Echo(*server, 3), (std::multiset<SessionId>{"a", "b", "c"}));
  const auto got = Collect(*client, 3);
  EXPECT_EQ(got, (std::map<SessionId, std::string>{
                     {"a", "re:1"}, {"b", "re:2"}, {"c", "re:3"}}));
  EXPECT_EQ(broker_->stats().sessions, 3u);
  EXPECT_TRUE(WaitFor([&] { return broker_->stats().connections == 2; }, 2s));
}

TEST_F(BrokerMux, MessagesForSessionsTheConnectionDoesNotHoldAreRefused) {
  StartBroker();
  auto server = StartServer();
  auto first = Connect();
  auto second = Connect();
  Hi(*first, ClientHello("a"));
  Hi(*first, ClientHello("b"));
  Hi(*second, ClientHello("x"));

  // Held by another connection, and known to nobody.
  for (const std::string other : {"x", "nobody"}) {
    first->Send(Call(other, 7), "no");
    const Error e = NextError(*first);
    EXPECT_EQ(e.code, ErrorCode::kNotAuthorized);
    EXPECT_EQ(e.session, other);
    EXPECT_EQ(e.seq, 7u);
    EXPECT_EQ(e.ref_type, static_cast<std::uint8_t>(MessageType::kRequest));
  }
  // A client's state exchange about another connection's session.
  first->Send(StateExchange{
      Role::kClient, {ClientVector{"x", 1, 42, 1, 1, {}, {}}}, {}, true});
  const Error e = NextError(*first);
  EXPECT_EQ(e.code, ErrorCode::kProtocolViolation);
  EXPECT_EQ(e.session, "x");

  // Nothing was dispatched; every session still works.
  RoundTrip(*first, *server, "a");
  RoundTrip(*first, *server, "b");
  RoundTrip(*second, *server, "x");
  EXPECT_EQ(broker_->stats().requests, 3u);
}

TEST_F(BrokerMux, GoodbyeWithAnIdLeavesOnlyThatSession) {
  StartBroker();
  auto server = StartServer();
  auto first = Connect();
  Hi(*first, ClientHello("a"));
  Hi(*first, ClientHello("b"));
  first->Send(Goodbye{"closing a", "a"});
  // Another process takes "a" at once: its holder has left, so this is no
  // duplicate identity.
  auto second = Connect();
  Hi(*second, ClientHello("a", /*journal=*/43));
  EXPECT_EQ(broker_->stats().duplicate_identity, 0u);

  RoundTrip(*first, *server, "b");
  RoundTrip(*second, *server, "a");
  first->Send(Call("a", 2), "stale");
  const Error e = NextError(*first);
  EXPECT_EQ(e.code, ErrorCode::kNotAuthorized);
  EXPECT_EQ(e.session, "a");
}

TEST_F(BrokerMux, GoodbyeWithoutAnIdLeavesEverySession) {
  StartBroker();
  auto first = Connect();
  Hi(*first, ClientHello("a"));
  Hi(*first, ClientHello("b"));
  first->Send(Goodbye{"closing", ""});
  auto second = Connect();
  auto third = Connect();
  Hi(*second, ClientHello("a", 43));
  Hi(*third, ClientHello("b", 44));
  EXPECT_EQ(broker_->stats().duplicate_identity, 0u);
  // The connection holds nothing any more: the broker has forgotten it.
  first->Send(Call("a"), "late");
  const Error e = NextError(*first);
  EXPECT_EQ(e.code, ErrorCode::kUnknownSession);
  EXPECT_EQ(e.session, "a");
  EXPECT_TRUE(WaitFor([&] { return broker_->stats().connections == 2; }, 2s));
}

TEST_F(BrokerMux, SessionMovedToAnotherConnectionLeavesTheOthersInPlace) {
  StartBroker();
  auto server = StartServer();
  auto first = Connect();
  Hi(*first, ClientHello("a"));
  Hi(*first, ClientHello("b"));
  // The same process (journal and incarnation) on a new connection.
  auto second = Connect();
  Hi(*second, ClientHello("a"));

  RoundTrip(*second, *server, "a");
  RoundTrip(*first, *server, "b");
  first->Send(Call("a", 2), "moved");
  EXPECT_EQ(NextError(*first).code, ErrorCode::kNotAuthorized);

  // Moving the last session away forgets the connection.
  Hi(*second, ClientHello("b"));
  EXPECT_TRUE(WaitFor([&] { return broker_->stats().connections == 2; }, 2s));
  RoundTrip(*second, *server, "b", 2);
}

TEST_F(BrokerMux, ClosedConnectionReleasesEverySession) {
  StartBroker();
  auto first = Connect();
  Hi(*first, ClientHello("a"));
  Hi(*first, ClientHello("b"));
  first->Close();
  // A new process takes "a" once the broker sees the old connection gone,
  // and with it "b".
  auto second = Connect();
  ASSERT_TRUE(WaitFor(
      [&] {
        second->Send(ClientHello("a", 43));
        return std::holds_alternative<Welcome>(second->Next());
      },
      5s));
  auto third = Connect();
  Hi(*third, ClientHello("b", 44));
  EXPECT_TRUE(WaitFor([&] { return broker_->stats().connections == 2; }, 2s));
}

TEST_F(BrokerMux, SilentConnectionLosesEverySessionAndEachIsTold) {
  BrokerOptions o = Options();
  o.heartbeat = 50ms;
  StartBroker(o);
  auto client = Connect();
  const std::set<SessionId> all = {"a", "b", "c"};
  for (const SessionId& sid : all) Hi(*client, ClientHello(sid));
  // Three heartbeat intervals without a word.
  std::this_thread::sleep_for(400ms);
  client->Send(Heartbeat{broker_->epoch()});
  std::set<SessionId> told;
  for (std::size_t i = 0; i < all.size(); ++i) {
    const Error e = NextError(*client);
    EXPECT_EQ(e.code, ErrorCode::kUnknownSession);
    EXPECT_EQ(e.ref_type, static_cast<std::uint8_t>(MessageType::kHeartbeat));
    told.insert(e.session);
  }
  EXPECT_EQ(told, all);
  // Told once: the next heartbeat brings no ERROR.
  client->Send(Heartbeat{broker_->epoch()});
  EXPECT_EQ(std::get<Goodbye>(client->Next(100ms)).reason, "timeout");

  // A message about a session still dead is answered for that session.
  Hi(*client, ClientHello("a"));
  client->Send(Ack{"b", 1, {}});
  const Error e = NextError(*client);
  EXPECT_EQ(e.code, ErrorCode::kUnknownSession);
  EXPECT_EQ(e.session, "b");
  Hi(*client, ClientHello("b"));
  Hi(*client, ClientHello("c"));
}

TEST_F(BrokerMux, ServerAndClientIdsNeverShareAConnection) {
  StartBroker();
  auto server = StartServer("s1");
  auto client = Connect();
  Hi(*client, ClientHello("a"));

  server->Send(ClientHello("intruder"));
  Error e = NextError(*server);
  EXPECT_EQ(e.code, ErrorCode::kProtocolViolation);
  EXPECT_EQ(e.session, "intruder");
  server->Send(ServerHello("s2"));  // another server id
  e = NextError(*server);
  EXPECT_EQ(e.code, ErrorCode::kProtocolViolation);
  EXPECT_EQ(e.session, "s2");
  client->Send(ServerHello("s3"));
  e = NextError(*client);
  EXPECT_EQ(e.code, ErrorCode::kProtocolViolation);
  EXPECT_EQ(e.session, "s3");

  // Nothing changed hands.
  RoundTrip(*client, *server, "a");
  EXPECT_EQ(broker_->stats().servers, 1u);
  EXPECT_EQ(broker_->stats().sessions, 1u);
  // Each id can still be used on a connection of its own.
  auto other = Connect();
  Hi(*other, ClientHello("intruder"));
}

TEST_F(BrokerMux, ShutdownSaysGoodbyeOncePerConnection) {
  StartBroker();
  auto client = Connect();
  Hi(*client, ClientHello("a"));
  Hi(*client, ClientHello("b"));
  Hi(*client, ClientHello("c"));
  broker_.reset();
  EXPECT_EQ(std::get<Goodbye>(client->Next()).reason, "broker shutting down");
  EXPECT_EQ(std::get<Goodbye>(client->Next(200ms)).reason, "timeout");
}

TEST_F(BrokerMux, ThousandSessionsOnOneConnection) {
  constexpr int kSessions = 1000;
  StartBroker();
  auto server = StartServer();
  auto client = Connect();
  const auto started = std::chrono::steady_clock::now();
  auto id = [](int i) { return "session-" + std::to_string(i); };
  for (int i = 0; i < kSessions; ++i) client->Send(ClientHello(id(i)));
  std::set<std::string> welcomed;
  for (int i = 0; i < kSessions; ++i) {
    Message m = client->Next();
    const auto* w = std::get_if<Welcome>(&m);
    ASSERT_NE(w, nullptr) << "message " << i;
    welcomed.insert(w->id);
  }
  EXPECT_EQ(welcomed.size(), static_cast<std::size_t>(kSessions));

  for (int i = 0; i < kSessions; ++i) client->Send(Call(id(i)), id(i));
  const auto seen = Echo(*server, kSessions);
  EXPECT_EQ(std::set<SessionId>(seen.begin(), seen.end()), welcomed);
  const auto got = Collect(*client, kSessions);
  ASSERT_EQ(got.size(), static_cast<std::size_t>(kSessions));
  for (const auto& [sid, payload] : got) EXPECT_EQ(payload, "re:" + sid);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);
  EXPECT_TRUE(WaitFor([&] { return broker_->stats().connections == 2; }, 2s));
  EXPECT_EQ(broker_->stats().sessions, static_cast<std::uint64_t>(kSessions));
}

// --- Replayed answers wait for company (BrokerOptions::replay_hold) --------

class ReplayHold : public BrokerMux {
 protected:
  // `n` calls of session "c" in flight at a server, the first answered: the
  // broker keeps that answer for a resend.
  void Setup(BrokerOptions o, int n) {
    StartBroker(o);
    server_ = StartServer();
    client_ = Connect();
    Hi(*client_, ClientHello("c"));
    for (Seq seq = 1; seq <= static_cast<Seq>(n); ++seq) {
      client_->Send(Call("c", seq), "p" + std::to_string(seq));
    }
    for (int i = 0; i < n; ++i) {
      Message m = server_->Next();
      ASSERT_TRUE(std::holds_alternative<Request>(m)) << "request " << i;
    }
    server_->Send(Response{"c", 1, ErrorCode::kOk}, "answer 1");
    ASSERT_EQ(ResponseSeq(client_->Next()), 1u);
    // The answer was lost on its way, as far as the client knows.
    client_->Send(Request{"c", 1, "echo", 1, 0, kRequestResend}, "p1");
  }
  // The replay of seq 1 is held, and leaves with the server's answer to
  // seq 2.
  void ExpectHeldUntilTheNextAnswer() {
    ASSERT_TRUE(
        WaitFor([&] { return broker_->stats().replays_held == 1; }, 5s));
    EXPECT_TRUE(std::holds_alternative<Goodbye>(client_->Next(200ms)))
        << "the replay left alone";
    server_->Send(Response{"c", 2, ErrorCode::kOk}, "answer 2");
    std::set<Seq> got;
    got.insert(ResponseSeq(client_->Next()));
    got.insert(ResponseSeq(client_->Next()));
    EXPECT_EQ(got, (std::set<Seq>{1, 2}));
  }
  static Seq ResponseSeq(const Message& m) {
    const auto* r = std::get_if<Response>(&m);
    return r != nullptr ? r->seq : 0;
  }
  std::unique_ptr<RawEndpoint> server_, client_;
};

TEST_F(ReplayHold, AReplayLeavesWithTheNextAnswerForItsClient) {
  BrokerOptions o = Options();
  o.replay_hold = 60s;  // only company can release it in this test
  Setup(o, 1 + static_cast<int>(kReplayHoldInFlight));
  ExpectHeldUntilTheNextAnswer();
  EXPECT_EQ(broker_->stats().responses_replayed, 1u);
}

TEST_F(ReplayHold, AReplayWithNoCompanyLeavesWhenItsHoldEnds) {
  BrokerOptions o = Options();
  o.replay_hold = 50ms;
  Setup(o, 1 + static_cast<int>(kReplayHoldInFlight));
  Message m = client_->Next();
  EXPECT_EQ(ResponseSeq(m), 1u);
  EXPECT_EQ(client_->payload(), "answer 1");
  EXPECT_EQ(broker_->stats().replays_held, 1u);
}

TEST_F(ReplayHold, FewCallsInFlightAreReplayedAtOnce) {
  BrokerOptions o = Options();
  o.replay_hold = 60s;
  Setup(o, 2);
  Message m = client_->Next();
  EXPECT_EQ(ResponseSeq(m), 1u);
  EXPECT_EQ(broker_->stats().replays_held, 0u);
  EXPECT_EQ(broker_->stats().responses_replayed, 1u);
}

// The hold is decided at the end of the broker's turn: calls that came in
// the same batch as the resend count as in flight.
TEST_F(ReplayHold, CallsArrivingWithTheResendCountAsInFlight) {
  BrokerOptions o = Options();
  o.replay_hold = 60s;
  StartBroker(o);
  server_ = StartServer();
  client_ = Connect();
  Hi(*client_, ClientHello("c"));
  client_->Send(Call("c", 1), "p1");
  ASSERT_TRUE(std::holds_alternative<Request>(server_->Next()));
  server_->Send(Response{"c", 1, ErrorCode::kOk}, "answer 1");
  ASSERT_EQ(ResponseSeq(client_->Next()), 1u);

  transport::Batch batch;
  batch.Add(Request{"c", 1, "echo", 1, 0, kRequestResend}, "p1");
  const Seq last = 1 + kReplayHoldInFlight;
  for (Seq seq = 2; seq <= last; ++seq) {
    batch.Add(Call("c", seq), "p" + std::to_string(seq));
  }
  client_->Send(batch);
  for (Seq seq = 2; seq <= last; ++seq) {
    Message m = server_->Next();
    ASSERT_TRUE(std::holds_alternative<Request>(m)) << "request " << seq;
  }
  ExpectHeldUntilTheNextAnswer();
}

TEST_F(ReplayHold, ZeroTurnsTheHoldOff) {
  BrokerOptions o = Options();
  o.replay_hold = 0ms;
  Setup(o, 1 + static_cast<int>(kReplayHoldInFlight));
  EXPECT_EQ(ResponseSeq(client_->Next()), 1u);
  EXPECT_EQ(broker_->stats().replays_held, 0u);
}

}  // namespace
}  // namespace rejoin::testing
