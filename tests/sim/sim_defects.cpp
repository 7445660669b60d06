// The switch of the seeded defects (libproto/src/sim_defects.h); linked
// only into the test-only build.
#include "sim_defects.h"

namespace rejoin::sim_defects {
namespace {
int active = 0;
}  // namespace

int Active() { return active; }
void SetActive(int defect) { active = defect; }

}  // namespace rejoin::sim_defects
