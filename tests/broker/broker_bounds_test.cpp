// Bounds on what one peer can make the broker keep (FLOWS.md §10): each
// flood comes from a hand-made endpoint (support/raw_endpoint.h) against an
// in-process broker with small limits, and must get ERROR limit_exceeded,
// move its counter, and leave a canary client's calls working.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <variant>
#include <vector>
#include <zmq.hpp>

#include "e2e/harness.h"
#include "rejoin/broker/broker.h"
#include "rejoin/client/client.h"
#include "rejoin/server/server.h"
#include "support/raw_endpoint.h"

namespace rejoin::testing {
namespace {

using namespace std::chrono_literals;

class BrokerBounds : public ::testing::Test {
 protected:
  static BrokerOptions Options() {
    BrokerOptions o;
    o.endpoint = "tcp://127.0.0.1:*";
    o.heartbeat = 2000ms;
    o.probe = 1000ms;
    o.grace = 0ms;
    o.lease = 5000ms;
    return o;
  }
  void StartBroker(BrokerOptions o) {
    auto b = Broker::Bind(o);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    broker_ = std::move(*b);
    broker_->Start();
    ServerOptions so;
    so.endpoint = broker_->bound_endpoint();
    so.server_id = "canary-server";
    so.durability = Durability::kMemory;
    ServiceOptions svc;
    svc.name = "canary";
    svc.handler = [](const RequestView& r) {
      return HandlerReply{ErrorCode::kOk, "re:" + std::string(r.payload)};
    };
    auto s = Server::Open(so, {svc});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    canary_server_ = std::move(*s);
  }
  std::unique_ptr<RawEndpoint> Connect() {
    return std::make_unique<RawEndpoint>(ctx_, broker_->bound_endpoint());
  }
  // A fresh canary client makes `n` calls: each must succeed.
  void CanaryCalls(const std::string& session, int n = 3) {
    ClientOptions o;
    o.endpoint = broker_->bound_endpoint();
    o.session_id = session;
    o.journal_dir = dir_.Sub("client-" + session);
    o.resend_delay = 100ms;
    o.default_deadline = 5s;
    auto c = Client::Open(o);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    for (int i = 0; i < n; ++i) {
      auto r = (*c)->Call("canary", "c" + std::to_string(i));
      ASSERT_TRUE(r.ok()) << session << ": " << r.status().ToString();
      EXPECT_EQ(r->status, ErrorCode::kOk);
      EXPECT_EQ(r->payload, "re:c" + std::to_string(i));
    }
  }
  // Reads until an ERROR limit_exceeded arrives (other messages skipped).
  static bool SawLimitExceeded(RawEndpoint& e,
                               std::chrono::milliseconds wait = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + wait;
    while (std::chrono::steady_clock::now() < deadline) {
      Message m = e.Next(200ms);
      const auto* err = std::get_if<Error>(&m);
      if (err != nullptr && err->code == ErrorCode::kLimitExceeded) return true;
    }
    return false;
  }
  static Hello ClientHello(const std::string& id) {
    return Hello{Role::kClient, id, 1, 42, 0, {}};
  }
  static Hello ServerHello(const std::string& id, const std::string& service) {
    return Hello{Role::kServer, id, 1, 99, 0, {ServiceSpec{service, 1}}};
  }
  void Hi(RawEndpoint& e, const Hello& hello) {
    e.Send(hello);
    Message m = e.Next();
    ASSERT_TRUE(std::holds_alternative<Welcome>(m))
        << "HELLO of " << hello.id << " not welcomed";
  }

