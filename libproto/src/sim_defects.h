// Seeded defects for the checker tests of rejoin-sim (tests/sim): they
// exist only in a test-only build of the broker core and the decision
// table compiled with REJOIN_SIM_DEFECTS, never in a product target. Each
// is switched on at run time by the simulation; off, the code is the
// product's.
#pragma once

#ifdef REJOIN_SIM_DEFECTS
namespace rejoin::sim_defects {

// Values of rejoin::sim::Defect (tests/sim/sim_config.h).
inline constexpr int kFencingSkipped = 3;       // an old incarnation taken
inline constexpr int kDecisionCellChanged = 4;  // in doubt, answer_in_doubt
                                                // policy -> reexecute
inline constexpr int kGraceEndedEarly = 5;      // grace period of 0 ms

// The defect switched on, 0 for none.
int Active();
void SetActive(int defect);

}  // namespace rejoin::sim_defects
#endif
