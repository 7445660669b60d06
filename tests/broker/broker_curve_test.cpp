// CURVE on the broker's links (docs/SECURITY.md): a real broker with a key
// pair and a keys file, real clients and servers with theirs. A peer with no
// key or a key the keys file does not list gets nothing at all; nothing of a
// session travels in clear; a reloaded keys file closes the connections of
// the keys it dropped, and one that does not parse changes nothing; without
// CURVE the broker binds loopback only unless told it is insecure.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include "broker/curve_fixture.h"
#include "support/tcp_tap.h"

namespace rejoin::testing {
namespace {

int PortOf(const std::string& endpoint) {
  return std::stoi(endpoint.substr(endpoint.rfind(':') + 1));
}

TEST_F(CurveBroker, RealClientAndServerCallOverCurve) {
  StartBroker();
  auto server = EchoServer();
  auto alice = Alice();
  ASSERT_TRUE(server && alice);
  VictimCallsWork(*alice, 20);
}

TEST_F(CurveBroker, PeerWithoutKeyGetsNothing) {
  StartBroker();
  auto server = EchoServer();
  auto alice = Alice();
  ASSERT_TRUE(server && alice);
  auto plain = Raw("");
  plain->Send(ClientHello("alice/s1"));
  plain->Send(Request{"alice/s1", 1, "echo", 1, 0, 0}, "forged");
  ExpectSilence(*plain);
  VictimCallsWork(*alice);
}

TEST_F(CurveBroker, KeyNotInKeysFileGetsNothing) {
  StartBroker();
  auto server = EchoServer();
  auto alice = Alice();
  ASSERT_TRUE(server && alice);
  auto stranger = Raw("stranger");
  stranger->Send(ClientHello("stranger/x"));
  ExpectSilence(*stranger);
  // Someone else's secret key is of no use without it: a peer that claims
  // alice's public key but holds another secret fails the handshake.
  transport::CurveKeys forged = RawKeys("stranger");
  forged.own.public_key = keys_.at("alice").public_key;
  RawEndpoint impostor(ctx_, broker_->bound_endpoint(), &forged);
  impostor.Send(ClientHello("alice/s2"));
  ExpectSilence(impostor);
  // The wrong broker key: the client cannot complete a handshake.
  transport::CurveKeys wrong_broker = RawKeys("alice");
  wrong_broker.broker_key = keys_.at("stranger").public_key;
  RawEndpoint misdirected(ctx_, broker_->bound_endpoint(), &wrong_broker);
  misdirected.Send(ClientHello("alice/s3"));
  ExpectSilence(misdirected);
  EXPECT_EQ(broker_->stats().sessions, 1u);  // alice/s1 only
  VictimCallsWork(*alice);
}

TEST_F(CurveBroker, EavesdropperSeesNoIdOrPayload) {
  StartBroker();
  auto server = EchoServer();
  ASSERT_TRUE(server);
  TcpTap tap(PortOf(broker_->bound_endpoint()));
  ClientOptions o = ClientOf("alice", "alice/sniffed-session");
  o.endpoint = tap.endpoint();
  auto client = Client::Open(o);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  auto r = (*client)->Call("echo", "payload-that-must-not-leak");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->payload, "alice:payload-that-must-not-leak");
  const std::string seen = tap.seen();
  EXPECT_GT(seen.size(), 200u);  // the tap did carry the session
  EXPECT_EQ(seen.find("sniffed-session"), std::string::npos);
  EXPECT_EQ(seen.find("payload-that-must-not-leak"), std::string::npos);
  EXPECT_EQ(seen.find("echo"), std::string::npos);
}

// The same tap on a broker without CURVE reads everything: the test above
// would see the ids if they were there.
TEST(CurveOff, EavesdropperReadsEverythingInClear) {
  TempDir dir;
  BrokerOptions bo;
  bo.endpoint = "tcp://127.0.0.1:*";
  bo.grace = 0ms;
  auto broker = Broker::Bind(bo);
  ASSERT_TRUE(broker.ok());
  (*broker)->Start();
  ServerOptions so;
  so.endpoint = (*broker)->bound_endpoint();
  so.server_id = "s1";
  so.durability = Durability::kMemory;
  ServiceOptions svc;
  svc.name = "echo";
  svc.handler = [](const RequestView& r) {
    return HandlerReply{ErrorCode::kOk, std::string(r.payload)};
  };
  auto server = Server::Open(so, {svc});
  ASSERT_TRUE(server.ok());
  TcpTap tap(PortOf((*broker)->bound_endpoint()));
  ClientOptions o;
  o.endpoint = tap.endpoint();
  o.session_id = "sniffed-session";
  o.journal_dir = dir.Sub("journal");
  o.default_deadline = 5s;
  auto client = Client::Open(o);
  ASSERT_TRUE(client.ok());
  auto r = (*client)->Call("echo", "payload-that-must-not-leak");
  ASSERT_TRUE(r.ok());
  const std::string seen = tap.seen();
  EXPECT_NE(seen.find("sniffed-session"), std::string::npos);
  EXPECT_NE(seen.find("payload-that-must-not-leak"), std::string::npos);
}

TEST_F(CurveBroker, RevokedKeyIsClosedAndRefused) {
  StartBroker();
  auto server = EchoServer();
  auto alice = Alice();
  ASSERT_TRUE(server && alice);
  VictimCallsWork(*alice, 1);  // alice and the server are welcomed
  auto mallory = Raw("mallory");
  Hi(*mallory, ClientHello("mallory/m1"));
  // alice's connection, the server's and mallory's.
  EXPECT_EQ(broker_->stats().connections, 3u);

  // mallory's key leaves the keys file.
  std::string text = DefaultKeysFile();
  const std::string line =
      "principal mallory key " + keys_.at("mallory").public_key + "\n";
  text.erase(text.find(line), line.size());
  text.erase(text.find("allow mallory call echo\n"),
             std::string("allow mallory call echo\n").size());
  WriteKeysFile(text);
  ASSERT_TRUE(broker_->ReloadKeys().ok());

  // Its connection is shut down at the broker's next turn; what it sends
  // after that reaches nobody, and a new connection fails its handshake.
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (broker_->stats().connections != 2 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(broker_->stats().connections, 2u);
  mallory->Send(Request{"mallory/m1", 1, "echo", 1, 0, 0}, "after");
  ExpectSilence(*mallory);
  auto again = Raw("mallory");
  again->Send(ClientHello("mallory/m2"));
  ExpectSilence(*again);
  VictimCallsWork(*alice);
}

TEST_F(CurveBroker, MalformedKeysFileOnReloadKeepsTheOldOne) {
  StartBroker();
  auto server = EchoServer();
  auto alice = Alice();
  ASSERT_TRUE(server && alice);
  WriteKeysFile("principal alice key not-a-key\n");
  const Status s = broker_->ReloadKeys();
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(s.message().find(":1:"), std::string::npos) << s.message();
  auto mallory = Raw("mallory");
  Hi(*mallory, ClientHello("mallory/m1"));
  VictimCallsWork(*alice);
}

TEST_F(CurveBroker, ReloadAddsAKey) {
  StartBroker();
  auto stranger = Raw("stranger");
  stranger->Send(ClientHello("stranger/x"));
  ExpectSilence(*stranger);
  WriteKeysFile(DefaultKeysFile() + "principal stranger key " +
                keys_.at("stranger").public_key + "\n");
  ASSERT_TRUE(broker_->ReloadKeys().ok());
  // libzmq reconnects the refused peer on its own; its next handshake is
  // let in and the queued HELLO answered.
  auto later = Raw("stranger");
  Hi(*later, ClientHello("stranger/y"));
}

TEST(BrokerBind, NonLoopbackWithoutCurveNeedsInsecure) {
  BrokerOptions o;
  o.endpoint = "tcp://0.0.0.0:*";
  auto refused = Broker::Bind(o);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("loopback"), std::string::npos);
  o.insecure = true;
  auto allowed = Broker::Bind(o);
  EXPECT_TRUE(allowed.ok()) << allowed.status().ToString();
  o.insecure = false;
  o.endpoint = "tcp://127.0.0.1:*";
  EXPECT_TRUE(Broker::Bind(o).ok());
  o.endpoint = "tcp://[::1]:*";
  auto v6 = Broker::Bind(o);
  EXPECT_TRUE(v6.ok() || v6.status().code() == ErrorCode::kIoError);
}

TEST_F(CurveBroker, BindNeedsBothKeyFiles) {
  BrokerOptions o = Options();
  o.keys_file.clear();
  auto b = Broker::Bind(o);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), ErrorCode::kInvalidArgument);
  o = Options();
  WriteKeysFile("allow nobody call echo\n");
  b = Broker::Bind(o);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("keys:1:"), std::string::npos)
      << b.status().message();
}

TEST_F(CurveBroker, ClientWithABadKeyFileFailsToOpen) {
  StartBroker();
  ClientOptions o;
  o.endpoint = broker_->bound_endpoint();
  o.session_id = "alice/s1";
  o.journal_dir = dir_.Sub("journal-bad");
  o.curve = CurveOptions{KeyFile("alice") + ".pub", KeyFile("broker")};
  auto c = Client::Open(o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace rejoin::testing
