// The simulation in the suite: many seeds of the storm configuration must
// pass every invariant, and a seed must replay to the same trace.
#include <gtest/gtest.h>

#include "sim_world.h"

namespace rejoin::sim {
namespace {

TEST(Sim, CalmRunAnswersEveryCall) {
  SimConfig c;
  c.seed = 7;
  const RunResult r = RunSeed(c);
  EXPECT_TRUE(r.ok) << r.report;
  EXPECT_EQ(r.stats.calls_answered,
            static_cast<std::uint64_t>(c.clients *
                                       (c.calls_per_client + c.final_calls)));
}

TEST(Sim, SeedReplaysToTheSameTrace) {
  const RunResult a = RunSeed(StormConfig(11));
  const RunResult b = RunSeed(StormConfig(11));
  EXPECT_EQ(a.trace_hash, b.trace_hash);
  EXPECT_EQ(a.stats.messages, b.stats.messages);
  EXPECT_NE(a.trace_hash, RunSeed(StormConfig(12)).trace_hash);
}

TEST(Sim, StormSeedsKeepEveryInvariant) {
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    const RunResult r = RunSeed(StormConfig(seed));
    ASSERT_TRUE(r.ok) << r.report;
  }
}

// Seeds that found product bugs, each in the short storm it was found in
// (docs/SIMULATION.md, "Bugs found"). A change to the model or the fault
// draws moves them; the broker_core_test cases named there pin the bugs
// themselves.
SimConfig RegressionConfig(std::uint64_t seed) {
  SimConfig c = StormConfig(seed);
  c.fault_time = std::chrono::seconds(2);
  c.calls_per_client = 50;
  return c;
}

// Each seed with the bug it found (docs/SIMULATION.md, "Bugs found").
struct RegressionSeed {
  std::uint64_t seed;
  const char* bug;
};

TEST(Sim, RegressionSeedsKeepEveryInvariant) {
  const RegressionSeed seeds[] = {
      {4, "RECOVER lists each seq once"},
      {12, "a reported operation's resend is no conflict"},
      {532, "a queue moves on credit shared across services"},
      {4744, "a received copy of an answered call is not run again"},
      {468, "a lost server STATE_EXCHANGE is asked for again"},
  };
  for (const RegressionSeed& s : seeds) {
    const RunResult r = RunSeed(RegressionConfig(s.seed));
    EXPECT_TRUE(r.ok) << "seed " << s.seed << " (" << s.bug << ")\n"
                      << r.report;
  }
}

// A server held a call in its handler while cut off from before a broker
// restart until after its grace period; the resend ran elsewhere first.
// That is the protocol's timing assumption, counted, not a violation.
TEST(Sim, RegressionSeedSlowCopyFromBeforeARestartIsAGraceMiss) {
  const RunResult r = RunSeed(RegressionConfig(6183));
  EXPECT_TRUE(r.ok) << r.report;
  EXPECT_GE(r.stats.grace_misses, 1u);
}

TEST(Sim, RegressionSeedJournalOpenMakesWhatItReadDurable) {
  SimConfig c = StormConfig(201534);
  c.clients = 8;
  c.servers = 4;
  const RunResult r = RunSeed(c);
  EXPECT_TRUE(r.ok) << r.report;
}

}  // namespace
}  // namespace rejoin::sim
