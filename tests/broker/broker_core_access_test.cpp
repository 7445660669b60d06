// Principals and authorization in the broker's core (docs/SECURITY.md),
// without sockets: each message goes in with the principal the shell's ZAP
// handler authenticated, under a keys file parsed in the test. The same
// attacks run end to end, over CURVE with real peers, in
// broker_principal_test.cpp; here each rule is one transition with
// everything the core sends checked.
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "access.h"
#include "broker/broker_core_fixture.h"
#include "rejoin/transport/curve.h"

namespace rejoin::broker_internal {
namespace {

using namespace core_test;

// alice and bob are clients (alice may call echo and other, bob echo only
// once the second policy is in force); srv serves echo, oth serves other.
const char* const kPrincipals[] = {"alice", "bob", "srv", "oth"};
constexpr char kRules[] =
    "allow alice call echo\n"
    "allow alice call other\n"
    "allow srv serve echo\n"
    "allow oth serve other\n";

const std::string kSrvRoute = "srv-conn";
const std::string kOthRoute = "oth-conn";
const std::string kBobRoute = "bob-conn";

class BrokerCoreAccessTest : public BrokerCoreTest {
 protected:
  void SetUp() override {
    for (const char* name : kPrincipals) {
      auto pair = transport::GenerateKeyPair();
      ASSERT_TRUE(pair.ok()) << pair.status().ToString();
      keys_ +=
          std::string("principal ") + name + " key " + pair->public_key + "\n";
    }
    policy_ = Parse(kRules);
  }

  AccessPolicy Parse(const std::string& rules) const {
    auto p = AccessPolicy::Parse(keys_ + rules, "keys");
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    return p.ok() ? std::move(*p) : AccessPolicy{};
  }

  void StartWithPolicy() {
    Start();
    core_->SetAccessPolicy(&policy_);
  }

  // alice's session alice/s1 on kClientRoute; srv/1 serving echo on
  // kSrvRoute; oth/1 serving other on kOthRoute.
  void ConnectAll() {
    ASSERT_EQ(To<Welcome>(Deliver(kSrvRoute, ServerHello("srv/1", Service(4)),
                                  {}, "srv"),
                          kSrvRoute)
                  .size(),
              1u);
    ServiceSpec other = Service(4);
    other.name = "other";
    ASSERT_EQ(
        To<Welcome>(Deliver(kOthRoute, ServerHello("oth/1", other), {}, "oth"),
                    kOthRoute)
            .size(),
        1u);
    ASSERT_EQ(
        To<Welcome>(Deliver(kClientRoute, ClientHello("alice/s1"), {}, "alice"),
                    kClientRoute)
            .size(),
        1u);
  }

  Request AliceCall(Seq seq, const std::string& service = "echo") {
    Request r = Call("alice/s1", seq);
    r.service = service;
    return r;
  }

  // The one ERROR of `sent`, which must have gone to `route`.
  static std::optional<Error> OnlyError(const std::vector<Sent>& sent,
                                        const std::string& route) {
    if (sent.size() != 1 || sent[0].route != route) return std::nullopt;
    const Error* e = std::get_if<Error>(&sent[0].message);
    return e == nullptr ? std::nullopt : std::optional<Error>(*e);
  }

  std::uint64_t Refused() const { return core_->Snapshot().not_authorized; }

