// The broker against peers that break their promises, driven by hand-made
// endpoints (support/raw_endpoint.h) beside real clients and servers, with an
// in-process broker on loopback: an operation whose probe keeps getting the
// same answer is decided in the end instead of probed for ever; an ACK
// above what the session issued is refused without changing the session;
// peer text cannot forge log lines; malformed endpoints are refused.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <sstream>
#include <string>
#include <variant>
#include <zmq.hpp>

#include "e2e/harness.h"
#include "rejoin/broker/broker.h"
#include "rejoin/broker/fault_injection.h"
#include "rejoin/client/client.h"
#include "rejoin/proto/breakpoint.h"
#include "rejoin/server/server.h"
#include "support/raw_endpoint.h"

namespace rejoin::testing {
namespace {

using namespace std::chrono_literals;

class BrokerGuard : public ::testing::Test {
 protected:
  // Hand-made endpoints send no heartbeats: a long interval keeps them
  // alive. No grace period: requests are dispatched at once.
  static BrokerOptions Options() {
    BrokerOptions o;
    o.endpoint = "tcp://127.0.0.1:*";
    o.heartbeat = 2000ms;
    o.probe = 10ms;
    o.grace = 0ms;
    o.lease = 2000ms;
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
  static Hello ClientHello(const std::string& id, JournalId journal = 42) {
    return Hello{Role::kClient, id, 1, journal, 0, {}};
  }
  static Hello ServerHello(const std::string& id) {
    return Hello{Role::kServer, id, 1, 99, 0, {ServiceSpec{"echo", 64}}};
  }
  void Hi(RawEndpoint& e, const Hello& hello) {
    e.Send(hello);
    Message m = e.Next();
    const auto* w = std::get_if<Welcome>(&m);
    ASSERT_NE(w, nullptr) << "HELLO of " << hello.id << " not welcomed";
  }
  // A real in-memory server for service "echo" on the broker.
  std::unique_ptr<Server> RealServer(const std::string& id) {
    ServerOptions o;
    o.endpoint = broker_->bound_endpoint();
    o.server_id = id;
    o.durability = Durability::kMemory;
    o.heartbeat = 2000ms;
    ServiceOptions svc;
    svc.name = "echo";
    svc.handler = [](const RequestView& r) {
      return HandlerReply{ErrorCode::kOk, "re:" + std::string(r.payload)};
    };
    auto s = Server::Open(o, {svc});
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }
  std::unique_ptr<Client> RealClient(const std::string& session) {
    ClientOptions o;
    o.endpoint = broker_->bound_endpoint();
    o.session_id = session;
    o.journal_dir = dir_.Sub("client-" + session);
    o.heartbeat = 2000ms;
    o.resend_delay = 100ms;
    o.default_deadline = 5s;
    auto c = Client::Open(o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(*c) : nullptr;
  }

  TempDir dir_;
  zmq::context_t ctx_;
  std::unique_ptr<Broker> broker_;
};

// An operation SENT at the client and RELEASED at the server (a server that
// keeps ignoring the RECOVER it is sent): after kMaxSameProbeAnswers equal
// answers the broker answers the client in_doubt and probes no more.
TEST_F(BrokerGuard, ProbeWithTheSameAnswerEndsInDoubt) {
  StartBroker();
  auto server = Connect();
  Hi(*server, ServerHello("s1"));
  auto client = Connect();
  Hi(*client, ClientHello("stuck"));
  client->Send(Request{"stuck", 5, "echo", 1, 0, 0}, "lost-outcome");
  Message first = server->Next();
  ASSERT_TRUE(std::holds_alternative<Request>(first));
  int probes = 0;
  bool answered = false;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!answered && std::chrono::steady_clock::now() < deadline) {
    Message m = server->Next(20ms);
    if (const auto* p = std::get_if<Probe>(&m)) {
      ++probes;
      // Released: everything below seq 6 is gone at this server.
      ServerVector sv{"s1", 1, 99, "stuck", 6, {}};
      server->Send(ProbeReply{p->probe_id, Role::kServer, {}, {sv}});
    }
    Message r = client->Next(1ms);
    if (const auto* resp = std::get_if<Response>(&r)) {
      EXPECT_EQ(resp->seq, 5u);
      EXPECT_EQ(resp->status, ErrorCode::kInDoubt);
      answered = true;
    }
  }
  ASSERT_TRUE(answered) << "probed " << probes << " times, never decided";
  EXPECT_GE(probes, static_cast<int>(kMaxSameProbeAnswers));
  EXPECT_EQ(broker_->stats().probes_ended, 1u);
  // No more probes for it.
  const std::uint64_t probes_then = broker_->stats().probes;
  Message later = server->Next(200ms);
  EXPECT_FALSE(std::holds_alternative<Probe>(later));
  EXPECT_EQ(broker_->stats().probes, probes_then);
}

// A handler still running is answered `wait` however often it is probed.
TEST_F(BrokerGuard, ProbeOfARunningHandlerNeverEnds) {
  StartBroker();
  auto server = Connect();
  Hi(*server, ServerHello("s1"));
  auto client = Connect();
  Hi(*client, ClientHello("long"));
  client->Send(Request{"long", 1, "echo", 1, 0, 0}, "long-one");
  Message first = server->Next();
  ASSERT_TRUE(std::holds_alternative<Request>(first));
  // Past the point where repeated answers would end any other probe; the
  // probes come ever less often (each waits twice the one before, up to 32
  // probe delays), and the client keeps its connection alive meanwhile.
  int probes = 0;
  while (probes < static_cast<int>(kMaxSameProbeAnswers) + 2) {
    Message m = server->Next(2s);
    const auto* p = std::get_if<Probe>(&m);
    ASSERT_NE(p, nullptr);
    ++probes;
    client->Send(Heartbeat{0});
    ServerVector sv{"s1",   1, 99,
                    "long", 1, {HeldOp{1, ServerOpState::kReceived, 1}}};
    server->Send(ProbeReply{p->probe_id, Role::kServer, {}, {sv}});
  }
  server->Send(Response{"long", 1, ErrorCode::kOk}, "done");
  Message r = client->Next();
  const auto* resp = std::get_if<Response>(&r);
  ASSERT_NE(resp, nullptr);
  EXPECT_EQ(resp->status, ErrorCode::kOk);
  EXPECT_EQ(client->payload(), "done");
  EXPECT_EQ(broker_->stats().probes_ended, 0u);
}

// An ACK confirming seqs the session never issued is refused with ERROR
// protocol_violation and reaches no server; a real client of the same
// session goes on working afterwards.
TEST_F(BrokerGuard, AckAboveHighestSeqIsRefusedAndSessionKeepsWorking) {
  StartBroker();
  auto server = RealServer("s1");
  ASSERT_NE(server, nullptr);
  Seq issued = 0;
  {
    auto client = RealClient("victim");
    ASSERT_NE(client, nullptr);
    auto r = client->Call("echo", "one");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    issued = r->seq;
  }  // GOODBYE: the session is free for another process
  auto raw = Connect();
  Hi(*raw, ClientHello("victim", 7));
  // Far above anything issued: at a server it would release every seq the
  // session will ever use.
  raw->Send(Ack{"victim", issued + 1000000, {}});
  Message m = raw->Next();
  const auto* err = std::get_if<Error>(&m);
  ASSERT_NE(err, nullptr) << "ACK above the highest seq not refused, got "
                          << static_cast<int>(TypeOf(m));
  EXPECT_EQ(err->code, ErrorCode::kProtocolViolation);
  EXPECT_EQ(err->session, "victim");
  raw->Send(Ack{"victim", 1, {issued + 1}});
  m = raw->Next();
  err = std::get_if<Error>(&m);
  ASSERT_NE(err, nullptr);
  EXPECT_EQ(err->code, ErrorCode::kProtocolViolation);
  EXPECT_EQ(broker_->stats().protocol_violations, 2u);
  raw->Send(Goodbye{"", "victim"});
  raw.reset();

  auto client = RealClient("victim");
  ASSERT_NE(client, nullptr);
  for (int i = 0; i < 3; ++i) {
    auto r = client->Call("echo", "after-" + std::to_string(i));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->status, ErrorCode::kOk);
    EXPECT_EQ(r->payload, "re:after-" + std::to_string(i));
  }
}

// An ERROR whose message carries a newline and terminal escapes is logged on
// one line with those bytes escaped.
TEST_F(BrokerGuard, PeerTextCannotForgeLogLines) {
  std::ostringstream log;
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>(
      "capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(log)));
  StartBroker();
  auto peer = Connect();
  Hi(*peer, ClientHello("forger"));
  peer->Send(Error{ErrorCode::kInternal,
                   "oops\n[2026-01-01 00:00:00.000] [error] forged line\x1b[2J",
                   0,
                   {},
                   0});
  // Handled in order: once the broker refuses the WELCOME sent after the
  // ERROR, the ERROR has been logged.
  peer->Send(Welcome{});
  Message m = peer->Next();
  ASSERT_TRUE(std::holds_alternative<Error>(m));
  broker_.reset();  // joins the broker's thread
  spdlog::set_default_logger(previous);
  const std::string text = log.str();
  ASSERT_NE(text.find("peer reported"), std::string::npos) << text;
  EXPECT_EQ(text.find('\x1b'), std::string::npos) << text;
  EXPECT_NE(text.find("oops\\x0a[2026"), std::string::npos) << text;
  EXPECT_NE(text.find("\\x1b[2J"), std::string::npos) << text;
  // Every line of the log is one the broker wrote: none starts with the
  // forged text.
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    EXPECT_EQ(line.rfind("[2026-01-01", 0), std::string::npos) << line;
  }
}

// tcp://127.0.0.1:99999 used to bind another port: the broker, the client
// and the server refuse it (and other malformed tcp endpoints) at once.
TEST_F(BrokerGuard, EndpointWithPortOutOfRangeIsRefusedEverywhere) {
  BrokerOptions o = Options();
  o.endpoint = "tcp://127.0.0.1:99999";
  auto b = Broker::Bind(o);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(b.status().message().find("99999"), std::string::npos);

  ClientOptions c;
  c.endpoint = "tcp://127.0.0.1:99999";
  c.session_id = "nowhere";
  c.journal_dir = dir_.Sub("nowhere");
  auto client = Client::Open(c);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), ErrorCode::kInvalidArgument);

