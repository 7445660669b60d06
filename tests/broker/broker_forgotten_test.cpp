// What the broker does with a REQUEST it does not track for a session it
// forgot while a server still held its operations (FLOWS.md §10,
// forgotten.h), and with a REQUEST that reuses the seq of an answer it keeps
// for another request (PROTOCOL.md §4.3, `conflict`). Hand-made servers and
// clients (support/raw_endpoint.h) against an in-process broker.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>
#include <zmq.hpp>

#include "e2e/harness.h"
#include "rejoin/broker/broker.h"
#include "support/raw_endpoint.h"

namespace rejoin::testing {
namespace {

using namespace std::chrono_literals;

constexpr JournalId kJournal1 = 77;
constexpr JournalId kJournal2 = 88;

class ForgottenSessions : public ::testing::Test {
 protected:
  void SetUp() override {
    BrokerOptions o;
    o.endpoint = "tcp://127.0.0.1:*";
    o.heartbeat = 100ms;  // expiry is checked every half heartbeat
    o.probe = 2000ms;
    o.grace = 0ms;
    o.lease = 5000ms;
    o.reported_session_expiry = 300ms;
    o.max_reported_sessions_per_server = 1;
    auto b = Broker::Bind(o);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    broker_ = std::move(*b);
    broker_->Start();
  }

  std::unique_ptr<RawEndpoint> Connect() {
    return std::make_unique<RawEndpoint>(ctx_, broker_->bound_endpoint());
  }
  // A returning server (so that its report is taken) serving "pay", which
  // is not idempotent.
  std::unique_ptr<RawEndpoint> ReturningServer(const std::string& id,
                                               JournalId journal) {
    auto e = Connect();
    e->Send(Hello{Role::kServer, id, 2, journal, 5, {ServiceSpec{"pay", 8}}});
    Message m = e->Next();
    EXPECT_TRUE(std::holds_alternative<Welcome>(m)) << id;
    return e;
  }
  // A server that lost its journal: a first start under a new journal id.
  std::unique_ptr<RawEndpoint> FreshServer(const std::string& id,
                                           JournalId journal) {
    auto e = Connect();
    e->Send(Hello{Role::kServer, id, 1, journal, 0, {ServiceSpec{"pay", 8}}});
    Message m = e->Next();
    EXPECT_TRUE(std::holds_alternative<Welcome>(m)) << id;
    return e;
  }
  // `server` reports `session` holding the executed `seqs`.
  static void Report(RawEndpoint& server, const std::string& id,
                     JournalId journal, const std::string& session,
                     const std::vector<Seq>& seqs, bool last = true) {
    StateExchange se;
    se.role = Role::kServer;
    se.last = last;
    ServerVector sv{id, 2, journal, session, 1, {}};
    for (Seq seq : seqs) sv.held.push_back({seq, ServerOpState::kExecuted, 1});
    se.servers.push_back(sv);
    server.Send(se);
  }
  std::unique_ptr<RawEndpoint> Client(const std::string& session) {
    auto e = Connect();
    e->Send(Hello{Role::kClient, session, 1, 42, 0, {}});
    Message m = e->Next();
    EXPECT_TRUE(std::holds_alternative<Welcome>(m)) << session;
    return e;
  }
  static Request Resend(const std::string& session, Seq seq) {
    return Request{session, seq, "pay", 1, 0, kRequestResend};
  }

