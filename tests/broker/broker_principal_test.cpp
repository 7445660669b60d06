// Attacks by authenticated peers (docs/SECURITY.md): each hostile peer has a
// valid key of its own principal and a raw socket. The victim is alice's
// real client session and echosrv's real server; every test ends with the
// victim's calls answered as before.
#include <gtest/gtest.h>

#include <chrono>
#include <limits>
#include <string>
#include <thread>
#include <variant>

#include "broker/curve_fixture.h"

namespace rejoin::testing {
namespace {

// A HELLO naming alice's session, whatever journal id, from another
// principal: refused, so mallory can neither hold the id (the victim's
// calls would time out) nor collect its stored answers.
TEST_F(CurveBroker, HelloForAnotherPrincipalsSessionIsRefused) {
  StartBroker();
  auto server = EchoServer();
  ASSERT_TRUE(server);
  {
    auto alice = Alice();
    ASSERT_TRUE(alice);
    VictimCallsWork(*alice, 3);
  }  // alice goes offline
  auto mallory = Raw("mallory");
  for (JournalId journal : {JournalId{1}, JournalId{42}, JournalId{7777}}) {
    mallory->Send(ClientHello("alice/s1", journal));
    ExpectError(*mallory, ErrorCode::kNotAuthorized);
  }
  // A session id with no principal in front is nobody's: refused as well.
  mallory->Send(ClientHello("s1"));
  ExpectError(*mallory, ErrorCode::kNotAuthorized);
  // Its own namespace is open to it.
  Hi(*mallory, ClientHello("mallory/s1"));
  auto alice = Alice();
  ASSERT_TRUE(alice);
  VictimCallsWork(*alice);
}

// A sniffed journal id with incarnation 2^64-1 would fence the real client
// out until the broker restarts: from another principal it is refused
// before the fencing rule is looked at.
TEST_F(CurveBroker, FencingAnotherPrincipalsSessionIsRefused) {
  StartBroker();
  auto server = EchoServer();
  auto alice = Alice();
  ASSERT_TRUE(server && alice);
  VictimCallsWork(*alice, 1);
  auto mallory = Raw("mallory");
  mallory->Send(ClientHello("alice/s1", /*journal=*/1,
                            std::numeric_limits<Incarnation>::max()));
  ExpectError(*mallory, ErrorCode::kNotAuthorized);
  alice.reset();
  // The victim comes back on the same journal and is welcomed.
  alice = Alice();
  ASSERT_TRUE(alice);
  VictimCallsWork(*alice);
}

TEST_F(CurveBroker, AckForAnotherPrincipalsSessionIsRefused) {
  StartBroker();
  auto server = EchoServer();
  auto alice = Alice();
  ASSERT_TRUE(server && alice);
  VictimCallsWork(*alice, 2);
  auto mallory = Raw("mallory");
  Hi(*mallory, ClientHello("mallory/s1"));
  mallory->Send(Ack{"alice/s1", std::numeric_limits<Seq>::max() - 1, {}});
  ExpectError(*mallory, ErrorCode::kNotAuthorized);
  mallory->Send(Request{"alice/s1", 3, "echo", 1, 0, 0}, "forged");
  ExpectError(*mallory, ErrorCode::kNotAuthorized);
  VictimCallsWork(*alice);
}

// The holder itself: an ACK above anything the session issued is refused
// and changes nothing (PROTOCOL.md §4.5).
TEST_F(CurveBroker, HugeAckFromTheHolderDoesNotPoisonTheSession) {
  StartBroker();
  auto server = EchoServer();
  ASSERT_TRUE(server);
  auto own = Raw("alice");
  Hi(*own, ClientHello("alice/raw"));
  own->Send(Ack{"alice/raw", std::numeric_limits<Seq>::max() - 1, {}});
  ExpectError(*own, ErrorCode::kProtocolViolation);
  own->Send(Request{"alice/raw", 1, "echo", 1, 0, 0}, "still works");
  Message m = own->Next();
  const auto* resp = std::get_if<Response>(&m);
  ASSERT_NE(resp, nullptr) << static_cast<int>(TypeOf(m));
  EXPECT_EQ(resp->status, ErrorCode::kOk);
  EXPECT_EQ(own->payload(), "alice:still works");
}

// A process that registers as a server for echo without the right to
// serve it is refused; every call of the victim reaches the real server.
TEST_F(CurveBroker, ServerHelloForAServiceItMayNotServeIsRefused) {
  StartBroker();
  auto server = EchoServer();
  auto alice = Alice();
  ASSERT_TRUE(server && alice);
  auto evil = Raw("evilsrv");
  evil->Send(ServerHello("evilsrv/1", "echo"));
  ExpectError(*evil, ErrorCode::kNotAuthorized);
  // Nor may it take the real server's id.
  evil->Send(ServerHello("echosrv/1", "other"));
  ExpectError(*evil, ErrorCode::kNotAuthorized);
  VictimCallsWork(*alice, 20);
  ExpectSilence(*evil, 100ms);  // not one request reached it
}

// A server of another service answers an operation queued for echo (no
// echo server yet) with a forged OK: dropped; the real server's answer is
// the one the caller gets.
TEST_F(CurveBroker,
       ResponseFromAServerTheOperationWasNotDispatchedToIsDropped) {
  StartBroker();
  auto evil = Raw("evilsrv");
  Hi(*evil, ServerHello("evilsrv/1", "other"));
  auto alice = Alice();
  ASSERT_TRUE(alice);
  auto pending = alice->CallFuture("echo", "queued", 10s);
  // The REQUEST is queued at the broker (no echo server): forge its answer
  // for the first seqs.
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  bool queued = false;
  while (!queued && std::chrono::steady_clock::now() < deadline) {
    auto st = broker_->status();
    ASSERT_TRUE(st.ok());
    for (const ServiceStatus& svc : st->services) {
      queued = queued || (svc.name == "echo" && svc.queued == 1);
    }
  }
  ASSERT_TRUE(queued);
  // The attacker knows the seq (the worst case: it was sniffed before the
  // links were encrypted).
  const auto ops = alice->ListOperations();
  ASSERT_EQ(ops.size(), 1u);
  evil->Send(Response{"alice/s1", ops[0].seq, ErrorCode::kOk}, "forged");
  auto server = EchoServer();
  ASSERT_TRUE(server);
  auto r = pending.get();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, ErrorCode::kOk);
  EXPECT_EQ(r->payload, "alice:queued");
  VictimCallsWork(*alice);
}

// A server's STATE_EXCHANGE claims alice's next seq (as if it held it), to
// capture the request when it comes: with a keys file a server reports only
// what it may serve and nothing the client has not issued.
TEST_F(CurveBroker, StateExchangeCannotClaimAnotherSessionsRequests) {
  StartBroker();
  auto server = EchoServer();
  auto alice = Alice();
  ASSERT_TRUE(server && alice);
  VictimCallsWork(*alice, 2);
  // The attacker knows the session's next seqs (the worst case: sniffed
  // before the links were encrypted).
  auto last = alice->Call("echo", "call-0");
  ASSERT_TRUE(last.ok()) << last.status().ToString();
  const Seq next = last->seq + 1;
  auto evil = Raw("evilsrv");
  Hello hello = ServerHello("evilsrv/1", "other");
  hello.incarnation = 2;  // a returning server, which reports
  Hi(*evil, hello);
  StateExchange se;
  se.role = Role::kServer;
  ServerVector sv;
  sv.server = "evilsrv/1";
  sv.incarnation = 2;
  sv.journal_id = 99;
  sv.session = "alice/s1";
  for (Seq seq = next; seq < next + 4; ++seq) {
    sv.held.push_back(HeldOp{seq, ServerOpState::kReceived, 1});
  }
  se.servers.push_back(sv);
  evil->Send(se);
  VictimCallsWork(*alice, 4);  // the seqs claimed
  // Whatever the broker asked of it, no REQUEST reached it.
  for (;;) {
    Message m = evil->Next(200ms);
    if (std::holds_alternative<Goodbye>(m)) break;
    EXPECT_FALSE(std::holds_alternative<Request>(m));
  }
}

// A REQUEST for a service its principal may not call is answered
// not_authorized (and the session goes on).
TEST_F(CurveBroker, CallOfAServiceThePrincipalMayNotCallIsNotAuthorized) {
  StartBroker();
  auto server = EchoServer();
  auto alice = Alice();
  ASSERT_TRUE(server && alice);
  auto r = alice->Call("other", "x");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, ErrorCode::kNotAuthorized);
  VictimCallsWork(*alice);
  EXPECT_GE(broker_->stats().not_authorized, 1u);
}

