// The broker's roster (broker/src/roster.h, PROTOCOL.md §6.5): the file
// format and its durable replacement, then an in-process broker driven by
// hand-made endpoints over loopback: when the roster lists a server, when it
// ends the grace period early, when it does not, and when it forgets a server.
#include "roster.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "e2e/harness.h"
#include "rejoin/broker/broker.h"
#include "support/files.h"
#include "support/raw_endpoint.h"
#include "support/temp_dir.h"

namespace rejoin::testing {
namespace {

using broker_internal::DecodeRoster;
using broker_internal::EncodeRoster;
using broker_internal::ReadRoster;
using broker_internal::RosterContents;
using broker_internal::RosterLock;
using broker_internal::WriteRoster;
using namespace std::chrono_literals;

RosterContents Complete(std::set<std::string> servers,
                        std::vector<Epoch> epochs = {0x1234}) {
  RosterContents r;
  r.complete = true;
  r.epochs = std::move(epochs);
  r.servers = std::move(servers);
  return r;
}

// ---------------------------------------------------------------------------
// The file.

TEST(RosterFile, EncodingIsTheDocumentedText) {
  RosterContents r = Complete({"echo-2", "echo-1"}, {0x00c0ffee12345678, 1});
  EXPECT_EQ(EncodeRoster(r),
            "rejoin-roster 1\n"
            "state complete\n"
            "epoch 00c0ffee12345678\n"
            "epoch 0000000000000001\n"
            "server echo-1\n"
            "server echo-2\n"
            "end 2\n");
  r.complete = false;
  r.epochs.clear();
  r.servers.clear();
  EXPECT_EQ(EncodeRoster(r), "rejoin-roster 1\nstate partial\nend 0\n");
}

TEST(RosterFile, RoundTripKeepsStateEpochsAndServers) {
  TempDir dir;
  const std::string path = dir.Sub("roster");
  for (const RosterContents& r :
       {Complete({}), Complete({"a", "b~!", std::string(128, 'x')}),
        RosterContents{false, {7, 8, 9}, {"only"}}}) {
    ASSERT_TRUE(WriteRoster(path, r).ok());
    auto back = ReadRoster(path);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, r);
  }
  // Replaced by rename: no temporary file stays behind.
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(RosterFile, MissingFileIsNotFound) {
  TempDir dir;
  auto r = ReadRoster(dir.Sub("nothing-here"));
  EXPECT_EQ(r.status().code(), ErrorCode::kNotFound);
}

TEST(RosterFile, DamagedFilesAreCorrupt) {
  const std::vector<std::string> damaged = {
      "",
      "rejoin-roster 1\nstate complete\nend 0",  // last line unterminated
      "rejoin-roster 2\nstate complete\nend 0\n",
      "rejoin-roster 1\nstate maybe\nend 0\n",
      "rejoin-roster 1\nstate complete\n",  // no end line
      "rejoin-roster 1\nstate complete\nserver a\n",
      "rejoin-roster 1\nstate complete\nserver a\nserver b\nend 1\n",
      "rejoin-roster 1\nstate complete\nserver a\nend 01\n",
      "rejoin-roster 1\nstate complete\nserver a\nserver a\nend 2\n",
      "rejoin-roster 1\nstate complete\nserver b\nserver a\nend 2\n",
      "rejoin-roster 1\nstate complete\nserver has space\nend 1\n",
      "rejoin-roster 1\nstate complete\nserver \nend 1\n",
      "rejoin-roster 1\nstate complete\nepoch 12\nend 0\n",
      "rejoin-roster 1\nstate complete\nepoch 00000000000000AB\nend 0\n",
      "rejoin-roster 1\nstate complete\nserver a\nepoch 0000000000000001\n"
      "end 1\n",
      "rejoin-roster 1\nstate complete\nhello\nend 0\n",
      "rejoin-roster 1\nstate complete\nend 0\nend 0\n",
  };
  for (const std::string& text : damaged) {
    auto r = DecodeRoster(text);
    EXPECT_EQ(r.status().code(), ErrorCode::kCorrupt) << text;
  }
  // A torn copy of a good file is never read as a shorter roster.
  const std::string good = EncodeRoster(Complete({"a", "b", "c"}));
  for (std::size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(DecodeRoster(good.substr(0, n)).ok()) << n;
  }
}

TEST(RosterFile, SecondLockOnOneRosterIsRefused) {
  TempDir dir;
  auto first = RosterLock::Acquire(dir.Sub("roster"));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto second = RosterLock::Acquire(dir.Sub("roster"));
  EXPECT_EQ(second.status().code(), ErrorCode::kIoError);
  { RosterLock released = std::move(*first); }
  EXPECT_TRUE(RosterLock::Acquire(dir.Sub("roster")).ok());
}

// ---------------------------------------------------------------------------
// The broker with a roster.

constexpr Epoch kKnownEpoch = 0x1234;

class BrokerRoster : public ::testing::Test {
 protected:
  // Hand-made endpoints send no heartbeats: a long interval keeps them
  // alive; the short lease and grace keep the tests quick.
  static BrokerOptions Options(std::chrono::milliseconds grace) {
    BrokerOptions o;
    o.endpoint = "tcp://127.0.0.1:*";
    o.heartbeat = 2000ms;
    o.probe = 1000ms;
    o.grace = grace;
    o.lease = 200ms;
    return o;
  }
  void StartBroker(BrokerOptions o) {
    o.roster = Roster();
    auto b = Broker::Bind(o);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    broker_ = std::move(*b);
    broker_->Start();
  }
  void Seed(const RosterContents& r) {
    ASSERT_TRUE(WriteRoster(Roster(), r).ok());
  }
  RosterContents OnDisk() {
    auto r = ReadRoster(Roster());
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : RosterContents{};
  }
  bool Listed(const std::string& id) { return OnDisk().servers.count(id) != 0; }
  std::string Roster() const { return dir_.Sub("roster"); }