  std::string keys_;
  AccessPolicy policy_;
};

// ---- ids belong to their principal ------------------------------------------

TEST_F(BrokerCoreAccessTest,
       HelloForAnIdOutsideThePrincipalsNamespaceIsRefused) {
  StartWithPolicy();
  ConnectAll();
  const auto sessions = core_->Snapshot().sessions;
  for (const std::string id :
       {"alice/s1", "alice/s2", "alice", "alicebob/s1", "bob", "bob/", "/s1"}) {
    SCOPED_TRACE(id);
    auto err = OnlyError(Deliver(kBobRoute, ClientHello(id, 1, 99), {}, "bob"),
                         kBobRoute);
    ASSERT_TRUE(err.has_value());
    EXPECT_EQ(err->code, ErrorCode::kNotAuthorized);
    EXPECT_EQ(err->ref_type, static_cast<std::uint8_t>(MessageType::kHello));
  }
  EXPECT_EQ(core_->Snapshot().sessions, sessions);
  EXPECT_EQ(Refused(), 7u);
  // Nor may a server take a client's id or another principal's server id.
  auto err =
      OnlyError(Deliver(kBobRoute, ServerHello("srv/1", Service(1)), {}, "bob"),
                kBobRoute);
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(err->code, ErrorCode::kNotAuthorized);
  // bob's own namespace is open to him.
  EXPECT_EQ(To<Welcome>(Deliver(kBobRoute, ClientHello("bob/s1"), {}, "bob"),
                        kBobRoute)
                .size(),
            1u);
  // The victim's session is untouched: its calls go through.
  auto sent = Deliver(kClientRoute, AliceCall(1), "x", "alice");
  EXPECT_EQ(To<Request>(sent, kSrvRoute).size(), 1u);
}

TEST_F(BrokerCoreAccessTest, MessagesNamingAnotherPrincipalsSessionAreRefused) {
  StartWithPolicy();
  ConnectAll();
  Deliver(kBobRoute, ClientHello("bob/s1"), {}, "bob");
  Deliver(kClientRoute, AliceCall(1), "x", "alice");
  const std::vector<std::pair<const char*, Message>> attacks = {
      {"REQUEST", Request{"alice/s1", 2, "echo", 1, 0, 0}},
      {"ACK", Ack{"alice/s1", 2, {}}},
      {"GOODBYE", Goodbye{"leaving", "alice/s1"}},
      {"STATE_EXCHANGE",
       StateExchange{Role::kClient,
                     {ClientVector{"alice/s1", 9, 99, 2, 1, {1}, {}}},
                     {},
                     true}},
      {"PROBE_REPLY",
       ProbeReply{1,
                  Role::kClient,
                  {ClientVector{"alice/s1", 9, 99, 2, 2, {}, {}}},
                  {}}},
  };
  std::uint64_t refused = Refused();
  for (const auto& [what, m] : attacks) {
    SCOPED_TRACE(what);
    auto err = OnlyError(Deliver(kBobRoute, m, "forged", "bob"), kBobRoute);
    ASSERT_TRUE(err.has_value());
    EXPECT_EQ(err->code, ErrorCode::kNotAuthorized);
    EXPECT_EQ(Refused(), ++refused);
  }
  // alice's operation is still out at srv/1, whose answer reaches her.
  auto sent =
      Deliver(kSrvRoute, Response{"alice/s1", 1, ErrorCode::kOk}, "X", "srv");
  auto answers = To<Response>(sent, kClientRoute);
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(sent[0].payload, "X");
}

// ---- services ---------------------------------------------------------------

TEST_F(BrokerCoreAccessTest, ServerHelloListingAServiceItMayNotServeIsRefused) {
  StartWithPolicy();
  ServiceSpec other = Service(1);
  other.name = "other";
  Hello both = ServerHello("srv/1", Service(1));
  both.services.push_back(other);
  auto err = OnlyError(Deliver(kSrvRoute, both, {}, "srv"), kSrvRoute);
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(err->code, ErrorCode::kNotAuthorized);
  EXPECT_EQ(core_->Snapshot().servers, 0u);
  // Refused whole: not even echo is served by it until it asks for echo
  // alone.
  EXPECT_EQ(To<Welcome>(
                Deliver(kSrvRoute, ServerHello("srv/1", Service(1)), {}, "srv"),
                kSrvRoute)
                .size(),
            1u);
  EXPECT_EQ(core_->Snapshot().servers, 1u);
}

TEST_F(BrokerCoreAccessTest, CallOfAServiceThePrincipalMayNotCallIsAnswered) {
  StartWithPolicy();
  ConnectAll();
  Deliver(kBobRoute, ClientHello("bob/s1"), {}, "bob");
  Request call = Call("bob/s1", 1);
  call.service = "other";
  auto sent = Deliver(kBobRoute, call, "x", "bob");
  // Answered at once, never dispatched to oth/1.
  ASSERT_EQ(sent.size(), 1u);
  auto answers = To<Response>(sent, kBobRoute);
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].status, ErrorCode::kNotAuthorized);
  EXPECT_EQ(Refused(), 1u);
  // A resend gets the same answer: the call completed.
  call.flags = kRequestResend;
  sent = Deliver(kBobRoute, call, "x", "bob");
  answers = To<Response>(sent, kBobRoute);
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].status, ErrorCode::kNotAuthorized);
  EXPECT_TRUE(To<Request>(sent, kOthRoute).empty());

  // A new keys file (SIGHUP) is in force from the next message on.
  AccessPolicy wider = Parse(std::string(kRules) + "allow bob call other\n");
  core_->SetAccessPolicy(&wider);
  Request next = Call("bob/s1", 2);
  next.service = "other";
  sent = Deliver(kBobRoute, next, "y", "bob");
  auto dispatched = To<Request>(sent, kOthRoute);
  ASSERT_EQ(dispatched.size(), 1u);
  EXPECT_EQ(dispatched[0].session, "bob/s1");
  core_->SetAccessPolicy(&policy_);  // `wider` dies first
}

// ---- answers and reports only from the right server -------------------------

