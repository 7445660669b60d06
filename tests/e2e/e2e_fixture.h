// The vocabulary of the end-to-end tests: a broker run in-process over real
// loopback TCP (so faults can be injected deterministically), servers run as
// real processes (so they can be killed with kill -9), and clients either
// in-process or as processes. Every test gets its own port and directory.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "e2e/harness.h"
#include "rejoin/broker/broker.h"
#include "rejoin/broker/fault_injection.h"
#include "rejoin/client/client.h"

namespace rejoin::testing {

class EndToEnd : public ::testing::Test {
 protected:
  EndToEnd() : port_(FreePort()), endpoint_(LoopbackEndpoint(port_)) {}
  ~EndToEnd() override {
    servers_.clear();
    StopBroker();
  }

  // Broker timers short enough for tests, long enough for a loaded machine.
  static BrokerOptions TestBrokerOptions() {
    BrokerOptions o;
    o.heartbeat = std::chrono::milliseconds(50);
    o.probe = std::chrono::milliseconds(20);
    o.grace = std::chrono::milliseconds(200);
    o.lease = std::chrono::milliseconds(600);
    return o;
  }

  void StartBroker(BrokerOptions o = TestBrokerOptions()) {
    o.endpoint = endpoint_;
    FaultInjection faults;
    faults.fault = [this](const FaultPoint& p) { return ShouldDrop(p); };
    auto b = Broker::Bind(o, std::move(faults));
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    broker_ = std::move(*b);
    broker_->Start();
  }
  void StopBroker() { broker_.reset(); }
  BrokerStats BrokerCounters() { return broker_->stats(); }
  // Waits until the in-process broker counts `n` live servers: a server
  // process still starting when the first calls arrive would leave them
  // queued, and after a lease answered unknown_service.
  void WaitForServers(std::uint64_t n) {
    ASSERT_TRUE(WaitFor([&] { return BrokerCounters().servers >= n; },
                        std::chrono::seconds(20)))
        << "only " << BrokerCounters().servers << " of " << n
        << " servers registered";
  }

  // Drops the next `n` envelopes matching where/type (and seq, if non-zero).
  void DropNext(FaultPoint::Where where, MessageType type, int n = 1,
                Seq seq = 0) {
    std::lock_guard<std::mutex> lock(fault_mu_);
    drops_.push_back(Drop{where, type, seq, n});
  }
  void ClearDrops() {
    std::lock_guard<std::mutex> lock(fault_mu_);
    drops_.clear();
  }
  int Dropped() const { return dropped_.load(); }

  // A rejoin-test-server process for service "echo".
  Process& StartServer(const std::string& id,
                       std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--endpoint",  endpoint_,
                                     "--server-id", id,
                                     "--journal",   dir_.Sub("server-" + id),
                                     "--ledger",    Ledger()};
    args.insert(args.end(), extra.begin(), extra.end());
    servers_.emplace_back(std::make_unique<Process>(
        REJOIN_TEST_SERVER_BIN, args, dir_.Sub("server-" + id + ".log")));
    return *servers_.back();
  }

  ClientOptions ClientOptionsFor(const std::string& session) {
    ClientOptions o;
    o.endpoint = endpoint_;
    o.session_id = session;
    o.journal_dir = dir_.Sub("client-" + session);
    o.heartbeat = std::chrono::milliseconds(50);
    o.resend_delay = std::chrono::milliseconds(100);
    o.default_deadline = std::chrono::seconds(20);
    return o;
  }
  std::unique_ptr<Client> OpenClient(const std::string& session) {
    auto c = Client::Open(ClientOptionsFor(session));
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(*c) : nullptr;
  }

  std::string Ledger() const { return dir_.Sub("executions.ledger"); }
  int Executions(const std::string& session, Seq seq) const {
    auto all = ReadExecutions(Ledger());
    auto it = all.find({session, seq});
    return it == all.end() ? 0 : it->second;
  }
  static std::string Expected(const std::string& payload, Seq seq) {
    return "ok:" + payload + "@" + std::to_string(seq);
  }

  TempDir dir_;
  int port_;
  std::string endpoint_;
  std::unique_ptr<Broker> broker_;
  std::vector<std::unique_ptr<Process>> servers_;

 private:
  struct Drop {
    FaultPoint::Where where;
    MessageType type;
    Seq seq;
    int left;
  };
  bool ShouldDrop(const FaultPoint& p) {
    std::lock_guard<std::mutex> lock(fault_mu_);
    for (Drop& d : drops_) {
      if (d.left > 0 && d.where == p.where && d.type == p.type &&
          (d.seq == 0 || d.seq == p.seq)) {
        --d.left;
        ++dropped_;
        return true;
      }
    }
    return false;
  }
  std::mutex fault_mu_;
  std::vector<Drop> drops_;
  std::atomic<int> dropped_{0};
};

}  // namespace rejoin::testing
