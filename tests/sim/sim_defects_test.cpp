// The checker must be able to fail: each seeded defect (sim_config.h,
// libproto/src/sim_defects.h) is switched on in turn and must be found,
// with the invariant it breaks, within a few hundred seeds of a short
// storm. Runs only in the test-only build that carries the defects.
#include "sim_defects.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <set>
#include <string>

#include "sim_world.h"

namespace rejoin::sim {
namespace {

SimConfig Short(std::uint64_t seed, Defect d) {
  SimConfig c = StormConfig(seed);
  c.fault_time = std::chrono::seconds(2);
  c.calls_per_client = 50;
  c.defect = d;
  return c;
}

// Runs seeds until a run fails; returns its report ("" if none failed) and
// checks the invariant it names.
std::string FindDefect(Defect d, const std::set<std::string>& invariants,
                       SimConfig (*shape)(std::uint64_t, Defect),
                       int max_seeds) {
  sim_defects::SetActive(static_cast<int>(d));
  std::string found;
  for (int seed = 1; seed <= max_seeds && found.empty(); ++seed) {
    const RunResult r = RunSeed(shape(static_cast<std::uint64_t>(seed), d));
    if (r.ok) continue;
    found = r.report;
    // What a person reading the log sees: the seed and the invariant.
    std::printf("%s found: %s", DefectName(d),
                found.substr(0, found.find('\n') + 1).c_str());
    EXPECT_EQ(invariants.count(r.violations.front().invariant), 1u) << r.report;
  }
  sim_defects::SetActive(0);
  return found;
}

TEST(SimDefects, ServerSendingBeforeJournalingIsFound) {
  const std::string report = FindDefect(Defect::kServerSendsBeforeJournal,
                                        {"sent_before_journaled"}, Short, 300);
  EXPECT_FALSE(report.empty());
}

TEST(SimDefects, ClientSendingBeforeJournalingIsFound) {
  const std::string report = FindDefect(
      Defect::kClientSendsBeforeJournal,
      {"sent_before_journaled", "side_effect_of_unrecorded_call"}, Short, 300);
  EXPECT_FALSE(report.empty());
}

TEST(SimDefects, SkippedFencingIsFound) {
  const std::string report = FindDefect(
      Defect::kFencingSkipped, {"old_incarnation_welcomed"},
      [](std::uint64_t seed, Defect d) {
        SimConfig c = Short(seed, d);
        c.faults.stale = 1.0;
        return c;
      },
      300);
  EXPECT_FALSE(report.empty());
}

TEST(SimDefects, ChangedDecisionCellIsFound) {
  const std::string report =
      FindDefect(Defect::kDecisionCellChanged,
                 {"non_idempotent_executed_twice"}, Short, 300);
  EXPECT_FALSE(report.empty());
}

TEST(SimDefects, GraceEndedEarlyIsFound) {
  const std::string report = FindDefect(
      Defect::kGraceEndedEarly, {"non_idempotent_executed_twice"},
      [](std::uint64_t seed, Defect d) {
        SimConfig c = Short(seed, d);
        c.faults.crash_broker = 0.002;
        c.faults.slow_handler = 0.3;
        return c;
      },
      300);
  EXPECT_FALSE(report.empty());
}

// The same storms without a defect pass: what the tests above find is the
// defect, not the storm.
TEST(SimDefects, TheSameStormsPassWithoutADefect) {
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    SimConfig c = Short(seed, Defect::kNone);
    c.faults.stale = 1.0;
    c.faults.crash_broker = 0.002;
    c.faults.slow_handler = 0.3;
    const RunResult r = RunSeed(c);
    ASSERT_TRUE(r.ok) << r.report;
  }
}

}  // namespace
}  // namespace rejoin::sim