// A real client whose session id is outside its principal's namespace (a
// misconfiguration, or a hostile program built on the library): its HELLO
// is refused not_authorized, its calls fail with that code at once instead
// of at their deadlines, and it asks again only about once a second.
TEST_F(CurveBroker, ClientRefusedNotAuthorizedIsToldAtOnceAndAsksRarely) {
  StartBroker();
  auto server = EchoServer();
  auto alice = Alice();
  ASSERT_TRUE(server && alice);
  ClientOptions o = ClientOf("mallory", "alice/s1");
  o.journal_dir = dir_.Sub("journal-mallory");
  o.heartbeat = 200ms;
  o.default_deadline = 30s;
  auto opened = Client::Open(o);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  std::unique_ptr<Client> mallory = std::move(*opened);
  for (int i = 0; i < 3; ++i) {
    auto r = mallory->Call("echo", "forged-" + std::to_string(i));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), ErrorCode::kNotAuthorized)
        << r.status().ToString();
  }
  const std::uint64_t refused = broker_->stats().not_authorized;
  std::this_thread::sleep_for(1500ms);
  // At most two more HELLOs in 1.5 s (one per second, plus jitter), where a
  // retry at the pace of other refusals would be a dozen.
  EXPECT_LE(broker_->stats().not_authorized, refused + 2);
  VictimCallsWork(*alice);
}

// A real server refused a service it may not serve asks again rarely and is
// admitted once the keys file allows it (SIGHUP, here ReloadKeys): the call
// queued meanwhile is then answered by it.
TEST_F(CurveBroker, ServerRefusedAServiceIsAdmittedOnceTheKeysFileAllowsIt) {
  StartBroker();
  auto alice = Alice();
  ASSERT_TRUE(alice);
  ServerOptions o = ServerOf("evilsrv", "evilsrv/1");
  o.heartbeat = 200ms;
  std::unique_ptr<Server> late = OpenServer(o, "echo", "late:");
  ASSERT_TRUE(late);
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (broker_->stats().not_authorized == 0 &&
         std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_GE(broker_->stats().not_authorized, 1u);
  EXPECT_EQ(broker_->stats().servers, 0u);
  std::string text = DefaultKeysFile();
  text += "allow evilsrv serve echo\n";
  WriteKeysFile(text);
  ASSERT_TRUE(broker_->ReloadKeys().ok());
  auto r = alice->Call("echo", "queued", 10s);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, ErrorCode::kOk);
  EXPECT_EQ(r->payload, "late:queued");
}

}  // namespace
}  // namespace rejoin::testing