  // Reads from every endpoint for `span`, the raw servers sending the
  // heartbeats that keep them alive; returns the REQUEST seqs each got
  // (by index) and keeps the clients' RESPONSEs.
  std::map<int, std::vector<Seq>> Pump(const std::vector<RawEndpoint*>& servers,
                                       RawEndpoint* client,
                                       std::chrono::milliseconds span) {
    std::map<int, std::vector<Seq>> got;
    const auto end = std::chrono::steady_clock::now() + span;
    while (std::chrono::steady_clock::now() < end) {
      for (std::size_t i = 0; i < servers.size(); ++i) {
        servers[i]->Send(Heartbeat{0});
        Message m = servers[i]->Next(10ms);
        if (const auto* r = std::get_if<Request>(&m)) {
          got[static_cast<int>(i)].push_back(r->seq);
        }
      }
      if (client != nullptr) {
        client->Send(Heartbeat{0});
        Message m = client->Next(10ms);
        if (const auto* r = std::get_if<Response>(&m)) {
          responses_[r->seq] = r->status;
        }
      }
    }
    return got;
  }
  // Keeps the servers alive until the broker has forgotten `n` sessions.
  void WaitForgotten(const std::vector<RawEndpoint*>& servers,
                     std::uint64_t n) {
    const auto end = std::chrono::steady_clock::now() + 10s;
    while (broker_->stats().forgotten_sessions < n &&
           std::chrono::steady_clock::now() < end) {
      Pump(servers, nullptr, 50ms);
    }
    ASSERT_GE(broker_->stats().forgotten_sessions, n);
  }

