// Several client sessions on one ClientConnection, against a scripted broker:
// one socket carries every session's HELLO, requests and answers; messages
// reach the session they name; leaving, refusals and reconnects are per
// session or per connection as PROTOCOL.md §1.4 says.
#include "rejoin/client/connection.h"

#include <gtest/gtest.h>

#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "rejoin/client/client.h"
#include "support/fake_broker.h"
#include "support/temp_dir.h"

namespace rejoin {
namespace {

using namespace std::chrono_literals;
using testing::Eventually;
using testing::FakeBroker;
using testing::kFirstEpoch;
using testing::TempDir;
using testing::TestWelcome;

std::shared_ptr<ClientConnection> OpenConnection(const FakeBroker& broker) {
  auto c = ClientConnection::Open(broker.endpoint());
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? std::move(c).value() : nullptr;
}

ClientOptions SessionOn(std::shared_ptr<ClientConnection> connection,
                        std::string session) {
  ClientOptions o;
  o.connection = std::move(connection);
  o.endpoint.clear();  // the connection's applies
  o.session_id = std::move(session);
  o.durability = Durability::kMemory;
  o.default_deadline = 5s;
  o.resend_delay = 5s;
  return o;
}

std::unique_ptr<Client> OpenClient(const ClientOptions& o) {
  auto c = Client::Open(o);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? std::move(c).value() : nullptr;
}

// Sessions "sess-0" ... on one connection and one shared journal, keeping
// their outcomes (no release records between the commits a test counts).
std::vector<std::unique_ptr<Client>> OpenOnSharedJournal(
    std::shared_ptr<ClientConnection> connection,
    const std::shared_ptr<SharedJournal>& journal, std::size_t n) {
  std::vector<std::unique_ptr<Client>> clients;
  for (std::size_t i = 0; i < n; ++i) {
    ClientOptions o = SessionOn(connection, "sess-" + std::to_string(i));
    o.shared_journal = journal;
    o.keep_completed = true;
    clients.push_back(OpenClient(o));
  }
  return clients;
}

// Answers every HELLO in the order they come, naming its id; returns the
// ids and the routes they came on.
std::map<std::string, std::string> WelcomeAll(FakeBroker& broker, std::size_t n,
                                              Epoch epoch = kFirstEpoch) {
  std::map<std::string, std::string> route_of;
  while (route_of.size() < n) {
    auto hello = broker.Expect<Hello>();
    if (!hello) break;
    Welcome w = TestWelcome(epoch);
    w.id = hello->message.id;
    broker.Send(w);
    route_of[hello->message.id] = hello->route;
  }
  return route_of;
}

// Outcomes by session.
class Replies {
 public:
  Client::Callback For(const std::string& session) {
    return [this, session](const Result<Reply>& r) {
      std::lock_guard lock(mutex_);
      got_[session].push_back(r.ok() ? r->payload : r.status().ToString());
    };
  }
  std::vector<std::string> Of(const std::string& session) const {
    std::lock_guard lock(mutex_);
    auto it = got_.find(session);
    return it == got_.end() ? std::vector<std::string>{} : it->second;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::vector<std::string>> got_;
};

TEST(ClientConnection, SessionsShareOneSocketAndGetTheirOwnAnswers) {
  FakeBroker broker;
  auto connection = OpenConnection(broker);
  ASSERT_TRUE(connection);
  auto a = OpenClient(SessionOn(connection, "sess-a"));
  auto b = OpenClient(SessionOn(connection, "sess-b"));
  ASSERT_TRUE(a && b);
  EXPECT_EQ(connection->sessions(), 2u);
  EXPECT_EQ(connection->endpoint(), broker.endpoint());

  auto routes = WelcomeAll(broker, 2);
  ASSERT_EQ(routes.size(), 2u);
  EXPECT_EQ(routes["sess-a"], routes["sess-b"]) << "one connection for both";
  EXPECT_TRUE(Eventually(
      [&] { return a->stats().welcomes == 1 && b->stats().welcomes == 1; }));

  Replies replies;
  Seq sa = *a->CallAsync("echo", "to a", replies.For("sess-a"));
  Seq sb = *b->CallAsync("echo", "to b", replies.For("sess-b"));
  std::map<std::string, Seq> sent;
  for (int i = 0; i < 2; ++i) {
    auto req = broker.Expect<Request>();
    ASSERT_TRUE(req);
    EXPECT_EQ(req->route, routes["sess-a"]);
    sent[req->message.session] = req->message.seq;
  }
  EXPECT_EQ(sent["sess-a"], sa);
  EXPECT_EQ(sent["sess-b"], sb);

  // Each answer reaches the session it names, and only that one.
  broker.Respond("sess-b", sb, "reply b");
  broker.Respond("sess-a", sa, "reply a");
  ASSERT_TRUE(Eventually([&] {
    return replies.Of("sess-a").size() == 1 && replies.Of("sess-b").size() == 1;
  }));
  EXPECT_EQ(replies.Of("sess-a")[0], "reply a");
  EXPECT_EQ(replies.Of("sess-b")[0], "reply b");

  // An answer naming a session that is not on the connection, or a seq the
  // named session does not have, completes nothing.
  broker.Respond("sess-z", sa, "stray");
  broker.Respond("sess-b", sa, "wrong session");
  Seq sa2 = *a->CallAsync("echo", "again", replies.For("sess-a"));
  ASSERT_TRUE(broker.Expect<Request>());
  broker.Respond("sess-a", sa2, "reply a2");
  ASSERT_TRUE(Eventually([&] { return replies.Of("sess-a").size() == 2; }));
  EXPECT_EQ(replies.Of("sess-a")[1], "reply a2");
  EXPECT_EQ(replies.Of("sess-b").size(), 1u);
  EXPECT_EQ(b->stats().duplicate_responses, 1u);
  EXPECT_EQ(b->stats().completed, 1u);
}

TEST(ClientConnection, ASessionTwiceOnOneConnectionIsRefused) {
  FakeBroker broker;
  auto connection = OpenConnection(broker);
  auto a = OpenClient(SessionOn(connection, "sess-a"));
  ASSERT_TRUE(a);
  auto again = Client::Open(SessionOn(connection, "sess-a"));
  EXPECT_EQ(again.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(connection->sessions(), 1u);
}

TEST(ClientConnection, ClosingOneSessionSaysGoodbyeForItAlone) {
  FakeBroker broker;
  auto connection = OpenConnection(broker);
  auto a = OpenClient(SessionOn(connection, "sess-a"));
  auto b = OpenClient(SessionOn(connection, "sess-b"));
  ASSERT_EQ(WelcomeAll(broker, 2).size(), 2u);
  Replies replies;
  // A round trip: a has its WELCOME (it says GOODBYE only when admitted).
  Seq sa = *a->CallAsync("echo", "first", replies.For("sess-a"));
  ASSERT_TRUE(broker.Expect<Request>());
  broker.Respond("sess-a", sa, "ok");
  ASSERT_TRUE(Eventually([&] { return replies.Of("sess-a").size() == 1; }));

  a.reset();
  auto bye = broker.Expect<Goodbye>();
  ASSERT_TRUE(bye);
  EXPECT_EQ(bye->message.id, "sess-a");
  EXPECT_EQ(connection->sessions(), 1u);

  // The other session goes on over the same connection.
  Seq sb = *b->CallAsync("echo", "still here", replies.For("sess-b"));
  auto req = broker.Expect<Request>();
  ASSERT_TRUE(req);
  EXPECT_EQ(req->message.session, "sess-b");
  broker.Respond("sess-b", sb, "ok");
  ASSERT_TRUE(Eventually([&] { return replies.Of("sess-b").size() == 1; }));

  // The connection outlives its handle while a session uses it.
  connection.reset();
  Seq sb2 = *b->CallAsync("echo", "later", replies.For("sess-b"));
  ASSERT_TRUE(broker.Expect<Request>());
  broker.Respond("sess-b", sb2, "ok 2");
  ASSERT_TRUE(Eventually([&] { return replies.Of("sess-b").size() == 2; }));
}

TEST(ClientConnection, ARefusalNamingASessionConcernsOnlyThatSession) {
  FakeBroker broker;
  auto connection = OpenConnection(broker);
  auto a = OpenClient(SessionOn(connection, "sess-a"));
  auto b = OpenClient(SessionOn(connection, "sess-b"));
  // Refuse a as a duplicate identity, welcome b.
  std::set<std::string> seen;
  while (seen.size() < 2) {
    auto hello = broker.Expect<Hello>();
    ASSERT_TRUE(hello);
    seen.insert(hello->message.id);
    if (hello->message.id == "sess-a") {
      Error e;
      e.code = ErrorCode::kDuplicateIdentity;
      e.message = "held by a live process";
      e.ref_type = static_cast<std::uint8_t>(MessageType::kHello);
      e.session = "sess-a";
      broker.Send(e);
    } else {
      broker.Send(TestWelcome());
    }
  }
  // a says HELLO again after its back-off; b does not.
  auto retry = broker.Expect<Hello>(2s);
  ASSERT_TRUE(retry);
  EXPECT_EQ(retry->message.id, "sess-a");
  broker.Send(TestWelcome());

  Replies replies;
  Seq sa = *a->CallAsync("echo", "a", replies.For("sess-a"));
  Seq sb = *b->CallAsync("echo", "b", replies.For("sess-b"));
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(broker.Expect<Request>());
  broker.Respond("sess-a", sa, "ra");
  broker.Respond("sess-b", sb, "rb");
  ASSERT_TRUE(Eventually([&] {
    return replies.Of("sess-a").size() == 1 && replies.Of("sess-b").size() == 1;
  }));
}

TEST(ClientConnection, EverySessionReturnsAfterTheBrokerRestarts) {
  auto broker = std::make_unique<FakeBroker>();
  const std::string endpoint = broker->endpoint();
  auto connection = OpenConnection(*broker);
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(
        OpenClient(SessionOn(connection, "sess-" + std::to_string(i))));
  }
  ASSERT_EQ(WelcomeAll(*broker, 4).size(), 4u);
  Replies replies;
  Seq pending = *clients[2]->CallAsync("echo", "x", replies.For("sess-2"));
  ASSERT_TRUE(broker->Expect<Request>());

  broker.reset();
  broker = std::make_unique<FakeBroker>(endpoint);
  // All four say HELLO again on the new connection; the one with an
  // operation in flight reports it in its state exchange.
  auto routes = WelcomeAll(*broker, 4, testing::kSecondEpoch);
  ASSERT_EQ(routes.size(), 4u);
  std::optional<testing::Received<StateExchange>> x;
  while ((x = broker->Expect<StateExchange>()) &&
         x->message.clients.at(0).session != "sess-2") {
  }
  ASSERT_TRUE(x);
  EXPECT_EQ(x->message.clients[0].pending, std::vector<Seq>{pending});
  broker->Respond("sess-2", pending, "after restart");
  ASSERT_TRUE(Eventually([&] { return replies.Of("sess-2").size() == 1; }));
  EXPECT_EQ(replies.Of("sess-2")[0], "after restart");
}

TEST(ClientConnection, SessionsOnASharedJournalCommitTogether) {
  FakeBroker broker;
  TempDir dir;
  auto journal = SharedJournal::Open(dir.path(), Durability::kSync);
  ASSERT_TRUE(journal.ok());
  auto connection = OpenConnection(broker);
  constexpr std::size_t kSessions = 8;
  auto clients = OpenOnSharedJournal(connection, *journal, kSessions);
  ASSERT_EQ(WelcomeAll(broker, kSessions).size(), kSessions);

  // The answer to session 0's call makes its callback, on the I/O thread,
  // issue one call on every session: the same turn journals them all.
  Replies replies;
  std::mutex mutex;
  std::map<std::string, Seq> seqs;
  Seq trigger = *clients[0]->CallAsync("echo", "go", [&](const Result<Reply>&) {
    for (std::size_t i = 0; i < kSessions; ++i) {
      const std::string s = "sess-" + std::to_string(i);
      Result<Seq> seq = clients[i]->CallAsync("echo", "x", replies.For(s));
      std::lock_guard lock(mutex);
      if (seq.ok()) seqs[s] = *seq;
    }
  });
  ASSERT_TRUE(broker.Expect<Request>());
  const std::uint64_t before = (*journal)->commits();
  broker.Respond("sess-0", trigger, "go");
  for (std::size_t i = 0; i < kSessions; ++i)
    ASSERT_TRUE(broker.Expect<Request>());
  // One commit for the answer (before the callback saw it), one for the
  // eight calls; eight private journals would have needed nine.
  EXPECT_EQ((*journal)->commits() - before, 2u);

  std::lock_guard lock(mutex);
  ASSERT_EQ(seqs.size(), kSessions);
  for (auto& [s, seq] : seqs) broker.Respond(s, seq, "r");
  ASSERT_TRUE(Eventually([&] {
    for (auto& [s, seq] : seqs) {
      if (replies.Of(s).size() != 1) return false;
    }
    return true;
  }));
}

// With kSync an answer that arrives while the hub commits joins the same
// turn: its outcome shares a commit with the calls the turn made, and the
// call its callback makes shares the next one. Sessions answered a little
// apart stay one group (otherwise: four commits, two groups for good).
TEST(ClientConnection, AnswersArrivingDuringASyncCommitJoinTheTurn) {
  FakeBroker broker;
  TempDir dir;
  auto journal = SharedJournal::Open(dir.path(), Durability::kSync);
  ASSERT_TRUE(journal.ok());
  auto connection = OpenConnection(broker);
  auto clients = OpenOnSharedJournal(connection, *journal, 2);
  ASSERT_EQ(WelcomeAll(broker, 2).size(), 2u);

  Replies replies;
  std::promise<void> second_sent;
  std::shared_future<void> sent = second_sent.get_future().share();
  // Session 0's callback holds the I/O thread, as a slow fdatasync would,
  // until session 1's answer has arrived, then makes a call.
  Seq first = *clients[0]->CallAsync("echo", "a", [&](const Result<Reply>&) {
    sent.wait();
    std::this_thread::sleep_for(50ms);  // loopback delivery takes microseconds
    (void)clients[0]->CallAsync("echo", "next", replies.For("sess-0"));
  });
  Seq second = *clients[1]->CallAsync("echo", "b", [&](const Result<Reply>&) {
    (void)clients[1]->CallAsync("echo", "next", replies.For("sess-1"));
  });
  ASSERT_TRUE(broker.Expect<Request>());
  ASSERT_TRUE(broker.Expect<Request>());
  const std::uint64_t before = (*journal)->commits();
  broker.Respond("sess-0", first, "a");
  ASSERT_TRUE(Eventually([&] { return (*journal)->commits() > before; }));
  broker.Respond("sess-1", second, "b");
  second_sent.set_value();

  std::set<std::string> callers;
  for (int i = 0; i < 2; ++i) {
    auto r = broker.Expect<Request>();
    ASSERT_TRUE(r);
    callers.insert(r->message.session);
  }
  EXPECT_EQ(callers, (std::set<std::string>{"sess-0", "sess-1"}));
  // The first answer; session 0's call with the second answer; session 1's
  // call.
  EXPECT_EQ((*journal)->commits() - before, 3u);
  // The two new calls are still pending: their callbacks (kClosed) run as
  // the clients close, while `replies` still exists.
  clients.clear();
}

}  // namespace
}  // namespace rejoin