  ServerOptions so;
  so.endpoint = "tcp://127.0.0.1:70000";
  so.server_id = "nowhere";
  so.durability = Durability::kMemory;
  ServiceOptions svc;
  svc.name = "echo";
  svc.handler = [](const RequestView&) { return HandlerReply{}; };
  auto server = Server::Open(so, {svc});
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), ErrorCode::kInvalidArgument);
}

// Losses are injected by the broker's shell (Broker::Bind with a
// FaultInjection), never through BrokerOptions: a REQUEST dropped on its way
// out reaches no server and is counted.
TEST_F(BrokerGuard, InjectedFaultDropsAnEnvelopeAndCountsIt) {
  FaultInjection certain_loss;
  certain_loss.loss = 1.0;
  auto refused = Broker::Bind(Options(), certain_loss);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), ErrorCode::kInvalidArgument);

  FaultInjection faults;
  faults.fault = [](const FaultPoint& p) {
    return p.where == FaultPoint::Where::kLeaving &&
           p.type == MessageType::kRequest && p.seq == 1;
  };
  auto b = Broker::Bind(Options(), std::move(faults));
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  broker_ = std::move(*b);
  broker_->Start();
  auto server = Connect();
  Hi(*server, ServerHello("srv"));
  auto client = Connect();
  Hi(*client, ClientHello("c1"));
  client->Send(Request{"c1", 1, "echo", 1, 0, 0}, "lost");
  client->Send(Request{"c1", 2, "echo", 1, 0, 0}, "kept");
  // The first REQUEST the server gets is seq 2 (probes of seq 1 may come
  // before it).
  const Request* got = nullptr;
  Message m;
  for (int i = 0; i < 100 && got == nullptr; ++i) {
    m = server->Next();
    got = std::get_if<Request>(&m);
  }
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(got->seq, 2u);
  EXPECT_EQ(broker_->stats().injected_drops, 1u);
}

}  // namespace
}  // namespace rejoin::testing
