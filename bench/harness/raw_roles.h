// Baseline roles (plain cppzmq): see roles.h for what each does.
#pragma once

#include "roles.h"

namespace rejoin::bench {

int RunRawBroker(const RoleArgs& a);
int RunRawWorker(const RoleArgs& a);
int RunRawClient(const RoleArgs& a);
// Many DEALERs that each get one echo and then stay idle (broker RSS).
int RunRawIdle(const RoleArgs& a);

}  // namespace rejoin::bench