  TempDir dir_;
  zmq::context_t ctx_;
  std::unique_ptr<Broker> broker_;
  std::unique_ptr<Server> canary_server_;
};

// HELLOs with ever new session ids from one connection: the connection's
// quota refuses them long before the table is full, and new clients on
// other connections are still welcomed while the flooder stays connected.
TEST_F(BrokerBounds, HelloFloodFromOneConnectionHitsItsQuotaOnly) {
  BrokerOptions o = Options();
  o.max_sessions_per_connection = 50;
  o.max_sessions = 200;
  StartBroker(o);
  auto flooder = Connect();
  for (int i = 0; i < 500; ++i) {
    flooder->Send(ClientHello("flood-" + std::to_string(i)));
  }
  EXPECT_TRUE(SawLimitExceeded(*flooder));
  ASSERT_TRUE(WaitFor(
      [&] { return broker_->stats().refused_session_quota >= 450; }, 5s));
  EXPECT_LE(broker_->stats().sessions, 60u);
  CanaryCalls("canary-a");
  CanaryCalls("canary-b");
}

// A server's STATE_EXCHANGE naming many sessions: only its quota of them is
// tracked (they count against max_sessions), the server is told, and those
// whose client never comes expire.
TEST_F(BrokerBounds, ServerReportFloodIsCappedAndExpires) {
  BrokerOptions o = Options();
  o.max_reported_sessions_per_server = 100;
  o.max_sessions = 300;
  o.reported_session_expiry = 300ms;
  o.heartbeat = 100ms;  // expiry is checked every half heartbeat
  StartBroker(o);
  auto server = Connect();
  Hi(*server, Hello{Role::kServer, "liar", 2, 77, 5, {ServiceSpec{"x", 1}}});
  StateExchange se;
  se.role = Role::kServer;
  se.last = true;
  for (int i = 0; i < 2000; ++i) {
    ServerVector sv{"liar", 2,
                    77,     "ghost-" + std::to_string(i),
                    1,      {HeldOp{1, ServerOpState::kExecuted, 1}}};
    se.servers.push_back(sv);
  }
  server->Send(se);
  // The raw server sends no heartbeats: keep it alive while it waits.
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  bool refused = false;
  while (!refused && std::chrono::steady_clock::now() < deadline) {
    server->Send(Heartbeat{0});
    Message m = server->Next(50ms);
    const auto* err = std::get_if<Error>(&m);
    refused = err != nullptr && err->code == ErrorCode::kLimitExceeded;
  }
  EXPECT_TRUE(refused);
  EXPECT_EQ(broker_->stats().refused_reported_sessions, 1u);
  EXPECT_LE(broker_->stats().sessions, 101u);  // the canary's, and 100
  CanaryCalls("canary-during");
  ASSERT_TRUE(WaitFor(
      [&] {
        server->Send(Heartbeat{0});
        return broker_->stats().expired_reported_sessions >= 100;
      },
      10s));
  CanaryCalls("canary-after");
}

// A client that never acknowledges: once the answers it has not
// acknowledged reach the session's bound, its new REQUESTs are refused with
// ERROR limit_exceeded, and the broker keeps no more of its bytes.
TEST_F(BrokerBounds, NeverAcknowledgingClientIsRefusedAtItsBound) {
  BrokerOptions o = Options();
  o.max_session_unacked = 10;
  o.max_session_bytes = 1 << 20;
  StartBroker(o);
  auto server = Connect();
  Hi(*server, ServerHello("s1", "big"));
  auto hog = Connect();
  Hi(*hog, ClientHello("hog"));
  const std::string big(64 * 1024, 'x');
  for (Seq seq = 1; seq <= 10; ++seq) {
    hog->Send(Request{"hog", seq, "big", 1, 0, 0}, "q");
    // The server answers with 64 KiB; the client never acknowledges.
    Message m = server->Next();
    const auto* req = std::get_if<Request>(&m);
    ASSERT_NE(req, nullptr);
    server->Send(Response{req->session, req->seq, ErrorCode::kOk}, big);
    Message r = hog->Next();
    ASSERT_TRUE(std::holds_alternative<Response>(r));
  }
  int refusals = 0;
  for (Seq seq = 11; seq <= 40; ++seq) {
    hog->Send(Request{"hog", seq, "big", 1, 0, 0}, "q");
    Message r = hog->Next();
    const auto* err = std::get_if<Error>(&r);
    if (err != nullptr && err->code == ErrorCode::kLimitExceeded) ++refusals;
  }
  EXPECT_EQ(refusals, 30);
  const BrokerStats s = broker_->stats();
  EXPECT_EQ(s.refused_unacked, 30u);
  EXPECT_LE(s.retained_bytes, 11u * (64 * 1024 + 256));
  CanaryCalls("canary");
  // An ACK frees the room: the next call goes through.
  hog->Send(Ack{"hog", 11, {}});
  hog->Send(Request{"hog", 41, "big", 11, 0, 0}, "q");
  Message m = server->Next();
  if (std::holds_alternative<Ack>(m)) m = server->Next();  // forwarded
  const auto* req = std::get_if<Request>(&m);
  ASSERT_NE(req, nullptr) << static_cast<int>(TypeOf(m));
  EXPECT_EQ(req->seq, 41u);
}

// A service whose only server never answers: its queue is bounded in bytes,
// the flooder is refused, and other services are served.
TEST_F(BrokerBounds, QueueOfAStuckServiceIsBoundedInBytes) {
  BrokerOptions o = Options();
  o.max_queue_bytes = 1 << 20;
  StartBroker(o);
  auto server = Connect();
  Hi(*server, ServerHello("stuck", "stuck"));  // credit 1, never answers
  auto flooder = Connect();
  const std::string chunk(128 * 1024, 'q');
  int refusals = 0;
  for (int i = 0; i < 40; ++i) {
    // HELLO and REQUEST back to back: the broker handles them in order.
    const std::string sid = "f" + std::to_string(i);
    flooder->Send(ClientHello(sid));
    flooder->Send(Request{sid, 1, "stuck", 1, 0, 0}, chunk);
  }
  // One at the server, under 1 MiB queued, the rest refused.
  // Everything the broker answers, until it has been quiet for 300 ms.
  for (;;) {
    Message m = flooder->Next(300ms);
    if (const auto* g = std::get_if<Goodbye>(&m); g && g->reason == "timeout") {
      break;
    }
    const auto* err = std::get_if<Error>(&m);
    if (err != nullptr && err->code == ErrorCode::kLimitExceeded) ++refusals;
  }
  EXPECT_GE(refusals, 40 - 9);
  EXPECT_EQ(broker_->stats().refused_queue_bytes,
            static_cast<std::uint64_t>(refusals));
  EXPECT_LE(broker_->stats().retained_bytes, (1u << 20) + 2 * chunk.size());
  CanaryCalls("canary");
}

// The overall memory budget: new REQUESTs are refused once the broker keeps
// that many bytes, and the canary's small calls still pass once it is below.
TEST_F(BrokerBounds, MemoryBudgetRefusesNewRequests) {
  BrokerOptions o = Options();
  o.max_memory_bytes = 2 << 20;
  StartBroker(o);
  auto server = Connect();
  Hi(*server, ServerHello("slow", "slow"));
  auto hog = Connect();
  const std::string chunk(256 * 1024, 'm');
  for (int i = 0; i < 20; ++i) {
    const std::string sid = "m" + std::to_string(i);
    hog->Send(ClientHello(sid));
    hog->Send(Request{sid, 1, "slow", 1, 0, 0}, chunk);
  }
  EXPECT_TRUE(SawLimitExceeded(*hog));
  ASSERT_TRUE(
      WaitFor([&] { return broker_->stats().refused_memory >= 10; }, 5s));
  EXPECT_LE(broker_->stats().retained_bytes, (2u << 20) + 4096);
  hog.reset();
  server.reset();
}

}  // namespace
}  // namespace rejoin::testing
