// The broker's roster with real processes and real kill -9: a restarted
// rejoin-broker whose roster lists every server ends its grace period as soon
// as they have reported, long before --grace-ms; one whose roster lists a
// server that does not come back keeps every untracked resend for the whole
// grace period. Either way nothing runs twice.
#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "e2e/e2e_fixture.h"
#include "support/files.h"

namespace rejoin::testing {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
constexpr auto kWait = std::chrono::seconds(20);

class RosterEndToEnd : public EndToEnd {
 protected:
  // A rejoin-broker process keeping the test's roster.
  Process StartBrokerProcess(int grace_ms) {
    return Process(
        REJOIN_BROKER_BIN,
        {"--endpoint", endpoint_, "--heartbeat-ms", "50", "--probe-ms", "20",
         "--grace-ms", std::to_string(grace_ms), "--lease-ms", "5000",
         "--roster", Roster(), "--log-level", "info"},
        BrokerLog());
  }
  std::string Roster() const { return dir_.Sub("roster"); }
  std::string BrokerLog() const { return dir_.Sub("broker.log"); }
  // The roster says it is complete and lists every one of `ids`.
  bool RosterLists(const std::vector<std::string>& ids) const {
    const std::string text = ReadFile(Roster());
    if (text.find("\nstate complete\n") == std::string::npos) return false;
    for (const std::string& id : ids) {
      if (text.find("\nserver " + id + "\n") == std::string::npos) {
        return false;
      }
    }
    return true;
  }
  bool BrokerLogged(const std::string& text) const {
    return ReadFile(BrokerLog()).find(text) != std::string::npos;
  }

  // `n` calls to a server that takes one at a time: the first is running at
  // the server, the others wait in the broker, when this returns.
  std::vector<std::future<Result<Reply>>> CallsInFlight(Client& client, int n) {
    std::vector<std::future<Result<Reply>>> calls;
    for (int i = 0; i < n; ++i) {
      calls.push_back(
          client.CallFuture("echo", "w" + std::to_string(i), kWait));
    }
    EXPECT_TRUE(
        WaitFor([&] { return ReadExecutions(Ledger()).size() == 1; }, kWait));
    return calls;
  }
  static int Ready(std::vector<std::future<Result<Reply>>>& calls) {
    int n = 0;
    for (auto& f : calls) n += f.wait_for(0s) == std::future_status::ready;
    return n;
  }
  void ExpectEachAnsweredAndRunOnce(
      std::vector<std::future<Result<Reply>>>& calls) {
    for (std::size_t i = 0; i < calls.size(); ++i) {
      auto r = calls[i].get();
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      EXPECT_EQ(r->status, ErrorCode::kOk);
      EXPECT_EQ(r->payload, Expected("w" + std::to_string(i), r->seq));
    }
    const auto executions = ReadExecutions(Ledger());
    EXPECT_EQ(executions.size(), calls.size());
    for (const auto& [key, count] : executions) {
      EXPECT_EQ(count, 1) << key.first << " " << key.second;
    }
  }
};

TEST_F(RosterEndToEnd,
       BrokerKilledWithWorkInFlightRecoversLongBeforeGraceEnds) {
  // The first broker's own grace period is short so that its roster is
  // complete by the time it is killed.
  Process broker = StartBrokerProcess(100);
  StartServer("s1", {"--concurrency", "1", "--delay-ms", "100"});
  auto client = OpenClient("hurry");
  ASSERT_TRUE(WaitFor([&] { return RosterLists({"s1"}); }, kWait));
  auto calls = CallsInFlight(*client, 4);

  broker.Kill9();
  const Clock::time_point restart = Clock::now();
  broker = StartBrokerProcess(5000);
  // The requests that were queued in the dead broker are resends nobody
  // reported; they wait only until s1 has returned and reported.
  for (auto& f : calls) {
    ASSERT_EQ(f.wait_until(restart + 4000ms), std::future_status::ready)
        << "an operation waited for the grace period";
  }
  ExpectEachAnsweredAndRunOnce(calls);
  EXPECT_TRUE(BrokerLogged("all 1 listed servers returned"));
}

TEST_F(RosterEndToEnd, ListedServerThatDoesNotReturnHoldsResendsForTheGrace) {
  Process broker = StartBrokerProcess(100);
  StartServer("s1", {"--concurrency", "1", "--delay-ms", "100"});
  // Registered (so listed), but for another service: it never holds echo
  // work, and it will not come back.
  Process& s2 = StartServer("s2", {"--service", "other"});
  auto client = OpenClient("patient");
  ASSERT_TRUE(WaitFor([&] { return RosterLists({"s1", "s2"}); }, kWait));
  auto calls = CallsInFlight(*client, 4);

  s2.Kill9();
  broker.Kill9();
  const Clock::time_point restart = Clock::now();
  broker = StartBrokerProcess(1500);
  // s1 returns and reports, s2 does not: for all the broker knows, s2 holds
  // the queued requests, so none of them may run before the grace ends.
  std::this_thread::sleep_until(restart + 1000ms);
  EXPECT_EQ(ReadExecutions(Ledger()).size(), 1u);
  EXPECT_LE(Ready(calls), 1);
  ExpectEachAnsweredAndRunOnce(calls);
  EXPECT_TRUE(BrokerLogged("1 of 2 listed servers did not report: s2"));
  EXPECT_FALSE(BrokerLogged("listed servers returned"));
}

}  // namespace
}  // namespace rejoin::testing