  std::unique_ptr<RawEndpoint> Connect() {
    return std::make_unique<RawEndpoint>(ctx_, broker_->bound_endpoint());
  }
  // HELLO and its answer; nullopt-like Welcome{} (epoch 0) if refused.
  Welcome Hi(RawEndpoint& e, Hello hello) {
    e.Send(hello);
    Message m = e.Next();
    const auto* w = std::get_if<Welcome>(&m);
    EXPECT_NE(w, nullptr) << "HELLO of " << hello.id << " not welcomed";
    return w != nullptr ? *w : Welcome{};
  }
  static Hello ServerHello(const std::string& id, Incarnation incarnation = 2,
                           Epoch last_epoch = kKnownEpoch) {
    return Hello{Role::kServer,           id, incarnation, 99, last_epoch,
                 {ServiceSpec{"echo", 4}}};
  }
  static Hello ClientHello(const std::string& id, Epoch last_epoch = 0) {
    return Hello{Role::kClient, id, 1, 42, last_epoch, {}};
  }
  // What a returning server that holds nothing sends after WELCOME.
  static StateExchange NothingHeld() {
    return StateExchange{Role::kServer, {}, {}, true};
  }
  // A server that returns and reports that it holds nothing; the endpoint
  // stays connected for the test's lifetime.
  std::unique_ptr<RawEndpoint> ReturnHoldingNothing(const std::string& id) {
    auto e = Connect();
    Hi(*e, ServerHello(id));
    e->Send(NothingHeld());
    return e;
  }
  // The grace period left, as a client just welcomed is told.
  std::uint32_t GraceLeft() {
    auto c = Connect();
    return Hi(*c, ClientHello("probe-" + std::to_string(++probes_))).grace_ms;
  }

