// What one simulated run is made of: the system's shape, the workload, and
// a probability for each fault. Every knob is plain data; the run draws its
// faults from the seed with these probabilities, so (config, seed) names a
// run exactly.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace rejoin::sim {

using Micros = std::chrono::microseconds;

// Faults, each with its own knob. Probabilities are per event named in the
// comment; 0 turns a fault off.
struct FaultKnobs {
  // Network, per message.
  double loss = 0;       // the message is dropped
  double duplicate = 0;  // delivered twice
  double reorder = 0;    // held back by up to reorder_spread
  Micros delay_min{20};  // one-way delay, uniform in [min, max] ...
  Micros delay_max{200};
  double delay_tail = 0;  // ... and with this probability up to 20 x max
  Micros reorder_spread{2000};
  // Network, per party and per millisecond of simulated time.
  double reset = 0;      // its connection is reset (both ends see it go)
  double partition = 0;  // it is cut off for partition_min..max
  Micros partition_min{50'000};
  Micros partition_max{1'500'000};
  // Processes, per handled event of the party (one step).
  double crash_client = 0;
  double crash_server = 0;
  double crash_broker = 0;  // per simulated millisecond, between turns
  // Per broker turn that sends: the broker dies after a random prefix of
  // the turn's messages left (none, some, all but one).
  double crash_broker_in_turn = 0;
  // Per journal compaction of an endpoint: the process dies after a random
  // number of the compaction's writes (renames, deletions, syncs).
  double crash_in_compaction = 0;
  Micros restart_min{1'000};
  Micros restart_max{400'000};
  double never_return = 0;  // a crashed endpoint stays down for good
  double stale = 0;         // a crashed endpoint's old process talks on
  // Disks, per crash of an endpoint: a power loss instead of a process
  // crash (unsynced data dropped), with its last write torn; per commit:
  // the append or sync fails (ENOSPC / EIO) and the process stops.
  double power_loss = 0;
  double torn_write = 0;
  double disk_full = 0;
  double disk_error = 0;
  double journal_lost = 0;  // per restart: the directory is wiped
  // Handlers, per execution.
  double slow_handler = 0;     // runs 20..600 ms instead of 20..300 us
  double failing_handler = 0;  // returns handler_failed
  // Applications, per wait: the caller (or a collector) waits only
  // 1..500 ms; when its deadline passes it collects the call again.
  double call_deadline = 0;
};

// The seeded defects of the checker's own tests (never in the product's
// options: the broker-side ones exist only in the test-only build compiled
// with REJOIN_SIM_DEFECTS).
enum class Defect : std::uint8_t {
  kNone = 0,
  kServerSendsBeforeJournal,  // model: RESPONSE leaves before EXECUTED
  kClientSendsBeforeJournal,  // model: REQUEST leaves before PREPARED
  kFencingSkipped,            // broker: an old incarnation is welcomed
  kDecisionCellChanged,       // decision: request_lost -> none
  kGraceEndedEarly,           // broker: the grace period lasts 0 ms
};
const char* DefectName(Defect d);
bool ParseDefect(const std::string& name, Defect* out);

struct SimConfig {
  std::uint64_t seed = 1;
  int clients = 3;
  int servers = 2;
  // Calls each client's application makes while faults run, then a few
  // more once they stopped; at most `window` of them in flight.
  int calls_per_client = 150;
  int final_calls = 2;
  int window = 4;
  // Services the servers register: "idem" (idempotent, re-execute), "once"
  // (answer in_doubt), "hook" (resolve hook over the application's own
  // records).
  bool with_hook_service = true;
  // The endpoints' journals: small segments, and compaction once the disk
  // holds this much and four times what is live.
  std::size_t segment_bytes = 16 * 1024;
  std::size_t compact_min_bytes = 32 * 1024;
  FaultKnobs faults;
  // Faults stop at this simulated time; after it the run must converge
  // within `settle` (liveness).
  Micros fault_time{8'000'000};
  Micros settle{60'000'000};
  Defect defect = Defect::kNone;
  // Events of the trace kept for a violation's report.
  std::size_t trace_keep = 1 << 16;
  bool verbose = false;
  // On a violation, also print this many of the last events of all
  // parties.
  std::size_t dump_all = 0;
};

// A run with every fault on at moderate rates: the default of rejoin-sim
// and of the suite.
SimConfig StormConfig(std::uint64_t seed);

}  // namespace rejoin::sim
