// One benchmark case: which system, which workload, which faults; and what it
// measured. RunCase starts every process of the case on 127.0.0.1, runs it,
// kills and reaps everything, and computes the result from the shared files
// (shm.h), so the numbers do not depend on what the system under test says
// about itself.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "spawn.h"

namespace rejoin::bench {

// Systems: "rejoin"; "rejoin-oracle" (rejoin with every envelope the
// injected loss draws delivered one broker turn later instead of lost: the
// bound of any loss recovery); the plain-ZeroMQ baselines "zmq-raw" and
// "lazy-pirate-<timer ms>"; the third-party "nats", "mqtt-qos1" and
// "mqtt-qos2" (external.h).
bool IsKnownSystem(const std::string& system);
// rejoin's own processes: "rejoin", "rejoin-oracle" and "rejoin-curve".
bool IsRejoinSystem(const std::string& system);
// CurveZMQ on every link: "rejoin-curve" (the broker with a keys file, its
// ZAP handler and per-service authorization) and "zmq-raw-curve" (the raw
// broker's sockets as CURVE servers, without ZAP).
bool IsCurveSystem(const std::string& system);

struct KillEvent {
  std::string role;  // "server", "broker" or "client" (index 0 of the role)
  double at_s = 0;   // seconds after the case starts
};

// Parses "server@2s,broker@4s,client@6.5s" (the "s" is optional).
std::optional<std::vector<KillEvent>> ParseKills(const std::string& text);

struct CaseSpec {
  std::string system = "rejoin";
  std::string kind = "load";  // "load", or "idle" (idle sessions, broker RSS)
  std::string target;         // which issue-4 target the case serves, if any
  std::uint64_t window = 1;
  std::uint64_t size = 64;
  std::uint64_t sessions = 1;
  // rejoin: client sessions per process, sharing one journal (group commit)
  // when > 1. The baselines always run one session per process.
  std::uint64_t sessions_per_process = 1;
  std::uint64_t servers = 1;
  double seconds = 2;          // issuing time (when requests == 0)
  std::uint64_t requests = 0;  // per session; 0: run for `seconds`
  std::string durability = "process";
  double loss = 0;
  std::uint64_t seed = 1;
  std::vector<KillEvent> kills;
  std::uint64_t concurrency = 64;  // rejoin server credit (and threads)
  bool inline_handlers = true;     // rejoin handlers on the server's I/O thread
  std::int64_t abandon_ms = 100;   // zmq-raw
  std::uint64_t idle_sessions = 0;
  bool rss_curve = false;  // sample the broker's RSS every 100 ms
  // Per-session operation records (0: enough for `seconds` at any rate seen
  // here, at most 2^27). A session that uses them all stops issuing, and the
  // result says so in a note.
  std::uint64_t max_records = 0;
  int repeat = 1;
};

struct CaseResult {
  CaseSpec spec;
  bool ok = true;
  std::string error;
  int runs = 0;
  double seconds = 0;
  double throughput_rps = 0;  // answers (duplicates included) per second
  double goodput_rps = 0;     // unique operations answered OK per second
  double p50_us = 0, p90_us = 0, p99_us = 0, p999_us = 0, max_us = 0;
  std::uint64_t issued = 0;
  std::uint64_t completed = 0;  // unique, answered OK
  std::uint64_t lost = 0;       // issued, never answered
  std::uint64_t duplicate_executions = 0;
  std::uint64_t executions = 0;
  std::uint64_t errors = 0;   // error answers and failed calls
  std::uint64_t resends = 0;  // lazy pirate
  // rejoin with a shared client journal: its commits and their records.
  std::uint64_t journal_commits = 0;
  std::uint64_t journal_records = 0;
  std::uint64_t abandoned = 0;               // zmq-raw
  std::uint64_t unexecuted_completions = 0;  // answered OK, never executed
  // Accepted by CallAsync in a client process killed before its I/O thread
  // journaled them: never sent, never run (the library's documented outcome
  // of that crash); counted apart from `lost` once the restarted process has
  // collected everything its journal held.
  std::uint64_t unjournaled_at_kill = 0;
  std::vector<std::optional<double>> recovery_ms;  // one per kill
  std::vector<std::string> notes;
  std::map<std::string, ProcessUsage> roles;        // "broker", "server", ...
  std::vector<std::pair<double, double>> cdf;       // (latency us, fraction)
  std::vector<std::pair<double, long>> broker_rss;  // (seconds, KiB)
  long idle_broker_rss_kib = 0;  // idle case: broker VmRSS with the sessions
};

struct Environment {
  std::string self;        // this executable, re-run for roles
  std::string broker_bin;  // rejoin-broker
  std::string workdir;     // case directories go below it
  std::string endpoint;    // existing rejoin broker; empty: start one
  std::vector<std::string> broker_args;  // extra rejoin-broker flags
  std::string nats_server_bin;           // nats-server; empty: not found
  std::string mosquitto_bin;             // mosquitto; empty: not found
  // rejoin-broker keeps a roster in the case's directory (--roster), so a
  // restarted broker ends its grace period once the servers have reported.
  // Off here, or with a --roster of one's own in broker_args.
  bool broker_roster = true;
  bool keep_files = false;
};

// Called about every 100 ms with the fraction of the case done.
using Progress = std::function<void(double)>;

// Runs the case spec.repeat times and returns the medians (counts of lost,
// duplicate and error operations are summed over the runs).
CaseResult RunCase(const CaseSpec& spec, const Environment& env,
                   const Progress& progress);

// One run of the case (seed + run), ignoring spec.repeat.
CaseResult RunOnce(const CaseSpec& spec, const Environment& env, int run,
                   const Progress& progress);

// Medians over runs of one case (lost, duplicate and error counts summed).
CaseResult Aggregate(std::vector<CaseResult> runs);

// The expected wall time of one run of a case, for the progress bar.
double EstimateSeconds(const CaseSpec& spec);

// A 127.0.0.1 TCP port nobody is bound to right now.
int FreePort();

}  // namespace rejoin::bench
