// The named configurations and defects of the simulation (sim_config.h).
#include "sim_config.h"

namespace rejoin::sim {

const char* DefectName(Defect d) {
  switch (d) {
    case Defect::kNone:
      return "none";
    case Defect::kServerSendsBeforeJournal:
      return "server-sends-before-journal";
    case Defect::kClientSendsBeforeJournal:
      return "client-sends-before-journal";
    case Defect::kFencingSkipped:
      return "fencing-skipped";
    case Defect::kDecisionCellChanged:
      return "decision-cell-changed";
    case Defect::kGraceEndedEarly:
      return "grace-ended-early";
  }
  return "?";
}

bool ParseDefect(const std::string& name, Defect* out) {
  for (int i = 0; i <= static_cast<int>(Defect::kGraceEndedEarly); ++i) {
    const auto d = static_cast<Defect>(i);
    if (name == DefectName(d)) {
      *out = d;
      return true;
    }
  }
  return false;
}

SimConfig StormConfig(std::uint64_t seed) {
  SimConfig c;
  c.seed = seed;
  FaultKnobs& f = c.faults;
  f.loss = 0.02;
  f.duplicate = 0.02;
  f.reorder = 0.03;
  f.delay_tail = 0.01;
  f.reset = 0.0005;
  f.partition = 0.0002;
  f.crash_client = 0.004;
  f.crash_server = 0.004;
  f.crash_broker = 0.0003;
  f.crash_broker_in_turn = 0.0005;
  f.crash_in_compaction = 0.2;
  // Compactions often enough that crashes inside them are many.
  c.segment_bytes = 4 * 1024;
  c.compact_min_bytes = 8 * 1024;
  f.never_return = 0.02;
  f.stale = 0.2;
  f.power_loss = 0.3;
  f.torn_write = 0.5;
  f.disk_full = 0.002;
  f.disk_error = 0.002;
  f.journal_lost = 0.02;
  f.slow_handler = 0.05;
  f.failing_handler = 0.05;
  f.call_deadline = 0.2;
  return c;
}

}  // namespace rejoin::sim
