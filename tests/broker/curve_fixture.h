// A broker with CURVE and a keys file, on loopback, for the security tests:
// key pairs for the broker and for each principal (written where a real
// Client or Server reads them), real clients and servers with their keys,
// and hand-made endpoints (raw_endpoint.h) that authenticate as any of the
// principals, with a key the keys file does not list, or with no key.
//
// Principals: alice and mallory may call echo (mallory is the hostile
// client); echosrv may serve echo; evilsrv may serve `other` only (the
// hostile server). `stranger` has a key pair the keys file does not list.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <zmq.hpp>

#include "rejoin/broker/broker.h"
#include "rejoin/client/client.h"
#include "rejoin/server/server.h"
#include "rejoin/transport/curve.h"
#include "support/raw_endpoint.h"
#include "support/temp_dir.h"

namespace rejoin::testing {

using namespace std::chrono_literals;

class CurveBroker : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name :
         {"broker", "alice", "mallory", "echosrv", "evilsrv", "stranger"}) {
      auto pair = transport::GenerateKeyPair();
      ASSERT_TRUE(pair.ok()) << pair.status().ToString();
      keys_[name] = *pair;
      ASSERT_TRUE(transport::WriteKeyFile(KeyFile(name), *pair, true).ok());
      ASSERT_TRUE(
          transport::WriteKeyFile(KeyFile(name) + ".pub", *pair, false).ok());
    }
    WriteKeysFile(DefaultKeysFile());
  }

  std::string KeyFile(const std::string& name) const {
    return dir_.Sub(name + ".key");
  }
  std::string DefaultKeysFile() const {
    std::string text = "# the test's principals\n";
    for (const char* name : {"alice", "mallory", "echosrv", "evilsrv"}) {
      text += std::string("principal ") + name + " key " +
              keys_.at(name).public_key + "\n";
    }
    text +=
        "allow alice call echo\n"
        "allow mallory call echo\n"
        "allow echosrv serve echo\n"
        "allow evilsrv serve other\n";
    return text;
  }
  void WriteKeysFile(const std::string& text) {
    std::ofstream(dir_.Sub("keys")) << text;
  }

  // Hand-made endpoints send no heartbeats: a long interval keeps them
  // alive. No grace period: requests are dispatched at once.
  BrokerOptions Options() const {
    BrokerOptions o;
    o.endpoint = "tcp://127.0.0.1:*";
    o.curve_key_file = KeyFile("broker");
    o.keys_file = dir_.Sub("keys");
    o.heartbeat = 2000ms;
    o.probe = 1000ms;
    o.grace = 0ms;
    o.lease = 3000ms;
    return o;
  }
  void StartBroker(BrokerOptions o) {
    auto b = Broker::Bind(o);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    broker_ = std::move(*b);
    broker_->Start();
  }
  void StartBroker() { StartBroker(Options()); }

  CurveOptions CurveOf(const std::string& name) const {
    return CurveOptions{KeyFile(name), KeyFile("broker") + ".pub"};
  }
  transport::CurveKeys RawKeys(const std::string& name) const {
    return transport::CurveKeys{keys_.at(name), keys_.at("broker").public_key};
  }
  // A hand-made endpoint authenticated as `name` ("" : no CURVE at all).
  std::unique_ptr<RawEndpoint> Raw(const std::string& name) {
    if (name.empty()) {
      return std::make_unique<RawEndpoint>(ctx_, broker_->bound_endpoint());
    }
    const transport::CurveKeys k = RawKeys(name);
    return std::make_unique<RawEndpoint>(ctx_, broker_->bound_endpoint(), &k);
  }

  // A real client session of `principal` (its key pair and the broker's
  // public key), with a journal of its own.
  ClientOptions ClientOf(const std::string& principal,
                         const std::string& session) const {
    ClientOptions o;
    o.endpoint = broker_->bound_endpoint();
    o.curve = CurveOf(principal);
    o.session_id = session;
    std::string journal = session;
    std::replace(journal.begin(), journal.end(), '/', '-');
    o.journal_dir = dir_.Sub("journal-" + journal);
    o.heartbeat = 2000ms;
    o.resend_delay = 100ms;
    o.default_deadline = 5s;
    return o;
  }
  // A real in-memory server of `principal` serving `service` with a
  // handler that answers `prefix` + the payload.
  static std::unique_ptr<Server> OpenServer(ServerOptions o,
                                            const std::string& service,
                                            std::string prefix) {
    ServiceOptions svc;
    svc.name = service;
    svc.handler = [prefix](const RequestView& r) {
      return HandlerReply{ErrorCode::kOk, prefix + std::string(r.payload)};
    };
    auto s = Server::Open(o, {svc});
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }
  ServerOptions ServerOf(const std::string& principal,
                         const std::string& id) const {
    ServerOptions o;
    o.endpoint = broker_->bound_endpoint();
    o.curve = CurveOf(principal);
    o.server_id = id;
    o.durability = Durability::kMemory;
    o.heartbeat = 2000ms;
    return o;
  }

  // The real victim: alice's durable session and echosrv's server.
  std::unique_ptr<Client> Alice(const std::string& session = "alice/s1") {
    auto c = Client::Open(ClientOf("alice", session));
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(*c) : nullptr;
  }
  std::unique_ptr<Server> EchoServer(const std::string& id = "echosrv/1") {
    ServiceOptions svc;
    svc.name = "echo";
    // The calling principal, as the server sees it.
    svc.handler = [](const RequestView& r) {
      return HandlerReply{ErrorCode::kOk, std::string(r.principal()) + ":" +
                                              std::string(r.payload)};
    };
    auto s = Server::Open(ServerOf("echosrv", id), {svc});
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }

  // The victim's calls go through unaffected: each is answered OK by the
  // real server.
  static void VictimCallsWork(Client& c, int calls = 5) {
    for (int i = 0; i < calls; ++i) {
      auto r = c.Call("echo", "call-" + std::to_string(i));
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      EXPECT_EQ(r->status, ErrorCode::kOk);
      EXPECT_EQ(r->payload, "alice:call-" + std::to_string(i));
    }
  }

  static Hello ClientHello(const std::string& id, JournalId journal = 42,
                           Incarnation incarnation = 1) {
    return Hello{Role::kClient, id, incarnation, journal, 0, {}};
  }
  static Hello ServerHello(const std::string& id, const std::string& service) {
    return Hello{Role::kServer, id, 1, 99, 0, {ServiceSpec{service, 100}}};
  }
  // HELLO and its WELCOME.
  static void Hi(RawEndpoint& e, const Hello& hello) {
    e.Send(hello);
    Message m = e.Next();
    const auto* w = std::get_if<Welcome>(&m);
    ASSERT_NE(w, nullptr) << "HELLO of " << hello.id << " not welcomed";
  }
  // The next message must be ERROR `code`.
  static void ExpectError(RawEndpoint& e, ErrorCode code) {
    Message m = e.Next();
    const auto* err = std::get_if<Error>(&m);
    ASSERT_NE(err, nullptr)
        << "expected ERROR, got message type " << static_cast<int>(TypeOf(m));
    EXPECT_EQ(err->code, code) << err->message;
  }
  // Nothing at all arrives within `wait` (RawEndpoint::Next's timeout).
  static void ExpectSilence(RawEndpoint& e,
                            std::chrono::milliseconds wait = 500ms) {
    Message m = e.Next(wait);
    const auto* g = std::get_if<Goodbye>(&m);
    ASSERT_NE(g, nullptr) << "expected nothing, got message type "
                          << static_cast<int>(TypeOf(m));
    EXPECT_EQ(g->reason, "timeout");
  }

  TempDir dir_;
  std::map<std::string, transport::KeyPair> keys_;
  zmq::context_t ctx_;
  std::unique_ptr<Broker> broker_;
};

}  // namespace rejoin::testing
