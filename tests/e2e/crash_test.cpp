// kill -9 at random moments, many times, of the client, the server and the
// broker: all real processes on loopback. After the storm the system is left
// to finish, and then every operation must have been executed exactly once
// (by the server's own ledger) and answered with its own payload (by the
// client's outcome file). REJOIN_SOAK_SCALE multiplies the cycle counts.
#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "e2e/e2e_fixture.h"
#include "support/files.h"

namespace rejoin::testing {
namespace {

constexpr std::uint64_t kSeed = 20261126;

int Cycles() {
  int scale = 1;
  if (const char* s = std::getenv("REJOIN_SOAK_SCALE")) {
    scale = std::max(1, std::atoi(s));
  }
  return 50 * scale;
}

class CrashCycles : public EndToEnd {
 protected:
  // With a roster (if not empty) and a long grace period to end early.
  Process StartBrokerProcess(const std::string& roster = "") {
    std::vector<std::string> args = {
        "--endpoint", endpoint_, "--heartbeat-ms", "50",  "--probe-ms", "20",
        "--lease-ms", "5000",    "--log-level",    "warn"};
    const std::vector<std::string> grace =
        roster.empty() ? std::vector<std::string>{"--grace-ms", "150"}
                       : std::vector<std::string>{"--grace-ms", "2000",
                                                  "--roster", roster};
    args.insert(args.end(), grace.begin(), grace.end());
    return Process(REJOIN_BROKER_BIN, args, dir_.Sub("broker.log"));
  }
  // Two servers and a client of 20 calls per cycle; the broker (with
  // `roster`, if any) is killed at random moments `cycles` times. Nothing
  // may be lost or run twice.
  void BrokerStorm(int cycles, const std::string& roster) {
    const std::size_t count = static_cast<std::size_t>(cycles) * 20;
    Process broker = StartBrokerProcess(roster);
    for (const char* id : {"s1", "s2"}) {
      StartServer(
          id, {"--policy", "resolve", "--concurrency", "4", "--delay-ms", "1"});
    }
    Process client = StartClientProcess("c1", count, 8);
    for (int i = 0; i < cycles; ++i) {
      std::this_thread::sleep_for(RandomPause(30, 120));
      broker.Kill9();
      broker = StartBrokerProcess(roster);
    }
    ASSERT_EQ(client.Wait(std::chrono::seconds(60)), 0);
    ExpectExactlyOnce("c1", count);
  }
  Process StartClientProcess(const std::string& session, std::size_t count,
                             std::size_t window) {
    return Process(
        REJOIN_TEST_CLIENT_BIN,
        {"--endpoint", endpoint_, "--session", session, "--journal",
         dir_.Sub("client-" + session), "--outcomes", Outcomes(), "--count",
         std::to_string(count), "--window", std::to_string(window)},
        dir_.Sub("client-" + session + ".log"));
  }
  std::string Outcomes() const { return dir_.Sub("outcomes"); }

  std::chrono::milliseconds RandomPause(int lo, int hi) {
    return std::chrono::milliseconds(
        std::uniform_int_distribution<int>(lo, hi)(rng_));
  }

  // Exactly once, both ways, for `count` operations of `session`.
  void ExpectExactlyOnce(const std::string& session, std::size_t count) {
    std::map<Seq, std::set<std::string>> answers;
    for (const Outcome& o : ReadOutcomes(Outcomes())) {
      if (o.session != session) continue;
      EXPECT_EQ(o.status, "ok") << "seq " << o.seq;
      const std::string suffix = "@" + std::to_string(o.seq);
      EXPECT_TRUE(o.payload.size() > suffix.size() &&
                  o.payload.compare(o.payload.size() - suffix.size(),
                                    suffix.size(), suffix) == 0)
          << "seq " << o.seq << " answered with " << o.payload;
      answers[o.seq].insert(o.payload);
    }
    EXPECT_EQ(answers.size(), count) << "operations completed";
    for (const auto& [seq, payloads] : answers) {
      // Collected again after a crash before it was forgotten is allowed;
      // two different answers for one operation are not.
      EXPECT_EQ(payloads.size(), 1u) << "seq " << seq;
    }
    std::size_t executed = 0;
    for (const auto& [key, n] : ReadExecutions(Ledger())) {
      if (key.first != session) continue;
      ++executed;
      EXPECT_EQ(n, 1) << "seq " << key.second << " executed " << n << " times";
      EXPECT_EQ(answers.count(key.second), 1u)
          << "seq " << key.second << " executed but never answered";
    }
    EXPECT_EQ(executed, count) << "every answer comes from one execution";
  }

  std::mt19937 rng_{kSeed};
};

TEST_F(CrashCycles, ClientKilledAtRandomMoments) {
  const int cycles = Cycles();
  const std::size_t count = static_cast<std::size_t>(cycles) * 6;
  Process broker = StartBrokerProcess();
  StartServer("s1", {"--policy", "resolve", "--concurrency", "4"});
  for (int i = 0; i < cycles; ++i) {
    Process client = StartClientProcess("c1", count, 4);
    std::this_thread::sleep_for(RandomPause(20, 120));
    client.Kill9();
  }
  Process last = StartClientProcess("c1", count, 4);
  ASSERT_EQ(last.Wait(std::chrono::seconds(60)), 0);
  ExpectExactlyOnce("c1", count);
}

TEST_F(CrashCycles, ServerKilledAtRandomMoments) {
  const int cycles = Cycles();
  const std::size_t count = static_cast<std::size_t>(cycles) * 20;
  Process broker = StartBrokerProcess();
  Process client = StartClientProcess("c1", count, 8);
  for (int i = 0; i < cycles; ++i) {
    Process& server = StartServer(
        "s1", {"--policy", "resolve", "--concurrency", "4", "--delay-ms", "1"});
    std::this_thread::sleep_for(RandomPause(30, 120));
    server.Kill9();
    servers_.clear();
  }
  StartServer("s1", {"--policy", "resolve", "--concurrency", "4"});
  ASSERT_EQ(client.Wait(std::chrono::seconds(60)), 0);
  ExpectExactlyOnce("c1", count);
}

TEST_F(CrashCycles, BrokerKilledAtRandomMoments) { BrokerStorm(Cycles(), ""); }

// The same storm with a roster and a long grace period: most restarts end
// their grace period early, once both servers have reported, and still
// nothing runs twice.
TEST_F(CrashCycles, BrokerWithRosterKilledAtRandomMoments) {
  // A complete, empty roster, as a broker that never saw a server leaves it.
  const std::string roster = dir_.Sub("roster");
  WriteFile(roster, "rejoin-roster 1\nstate complete\nend 0\n");
  BrokerStorm(std::max(1, Cycles() / 5), roster);
}

}  // namespace
}  // namespace rejoin::testing