  TempDir dir_;
  zmq::context_t ctx_;
  std::unique_ptr<Broker> broker_;
  int probes_ = 0;
};

TEST_F(BrokerRoster, ServerIsListedBeforeItIsWelcomed) {
  StartBroker(Options(5000ms));
  auto s = Connect();
  Hi(*s, ServerHello("s1"));
  // Written before WELCOME left the broker.
  EXPECT_TRUE(Listed("s1"));
  EXPECT_EQ(broker_->stats().roster_servers, 1u);
}

TEST_F(BrokerRoster, MissingRosterMeansFullGraceAndAPartialFile) {
  StartBroker(Options(5000ms));
  EXPECT_GT(GraceLeft(), 4000u);
  const RosterContents r = OnDisk();
  EXPECT_FALSE(r.complete);
  ASSERT_EQ(r.epochs.size(), 1u);
  EXPECT_EQ(r.epochs[0], broker_->epoch());
}

TEST_F(BrokerRoster, CorruptRosterMeansFullGrace) {
  WriteFile(Roster(), "rejoin-roster 1\nstate complete\nserver s1\n");
  StartBroker(Options(5000ms));
  EXPECT_GT(GraceLeft(), 4000u);
  EXPECT_FALSE(OnDisk().complete);
  EXPECT_EQ(broker_->stats().grace_ended_early, 0u);
}

TEST_F(BrokerRoster, PartialRosterMeansFullGraceUntilItRunsOut) {
  Seed(RosterContents{false, {kKnownEpoch}, {"s1"}});
  StartBroker(Options(300ms));
  auto s = ReturnHoldingNothing("s1");
  EXPECT_GT(GraceLeft(), 0u);
  // Once the full period has run, the roster is complete.
  ASSERT_TRUE(WaitFor([&] { return OnDisk().complete; }, 5s));
  EXPECT_EQ(broker_->stats().grace_ended_early, 0u);
  EXPECT_TRUE(Listed("s1"));
}

TEST_F(BrokerRoster, EmptyCompleteRosterEndsGraceAtOnce) {
  Seed(Complete({}));
  StartBroker(Options(5000ms));
  EXPECT_EQ(GraceLeft(), 0u);
  EXPECT_EQ(broker_->stats().grace_ended_early, 1u);
}

TEST_F(BrokerRoster, GraceEndsOnceEveryListedServerHasReported) {
  Seed(Complete({"s1", "s2"}));
  StartBroker(Options(5000ms));
  auto s1 = Connect();
  auto s2 = Connect();
  Hi(*s1, ServerHello("s1"));
  s1->Send(NothingHeld());
  // Returned is not enough: s2 has not reported what it holds.
  Hi(*s2, ServerHello("s2"));
  EXPECT_GT(GraceLeft(), 4000u);
  s2->Send(NothingHeld());
  ASSERT_TRUE(
      WaitFor([&] { return broker_->stats().grace_ended_early == 1; }, 5s));
  EXPECT_EQ(GraceLeft(), 0u);
  EXPECT_LT(broker_->stats().grace_ms, 4000u);
}

TEST_F(BrokerRoster, FirstStartOfAListedServerHasNothingToReport) {
  // Incarnation 1 and never welcomed: a new journal, nothing held, so no
  // STATE_EXCHANGE is needed.
  Seed(Complete({"s1"}));
  StartBroker(Options(5000ms));
  auto s1 = Connect();
  Hi(*s1, ServerHello("s1", 1, 0));
  ASSERT_TRUE(
      WaitFor([&] { return broker_->stats().grace_ended_early == 1; }, 5s));
}

TEST_F(BrokerRoster, EndpointFromABrokerWithoutThisRosterMeansFullGrace) {
  Seed(Complete({"s1"}));
  StartBroker(Options(5000ms));
  auto c = Connect();
  // Last welcomed by a broker whose epoch this roster never recorded.
  Hi(*c, ClientHello("wanderer", 0xbad));
  EXPECT_FALSE(OnDisk().complete);
  auto s1 = ReturnHoldingNothing("s1");
  std::this_thread::sleep_for(100ms);
  EXPECT_GT(GraceLeft(), 3000u);
  EXPECT_EQ(broker_->stats().grace_ended_early, 0u);
}

TEST_F(BrokerRoster, ListedServerThatNeverReturnsIsDroppedAfterGraceAndLease) {
  Seed(Complete({"ghost", "s1"}));
  StartBroker(Options(200ms));
  auto s1 = ReturnHoldingNothing("s1");
  ASSERT_TRUE(WaitFor([&] { return !Listed("ghost"); }, 5s));
  EXPECT_EQ(broker_->stats().grace_ended_early, 0u);
  EXPECT_TRUE(Listed("s1"));
}

TEST_F(BrokerRoster, GoodbyeDropsTheServerOnceItsWorkIsAcknowledged) {
  Seed(Complete({}));
  StartBroker(Options(5000ms));
  auto server = Connect();
  auto client = Connect();
  Hi(*server, ServerHello("s1", 1, 0));
  Hi(*client, ClientHello("c1"));
  client->Send(Request{"c1", 1, "echo", 1, 0, 0}, "work");
  server->Send(Response{"c1", 1, ErrorCode::kOk}, "done");
  server->Send(Goodbye{"leaving", {}});
  ASSERT_TRUE(WaitFor([&] { return broker_->stats().servers == 0; }, 5s));
  // The client has not acknowledged: after a broker restart it could still
  // ask for seq 1, and only s1 holds the answer.
  std::this_thread::sleep_for(400ms);
  EXPECT_TRUE(Listed("s1"));
  client->Send(Ack{"c1", 2, {}});
  EXPECT_TRUE(WaitFor([&] { return !Listed("s1"); }, 5s));
  // Counted once the write, directory sync included, is done.
  EXPECT_TRUE(
      WaitFor([&] { return broker_->stats().roster_servers == 0; }, 5s));
}

TEST_F(BrokerRoster, LeaseExpiryDropsTheServerOnceItsWorkIsAnswered) {
  Seed(Complete({}));
  StartBroker(Options(5000ms));
  auto server = Connect();
  auto client = Connect();
  Hi(*server, ServerHello("s1", 1, 0));
  Hi(*client, ClientHello("c1"));
  server->Close();  // gone without a word
  std::this_thread::sleep_for(100ms);
  client->Send(Request{"c1", 1, "echo", 1, 0, 0}, "work");
  // Dispatched to s1, found gone, answered in_doubt when the lease ends.
  ASSERT_TRUE(
      WaitFor([&] { return broker_->stats().answered_in_doubt == 1; }, 5s));
  std::this_thread::sleep_for(400ms);
  EXPECT_TRUE(Listed("s1"));
  client->Send(Ack{"c1", 2, {}});
  EXPECT_TRUE(WaitFor([&] { return !Listed("s1"); }, 5s));
}

TEST_F(BrokerRoster, SecondBrokerOnTheSameRosterIsRefused) {
  StartBroker(Options(500ms));
  BrokerOptions o = Options(500ms);
  o.roster = Roster();
  auto second = Broker::Bind(o);
  EXPECT_EQ(second.status().code(), ErrorCode::kIoError);
}

}  // namespace
}  // namespace rejoin::testing