TEST_F(BrokerCoreAccessTest,
       ResponseFromAServerTheOperationWasNotSentToIsDropped) {
  StartWithPolicy();
  ConnectAll();
  auto sent = Deliver(kClientRoute, AliceCall(1), "x", "alice");
  ASSERT_EQ(To<Request>(sent, kSrvRoute).size(), 1u);
  // oth/1 forges the answer: nothing reaches alice.
  EXPECT_TRUE(Deliver(kOthRoute, Response{"alice/s1", 1, ErrorCode::kOk},
                      "FORGED", "oth")
                  .empty());
  // The real one does.
  sent = Deliver(kSrvRoute, Response{"alice/s1", 1, ErrorCode::kOk}, "REAL",
                 "srv");
  ASSERT_EQ(To<Response>(sent, kClientRoute).size(), 1u);
  EXPECT_EQ(sent[0].payload, "REAL");
}

TEST_F(BrokerCoreAccessTest,
       QueuedOperationIsAnsweredOnlyByAServerThatMayServeIt) {
  StartWithPolicy();
  // No echo server yet: alice's call waits in the queue.
  ServiceSpec other = Service(4);
  other.name = "other";
  Deliver(kOthRoute, ServerHello("oth/1", other), {}, "oth");
  Deliver(kClientRoute, ClientHello("alice/s1"), {}, "alice");
  EXPECT_TRUE(Deliver(kClientRoute, AliceCall(1), "x", "alice").empty());
  // oth/1 reports the session, then answers the queued call: dropped and
  // counted, since it may not serve echo.
  ServerVector sv{"oth/1", 1, 21, "alice/s1", 1, {}};
  Deliver(kOthRoute, StateExchange{Role::kServer, {}, {sv}, true}, {}, "oth");
  const std::uint64_t refused = Refused();
  EXPECT_TRUE(Deliver(kOthRoute, Response{"alice/s1", 1, ErrorCode::kOk},
                      "FORGED", "oth")
                  .empty());
  EXPECT_EQ(Refused(), refused + 1);
  // The echo server that comes gets the call and answers it.
  auto sent = Deliver(kSrvRoute, ServerHello("srv/1", Service(4)), {}, "srv");
  ASSERT_EQ(To<Request>(sent, kSrvRoute).size(), 1u);
  sent = Deliver(kSrvRoute, Response{"alice/s1", 1, ErrorCode::kOk}, "REAL",
                 "srv");
  ASSERT_EQ(To<Response>(sent, kClientRoute).size(), 1u);
  EXPECT_EQ(sent[0].payload, "REAL");
}

TEST_F(BrokerCoreAccessTest, ServerReportsOnlyOperationsOfServicesItMayServe) {
  StartWithPolicy();
  ConnectAll();
  // alice's call of `other` is out at oth/1.
  auto sent = Deliver(kClientRoute, AliceCall(1, "other"), "x", "alice");
  ASSERT_EQ(To<Request>(sent, kOthRoute).size(), 1u);
  // srv/1 claims it, and a seq alice has not issued yet: both dropped.
  ServerVector sv{"srv/1",
                  1,
                  21,
                  "alice/s1",
                  1,
                  {HeldOp{1, ServerOpState::kExecuted, 1},
                   HeldOp{5, ServerOpState::kReceived, 1}}};
  const std::uint64_t refused = Refused();
  Deliver(kSrvRoute, StateExchange{Role::kServer, {}, {sv}, true}, {}, "srv");
  EXPECT_EQ(Refused(), refused + 2);
  // oth/1's answer is the one alice gets, and seq 5, when alice sends it,
  // is a new call dispatched as any other, not an operation of srv/1's.
  sent = Deliver(kOthRoute, Response{"alice/s1", 1, ErrorCode::kOk}, "REAL",
                 "oth");
  ASSERT_EQ(To<Response>(sent, kClientRoute).size(), 1u);
  EXPECT_EQ(sent[0].payload, "REAL");
  sent = Deliver(kClientRoute, AliceCall(5), "five", "alice");
  auto dispatched = To<Request>(sent, kSrvRoute);
  ASSERT_EQ(dispatched.size(), 1u);
  EXPECT_EQ(sent[0].payload, "five");
}

// ---- without a keys file nothing is checked ---------------------------------

TEST_F(BrokerCoreAccessTest, WithoutAKeysFileEveryIdAndServiceIsOpen) {
  Start();  // no policy: every peer is the anonymous principal
  EXPECT_EQ(To<Welcome>(Deliver(kSrvRoute, ServerHello("srv-a", Service(1))),
                        kSrvRoute)
                .size(),
            1u);
  EXPECT_EQ(To<Welcome>(Deliver(kClientRoute, ClientHello("s1")), kClientRoute)
                .size(),
            1u);
  auto sent = Deliver(kClientRoute, Call("s1", 1), "x");
  EXPECT_EQ(To<Request>(sent, kSrvRoute).size(), 1u);
  EXPECT_EQ(Refused(), 0u);
}

}  // namespace
}  // namespace rejoin::broker_internal
