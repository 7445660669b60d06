// rejoin-sim: runs the deterministic simulation for one seed or a range of
// seeds and prints what each run measured; a violation prints the seed, the
// invariant and the last trace events of the operation concerned, and the
// program exits 1. `--seed S` replays run S exactly (same trace hash).
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>

#include "sim_world.h"
#ifdef REJOIN_SIM_DEFECTS
#include "sim_defects.h"
#endif

using rejoin::sim::Defect;
using rejoin::sim::RunResult;
using rejoin::sim::RunStats;
using rejoin::sim::SimConfig;

int main(int argc, char** argv) {
  CLI::App app{"rejoin-sim: the whole system under seeded faults"};
  std::uint64_t seed = 1;
  std::uint64_t seeds = 1;
  int clients = 3, servers = 2, calls = 150;
  double fault_seconds = 8;
  bool quiet = false, calm = false;
  std::string defect = "none";
  std::size_t dump_all = 0;
  bool verbose = false;
  std::uint64_t expect_crashes = 0, expect_net_faults = 0;
  double in_turn = -1, in_compaction = -1;
  app.add_option("--crash-broker-in-turn", in_turn,
                 "per broker turn that sends: the broker dies mid-send "
                 "(default: the storm's)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--crash-in-compaction", in_compaction,
                 "per journal compaction: the process dies inside it "
                 "(default: the storm's)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--expect-crashes", expect_crashes,
                 "fail unless the seeds crashed and restarted this often");
  app.add_option("--expect-net-faults", expect_net_faults,
                 "fail unless this many messages were lost, duplicated or "
                 "reordered");
  app.add_option("--dump", dump_all,
                 "on a violation, print this many last events of all parties");
  app.add_flag("--verbose", verbose, "the broker core's log lines");
  app.add_option("--seed", seed, "first seed (a run replays from its seed)");
  app.add_option("--seeds", seeds, "how many seeds from --seed");
  app.add_option("--clients", clients, "clients")->check(CLI::Range(1, 64));
  app.add_option("--servers", servers, "servers")->check(CLI::Range(1, 64));
  app.add_option("--calls", calls, "calls per client while faults run")
      ->check(CLI::Range(0, 1000000));
  app.add_option("--fault-seconds", fault_seconds,
                 "simulated seconds of faults")
      ->check(CLI::Range(0.0, 100000.0));
  app.add_flag("--calm", calm, "no faults at all");
  app.add_flag("--quiet", quiet, "one line per failing seed only");
  app.add_option("--defect", defect,
                 "seeded defect (test-only build rejoin-sim-defects)");
  CLI11_PARSE(app, argc, argv);

  Defect d = Defect::kNone;
  if (!rejoin::sim::ParseDefect(defect, &d)) {
    std::cerr << "unknown defect " << defect << "\n";
    return 2;
  }
#ifdef REJOIN_SIM_DEFECTS
  rejoin::sim_defects::SetActive(static_cast<int>(d));
#else
  if (d != Defect::kNone) {
    std::cerr << "defects exist only in rejoin-sim-defects\n";
    return 2;
  }
#endif
  RunStats total;
  std::uint64_t failed = 0;
  const std::clock_t start = std::clock();
  for (std::uint64_t s = seed; s < seed + seeds; ++s) {
    SimConfig c = calm ? SimConfig{} : rejoin::sim::StormConfig(s);
    c.seed = s;
    c.clients = clients;
    c.servers = servers;
    c.calls_per_client = calls;
    c.fault_time = std::chrono::microseconds(
        static_cast<std::int64_t>(fault_seconds * 1e6));
    c.defect = d;
    if (in_turn >= 0) c.faults.crash_broker_in_turn = in_turn;
    if (in_compaction >= 0) c.faults.crash_in_compaction = in_compaction;
    c.dump_all = dump_all;
    c.verbose = verbose;
    const RunResult r = rejoin::sim::RunSeed(c);
    const RunStats& st = r.stats;
    total.messages += st.messages;
    total.lost += st.lost;
    total.duplicated += st.duplicated;
    total.reordered += st.reordered;
    total.crashes += st.crashes;
    total.broker_crashes_in_turn += st.broker_crashes_in_turn;
    total.compaction_crashes += st.compaction_crashes;
    total.restarts += st.restarts;
    total.calls_answered += st.calls_answered;
    total.events += st.events;
    total.sim_us += st.sim_us;
    const std::uint64_t faults = st.faults();
    total.resets += faults;  // all faults, summed below
    if (!quiet || !r.ok) {
      std::printf(
          "seed %llu: %s hash=%016llx sim=%.1fs messages=%llu answered=%llu "
          "in_doubt=%llu crashes=%llu (broker %llu, in a turn %llu; in "
          "compaction %llu) lost=%llu dup=%llu "
          "reordered=%llu resets=%llu partitions=%llu power_losses=%llu "
          "torn=%llu disk_faults=%llu journals_lost=%llu gone=%llu "
          "ghosts=%llu grace_misses=%llu deadlines=%llu\n",
          static_cast<unsigned long long>(s), r.ok ? "ok" : "VIOLATION",
          static_cast<unsigned long long>(r.trace_hash),
          static_cast<double>(st.sim_us) / 1e6,
          static_cast<unsigned long long>(st.messages),
          static_cast<unsigned long long>(st.calls_answered),
          static_cast<unsigned long long>(st.in_doubt),
          static_cast<unsigned long long>(st.crashes),
          static_cast<unsigned long long>(st.broker_crashes),
          static_cast<unsigned long long>(st.broker_crashes_in_turn),
          static_cast<unsigned long long>(st.compaction_crashes),
          static_cast<unsigned long long>(st.lost),
          static_cast<unsigned long long>(st.duplicated),
          static_cast<unsigned long long>(st.reordered),
          static_cast<unsigned long long>(st.resets),
          static_cast<unsigned long long>(st.partitions),
          static_cast<unsigned long long>(st.power_losses),
          static_cast<unsigned long long>(st.torn_writes),
          static_cast<unsigned long long>(st.disk_faults),
          static_cast<unsigned long long>(st.journals_lost),
          static_cast<unsigned long long>(st.never_returned),
          static_cast<unsigned long long>(st.ghosts),
          static_cast<unsigned long long>(st.grace_misses),
          static_cast<unsigned long long>(st.deadlines));
    }
    if (!r.ok) {
      ++failed;
      std::fputs(r.report.c_str(), stdout);
    }
  }
  // CPU time of this process: the machine may be shared.
  const double cpu = static_cast<double>(std::clock() - start) / CLOCKS_PER_SEC;
  std::printf(
      "%llu seeds, %llu failed; %llu messages, %llu crashes (%llu of the "
      "broker inside a turn, %llu inside compaction), %llu "
      "restarts, %llu lost+dup+reordered, %llu faults in all; %.2f CPU s: "
      "%.0f messages/s, %.0f faults/s\n",
      static_cast<unsigned long long>(seeds),
      static_cast<unsigned long long>(failed),
      static_cast<unsigned long long>(total.messages),
      static_cast<unsigned long long>(total.crashes),
      static_cast<unsigned long long>(total.broker_crashes_in_turn),
      static_cast<unsigned long long>(total.compaction_crashes),
      static_cast<unsigned long long>(total.restarts),
      static_cast<unsigned long long>(total.lost + total.duplicated +
                                      total.reordered),
      static_cast<unsigned long long>(total.resets), cpu,
      static_cast<double>(total.messages) / cpu,
      static_cast<double>(total.resets) / cpu);
  if (total.restarts < expect_crashes ||
      total.lost + total.duplicated + total.reordered < expect_net_faults) {
    std::printf(
        "coverage below what was asked: %llu restarts (>= %llu), "
        "%llu network faults (>= %llu)\n",
        static_cast<unsigned long long>(total.restarts),
        static_cast<unsigned long long>(expect_crashes),
        static_cast<unsigned long long>(total.lost + total.duplicated +
                                        total.reordered),
        static_cast<unsigned long long>(expect_net_faults));
    return 1;
  }
  return failed == 0 ? 0 : 1;
}