  zmq::context_t ctx_;
  std::unique_ptr<Broker> broker_;
  std::map<Seq, ErrorCode> responses_;
};

// The session expired while s1 held it: its client's resends all go back to
// s1, which answers them from its journal; s2 (same service) never sees one.
// Round robin would have sent half of them to s2, which would run them again.
TEST_F(ForgottenSessions, ExpiredSessionResendsGoBackToTheServerThatHeldIt) {
  auto s1 = ReturningServer("s1", kJournal1);
  auto s2 = ReturningServer("s2", kJournal2);
  Report(*s1, "s1", kJournal1, "ghost", {7, 8, 9, 10, 11, 12});
  Report(*s2, "s2", kJournal2, "other", {});
  WaitForgotten({s1.get(), s2.get()}, 1);
  EXPECT_EQ(broker_->stats().expired_reported_sessions, 1u);

  auto client = Client("ghost");
  for (Seq seq = 7; seq <= 12; ++seq) client->Send(Resend("ghost", seq), "p");
  auto got = Pump({s1.get(), s2.get()}, client.get(), 500ms);
  EXPECT_EQ(got[0], (std::vector<Seq>{7, 8, 9, 10, 11, 12}));
  EXPECT_TRUE(got[1].empty()) << got[1].size() << " sent to s2";
  EXPECT_EQ(broker_->stats().forgotten_routed, 6u);

  // s1 answers; the client gets each answer once.
  for (Seq seq = 7; seq <= 12; ++seq) {
    s1->Send(Response{"ghost", seq, ErrorCode::kOk}, "done");
  }
  Pump({s1.get(), s2.get()}, client.get(), 300ms);
  EXPECT_EQ(responses_.size(), 6u);
  for (const auto& [seq, code] : responses_) EXPECT_EQ(code, ErrorCode::kOk);

  // A new call above what any server named is dispatched as usual.
  client->Send(Request{"ghost", 13, "pay", 1, 0, 0}, "new");
  got = Pump({s1.get(), s2.get()}, client.get(), 300ms);
  EXPECT_EQ(got[0].size() + got[1].size(), 1u);
}

// Two servers named the session: the broker cannot know which holds an
// operation, so an untracked resend is answered in_doubt and sent nowhere.
TEST_F(ForgottenSessions, SessionNamedByTwoServersIsAnsweredInDoubt) {
  auto s1 = ReturningServer("s1", kJournal1);
  auto s2 = ReturningServer("s2", kJournal2);
  // s1's own quota (1) takes "ghost"; s2 names it too.
  Report(*s1, "s1", kJournal1, "ghost", {7});
  Report(*s2, "s2", kJournal2, "ghost", {8});
  WaitForgotten({s1.get(), s2.get()}, 1);

  auto client = Client("ghost");
  client->Send(Resend("ghost", 7), "p7");
  client->Send(Resend("ghost", 8), "p8");
  auto got = Pump({s1.get(), s2.get()}, client.get(), 500ms);
  EXPECT_TRUE(got[0].empty());
  EXPECT_TRUE(got[1].empty());
  ASSERT_EQ(responses_.size(), 2u);
  EXPECT_EQ(responses_[7], ErrorCode::kInDoubt);
  EXPECT_EQ(responses_[8], ErrorCode::kInDoubt);
  EXPECT_EQ(broker_->stats().forgotten_in_doubt, 2u);
}

// A session named beyond the server's report quota is not tracked, but the
// broker remembers who named it: every resend up to the highest seq named
// goes to that server only.
TEST_F(ForgottenSessions, SessionReportedBeyondTheQuotaIsRemembered) {
  auto s1 = ReturningServer("s1", kJournal1);
  auto s2 = ReturningServer("s2", kJournal2);
  Report(*s1, "s1", kJournal1, "kept", {1}, /*last=*/false);
  Report(*s1, "s1", kJournal1, "beyond", {5});
  WaitForgotten({s1.get(), s2.get()}, 1);
  EXPECT_EQ(broker_->stats().refused_reported_sessions, 1u);

  auto client = Client("beyond");
  for (Seq seq = 1; seq <= 5; ++seq) client->Send(Resend("beyond", seq), "p");
  auto got = Pump({s1.get(), s2.get()}, client.get(), 500ms);
  EXPECT_EQ(got[0], (std::vector<Seq>{1, 2, 3, 4, 5}));
  EXPECT_TRUE(got[1].empty()) << got[1].size() << " sent to s2";
}

// The server that named the session came back with another journal: it no
// longer knows what it ran, so the resend is answered in_doubt.
TEST_F(ForgottenSessions, HolderWithANewJournalIsNotTrusted) {
  auto s1 = ReturningServer("s1", kJournal1);
  Report(*s1, "s1", kJournal1, "ghost", {3});
  WaitForgotten({s1.get()}, 1);
  s1->Send(Goodbye{"restart", {}});
  s1->Close();
  auto again = FreshServer("s1", kJournal2);

  auto client = Client("ghost");
  client->Send(Resend("ghost", 3), "p3");
  auto got = Pump({again.get()}, client.get(), 500ms);
  EXPECT_TRUE(got[0].empty());
  ASSERT_EQ(responses_.size(), 1u);
  EXPECT_EQ(responses_[3], ErrorCode::kInDoubt);
}

// A REQUEST that reuses the seq of an answer the broker keeps, for another
// payload, is answered `conflict`; the kept answer stays, and the same
// request sent again still gets it.
TEST_F(ForgottenSessions, ReusedSeqWithAnotherRequestIsAConflict) {
  auto server = FreshServer("s", kJournal1);
  auto client = Client("c");
  // The next message of `e`, both endpoints sending the heartbeats that
  // keep them alive meanwhile.
  auto next = [&](RawEndpoint& e, std::chrono::milliseconds wait = 5s) {
    const auto end = std::chrono::steady_clock::now() + wait;
    Message m = Goodbye{"timeout", {}};
    while (std::chrono::steady_clock::now() < end) {
      server->Send(Heartbeat{0});
      client->Send(Heartbeat{0});
      m = e.Next(20ms);
      if (!std::holds_alternative<Goodbye>(m)) break;
    }
    return m;
  };
  client->Send(Request{"c", 1, "pay", 1, 0, 0}, "A");
  Message m = next(*server);
  ASSERT_TRUE(std::holds_alternative<Request>(m));
  server->Send(Response{"c", 1, ErrorCode::kOk}, "done-A");
  m = next(*client);
  ASSERT_TRUE(std::holds_alternative<Response>(m));
  EXPECT_EQ(client->payload(), "done-A");

  client->Send(Request{"c", 1, "pay", 1, 0, kRequestResend}, "B");
  m = next(*client);
  const auto* r = std::get_if<Response>(&m);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->status, ErrorCode::kConflict);
  EXPECT_EQ(client->payload(), "");
  EXPECT_EQ(broker_->stats().conflicts, 1u);

  client->Send(Request{"c", 1, "pay", 1, 0, kRequestResend}, "A");
  m = next(*client);
  r = std::get_if<Response>(&m);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->status, ErrorCode::kOk);
  EXPECT_EQ(client->payload(), "done-A");
  // The server saw the request once.
  EXPECT_TRUE(std::holds_alternative<Goodbye>(next(*server, 200ms)));
}

}  // namespace
}  // namespace rejoin::testing
